// Scalar float64 references of kernels/softmax.h: max, sum of exp, divide (three passes).
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "kernels/ref/softmax_ref.h"

namespace strata::kernels::ref {

double log_sum_exp(const float* x, int64_t n, float scale) {
  double m = -std::numeric_limits<double>::infinity();
  for (int64_t i = 0; i < n; ++i) m = std::max(m, static_cast<double>(scale) * x[i]);
  if (m == -std::numeric_limits<double>::infinity()) return m;
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += std::exp(static_cast<double>(scale) * x[i] - m);
  return m + std::log(sum);
}

double softmax(const float* x, float* y, int64_t n, float scale) {
  const double lse = log_sum_exp(x, n, scale);
  for (int64_t i = 0; i < n; ++i)
    y[i] = std::isinf(lse) ? 0.f : static_cast<float>(std::exp(static_cast<double>(scale) * x[i] - lse));
  return lse;
}

void softmax_top_k(const float* x, int64_t n, float scale, int32_t k, float top_p,
                   std::vector<TokenCandidate>& out) {
  const double lse = log_sum_exp(x, n, scale);
  std::vector<int32_t> ids(static_cast<size_t>(n));
  std::iota(ids.begin(), ids.end(), 0);
  std::stable_sort(ids.begin(), ids.end(), [&](int32_t a, int32_t b) { return x[a] > x[b]; });
  const int64_t kk = k > 0 ? std::min<int64_t>(k, n) : n;
  out.clear();
  double cum = 0;
  for (int64_t i = 0; i < kk; ++i) {
    const double p = std::exp(static_cast<double>(scale) * x[ids[i]] - lse);
    out.push_back({ids[i], x[ids[i]], static_cast<float>(p)});
    cum += p;
    if (top_p < 1.f && cum >= top_p) break;
  }
}

}  // namespace strata::kernels::ref
