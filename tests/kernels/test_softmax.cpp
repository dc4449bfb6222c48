// Two-pass softmax and the fused top-k/top-p selection against the float64 references.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "kernels/ref/softmax_ref.h"
#include "kernels/softmax.h"

namespace strata::kernels {
namespace {

std::vector<float> logits(int64_t n, uint64_t seed, float sigma) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> nd(0.f, sigma);
  std::vector<float> x(static_cast<size_t>(n));
  for (auto& e : x) e = nd(rng);
  return x;
}

// Stated tolerances: log-sum-exp within 2e-6·max(1, |lse|); each probability within a relative
// 2e-6 + 2e-7·(|scale·x| + |lse|): exp(scale·x - lse) is computed in float, so its argument carries a rounding
// error proportional to the magnitudes that go into it (tiny probabilities of far-off logits).
void expect_softmax_matches(const std::vector<float>& x, float scale) {
  const int64_t n = static_cast<int64_t>(x.size());
  std::vector<float> y(x.size()), want(x.size());
  const float lse = softmax(x.data(), y.data(), n, scale);
  const double lse_ref = ref::softmax(x.data(), want.data(), n, scale);
  if (std::isinf(lse_ref)) {
    EXPECT_TRUE(std::isinf(lse) && lse < 0);
  } else {
    EXPECT_NEAR(lse, lse_ref, 2e-6 * std::max(1.0, std::fabs(lse_ref)));
  }
  const float lse1 = log_sum_exp(x.data(), n, scale);
  if (std::isinf(lse))
    EXPECT_EQ(lse1, lse);
  else
    EXPECT_NEAR(lse1, lse, 1e-6 * std::max(1.f, std::fabs(lse)));
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double rel = std::isinf(x[i]) ? 0 : 2e-6 + 2e-7 * (std::fabs(scale * x[i]) + std::fabs(lse_ref));
    ASSERT_NEAR(y[i], want[i], rel * want[i] + 1e-30) << "i=" << i << " n=" << n;
    sum += y[i];
  }
  if (!std::isinf(lse_ref)) {
    EXPECT_NEAR(sum, 1.0, 1e-5);
  }
}

TEST(Softmax, SizesAndTemperatures) {
  for (int64_t n : {1, 2, 7, 16, 17, 100, 1000, 32000, 151936})
    for (float scale : {1.f, 1.f / 0.7f, 0.25f}) expect_softmax_matches(logits(n, static_cast<uint64_t>(n), 3.f), scale);
}

// Large and spread logits: the (mantissa, exponent) sum never overflows; -inf entries get probability 0.
TEST(Softmax, ExtremeLogits) {
  auto x = logits(5000, 3, 40.f);
  x[17] = 300.f;  // e^300 overflows float: the exponent form keeps it
  x[4000] = -std::numeric_limits<float>::infinity();
  x[4001] = -std::numeric_limits<float>::infinity();
  expect_softmax_matches(x, 1.f);
  for (auto& e : x) e -= 2000.f;  // all very negative: e^x underflows everywhere
  expect_softmax_matches(x, 1.f);
  std::vector<float> masked(33, -std::numeric_limits<float>::infinity());
  expect_softmax_matches(masked, 1.f);  // all masked: zeros and -inf
  masked[32] = 5.f;  // one survivor (in the scalar tail)
  expect_softmax_matches(masked, 1.f);
  masked[32] = -std::numeric_limits<float>::infinity();
  masked[3] = -5.f;  // one survivor (in a vector)
  expect_softmax_matches(masked, 1.f);
}

void expect_top_k_matches(const std::vector<float>& x, float scale, int32_t k, float top_p) {
  std::vector<TokenCandidate> got, want;
  softmax_top_k(x.data(), static_cast<int64_t>(x.size()), scale, k, top_p, got);
  ref::softmax_top_k(x.data(), static_cast<int64_t>(x.size()), scale, k, top_p, want);
  ASSERT_EQ(got.size(), want.size()) << "k=" << k << " top_p=" << top_p;
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].id, want[i].id) << i;
    EXPECT_EQ(got[i].logit, want[i].logit);
    EXPECT_NEAR(got[i].p, want[i].p, 1e-5 * want[i].p + 1e-30);
  }
}

TEST(Softmax, TopKTopP) {
  auto x = logits(32000, 9, 2.f);
  for (int32_t k : {1, 5, 40, 1000})
    for (float top_p : {1.f, 0.9f, 0.5f}) expect_top_k_matches(x, 1.f / 0.8f, k, top_p);
  // top-p without top-k: the first 256 candidates do not reach 0.95 of a flat distribution.
  expect_top_k_matches(x, 0.1f, 0, 0.95f);
  expect_top_k_matches(x, 1.f, 0, 0.5f);
  expect_top_k_matches(logits(300, 2, 1.f), 1.f, 0, 1.f);  // no cut: every token, sorted
  // Ties: lower id first.
  std::vector<float> ties(100, 1.f);
  ties[50] = 2.f;
  expect_top_k_matches(ties, 1.f, 10, 1.f);
}

}  // namespace
}  // namespace strata::kernels
