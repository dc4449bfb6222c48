#include "core/log.h"

#include <cstdlib>
#include <cstring>

namespace strata {

namespace {
LogLevel initial_level() {
  const char* e = std::getenv("STRATA_LOG");
  if (!e) return LogLevel::kWarn;
  if (!std::strcmp(e, "debug")) return LogLevel::kDebug;
  if (!std::strcmp(e, "info")) return LogLevel::kInfo;
  if (!std::strcmp(e, "error")) return LogLevel::kError;
  if (!std::strcmp(e, "silent")) return LogLevel::kSilent;
  return LogLevel::kWarn;
}
LogLevel g_level = initial_level();
}  // namespace

LogLevel log_level() { return g_level; }
void set_log_level(LogLevel level) { g_level = level; }

}  // namespace strata
