#include "core/progress.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>

namespace strata {

bool Progress::enabled() { return ::isatty(STDERR_FILENO) && !std::getenv("STRATA_NO_PROGRESS"); }

Progress::Progress(std::string label, uint64_t total)
    : label_(std::move(label)), total_(total ? total : 1), on_(enabled()),
      start_(std::chrono::steady_clock::now()) {}

Progress::~Progress() { finish(); }

void Progress::update(uint64_t done) {
  if (!on_ || finished_) return;
  const int pct = static_cast<int>(done * 100 / total_);
  if (pct == last_pct_) return;
  last_pct_ = pct;
  const int width = 30, fill = pct * width / 100;
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  std::fprintf(stderr, "\r%s [", label_.c_str());
  for (int i = 0; i < width; ++i) std::fputc(i < fill ? '#' : '.', stderr);
  std::fprintf(stderr, "] %3d%% %.1fs", pct, secs);
  std::fflush(stderr);
}

void Progress::finish() {
  if (!on_ || finished_) return;
  update(total_);
  finished_ = true;
  std::fputc('\n', stderr);
}

}  // namespace strata
