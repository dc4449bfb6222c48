// sparse_ffn_accumulate (kernels/sparse_ffn_simd.h), the per-neuron work of the sparse FFN, on every SIMD
// target against the scalar reference, on seeded random bundle rows at odd sizes (n_embd not a multiple of
// the lanes for the float types, few and many active neurons, 1 and 3 token rows, some coefficients 0).
// Both use the same dequantized values (Q8_0's d·q is exact in float), so they differ only in the float
// summation order: |simd - ref| <= 1e-5 · M_j for every type, M_j = Σ |c| (Σ_k |up_k x_k|) |down_j| (the
// size of the terms). The reference itself is checked against a double-precision sum for F32.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "kernels/kernel_test_util.h"
#include "kernels/sparse_ffn_simd.h"
#include "tensor/dtype.h"

namespace strata::kernels {
namespace {

struct Case {
  DType type;
  int64_t n_embd, n_ff, n_active, n_tok;
};

struct Data {
  std::vector<uint8_t> bundle;        // n_ff rows of row_bytes(type, 2 n_embd)
  std::vector<float> deq;             // the same, dequantized (n_ff, 2 n_embd)
  std::vector<float> x, coef;         // (n_tok, n_embd), (n_tok, n_ff)
  std::vector<int32_t> neurons;
  std::vector<const uint8_t*> rows;
  SparseFfnJob job;
};

Data make(const Case& c, uint64_t seed) {
  Data d;
  const int64_t w = 2 * c.n_embd;
  d.bundle = test::random_weight(c.type, c.n_ff, w, seed);
  const size_t rb = row_bytes(c.type, w);
  d.deq.resize(static_cast<size_t>(c.n_ff * w));
  for (int64_t i = 0; i < c.n_ff; ++i) dequantize_row(c.type, d.bundle.data() + i * rb, d.deq.data() + i * w, w);
  d.x = test::randn(c.n_tok * c.n_embd, seed + 1);
  d.coef = test::randn(c.n_tok * c.n_ff, seed + 2);
  std::mt19937_64 rng(seed + 3);
  for (float& v : d.coef)
    if (rng() % 4 == 0) v = 0.0f;  // inactive for this token row
  std::vector<int32_t> all(static_cast<size_t>(c.n_ff));
  for (int32_t i = 0; i < c.n_ff; ++i) all[static_cast<size_t>(i)] = i;
  std::shuffle(all.begin(), all.end(), rng);
  d.neurons.assign(all.begin(), all.begin() + c.n_active);
  std::sort(d.neurons.begin(), d.neurons.end());
  for (int32_t i : d.neurons) d.rows.push_back(d.bundle.data() + static_cast<size_t>(i) * rb);
  d.job = {c.type, c.n_embd, c.n_tok, d.x.data(), d.coef.data(), c.n_ff, d.neurons.data(), d.rows.data()};
  return d;
}

// M_j of the header, in double, from the dequantized rows.
std::vector<double> magnitude(const Case& c, const Data& d) {
  std::vector<double> m(static_cast<size_t>(c.n_tok * c.n_embd), 0.0);
  for (int32_t i : d.neurons) {
    const float* up = d.deq.data() + static_cast<int64_t>(i) * 2 * c.n_embd;
    const float* down = up + c.n_embd;
    for (int64_t t = 0; t < c.n_tok; ++t) {
      double s = 0;
      for (int64_t k = 0; k < c.n_embd; ++k) s += std::fabs(static_cast<double>(up[k]) * d.x[static_cast<size_t>(t * c.n_embd + k)]);
      const double h = std::fabs(d.coef[static_cast<size_t>(t * c.n_ff + i)]) * s;
      for (int64_t k = 0; k < c.n_embd; ++k) m[static_cast<size_t>(t * c.n_embd + k)] += h * std::fabs(down[k]);
    }
  }
  return m;
}

std::vector<Case> cases() {
  std::vector<Case> v;
  for (DType t : {DType::F32, DType::F16, DType::BF16})
    for (int64_t ne : {37, 101, 64}) {
      v.push_back({t, ne, 61, 3, 1});
      v.push_back({t, ne, 61, 50, 3});
    }
  for (DType t : {DType::Q8_0, DType::Q4_0})
    for (int64_t ne : {32, 96, 160}) {
      v.push_back({t, ne, 61, 2, 1});
      v.push_back({t, ne, 61, 55, 3});
    }
  v.push_back({DType::Q4_K, 256, 29, 20, 2});
  return v;
}

TEST(SparseFfnKernel, SimdMatchesScalarEveryTarget) {
  uint64_t seed = 100;
  for (const Case& c : cases()) {
    SCOPED_TRACE(testing::Message() << dtype_name(c.type) << " n_embd " << c.n_embd << " active " << c.n_active
                                    << " of " << c.n_ff << ", " << c.n_tok << " rows");
    const Data d = make(c, seed += 10);
    const size_t n_out = static_cast<size_t>(c.n_tok * c.n_embd);
    std::vector<float> scratch(static_cast<size_t>(2 * c.n_embd));
    // acc starts non-zero: the kernel adds to it.
    const std::vector<float> acc0 = test::randn(static_cast<int64_t>(n_out), seed + 7, 0.01f);
    std::vector<float> want = acc0;
    ref::sparse_ffn_accumulate(d.job, 0, c.n_active, want.data(), scratch.data());
    const std::vector<double> m = magnitude(c, d);
    test::for_each_target([&](const std::string& target) {
      SCOPED_TRACE(target);
      std::vector<float> got = acc0;
      // Two ranges, as two workers' shares would be.
      const int64_t half = c.n_active / 2;
      sparse_ffn_accumulate(d.job, 0, half, got.data(), scratch.data());
      sparse_ffn_accumulate(d.job, half, c.n_active, got.data(), scratch.data());
      for (size_t j = 0; j < n_out; ++j)
        ASSERT_NEAR(got[j], want[j], 1e-5 * m[j] + 1e-7) << "element " << j;
    });
  }
}

// The reference against a double-precision sum over the F32 weights (an independent expected value).
TEST(SparseFfnKernel, ReferenceMatchesDoubleSumF32) {
  const Case c{DType::F32, 45, 17, 9, 2};
  const Data d = make(c, 7);
  std::vector<float> got(static_cast<size_t>(c.n_tok * c.n_embd), 0.0f), scratch(static_cast<size_t>(2 * c.n_embd));
  ref::sparse_ffn_accumulate(d.job, 0, c.n_active, got.data(), scratch.data());
  const std::vector<double> m = magnitude(c, d);
  for (int64_t t = 0; t < c.n_tok; ++t)
    for (int64_t k = 0; k < c.n_embd; ++k) {
      double want = 0;
      for (int32_t i : d.neurons) {
        const float* up = d.deq.data() + static_cast<int64_t>(i) * 2 * c.n_embd;
        double dot = 0;
        for (int64_t q = 0; q < c.n_embd; ++q) dot += static_cast<double>(up[q]) * d.x[static_cast<size_t>(t * c.n_embd + q)];
        want += d.coef[static_cast<size_t>(t * c.n_ff + i)] * dot * up[c.n_embd + k];
      }
      const size_t j = static_cast<size_t>(t * c.n_embd + k);
      EXPECT_NEAR(got[j], want, 1e-5 * m[j] + 1e-7) << t << "," << k;
    }
}

}  // namespace
}  // namespace strata::kernels
