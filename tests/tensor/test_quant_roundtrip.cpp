// quantize -> dequantize of seeded random data stays within a stated error bound for every supported type.
// Set STRATA_PRINT_QUANT_ERRORS=1 to print the measured errors (used to set the empirical bounds below).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "tensor/dtype.h"

namespace strata {
namespace {

// Error bounds per type.
//  max_abs: largest |x - x'| in a block, relative to the block's largest |x| (block = the type's block:
//    32 or 256 elements; 1 for the float types, where it is a relative error per element). Where the
//    format allows, the bound is analytic (half a quantization step plus the fp16 rounding of the scale,
//    2^-11 relative, times the largest level); for types whose quantizer searches scales (K-quants, iq4)
//    there is no simple worst case and the bound is the measured worst case over the distributions below
//    (seed 1) with about 30% headroom.
//  rms: sqrt(mean (x - x')^2) / sqrt(mean x^2) on N(0, 1) data: the measured value with ~15% headroom
//    (a regression test). For comparison, uniform rounding noise with step s has RMS s / sqrt(12).
//  llama: llama.cpp's own bar from tests/test-quantize-fns.cpp: sqrt(sum (x - x')^2) / n on its
//    synthetic data 0.1 + 2 cos(i), n = 4096 (0.002 default, 0.0075 for 2-bit, 0.004 for 3-bit, 0.01 ternary).
struct Bound {
  DType type;
  double max_abs;
  double rms;
  double llama;
};

// clang-format off
const Bound kBounds[] = {
  // f32 is exact; f16 keeps 11 significant bits (error <= 2^-11 |x| for |x| >= 2^-14, the smallest normal,
  // and <= 2^-25 below it: measured against max(|x|, 2^-14)); bf16 keeps 8 (2^-8 |x|).
  {DType::F32,    0.0,       0.0,     0.002},
  {DType::F16,    0.000489,  0.00024, 0.002},
  {DType::BF16,   0.00391,   0.0019,  0.002},
  // q8: step A/127, error <= A/254 + 127 (A/127) 2^-11 = 0.00443 A.
  {DType::Q8_0,   0.00443,   0.0062,  0.002},
  {DType::Q8_1,   0.00443,   0.0062,  0.002},
  // q4_0: step A/8; the element mapped to +8 is clamped to +7, so error <= A/8 + 8 (A/8) 2^-11 = 0.1255 A.
  {DType::Q4_0,   0.1255,    0.099,   0.002},
  // q5_0: as q4_0 with step A/16: <= A/16 + 16 (A/16) 2^-11 = 0.0630 A.
  {DType::Q5_0,   0.0630,    0.050,   0.002},
  // q4_1: step (max - min)/15 <= 2A/15, error <= step/2 + fp16 rounding of d (x15) and m: 0.0667 A + 0.0015 A.
  {DType::Q4_1,   0.0683,    0.090,   0.002},
  // q5_1: step <= 2A/31: <= A/31 + 0.0025 A.
  {DType::Q5_1,   0.0348,    0.044,   0.002},
  // K-quants and iq4: measured worst case x 1.3 (max_abs) and N(0,1) RMS x 1.15, seed 1:
  //            measured max_abs (which data)    measured rms
  {DType::Q2_K,   0.73,      0.34,    0.0075},  // 0.562 (90% zeros)    0.2957
  {DType::Q3_K,   0.32,      0.173,   0.004},   // 0.2466 (uniform)     0.1508
  {DType::Q4_K,   0.127,     0.082,   0.002},   // 0.0973 (uniform)     0.0712
  {DType::Q5_K,   0.098,     0.041,   0.002},   // 0.0754 (uniform)     0.0360
  {DType::Q6_K,   0.028,     0.0205,  0.002},   // 0.0214 (uniform)     0.0178
  // q8_K: float32 scale A/127, so error <= A/254 (+ float rounding).
  {DType::Q8_K,   0.00395,   0.0080,  0.002},
  {DType::IQ4_NL, 0.15,      0.087,   0.002},   // 0.1157 (uniform)     0.0759
  {DType::IQ4_XS, 0.166,     0.088,   0.002},   // 0.1279 (uniform)     0.0765
  // Ternary: levels {-A, 0, A}: error <= A/2 + fp16 rounding of A. RMS: 0.806 measured (Gaussian data is
  // far from ternary).
  {DType::TQ1_0,  0.5003,    0.93,    0.01},
  {DType::TQ2_0,  0.5003,    0.93,    0.01},
};
// clang-format on

bool print_errors() {
  const char* e = std::getenv("STRATA_PRINT_QUANT_ERRORS");
  return e && *e && *e != '0';
}

enum class Dist { kGauss, kUniform, kOutliers, kShifted, kSmall, kLarge, kZeroBlocks, kSparse };
const char* dist_name(Dist d) {
  switch (d) {
    case Dist::kGauss: return "N(0,1)";
    case Dist::kUniform: return "U(-1,1)";
    case Dist::kOutliers: return "N(0,1)+1%x30 outliers";
    case Dist::kShifted: return "N(0.5,0.1)";
    case Dist::kSmall: return "N(0,0.02)";
    case Dist::kLarge: return "N(0,300)";
    case Dist::kZeroBlocks: return "N(0,1), every 3rd block 0";
    case Dist::kSparse: return "90% zeros";
  }
  return "?";
}
constexpr Dist kDists[] = {Dist::kGauss, Dist::kUniform, Dist::kOutliers, Dist::kShifted,
                           Dist::kSmall, Dist::kLarge,   Dist::kZeroBlocks, Dist::kSparse};

std::vector<float> make_data(Dist dist, int64_t n, int64_t block, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> gauss(0.f, 1.f);
  std::uniform_real_distribution<float> unif(-1.f, 1.f);
  std::vector<float> x(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    float v = gauss(rng);
    switch (dist) {
      case Dist::kGauss: break;
      case Dist::kUniform: v = unif(rng); break;
      case Dist::kOutliers: if (unif(rng) > 0.98f) v *= 30.f; break;
      case Dist::kShifted: v = 0.5f + 0.1f * v; break;
      case Dist::kSmall: v *= 0.02f; break;
      case Dist::kLarge: v *= 300.f; break;
      case Dist::kZeroBlocks: if ((i / block) % 3 == 1) v = 0.f; break;
      case Dist::kSparse: if (unif(rng) < 0.8f) v = 0.f; break;
    }
    x[static_cast<size_t>(i)] = v;
  }
  return x;
}

// Quantizes rows of `row` elements one call each, then dequantizes them.
std::vector<float> roundtrip(DType t, const std::vector<float>& x, int64_t row) {
  const auto n = static_cast<int64_t>(x.size());
  const size_t rb = row_bytes(t, row);
  std::vector<uint8_t> q(rb * static_cast<size_t>(n / row));
  for (int64_t r = 0; r < n / row; ++r) quantize_row(t, x.data() + r * row, q.data() + r * rb, row);
  std::vector<float> y(x.size());
  for (int64_t r = 0; r < n / row; ++r) dequantize_row(t, q.data() + r * rb, y.data() + r * row, row);
  return y;
}

struct Errors {
  double max_abs_rel = 0;  // max over blocks of max |err| / block absmax
  double rms_rel = 0;      // rms(err) / rms(x)
  bool zero_blocks_exact = true;
};

// floor: smallest block magnitude used as the denominator (f16: 2^-14, where subnormals start).
Errors measure(const std::vector<float>& x, const std::vector<float>& y, int64_t block, double floor = 0) {
  Errors e;
  double se = 0, sx = 0;
  for (size_t b = 0; b < x.size(); b += static_cast<size_t>(block)) {
    double amax = 0, emax = 0;
    for (size_t i = b; i < b + static_cast<size_t>(block); ++i) {
      const double err = std::fabs(static_cast<double>(x[i]) - y[i]);
      amax = std::max(amax, std::fabs(static_cast<double>(x[i])));
      emax = std::max(emax, err);
      se += err * err;
      sx += static_cast<double>(x[i]) * x[i];
    }
    if (amax == 0) {
      if (emax != 0) e.zero_blocks_exact = false;
    } else {
      e.max_abs_rel = std::max(e.max_abs_rel, emax / std::max(amax, floor));
    }
  }
  e.rms_rel = sx > 0 ? std::sqrt(se / sx) : 0;
  return e;
}

class Roundtrip : public ::testing::TestWithParam<Bound> {};

std::string param_name(const ::testing::TestParamInfo<Bound>& info) { return dtype_name(info.param.type); }

// Odd numbers of blocks and rows: 5 rows of 51 blocks (255 blocks).
TEST_P(Roundtrip, RandomDataWithinBounds) {
  const Bound bd = GetParam();
  const int64_t block = traits(bd.type).block_size;
  const int64_t qblock = block == 1 ? 32 : block;  // float types: measure over groups of 32
  const int64_t row = 51 * qblock, n = 5 * row;
  for (Dist dist : kDists) {
    const auto x = make_data(dist, n, qblock, 1);
    const auto y = roundtrip(bd.type, x, row);
    const double floor = bd.type == DType::F16 ? std::ldexp(1.0, -14) : 0.0;
    Errors e = measure(x, y, block, floor);
    const Errors eg = measure(x, y, qblock);
    e.zero_blocks_exact = eg.zero_blocks_exact;
    if (print_errors())
      std::printf("%-7s %-28s max_abs/block_amax %.5f  rms_rel %.5f\n", dtype_name(bd.type), dist_name(dist),
                  e.max_abs_rel, e.rms_rel);
    EXPECT_LE(e.max_abs_rel, bd.max_abs) << dtype_name(bd.type) << " on " << dist_name(dist);
    EXPECT_TRUE(e.zero_blocks_exact) << dtype_name(bd.type) << " on " << dist_name(dist)
                                     << ": an all-zero block must dequantize to exact zeros";
    if (dist == Dist::kGauss) {
      EXPECT_LE(e.rms_rel, bd.rms) << dtype_name(bd.type) << " on " << dist_name(dist);
    }
    // Values must stay finite.
    for (float v : y) ASSERT_TRUE(std::isfinite(v)) << dtype_name(bd.type) << " on " << dist_name(dist);
  }
}

// A block of one repeated value is represented by its extreme level: only the fp16 rounding of the scale
// (and, for q4_1/q5_1, of the min) remains, 2^-11 relative, at most twice: bound 1e-3 (bf16: 2^-8).
// Values stay >= 0.25 so that every super-block scale (down to c / 4096 for q6_K) is a normal fp16; smaller
// data, where those scales become fp16 subnormals, is covered by N(0, 0.02) above.
TEST_P(Roundtrip, ConstantBlocks) {
  const Bound bd = GetParam();
  const int64_t block = std::max<int64_t>(32, traits(bd.type).block_size);
  const float values[] = {1.0f, -1.0f, 0.37f, -1234.5f, 0.25f, -0.3f};
  const int nv = static_cast<int>(std::size(values));
  std::vector<float> x(static_cast<size_t>(block * nv));
  for (int b = 0; b < nv; ++b) std::fill_n(x.begin() + b * block, block, values[b]);
  const auto y = roundtrip(bd.type, x, block);
  const double tol = bd.type == DType::BF16 ? 0.0039 : 1e-3;
  for (size_t i = 0; i < x.size(); ++i)
    ASSERT_LE(std::fabs(y[i] - x[i]), tol * std::fabs(x[i])) << dtype_name(bd.type) << " [" << i << "] " << x[i];
}

// llama.cpp's test-quantize-fns "total quantization error" on its own data and metric.
TEST_P(Roundtrip, LlamaCppTotalErrorBar) {
  const Bound bd = GetParam();
  const int64_t n = 32 * 128;
  std::vector<float> x(n);
  for (int64_t i = 0; i < n; ++i) x[i] = 0.1f + 2 * std::cos(static_cast<float>(i));
  const auto y = roundtrip(bd.type, x, n);
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += (static_cast<double>(x[i]) - y[i]) * (x[i] - y[i]);
  const double err = std::sqrt(sum) / static_cast<double>(n);
  if (print_errors()) std::printf("%-7s llama.cpp total error %.6f (bar %.4f)\n", dtype_name(bd.type), err, bd.llama);
  EXPECT_LE(err, bd.llama) << dtype_name(bd.type);
}

// The same input gives the same bytes (no hidden state), and quantizing in one call or row by row agrees.
TEST_P(Roundtrip, DeterministicAndRowIndependent) {
  const Bound bd = GetParam();
  const int64_t block = traits(bd.type).block_size;
  const int64_t n = std::max<int64_t>(block, 32) * 9;
  const auto x = make_data(Dist::kOutliers, n, 32, 7);
  std::vector<uint8_t> a(row_bytes(bd.type, n)), b(a.size(), 0xAB);
  quantize_row(bd.type, x.data(), a.data(), n);
  const int64_t part = n / 3;
  for (int r = 0; r < 3; ++r) quantize_row(bd.type, x.data() + r * part, b.data() + r * row_bytes(bd.type, part), part);
  EXPECT_EQ(a, b) << dtype_name(bd.type);
}

INSTANTIATE_TEST_SUITE_P(AllSupported, Roundtrip, ::testing::ValuesIn(kBounds), param_name);

TEST(RoundtripCoverage, EverySupportedTypeHasABound) {
  for (uint32_t id = 0; id < 64; ++id) {
    const TypeTraits* tr = find_traits(id);
    if (!tr || !tr->supported) continue;
    const bool found = std::any_of(std::begin(kBounds), std::end(kBounds), [&](const Bound& b) { return b.type == tr->type; });
    EXPECT_TRUE(found) << tr->name << " is supported but has no round-trip bound";
  }
}

}  // namespace
}  // namespace strata
