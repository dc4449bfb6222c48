// Scalar references for ggml's "legacy" 32-element block types: q4_0 q4_1 q5_0 q5_1 q8_0 q8_1.
// Bit-compatible with ggml's dequantize_row_* and quantize_row_*_ref: the same float operations in the
// same order, so that results are identical bit for bit (see tests/tensor/).
//
// Common layout: a block covers 32 consecutive elements x[0..31]. 4/5-bit types pack the quants of
// x[j] (low nibble) and x[j+16] (high nibble) into byte qs[j], j = 0..15. 5-bit types keep the fifth bits
// in a 32-bit little-endian word qh: bit j belongs to x[j] (j = 0..31).
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>

#include "tensor/quant_common.h"
#include "tensor/quant_ref.h"

namespace strata::ref {

using detail::blocks;

// ---- q4_0: x = d * (q - 8), q in [0, 15]; d = fp16. 18 bytes per 32 elements (4.5 bpw). ----

void dequantize_q4_0(const void* src, float* dst, int64_t n) {
  const auto* b = blocks<block_q4_0>(src);
  for (int64_t i = 0; i < n / QK4_0; ++i, dst += QK4_0) {
    const float d = fp16_to_f32(b[i].d);
    for (int j = 0; j < QK4_0 / 2; ++j) {
      const int x0 = (b[i].qs[j] & 0x0F) - 8;
      const int x1 = (b[i].qs[j] >> 4) - 8;
      dst[j] = x0 * d;
      dst[j + QK4_0 / 2] = x1 * d;
    }
  }
}

// The scale maps the element of largest magnitude (with its sign) to -8, the one level with no mirror.
void quantize_q4_0(const float* src, void* dst, int64_t n) {
  auto* y = blocks<block_q4_0>(dst);
  for (int64_t i = 0; i < n / QK4_0; ++i, src += QK4_0) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < QK4_0; ++j) {
      if (amax < std::fabs(src[j])) {
        amax = std::fabs(src[j]);
        max = src[j];
      }
    }
    const float d = max / -8;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[i].d = f32_to_fp16(d);
    for (int j = 0; j < QK4_0 / 2; ++j) {
      const float x0 = src[j] * id;
      const float x1 = src[j + QK4_0 / 2] * id;
      // Truncation of x + 8.5 rounds x to nearest (x + 8.5 >= 0 here); level 16 is clamped to 15.
      const int q0 = std::min(15, static_cast<int>(x0 + 8.5f));
      const int q1 = std::min(15, static_cast<int>(x1 + 8.5f));
      y[i].qs[j] = static_cast<uint8_t>(q0 | (q1 << 4));
    }
  }
}

// ---- q4_1: x = d * q + m, q in [0, 15]; d, m = fp16. 20 bytes per 32 elements (5 bpw). ----

void dequantize_q4_1(const void* src, float* dst, int64_t n) {
  const auto* b = blocks<block_q4_1>(src);
  for (int64_t i = 0; i < n / QK4_1; ++i, dst += QK4_1) {
    const float d = fp16_to_f32(b[i].d);
    const float m = fp16_to_f32(b[i].m);
    for (int j = 0; j < QK4_1 / 2; ++j) {
      const int x0 = b[i].qs[j] & 0x0F;
      const int x1 = b[i].qs[j] >> 4;
      dst[j] = x0 * d + m;
      dst[j + QK4_1 / 2] = x1 * d + m;
    }
  }
}

void quantize_q4_1(const float* src, void* dst, int64_t n) {
  auto* y = blocks<block_q4_1>(dst);
  for (int64_t i = 0; i < n / QK4_1; ++i, src += QK4_1) {
    float min = FLT_MAX, max = -FLT_MAX;
    for (int j = 0; j < QK4_1; ++j) {
      min = std::min(min, src[j]);
      max = std::max(max, src[j]);
    }
    const float d = (max - min) / ((1 << 4) - 1);
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[i].d = f32_to_fp16(d);
    y[i].m = f32_to_fp16(min);
    for (int j = 0; j < QK4_1 / 2; ++j) {
      const float x0 = (src[j] - min) * id;
      const float x1 = (src[j + QK4_1 / 2] - min) * id;
      const int q0 = std::min(15, static_cast<int>(x0 + 0.5f));
      const int q1 = std::min(15, static_cast<int>(x1 + 0.5f));
      y[i].qs[j] = static_cast<uint8_t>(q0 | (q1 << 4));
    }
  }
}

// ---- q5_0: x = d * (q - 16), q in [0, 31]; low nibbles in qs, fifth bits in qh. 22 bytes / 32 (5.5 bpw). ----

void dequantize_q5_0(const void* src, float* dst, int64_t n) {
  const auto* b = blocks<block_q5_0>(src);
  for (int64_t i = 0; i < n / QK5_0; ++i, dst += QK5_0) {
    const float d = fp16_to_f32(b[i].d);
    uint32_t qh;
    std::memcpy(&qh, b[i].qh, sizeof qh);
    for (int j = 0; j < QK5_0 / 2; ++j) {
      const int h0 = ((qh >> j) << 4) & 0x10;
      const int h1 = (qh >> (j + 12)) & 0x10;  // bit j+16, moved to bit 4
      const int x0 = ((b[i].qs[j] & 0x0F) | h0) - 16;
      const int x1 = ((b[i].qs[j] >> 4) | h1) - 16;
      dst[j] = x0 * d;
      dst[j + QK5_0 / 2] = x1 * d;
    }
  }
}

void quantize_q5_0(const float* src, void* dst, int64_t n) {
  auto* y = blocks<block_q5_0>(dst);
  for (int64_t i = 0; i < n / QK5_0; ++i, src += QK5_0) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < QK5_0; ++j) {
      if (amax < std::fabs(src[j])) {
        amax = std::fabs(src[j]);
        max = src[j];
      }
    }
    const float d = max / -16;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[i].d = f32_to_fp16(d);
    uint32_t qh = 0;
    for (int j = 0; j < QK5_0 / 2; ++j) {
      const float x0 = src[j] * id;
      const float x1 = src[j + QK5_0 / 2] * id;
      const uint32_t q0 = static_cast<uint32_t>(std::min(31, static_cast<int>(x0 + 16.5f)));
      const uint32_t q1 = static_cast<uint32_t>(std::min(31, static_cast<int>(x1 + 16.5f)));
      y[i].qs[j] = static_cast<uint8_t>((q0 & 0x0F) | ((q1 & 0x0F) << 4));
      qh |= ((q0 & 0x10u) >> 4) << j;
      qh |= ((q1 & 0x10u) >> 4) << (j + QK5_0 / 2);
    }
    std::memcpy(y[i].qh, &qh, sizeof qh);
  }
}

// ---- q5_1: x = d * q + m, q in [0, 31]. 24 bytes per 32 elements (6 bpw). ----

void dequantize_q5_1(const void* src, float* dst, int64_t n) {
  const auto* b = blocks<block_q5_1>(src);
  for (int64_t i = 0; i < n / QK5_1; ++i, dst += QK5_1) {
    const float d = fp16_to_f32(b[i].d);
    const float m = fp16_to_f32(b[i].m);
    uint32_t qh;
    std::memcpy(&qh, b[i].qh, sizeof qh);
    for (int j = 0; j < QK5_1 / 2; ++j) {
      const int h0 = ((qh >> j) << 4) & 0x10;
      const int h1 = (qh >> (j + 12)) & 0x10;
      const int x0 = (b[i].qs[j] & 0x0F) | h0;
      const int x1 = (b[i].qs[j] >> 4) | h1;
      dst[j] = x0 * d + m;
      dst[j + QK5_1 / 2] = x1 * d + m;
    }
  }
}

void quantize_q5_1(const float* src, void* dst, int64_t n) {
  auto* y = blocks<block_q5_1>(dst);
  for (int64_t i = 0; i < n / QK5_1; ++i, src += QK5_1) {
    float min = FLT_MAX, max = -FLT_MAX;
    for (int j = 0; j < QK5_1; ++j) {
      min = std::min(min, src[j]);
      max = std::max(max, src[j]);
    }
    const float d = (max - min) / ((1 << 5) - 1);
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[i].d = f32_to_fp16(d);
    y[i].m = f32_to_fp16(min);
    uint32_t qh = 0;
    for (int j = 0; j < QK5_1 / 2; ++j) {
      const float x0 = (src[j] - min) * id;
      const float x1 = (src[j + QK5_1 / 2] - min) * id;
      // ggml does not clamp here: (max - min) * id rounds to at most 31.
      const uint32_t q0 = static_cast<uint8_t>(x0 + 0.5f);
      const uint32_t q1 = static_cast<uint8_t>(x1 + 0.5f);
      y[i].qs[j] = static_cast<uint8_t>((q0 & 0x0F) | ((q1 & 0x0F) << 4));
      qh |= ((q0 & 0x10u) >> 4) << j;
      qh |= ((q1 & 0x10u) >> 4) << (j + QK5_1 / 2);
    }
    std::memcpy(y[i].qh, &qh, sizeof qh);
  }
}

// ---- q8_0: x = d * q, q in [-127, 127]. 34 bytes per 32 elements (8.5 bpw). ----

void dequantize_q8_0(const void* src, float* dst, int64_t n) {
  const auto* b = blocks<block_q8_0>(src);
  for (int64_t i = 0; i < n / QK8_0; ++i, dst += QK8_0) {
    const float d = fp16_to_f32(b[i].d);
    for (int j = 0; j < QK8_0; ++j) dst[j] = b[i].qs[j] * d;
  }
}

void quantize_q8_0(const float* src, void* dst, int64_t n) {
  auto* y = blocks<block_q8_0>(dst);
  for (int64_t i = 0; i < n / QK8_0; ++i, src += QK8_0) {
    float amax = 0.0f;
    for (int j = 0; j < QK8_0; ++j) amax = std::max(amax, std::fabs(src[j]));
    const float d = amax / ((1 << 7) - 1);
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[i].d = f32_to_fp16(d);
    for (int j = 0; j < QK8_0; ++j) y[i].qs[j] = static_cast<int8_t>(std::round(src[j] * id));
  }
}

// ---- q8_1: q8_0 plus s = d * sum(q) (fp16), used as the activation type for q4_1/q5_1 dot products. ----

void dequantize_q8_1(const void* src, float* dst, int64_t n) {
  const auto* b = blocks<block_q8_1>(src);
  for (int64_t i = 0; i < n / QK8_1; ++i, dst += QK8_1) {
    const float d = fp16_to_f32(b[i].d);
    for (int j = 0; j < QK8_1; ++j) dst[j] = b[i].qs[j] * d;
  }
}

void quantize_q8_1(const float* src, void* dst, int64_t n) {
  auto* y = blocks<block_q8_1>(dst);
  for (int64_t i = 0; i < n / QK8_1; ++i, src += QK8_1) {
    float amax = 0.0f;
    for (int j = 0; j < QK8_1; ++j) amax = std::max(amax, std::fabs(src[j]));
    const float d = amax / ((1 << 7) - 1);
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[i].d = f32_to_fp16(d);
    int sum = 0;
    for (int j = 0; j < QK8_1; ++j) {
      y[i].qs[j] = static_cast<int8_t>(std::round(src[j] * id));
      sum += y[i].qs[j];
    }
    y[i].s = f32_to_fp16(static_cast<float>(sum) * d);
  }
}

}  // namespace strata::ref
