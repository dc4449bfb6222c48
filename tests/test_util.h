// Helpers shared by the tests: locating ../shared and skipping with a printed reason when absent.
#pragma once
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace strata::test {

inline std::filesystem::path shared_dir() {
  if (const char* e = std::getenv("STRATA_SHARED"); e && *e) return e;
  return STRATA_SHARED_DIR;
}

// Path of a file under ../shared, or "" when it is absent.
inline std::string shared_file(const std::string& rel) {
  auto p = shared_dir() / rel;
  std::error_code ec;
  return std::filesystem::exists(p, ec) ? p.string() : std::string();
}

inline std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

inline std::vector<float> read_f32(const std::string& path) {
  auto b = read_bytes(path);
  std::vector<float> v(b.size() / 4);
  std::memcpy(v.data(), b.data(), v.size() * 4);
  return v;
}

}  // namespace strata::test

// Skips the current test with a printed reason when a shared file is missing; else binds its path.
#define STRATA_REQUIRE_SHARED(var, rel)                                                 \
  const std::string var = ::strata::test::shared_file(rel);                             \
  if (var.empty()) {                                                                    \
    std::printf("[  SKIPPED ] %s not found under %s\n", rel,                          \
                ::strata::test::shared_dir().c_str());                                  \
    GTEST_SKIP() << rel << " not found under " << ::strata::test::shared_dir();         \
  }
