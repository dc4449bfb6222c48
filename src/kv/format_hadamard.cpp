#include "kv/format_hadamard.h"

#include <cmath>

#include "core/error.h"

namespace strata::kv {

namespace {

// In-place unnormalized fast Walsh–Hadamard transform of n (a power of two) values, then scaled by 1/sqrt(n).
void fwht(float* y, int32_t n) {
  for (int32_t len = 1; len < n; len <<= 1) {
    for (int32_t i = 0; i < n; i += 2 * len) {
      for (int32_t j = i; j < i + len; ++j) {
        const float a = y[j], b = y[j + len];
        y[j] = a + b;
        y[j + len] = a - b;
      }
    }
  }
  const float s = 1.f / std::sqrt(static_cast<float>(n));
  for (int32_t j = 0; j < n; ++j) y[j] *= s;
}

}  // namespace

int32_t hadamard_block(int32_t head_dim) {
  STRATA_ASSERT(head_dim > 0, "hadamard_block: head_dim must be positive");
  return head_dim & -head_dim;  // lowest set bit: the largest power of two dividing head_dim
}

float hadamard_sign(int32_t c) {
  // splitmix64 finalizer of the channel index: a fixed, well-mixed sign pattern.
  uint64_t z = static_cast<uint64_t>(c) + 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return (z >> 63) ? -1.f : 1.f;
}

void hadamard_forward(const float* x, float* y, int32_t head_dim) {
  const int32_t b = hadamard_block(head_dim);
  for (int32_t c = 0; c < head_dim; ++c) y[c] = hadamard_sign(c) * x[c];
  for (int32_t i = 0; i < head_dim; i += b) fwht(y + i, b);
}

void hadamard_inverse(const float* y, float* x, int32_t head_dim) {
  const int32_t b = hadamard_block(head_dim);
  if (x != y)
    for (int32_t c = 0; c < head_dim; ++c) x[c] = y[c];
  for (int32_t i = 0; i < head_dim; i += b) fwht(x + i, b);
  for (int32_t c = 0; c < head_dim; ++c) x[c] *= hadamard_sign(c);
}

}  // namespace strata::kv
