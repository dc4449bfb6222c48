// Minimal leveled logging to stderr. Quiet by default below kInfo; STRATA_LOG=debug turns on debug.
#pragma once
#include <fmt/format.h>

#include <cstdio>

namespace strata {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3, kSilent = 4 };
LogLevel log_level();
void set_log_level(LogLevel level);

template <class... Args>
void log(LogLevel level, fmt::format_string<Args...> f, Args&&... args) {
  if (level < log_level()) return;
  static constexpr const char* kTag[] = {"debug", "info", "warning", "error", ""};
  fmt::print(stderr, "strata: {}: {}\n", kTag[static_cast<int>(level)],
             fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace strata
