// Hand-checked facts about individual formats (these run without ../shared; the real-model comparisons with
// llama.cpp are in test_quant_llamacpp.cpp).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "core/fp16.h"
#include "tensor/dtype.h"

namespace strata {
namespace {

std::vector<float> gaussian(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> g(0.f, 1.f);
  std::vector<float> x(static_cast<size_t>(n));
  for (auto& v : x) v = g(rng);
  return x;
}

TEST(Formats, F16RoundsToNearestEven) {
  const float in[] = {1.0f, 65504.0f, 65520.0f, std::ldexp(1.0f, -24), 1.0f + std::ldexp(1.0f, -11),
                      1.0f + 3 * std::ldexp(1.0f, -11), -0.0f};
  const uint16_t want[] = {0x3C00, 0x7BFF, 0x7C00 /* overflow to inf */, 0x0001 /* smallest subnormal */,
                           0x3C00 /* tie -> even */, 0x3C02 /* tie -> even */, 0x8000};
  uint16_t out[std::size(in)];
  quantize_row(DType::F16, in, out, std::size(in));
  for (size_t i = 0; i < std::size(in); ++i) EXPECT_EQ(out[i], want[i]) << in[i];
  float back[std::size(in)];
  dequantize_row(DType::F16, out, back, std::size(in));
  EXPECT_EQ(back[0], 1.0f);
  EXPECT_EQ(back[1], 65504.0f);
  EXPECT_TRUE(std::isinf(back[2]));
  EXPECT_EQ(back[3], std::ldexp(1.0f, -24));
  EXPECT_TRUE(std::signbit(back[6]));
}

TEST(Formats, Bf16RoundsToNearestEvenAndKeepsNan) {
  const float in[] = {1.0f, bits_to_f32(0x3F808000u) /* tie */, bits_to_f32(0x3F818000u) /* tie */,
                      bits_to_f32(0x3F808001u), std::numeric_limits<float>::infinity(),
                      std::numeric_limits<float>::quiet_NaN()};
  uint16_t out[std::size(in)];
  quantize_row(DType::BF16, in, out, std::size(in));
  EXPECT_EQ(out[0], 0x3F80);
  EXPECT_EQ(out[1], 0x3F80);
  EXPECT_EQ(out[2], 0x3F82);
  EXPECT_EQ(out[3], 0x3F81);
  EXPECT_EQ(out[4], 0x7F80);
  float back[std::size(in)];
  dequantize_row(DType::BF16, out, back, std::size(in));
  EXPECT_TRUE(std::isnan(back[5]));
  EXPECT_EQ(back[3], bits_to_f32(0x3F810000u));
}

TEST(Formats, Q4_0NibbleLayout) {
  // Byte j holds element j (low nibble) and element j + 16 (high nibble); x = d * (q - 8).
  block_q4_0 b{};
  b.d = f32_to_fp16(0.5f);
  std::memset(b.qs, 0x88, sizeof b.qs);  // every q = 8 -> 0
  b.qs[3] = 0x9F;                         // element 3: q = 15 -> 3.5; element 19: q = 9 -> 0.5
  float y[32];
  dequantize_row(DType::Q4_0, &b, y, 32);
  for (int i = 0; i < 32; ++i) EXPECT_EQ(y[i], i == 3 ? 3.5f : i == 19 ? 0.5f : 0.0f) << i;
}

TEST(Formats, Q8_1SumMatchesQuants) {
  const auto x = gaussian(32 * 7, 3);
  std::vector<block_q8_0> a(7);
  std::vector<block_q8_1> b(7);
  quantize_row(DType::Q8_0, x.data(), a.data(), 32 * 7);
  quantize_row(DType::Q8_1, x.data(), b.data(), 32 * 7);
  for (int i = 0; i < 7; ++i) {
    EXPECT_EQ(a[i].d, b[i].d);
    EXPECT_EQ(std::memcmp(a[i].qs, b[i].qs, 32), 0);
    int sum = 0;
    for (int8_t q : b[i].qs) sum += q;
    // ggml multiplies by the float scale amax / 127, before its rounding to fp16.
    float amax = 0;
    for (int l = 0; l < 32; ++l) amax = std::max(amax, std::fabs(x[32 * i + l]));
    EXPECT_EQ(b[i].s, f32_to_fp16(static_cast<float>(sum) * (amax / 127))) << i;
  }
}

TEST(Formats, Q8_KBlockSumsAndScale) {
  auto x = gaussian(QK_K * 3, 5);
  std::fill(x.begin() + QK_K, x.begin() + 2 * QK_K, 0.0f);  // middle block all zero
  std::vector<block_q8_K> b(3);
  quantize_row(DType::Q8_K, x.data(), b.data(), QK_K * 3);
  for (int i = 0; i < 3; ++i) {
    for (int j = 0; j < QK_K / 16; ++j) {
      int sum = 0;
      for (int l = 0; l < 16; ++l) sum += b[i].qs[16 * j + l];
      EXPECT_EQ(b[i].bsums[j], sum) << i << " " << j;
    }
  }
  EXPECT_EQ(b[1].d, 0.0f);
  // The element of largest magnitude maps to -127 (ggml uses -127, not -128, so that q is symmetric).
  float amax = 0, max = 0;
  for (int l = 0; l < QK_K; ++l) {
    if (std::fabs(x[l]) > amax) {
      amax = std::fabs(x[l]);
      max = x[l];
    }
  }
  EXPECT_EQ(b[0].d, 1 / (-127.f / max));
  int extreme = 0;
  for (int8_t q : b[0].qs) extreme += q == -127;
  EXPECT_GE(extreme, 1);
}

TEST(Formats, TernaryLevelsAreExact) {
  // Data that is already ternary (times one scale) survives tq1_0 and tq2_0 up to the fp16 scale.
  std::mt19937 rng(9);
  std::vector<float> x(QK_K * 3);
  for (auto& v : x) v = 0.75f * static_cast<float>(static_cast<int>(rng() % 3) - 1);
  x[0] = 0.75f;  // make sure every block has the full scale
  x[QK_K] = -0.75f;
  x[2 * QK_K] = 0.75f;
  for (DType t : {DType::TQ1_0, DType::TQ2_0}) {
    std::vector<uint8_t> q(row_bytes(t, QK_K * 3));
    std::vector<float> y(x.size());
    quantize_row(t, x.data(), q.data(), QK_K * 3);
    dequantize_row(t, q.data(), y.data(), QK_K * 3);
    EXPECT_EQ(x, y) << dtype_name(t);
  }
}

TEST(Formats, SixteenLevelsOfIq4) {
  // Every iq4_nl index decodes to d * kvalues_iq4nl[index].
  const int8_t kvalues[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};
  block_iq4_nl b{};
  b.d = f32_to_fp16(0.25f);
  for (int j = 0; j < 16; ++j) b.qs[j] = static_cast<uint8_t>(j | ((15 - j) << 4));
  float y[32];
  dequantize_row(DType::IQ4_NL, &b, y, 32);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(y[j], 0.25f * kvalues[j]);
    EXPECT_EQ(y[j + 16], 0.25f * kvalues[15 - j]);
  }
}

}  // namespace
}  // namespace strata
