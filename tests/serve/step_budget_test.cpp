// The adaptive prefill chunk (serve/step_budget.h) on made-up step times: no clock, no model.
#include "serve/step_budget.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace strata::serve {
namespace {

// A deterministic "machine": t = base + per_row * rows, with a +-jitter pattern.
struct Machine {
  double base = 0.030, per_row = 0.006, jitter = 0.0;
  int64_t i = 0;
  double time(int64_t rows) {
    const double j = jitter * ((i++ % 5) - 2) / 2.0;  // -jitter .. +jitter, mean 0
    return (base + per_row * static_cast<double>(rows)) * (1.0 + j);
  }
};

TEST(StepTimeModel, FitsALinearMachine) {
  StepTimeModel m;
  Machine mc;
  EXPECT_FALSE(m.calibrated());
  EXPECT_EQ(m.predict(10), 0.0);
  for (int k = 0; k < 200; ++k) {
    const int64_t rows = 8 + (k * 7) % 40;  // 8 .. 47 rows
    m.observe(rows, mc.time(rows));
  }
  EXPECT_TRUE(m.calibrated());
  EXPECT_NEAR(m.per_row(), 0.006, 1e-4);
  EXPECT_NEAR(m.base(), 0.030, 2e-3);
  EXPECT_NEAR(m.predict(16), 0.030 + 0.006 * 16, 1e-3);
  EXPECT_NEAR(m.predict(100), 0.030 + 0.006 * 100, 1e-2);
}

TEST(StepTimeModel, EqualStepsPredictTheirOwnTime) {
  // Every step has 16 rows: the slope cannot be told from the data; the prediction at 16 rows must still be
  // the measured time, and the slope stays positive (the prior: seconds per row, an over-estimate).
  StepTimeModel m;
  for (int k = 0; k < 50; ++k) m.observe(16, 0.126);
  EXPECT_NEAR(m.predict(16), 0.126, 1e-9);
  EXPECT_GT(m.per_row(), 0.0);
  EXPECT_LE(m.per_row(), 0.126 / 16 + 1e-12);
  EXPECT_GE(m.base(), 0.0);
}

TEST(StepTimeModel, IgnoresEmptyAndInvalidSteps) {
  StepTimeModel m;
  m.observe(0, 1.0);
  m.observe(-3, 1.0);
  m.observe(5, std::nan(""));
  m.observe(5, -1.0);
  EXPECT_FALSE(m.calibrated());
  m.observe(5, 0.05);
  EXPECT_EQ(m.n_observed(), 1);
  EXPECT_NEAR(m.predict(5), 0.05, 1e-12);
}

TEST(StepTimeModel, FollowsASlowdown) {
  // The machine gets twice as slow (another job starts): within ~30 steps the model says so.
  StepTimeModel m;
  Machine mc;
  for (int k = 0; k < 100; ++k) {
    const int64_t rows = 10 + (k * 3) % 20;
    m.observe(rows, mc.time(rows));
  }
  mc.base *= 2;
  mc.per_row *= 2;
  for (int k = 0; k < 40; ++k) {
    const int64_t rows = 10 + (k * 3) % 20;
    m.observe(rows, mc.time(rows));
  }
  EXPECT_NEAR(m.predict(20), 2 * (0.030 + 0.006 * 20), 0.01);
}

TEST(AdaptiveChunk, Limits) {
  StepTimeModel m;
  ChunkLimits lim;
  lim.budget_seconds = 0.2;
  lim.min_chunk = 4;
  lim.max_chunk = 256;
  EXPECT_EQ(adaptive_chunk(m, 0, lim), 256) << "nobody decoding: the largest chunk";
  EXPECT_EQ(adaptive_chunk(m, 3, lim), 4) << "no step measured yet: the floor";
  Machine mc;
  for (int k = 0; k < 200; ++k) {
    const int64_t rows = 8 + (k * 7) % 40;
    m.observe(rows, mc.time(rows));
  }
  // 16 decode rows: 0.030 + 0.096 = 0.126 s; the rest of 0.2 s buys (0.074 / 0.006) = 12 prompt tokens.
  const int64_t c16 = adaptive_chunk(m, 16, lim);
  EXPECT_GE(c16, 11);
  EXPECT_LE(c16, 12);
  EXPECT_LE(m.predict(16 + c16), 0.2 + 1e-3);
  // Fewer decoders: a bigger chunk; one decoder: (0.2 - 0.036) / 0.006 = 27.
  EXPECT_GT(adaptive_chunk(m, 4, lim), c16);
  EXPECT_NEAR(static_cast<double>(adaptive_chunk(m, 1, lim)), 27.0, 1.0);
  // The decoders alone take longer than the budget: still the floor (prompts progress).
  EXPECT_EQ(adaptive_chunk(m, 40, lim), 4);
  // A generous budget: capped at max_chunk.
  lim.budget_seconds = 10;
  EXPECT_EQ(adaptive_chunk(m, 16, lim), 256);
  // A floor above the cap is clamped to the cap.
  lim.min_chunk = 500;
  EXPECT_EQ(adaptive_chunk(m, 16, lim), 256);
}

// The closed loop the scheduler runs: 16 decoding clients and a stream of prompts on a jittery machine.
// After a warm-up every step stays near the budget (within the jitter), and prompts always get >= the floor.
TEST(AdaptiveChunk, ClosedLoopKeepsStepsWithinTheBudget) {
  StepTimeModel m;
  Machine mc;
  mc.jitter = 0.05;
  ChunkLimits lim;
  lim.budget_seconds = 0.18;
  lim.min_chunk = 4;
  lim.max_chunk = 256;
  std::vector<double> times;
  int64_t prompt_tokens = 0;
  for (int k = 0; k < 300; ++k) {
    const int64_t decode = 14 + k % 3;  // 14..16 decoding sequences
    const int64_t chunk = adaptive_chunk(m, decode, lim);
    ASSERT_GE(chunk, lim.min_chunk);
    const int64_t rows = decode + chunk;
    const double t = mc.time(rows);
    m.observe(rows, t);
    if (k >= 20) times.push_back(t);
    prompt_tokens += chunk;
  }
  std::sort(times.begin(), times.end());
  const double p99 = times[times.size() * 99 / 100];
  EXPECT_LE(p99, lim.budget_seconds * 1.06) << "p99 step " << p99;
  EXPECT_GE(times[times.size() / 2], lim.budget_seconds * 0.85) << "the budget is used, not wasted";
  EXPECT_GT(prompt_tokens, 300 * 8);
}

}  // namespace
}  // namespace strata::serve
