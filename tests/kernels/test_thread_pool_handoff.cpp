// ThreadPool hand-offs (core/thread_pool.h): workers poll for a while after a job, then sleep on a futex.
// Jobs back to back (the polling path), jobs with pauses longer than the polling budget (the sleeping
// path and its wake-up), and destruction while the workers sleep must all run every job exactly once.
// (Here rather than in tests/core because it exercises the pool the way the matmul kernels use it.)
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "core/thread_pool.h"

namespace strata::test {
namespace {

TEST(ThreadPoolHandoff, BackToBackAndAfterSleepingEveryJobRunsOnce) {
  for (int threads : {2, 3}) {
    ThreadPool pool(threads);
    std::vector<std::atomic<int>> count(static_cast<size_t>(threads));
    int expected = 0;
    for (int r = 0; r < 300; ++r) {
      // Every 50th job comes after a pause several times the polling budget: the workers are asleep.
      if (r % 50 == 49) std::this_thread::sleep_for(std::chrono::microseconds(5 * ThreadPool::kSpinMicros));
      pool.run([&](int w) { count[static_cast<size_t>(w)].fetch_add(1); });
      ++expected;
      for (int w = 0; w < threads; ++w) ASSERT_EQ(count[static_cast<size_t>(w)].load(), expected) << "worker " << w;
    }
  }
}

TEST(ThreadPoolHandoff, ResultsOfAJobAreVisibleAfterRun) {
  ThreadPool pool(3);
  std::vector<int64_t> out(3 * 1000);
  for (int r = 0; r < 200; ++r) {
    pool.parallel_for(static_cast<int64_t>(out.size()), [&](int64_t b, int64_t e, int) {
      for (int64_t i = b; i < e; ++i) out[static_cast<size_t>(i)] = i * r;
    });
    for (size_t i = 0; i < out.size(); i += 97) ASSERT_EQ(out[i], static_cast<int64_t>(i) * r);
  }
}

TEST(ThreadPoolHandoff, DestroyedWhileWorkersSleep) {
  for (int i = 0; i < 5; ++i) {
    ThreadPool pool(3);
    std::atomic<int> n{0};
    pool.run([&](int) { n.fetch_add(1); });
    std::this_thread::sleep_for(std::chrono::microseconds(3 * ThreadPool::kSpinMicros));
    EXPECT_EQ(n.load(), 3);
  }  // the destructor wakes the sleeping workers and joins them
}

}  // namespace
}  // namespace strata::test
