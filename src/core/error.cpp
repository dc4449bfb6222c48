#include "core/error.h"

#include <cstdio>
#include <cstdlib>

namespace strata {

void assert_failed(const char* expr, const char* file, int line, const char* msg) {
  std::fprintf(stderr, "strata: internal error (a bug, please report it): %s:%d: %s: %s\n", file, line,
               expr, msg ? msg : "");
  std::abort();
}

}  // namespace strata
