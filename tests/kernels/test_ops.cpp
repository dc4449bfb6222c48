// The fast per-row operations (kernels/ops.h) against their scalar references (kernels/ref/ops_ref.h) on
// seeded random inputs, at sizes below, at and above the SIMD width and not multiples of it; and RoPE's two
// pairings against values worked out by hand.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "core/error.h"
#include "kernels/ops.h"
#include "kernels/ref/ops_ref.h"
#include "tensor/dtype.h"

namespace strata::kernels {
namespace {

std::vector<float> random_vec(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = nd(rng);
  return v;
}

void expect_close(const std::vector<float>& a, const std::vector<float>& b, float rel, const char* what) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i)
    ASSERT_NEAR(a[i], b[i], rel * (1.0f + std::fabs(b[i]))) << what << " at " << i;
}

const int64_t kSizes[] = {1, 3, 7, 8, 15, 16, 17, 31, 32, 33, 64, 100, 172, 256, 1000, 4096};

TEST(Ops, RmsnormMatchesReference) {
  for (int64_t n : kSizes) {
    const int64_t rows = 3;
    const auto x = random_vec(static_cast<size_t>(rows * n), 1, 3.0f), w = random_vec(static_cast<size_t>(n), 2);
    std::vector<float> got(x.size()), want(x.size());
    rmsnorm(x.data(), w.data(), got.data(), rows, n, 1e-5f);
    ref::rmsnorm(x.data(), w.data(), want.data(), rows, n, 1e-5f);
    expect_close(got, want, 2e-6f, "rmsnorm");
    std::vector<float> inplace = x;  // y may alias x
    rmsnorm(inplace.data(), w.data(), inplace.data(), rows, n, 1e-5f);
    expect_close(inplace, want, 2e-6f, "rmsnorm in place");
  }
}

TEST(Ops, SwigluMatchesReference) {
  for (int64_t n : kSizes) {
    auto g = random_vec(static_cast<size_t>(n), 3, 4.0f);
    const auto u = random_vec(static_cast<size_t>(n), 4);
    if (n > 3) g[0] = -200.0f, g[1] = 200.0f, g[2] = 0.0f;  // saturated and zero gates
    std::vector<float> got(g.size()), want(g.size());
    swiglu(g.data(), u.data(), got.data(), n);
    ref::swiglu(g.data(), u.data(), want.data(), n);
    expect_close(got, want, 2e-6f, "swiglu");
    for (float v : got) ASSERT_TRUE(std::isfinite(v));
  }
}

TEST(Ops, AddAndBiasMatchReference) {
  for (int64_t n : kSizes) {
    const auto a = random_vec(static_cast<size_t>(2 * n), 5), b = random_vec(static_cast<size_t>(2 * n), 6);
    std::vector<float> got(a.size()), want(a.size());
    add(a.data(), b.data(), got.data(), 2 * n);
    ref::add(a.data(), b.data(), want.data(), 2 * n);
    EXPECT_EQ(got, want);
    std::vector<float> gb = a, wb = a;
    add_bias(gb.data(), b.data(), 2, n);
    ref::add_bias(wb.data(), b.data(), 2, n);
    EXPECT_EQ(gb, wb);
  }
}

TEST(Ops, RopeMatchesReference) {
  for (RopeMode mode : {RopeMode::kNormal, RopeMode::kNeox}) {
    for (int head_dim : {8, 64, 128}) {
      for (int n_rot : {head_dim, head_dim / 2}) {
        const int n_head = 3;
        const int64_t n_tok = 5, pos0 = 1000;
        std::vector<float> inv(static_cast<size_t>(n_rot / 2)), inv_ref(inv.size());
        const std::vector<float> factors = random_vec(inv.size(), 7, 0.1f);
        std::vector<float> ff(factors.size());
        for (size_t i = 0; i < ff.size(); ++i) ff[i] = 1.0f + std::fabs(factors[i]);
        rope_inv_freq(n_rot, 500000.0, 0.5, ff.data(), inv.data());
        ref::rope_inv_freq(n_rot, 500000.0, 0.5, ff.data(), inv_ref.data());
        ASSERT_EQ(inv, inv_ref);
        const auto x = random_vec(static_cast<size_t>(n_tok * n_head * head_dim), 8);
        std::vector<float> got = x, want = x;
        rope(got.data(), n_tok, n_head, head_dim, n_rot, pos0, inv.data(), mode);
        ref::rope(want.data(), n_tok, n_head, head_dim, n_rot, pos0, inv.data(), mode);
        expect_close(got, want, 1e-5f, "rope");
        // Values past n_rot are not rotated.
        for (int64_t t = 0; t < n_tok * n_head; ++t)
          for (int i = n_rot; i < head_dim; ++i) ASSERT_EQ(got[t * head_dim + i], x[t * head_dim + i]);
      }
    }
  }
}

TEST(Ops, RopePairingsByHand) {
  // head_dim 4, base 100: pair 0 has frequency 1, pair 1 has 100^(-1/2) = 0.1. Position 2.
  std::vector<float> inv(2);
  ref::rope_inv_freq(4, 100.0, 1.0, nullptr, inv.data());
  EXPECT_FLOAT_EQ(inv[0], 1.0f);
  EXPECT_FLOAT_EQ(inv[1], 0.1f);
  const float c0 = std::cos(2.0f), s0 = std::sin(2.0f), c1 = std::cos(0.2f), s1 = std::sin(0.2f);
  // Normal: pairs (x0, x1) and (x2, x3).
  std::vector<float> v = {1, 2, 3, 4};
  rope(v.data(), 1, 1, 4, 4, 2, inv.data(), RopeMode::kNormal);
  EXPECT_NEAR(v[0], 1 * c0 - 2 * s0, 1e-6);
  EXPECT_NEAR(v[1], 1 * s0 + 2 * c0, 1e-6);
  EXPECT_NEAR(v[2], 3 * c1 - 4 * s1, 1e-6);
  EXPECT_NEAR(v[3], 3 * s1 + 4 * c1, 1e-6);
  // NeoX: pairs (x0, x2) and (x1, x3).
  v = {1, 2, 3, 4};
  rope(v.data(), 1, 1, 4, 4, 2, inv.data(), RopeMode::kNeox);
  EXPECT_NEAR(v[0], 1 * c0 - 3 * s0, 1e-6);
  EXPECT_NEAR(v[2], 1 * s0 + 3 * c0, 1e-6);
  EXPECT_NEAR(v[1], 2 * c1 - 4 * s1, 1e-6);
  EXPECT_NEAR(v[3], 2 * s1 + 4 * c1, 1e-6);
}

TEST(Ops, EmbeddingDequantizesRows) {
  const int64_t n = 64, rows = 5;
  const auto table = random_vec(static_cast<size_t>(rows * n), 9);
  std::vector<uint8_t> q(row_bytes(DType::Q8_0, n) * rows);
  for (int64_t r = 0; r < rows; ++r) quantize_row(DType::Q8_0, table.data() + r * n, q.data() + r * row_bytes(DType::Q8_0, n), n);
  const int32_t ids[] = {4, 0, 4};
  std::vector<float> got(3 * n), want(3 * n);
  embedding(DType::Q8_0, q.data(), rows, n, ids, 3, got.data());
  ref::embedding(DType::Q8_0, q.data(), rows, n, ids, 3, want.data());
  EXPECT_EQ(got, want);
  for (int64_t i = 0; i < n; ++i) EXPECT_NEAR(got[i], table[4 * n + i], 0.02f);
  const int32_t bad[] = {5};
  EXPECT_THROW(embedding(DType::Q8_0, q.data(), rows, n, bad, 1, got.data()), Error);
}

}  // namespace
}  // namespace strata::kernels
