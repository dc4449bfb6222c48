// `strata inspect` end to end: runs the strata binary built beside this test on every GGUF in ../shared
// (human and --json output) and on malformed files. Skips with a message when the binary is not built.
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "gguf/gguf.h"
#include "gguf_test_helpers.h"
#include "test_util.h"

namespace strata::gguf::test {
namespace {

namespace fs = std::filesystem;

// build/tests/test_gguf -> build/strata
std::string strata_binary() {
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (ec) return "";
  const fs::path bin = exe.parent_path().parent_path() / "strata";
  return fs::exists(bin, ec) ? bin.string() : "";
}

struct CmdResult {
  int status = -1;
  std::string out;  // stdout and stderr
};

CmdResult run(const std::string& cmd) {
  CmdResult r;
  std::FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  if (!p) return r;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
  const int st = ::pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

std::vector<std::string> shared_ggufs() {
  std::vector<std::string> files;
  for (const char* dir : {"models", "models/quant", "reference/tokenizer"}) {
    const std::string d = ::strata::test::shared_file(dir);
    if (d.empty()) continue;
    for (const auto& e : fs::directory_iterator(d))
      if (e.path().extension() == ".gguf") files.push_back(e.path().string());
  }
  std::sort(files.begin(), files.end());
  return files;
}

#define REQUIRE_STRATA(var)                                                     \
  const std::string var = strata_binary();                                      \
  if (var.empty()) {                                                            \
    std::printf("[  SKIPPED ] the strata binary is not built beside test_gguf\n"); \
    GTEST_SKIP() << "strata binary not built";                                  \
  }

TEST(StrataInspect, EverySharedFileAsJson) {
  REQUIRE_STRATA(bin);
  STRATA_REQUIRE_SHARED(models, "models");
  const std::vector<std::string> files = shared_ggufs();
  ASSERT_GE(files.size(), 20u);
  for (const std::string& path : files) {
    SCOPED_TRACE(path);
    const CmdResult r = run(fmt::format("STRATA_NO_PROGRESS=1 '{}' inspect --json '{}'", bin, path));
    ASSERT_EQ(r.status, 0) << r.out;
    const nlohmann::json j = nlohmann::json::parse(r.out);
    const File f = File::open(path);
    EXPECT_EQ(j["n_tensors"], f.tensors().size());
    EXPECT_EQ(j["file_size"], f.file_size());
    EXPECT_EQ(j["metadata"].size(), f.metadata().size());
    EXPECT_GT(j["tokenizer"]["vocab_size"].get<int64_t>(), 0);
    uint64_t params = 0, bytes = 0;
    for (const TensorInfo& t : f.tensors()) params += static_cast<uint64_t>(t.n_elements()), bytes += t.nbytes;
    EXPECT_EQ(j["params"], params);
    EXPECT_EQ(j["weights_bytes"], bytes);
    if (f.tensors().empty()) {
      EXPECT_TRUE(j["memory"].is_null());
      continue;
    }
    ASSERT_TRUE(j["memory"].is_object());
    const auto& m = j["memory"];
    EXPECT_EQ(m["weights"], bytes);
    EXPECT_EQ(m["total"].get<uint64_t>(),
              m["weights"].get<uint64_t>() + m["kv_cache_f16"].get<uint64_t>() + m["working"].get<uint64_t>());
    // KV at f16 = 2 * n_layer * ctx * n_head_kv * head_dim * 2 bytes; ctx = context_length capped at 4096.
    const std::string arch = f.get_string("general.architecture");
    const int64_t n_layer = f.get_int(arch + ".block_count", 0), n_embd = f.get_int(arch + ".embedding_length", 0);
    const int64_t n_head = f.get_int(arch + ".attention.head_count", 0);
    const int64_t n_kv = f.get_int(arch + ".attention.head_count_kv", n_head);
    const int64_t ctx = std::min<int64_t>(f.get_int(arch + ".context_length", 4096), 4096);
    EXPECT_EQ(m["ctx"], ctx);
    EXPECT_EQ(m["kv_cache_f16"].get<int64_t>(), 2 * n_layer * ctx * n_kv * (n_embd / n_head) * 2);
    EXPECT_GT(j["bits_per_weight"].get<double>(), 1.0);
    EXPECT_LE(j["bits_per_weight"].get<double>(), 32.01);
    EXPECT_TRUE(j["tensors"].is_array());
    EXPECT_EQ(j["tensors"].size(), f.tensors().size());
  }
}

TEST(StrataInspect, HumanOutputAndOptions) {
  REQUIRE_STRATA(bin);
  STRATA_REQUIRE_SHARED(path, "models/quant/strata-tiny-256-Q4_K.gguf");
  CmdResult r = run(fmt::format("STRATA_NO_PROGRESS=1 '{}' inspect '{}'", bin, path));
  ASSERT_EQ(r.status, 0) << r.out;
  for (const char* s : {"architecture  llama", "embedding_length", "tokenizer     llama", "bos 1 \"<s>\"",
                        "blk.0.attn_q.weight", "q4_K", "[256, 256]", "bits per weight", "KV cache (f16)",
                        "working buffers", "memory at ctx 512"})
    EXPECT_NE(r.out.find(s), std::string::npos) << "'" << s << "' missing from:\n" << r.out;
  r = run(fmt::format("STRATA_NO_PROGRESS=1 '{}' inspect --no-tensors --ctx 100 '{}'", bin, path));
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_EQ(r.out.find("blk.0.attn_q.weight"), std::string::npos);
  EXPECT_NE(r.out.find("memory at ctx 100 (batch 100)"), std::string::npos) << r.out;
  r = run(fmt::format("STRATA_NO_PROGRESS=1 '{}' inspect --json --ctx 8192 '{}'", bin, path));
  ASSERT_EQ(r.status, 0) << r.out;
  const nlohmann::json j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["memory"]["ctx"], 8192);
  EXPECT_NE(j["memory"]["note"].get<std::string>().find("beyond the trained context length 512"), std::string::npos);
}

TEST(StrataInspect, UnsupportedTypesAreFlaggedNotFatal) {
  REQUIRE_STRATA(bin);
  Writer w;
  w.set("general.architecture", Writer::string("llama"));
  w.set("llama.block_count", Writer::u32(1));
  w.set("llama.embedding_length", Writer::u32(256));
  w.set("llama.attention.head_count", Writer::u32(4));
  std::vector<uint8_t> data(66);
  w.add_tensor("blk.0.attn_q.weight", 16 /*iq2_xxs*/, {256}, data);
  const std::string path = (fs::temp_directory_path() / fmt::format("strata_inspect_{}.gguf", ::getpid())).string();
  w.write(path);
  const CmdResult r = run(fmt::format("STRATA_NO_PROGRESS=1 '{}' inspect '{}'", bin, path));
  const CmdResult rj = run(fmt::format("STRATA_NO_PROGRESS=1 '{}' inspect --json '{}'", bin, path));
  fs::remove(path);
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("iq2_xxs"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("(unsupported by strata)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("tensor types strata cannot compute with yet: iq2_xxs"), std::string::npos) << r.out;
  ASSERT_EQ(rj.status, 0) << rj.out;
  EXPECT_EQ(nlohmann::json::parse(rj.out)["unsupported_types"], nlohmann::json::array({"iq2_xxs"}));
}

TEST(StrataInspect, BadFilesExitOneWithTheReason) {
  REQUIRE_STRATA(bin);
  Sample s;
  std::vector<uint8_t> b = s.bytes();
  b.resize(b.size() / 2);
  const std::string path = (fs::temp_directory_path() / fmt::format("strata_bad_{}.gguf", ::getpid())).string();
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
  CmdResult r = run(fmt::format("'{}' inspect '{}'", bin, path));
  fs::remove(path);
  EXPECT_EQ(r.status, 1) << r.out;
  EXPECT_NE(r.out.find("strata: error: gguf: " + path), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("truncated"), std::string::npos) << r.out;
  r = run(fmt::format("'{}' inspect /nonexistent/model.gguf", bin));
  EXPECT_EQ(r.status, 1) << r.out;
  EXPECT_NE(r.out.find("cannot open '/nonexistent/model.gguf'"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace strata::gguf::test
