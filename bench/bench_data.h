// Random inputs shared by the microbenchmarks (speed does not depend on the values).
#pragma once
#include <cstdint>
#include <random>
#include <vector>

#include "tensor/dtype.h"

namespace strata::bench {

// rows x cols weights of a type, quantized with the reference from N(0, 0.02) values.
inline std::vector<uint8_t> random_weight(DType type, int64_t rows, int64_t cols, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 0.02f);
  const size_t rb = row_bytes(type, cols);
  std::vector<uint8_t> w(rows * rb);
  std::vector<float> row(cols);
  for (int64_t r = 0; r < rows; ++r) {
    for (auto& v : row) v = normal(rng);
    quantize_row(type, row.data(), w.data() + r * rb, cols);
  }
  return w;
}

// n activations from N(0, 1).
inline std::vector<float> random_acts(int64_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(n);
  for (auto& v : x) v = normal(rng);
  return x;
}

}  // namespace strata::bench
