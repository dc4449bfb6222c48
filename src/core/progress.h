// A progress bar for places where a person waits (loading, converting, long benchmarks).
// Draws on stderr only when stderr is a terminal; silent otherwise (CI, pipes).
#pragma once
#include <chrono>
#include <cstdint>
#include <string>

namespace strata {

class Progress {
 public:
  Progress(std::string label, uint64_t total);
  ~Progress();
  void update(uint64_t done);
  void finish();
  static bool enabled();  // stderr is a tty and STRATA_NO_PROGRESS is unset

 private:
  std::string label_;
  uint64_t total_;
  bool on_;
  bool finished_ = false;
  int last_pct_ = -1;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace strata
