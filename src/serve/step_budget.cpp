#include "serve/step_budget.h"

#include <algorithm>
#include <cmath>

namespace strata::serve {

namespace {
constexpr double kRidge = 4.0;         // weight of the prior slope, in rows^2 (a spread of 2 rows, once)
constexpr double kMinSlope = 1e-7;     // seconds per row: keeps the division in adaptive_chunk finite
}  // namespace

StepTimeModel::StepTimeModel(double alpha) : alpha_(std::clamp(alpha, 1e-3, 1.0)) {}

void StepTimeModel::observe(int64_t rows, double seconds) {
  if (rows <= 0 || !std::isfinite(seconds) || seconds < 0) return;
  const double x = static_cast<double>(rows), y = seconds, d = 1.0 - alpha_;
  w_ = w_ * d + 1;
  sx_ = sx_ * d + x;
  sy_ = sy_ * d + y;
  sxx_ = sxx_ * d + x * x;
  sxy_ = sxy_ * d + x * y;
  prior_slope_ = n_ == 0 ? y / x : prior_slope_ * d + alpha_ * (y / x);
  ++n_;
}

void StepTimeModel::fit(double& base, double& slope) const {
  if (n_ == 0) {
    base = slope = 0;
    return;
  }
  const double mx = sx_ / w_, my = sy_ / w_;
  const double cov = sxy_ - sx_ * sy_ / w_;  // W * covariance
  const double var = std::max(0.0, sxx_ - sx_ * sx_ / w_);
  slope = (cov + kRidge * prior_slope_) / (var + kRidge);
  base = my - slope * mx;
  if (base < 0 || slope < kMinSlope) {
    // No fixed part (or a nonsensical fit from noise): proportional through the mean.
    base = 0;
    slope = std::max(kMinSlope, my / mx);
  }
}

double StepTimeModel::predict(int64_t rows) const {
  double b, s;
  fit(b, s);
  return b + s * static_cast<double>(std::max<int64_t>(rows, 0));
}

double StepTimeModel::base() const {
  double b, s;
  fit(b, s);
  return b;
}

double StepTimeModel::per_row() const {
  double b, s;
  fit(b, s);
  return s;
}

int64_t adaptive_chunk(const StepTimeModel& model, int64_t decode_rows, const ChunkLimits& lim) {
  const int64_t lo = std::max<int64_t>(1, std::min(lim.min_chunk, lim.max_chunk)), hi = std::max(lo, lim.max_chunk);
  if (decode_rows <= 0) return hi;  // nobody is waiting for a token
  if (!model.calibrated()) return lo;
  double base, slope;
  base = model.base();
  slope = model.per_row();
  const double room = lim.budget_seconds - (base + slope * static_cast<double>(decode_rows));
  if (!(room > 0)) return lo;
  const double n = std::floor(room / slope);
  if (n >= static_cast<double>(hi)) return hi;
  return std::clamp(static_cast<int64_t>(n), lo, hi);
}

}  // namespace strata::serve
