#include <gtest/gtest.h>

#include <atomic>
#include <vector>

#include "core/thread_pool.h"

namespace strata {

TEST(ThreadPool, ParallelForCoversEveryIndexOnce) {
  for (int threads : {1, 2, 3, 5}) {
    ThreadPool pool(threads);
    for (int64_t n : {0, 1, 2, 7, 100, 1001}) {
      std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
      pool.parallel_for(n, [&](int64_t b, int64_t e, int w) {
        EXPECT_GE(w, 0);
        EXPECT_LT(w, threads);
        for (int64_t i = b; i < e; ++i) hits[static_cast<size_t>(i)]++;
      });
      for (auto& h : hits) EXPECT_EQ(h.load(), 1);
    }
  }
}

TEST(ThreadPool, SplitRangeIsEven) {
  for (int k = 1; k < 6; ++k) {
    int64_t prev_end = 0;
    for (int i = 0; i < k; ++i) {
      int64_t b, e;
      split_range(23, k, i, b, e);
      EXPECT_EQ(b, prev_end);
      EXPECT_LE(e - b, 23 / k + 1);
      EXPECT_GE(e - b, 23 / k);
      prev_end = e;
    }
    EXPECT_EQ(prev_end, 23);
  }
}

TEST(ThreadPool, ManyRunsReuseWorkers) {
  ThreadPool pool(3);
  std::atomic<int> total{0};
  for (int r = 0; r < 2000; ++r) pool.run([&](int) { total++; });
  EXPECT_EQ(total.load(), 6000);
}

}  // namespace strata
