// The adaptive prefill chunk: how many prompt tokens a step may carry so that it stays within a time budget.
//
// A step's time is modelled as linear in its rows (decode tokens + prompt tokens; on a CPU every row goes
// through every weight matrix, and a decode row costs about as much as a prompt row):
//     t = base + per_row * rows
// fitted by exponentially weighted least squares over the recent steps (weight (1 - alpha)^age), with a
// ridge toward a prior slope so that a run of steps of equal size (no spread in rows: the slope is not
// identifiable) keeps a sensible slope while the intercept still follows the measured times. The prior
// slope is an EWMA of seconds per row (t / rows: an over-estimate, as it includes the base), so the model
// errs toward smaller chunks until steps of different sizes have been seen.
//
// The chunk for a step with D decode rows: floor((budget - predict(D)) / per_row), clamped to
// [min_chunk, max_chunk]. With no decode row nobody waits for a token: max_chunk. The floor keeps prompts
// progressing when the decode rows alone fill (or exceed) the budget.
//
// Pure computation (no clock): the scheduler feeds it measured step times; the tests feed it numbers.
#pragma once
#include <cstdint>

namespace strata::serve {

class StepTimeModel {
 public:
  // alpha: weight of the newest step in the averages (0 < alpha <= 1).
  explicit StepTimeModel(double alpha = 0.1);

  // A step of `rows` rows (decode + prompt tokens) took `seconds`. Steps with no row are ignored.
  void observe(int64_t rows, double seconds);
  // Predicted seconds for a step of `rows` rows (0 before the first observation).
  double predict(int64_t rows) const;
  double base() const;     // seconds per step beyond the rows (at least 0)
  double per_row() const;  // seconds per row (positive once observed)
  bool calibrated() const { return n_ > 0; }
  int64_t n_observed() const { return n_; }

 private:
  void fit(double& base, double& slope) const;

  double alpha_;
  int64_t n_ = 0;
  // Exponentially weighted sums: weight, x, y, x*x, x*y (x = rows, y = seconds).
  double w_ = 0, sx_ = 0, sy_ = 0, sxx_ = 0, sxy_ = 0;
  double prior_slope_ = 0;  // EWMA of seconds / rows
};

struct ChunkLimits {
  double budget_seconds = 0.15;  // a step's target time (--step-budget-ms)
  int64_t min_chunk = 4;         // prompt tokens per step at least, whatever the budget (no starvation)
  int64_t max_chunk = 256;       // and at most (the forward pass's scratch rows)
};

// Prompt tokens the next step may carry beside `decode_rows` decode tokens.
int64_t adaptive_chunk(const StepTimeModel& model, int64_t decode_rows, const ChunkLimits& lim);

}  // namespace strata::serve
