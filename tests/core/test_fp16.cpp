#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "core/fp16.h"

namespace strata {

// Every half value round-trips exactly through float.
TEST(Fp16, AllHalfValuesRoundTrip) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = fp16_to_f32(static_cast<uint16_t>(h));
    if (std::isnan(f)) continue;
    EXPECT_EQ(f32_to_fp16(f), h) << "half 0x" << std::hex << h;
  }
}

// float -> half rounds to nearest: the chosen half is never farther than its neighbours.
TEST(Fp16, RoundsToNearest) {
  std::mt19937 rng(42);
  std::uniform_real_distribution<float> d(-70000.f, 70000.f);
  for (int i = 0; i < 100000; ++i) {
    const float x = d(rng) * (i % 3 == 0 ? 1e-4f : 1.f);
    const uint16_t h = f32_to_fp16(x);
    const float y = fp16_to_f32(h);
    if (std::isinf(y)) { EXPECT_GT(std::fabs(x), 65504.f); continue; }
    const float up = fp16_to_f32(static_cast<uint16_t>(h + 1));
    const float dn = fp16_to_f32(static_cast<uint16_t>(h - 1));
    EXPECT_LE(std::fabs(x - y), std::fabs(x - up) + 1e-12f);
    EXPECT_LE(std::fabs(x - y), std::fabs(x - dn) + 1e-12f);
  }
}

TEST(Bf16, RoundTripAndNearest) {
  EXPECT_EQ(bf16_to_f32(f32_to_bf16(1.0f)), 1.0f);
  EXPECT_EQ(f32_to_bf16(1.00390625f), 0x3f80);  // exactly halfway: ties to even
  EXPECT_EQ(f32_to_bf16(1.01171875f), 0x3f82);  // halfway above odd: rounds up to even
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(std::nanf("")))));
}

}  // namespace strata
