// Helpers shared by the kernel tests: seeded random inputs, quantized random weights, and running a check
// once per SIMD target.
#pragma once
#include <gtest/gtest.h>
#include <hwy/targets.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "kernels/matmul.h"
#include "tensor/dtype.h"

namespace strata::test {

// n normal(0, scale) floats from a fixed seed.
inline std::vector<float> randn(int64_t n, uint64_t seed, float scale = 1.0f) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, scale);
  std::vector<float> x(static_cast<size_t>(n));
  for (auto& v : x) v = normal(rng);
  return x;
}

// rows × cols weights drawn from normal(0, 0.05) (the scale of a trained layer), quantized row by row to type.
inline std::vector<uint8_t> random_weight(DType type, int64_t rows, int64_t cols, uint64_t seed) {
  const std::vector<float> f = randn(rows * cols, seed, 0.05f);
  const size_t rb = row_bytes(type, cols);
  std::vector<uint8_t> w(static_cast<size_t>(rows) * rb);
  for (int64_t r = 0; r < rows; ++r) quantize_row(type, f.data() + r * cols, w.data() + r * rb, cols);
  return w;
}

// Runs fn(target name) once per SIMD target compiled into the kernels that this CPU supports, with dispatch
// forced to it; restores the normal dispatch after.
template <class Fn>
void for_each_target(Fn&& fn) {
  const std::vector<int64_t> targets = kernels::simd_targets();
  ASSERT_FALSE(targets.empty());
  for (int64_t t : targets) {
    hwy::SetSupportedTargetsForTest(t);
    ASSERT_EQ(kernels::simd_target(), t) << "dispatch did not switch to " << hwy::TargetName(t);
    fn(std::string(hwy::TargetName(t)));
  }
  hwy::SetSupportedTargetsForTest(0);
}

}  // namespace strata::test
