// Internal helpers shared by the scalar quantize/dequantize references (not part of the tensor API).
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

#include "core/fp16.h"
#include "tensor/dtype.h"

namespace strata::ref::detail {

// ggml's nearest_int: rounds to the nearest integer, ties to even, by adding 1.5 * 2^23 so that the
// integer lands in the low mantissa bits. Valid for |x| <= 4194303 (callers stay far inside that range).
// Bit-compatible with ggml on purpose: std::lround would round ties away from zero.
inline int nearest_int(float x) {
  const float v = x + 12582912.f;
  int32_t i;
  std::memcpy(&i, &v, sizeof i);
  return (i & 0x007fffff) - 0x00400000;
}

// Blocks of type Block starting at src (the caller checked n is a multiple of the block size).
template <class Block>
inline const Block* blocks(const void* src) { return static_cast<const Block*>(src); }
template <class Block>
inline Block* blocks(void* dst) { return static_cast<Block*>(dst); }

// ggml's GROUP_MAX_EPS: a group whose largest magnitude is below this is treated as all zero.
constexpr float kGroupMaxEps = 1e-15f;

}  // namespace strata::ref::detail
