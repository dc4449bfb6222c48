// strata's one error policy (STYLE.md practice 11):
//  - strata::Error (an exception) for everything a user can cause: bad files, bad flags, I/O failures,
//    oversize requests. Its message says what is wrong and, where possible, how to fix it. Apps catch it
//    at the top and turn it into a message + non-zero exit (CLI) or a 4xx/5xx (server).
//  - STRATA_ASSERT for internal invariants that only a bug can break.
#pragma once
#include <fmt/format.h>

#include <stdexcept>
#include <string>

namespace strata {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Throws strata::Error with a fmt-formatted message.
template <class... Args>
[[noreturn]] void fail(fmt::format_string<Args...> f, Args&&... args) {
  throw Error(fmt::format(f, std::forward<Args>(args)...));
}

[[noreturn]] void assert_failed(const char* expr, const char* file, int line, const char* msg);

}  // namespace strata

#define STRATA_ASSERT(cond, msg)                                             \
  do {                                                                       \
    if (!(cond)) ::strata::assert_failed(#cond, __FILE__, __LINE__, (msg));  \
  } while (0)
