// Scalar dequantization references for ggml's K-quants (super-blocks of QK_K = 256 elements):
// q2_K q3_K q4_K q5_K q6_K q8_K. Bit-compatible with ggml's dequantize_row_* (same float operations in
// the same order). The quantizers are in quant_k_quantize.cpp.
#include <cstring>

#include "tensor/quant_common.h"
#include "tensor/quant_k_scales.h"
#include "tensor/quant_ref.h"

namespace strata::ref {

using detail::blocks;

// ---- q2_K (84 bytes, 2.625 bpw) ----
// 16 sub-blocks of 16 elements. scales[s]: low nibble = scale, high nibble = min of sub-block s.
// x = d * scale * q - dmin * min, q in [0, 3].
// qs: two halves of 128 elements, 32 bytes each. In half h, byte l holds, at bit shift 2*k (k = 0..3),
// the quant of element 128*h + 32*k + l. Sub-block s therefore covers bytes 0..15 or 16..31 of its half.
void dequantize_q2_K(const void* src, float* dst, int64_t n) {
  const auto* b = blocks<block_q2_K>(src);
  for (int64_t i = 0; i < n / QK_K; ++i) {
    const float d = fp16_to_f32(b[i].d);
    const float min = fp16_to_f32(b[i].dmin);
    const uint8_t* q = b[i].qs;
    int is = 0;
    for (int half = 0; half < QK_K / 128; ++half, q += 32) {
      for (int shift = 0; shift < 8; shift += 2) {
        for (int part = 0; part < 2; ++part) {  // bytes 0..15, then 16..31
          const uint8_t sc = b[i].scales[is++];
          const float dl = d * static_cast<float>(sc & 0xF);
          const float ml = min * static_cast<float>(sc >> 4);
          for (int l = 0; l < 16; ++l) *dst++ = dl * static_cast<float>((q[16 * part + l] >> shift) & 3) - ml;
        }
      }
    }
  }
}

// ---- q3_K (110 bytes, 3.4375 bpw) ----
// 16 sub-blocks of 16 elements with signed 6-bit scales (stored +32, see quant_k_scales.h).
// x = d * (scale - 32) * (q - 4), q in [0, 7]: the low 2 bits in qs (same order as q2_K), the high bit in
// hmask: element 32*k + l (k = 0..7, l = 0..31) has its bit at hmask[l], bit k. ggml stores the high bit
// SET for q >= 4, so the dequantizer subtracts 4 when the bit is clear.
void dequantize_q3_K(const void* src, float* dst, int64_t n) {
  const auto* b = blocks<block_q3_K>(src);
  for (int64_t i = 0; i < n / QK_K; ++i) {
    const float d_all = fp16_to_f32(b[i].d);
    int8_t scales[16];
    detail::unpack_q3_K_scales(b[i].scales, scales);
    const uint8_t* q = b[i].qs;
    const uint8_t* hm = b[i].hmask;
    uint8_t m = 1;
    int is = 0;
    for (int half = 0; half < QK_K / 128; ++half, q += 32) {
      for (int shift = 0; shift < 8; shift += 2, m = static_cast<uint8_t>(m << 1)) {
        for (int part = 0; part < 2; ++part) {
          const float dl = d_all * static_cast<float>(scales[is++] - 32);
          for (int l = 16 * part; l < 16 * part + 16; ++l) {
            const int lq = ((q[l] >> shift) & 3) - ((hm[l] & m) ? 0 : 4);
            *dst++ = dl * static_cast<float>(lq);
          }
        }
      }
    }
  }
}

// ---- q4_K (144 bytes, 4.5 bpw) ----
// 8 sub-blocks of 32 elements, each with a 6-bit scale and a 6-bit min (12 bytes, see quant_k_scales.h).
// x = d * scale * q - dmin * min, q in [0, 15]. qs: 4 chunks of 32 bytes; chunk c holds elements
// 64c + l (low nibble of byte l) and 64c + 32 + l (high nibble).
void dequantize_q4_K(const void* src, float* dst, int64_t n) {
  const auto* b = blocks<block_q4_K>(src);
  for (int64_t i = 0; i < n / QK_K; ++i) {
    const float d = fp16_to_f32(b[i].d);
    const float min = fp16_to_f32(b[i].dmin);
    const uint8_t* q = b[i].qs;
    for (int is = 0; is < QK_K / 32; is += 2, q += 32) {
      uint8_t sc, m;
      detail::get_scale_min_k4(is + 0, b[i].scales, &sc, &m);
      const float d1 = d * static_cast<float>(sc), m1 = min * static_cast<float>(m);
      detail::get_scale_min_k4(is + 1, b[i].scales, &sc, &m);
      const float d2 = d * static_cast<float>(sc), m2 = min * static_cast<float>(m);
      for (int l = 0; l < 32; ++l) *dst++ = d1 * static_cast<float>(q[l] & 0xF) - m1;
      for (int l = 0; l < 32; ++l) *dst++ = d2 * static_cast<float>(q[l] >> 4) - m2;
    }
  }
}

// ---- q5_K (176 bytes, 5.5 bpw) ----
// q4_K plus a fifth bit per element: element 64c + l has its bit at qh[l] bit 2c, element 64c + 32 + l at
// qh[l] bit 2c + 1. x = d * scale * q - dmin * min, q in [0, 31].
void dequantize_q5_K(const void* src, float* dst, int64_t n) {
  const auto* b = blocks<block_q5_K>(src);
  for (int64_t i = 0; i < n / QK_K; ++i) {
    const float d = fp16_to_f32(b[i].d);
    const float min = fp16_to_f32(b[i].dmin);
    const uint8_t* ql = b[i].qs;
    const uint8_t* qh = b[i].qh;
    uint8_t u1 = 1, u2 = 2;
    for (int is = 0; is < QK_K / 32; is += 2, ql += 32) {
      uint8_t sc, m;
      detail::get_scale_min_k4(is + 0, b[i].scales, &sc, &m);
      const float d1 = d * static_cast<float>(sc), m1 = min * static_cast<float>(m);
      detail::get_scale_min_k4(is + 1, b[i].scales, &sc, &m);
      const float d2 = d * static_cast<float>(sc), m2 = min * static_cast<float>(m);
      for (int l = 0; l < 32; ++l)
        *dst++ = d1 * static_cast<float>((ql[l] & 0xF) + ((qh[l] & u1) ? 16 : 0)) - m1;
      for (int l = 0; l < 32; ++l)
        *dst++ = d2 * static_cast<float>((ql[l] >> 4) + ((qh[l] & u2) ? 16 : 0)) - m2;
      u1 = static_cast<uint8_t>(u1 << 2);
      u2 = static_cast<uint8_t>(u2 << 2);
    }
  }
}

// ---- q6_K (210 bytes, 6.5625 bpw) ----
// 16 sub-blocks of 16 elements with int8 scales. x = d * scale * (q - 32), q in [0, 63].
// Two halves of 128 elements; in a half (ql: 64 bytes, qh: 32 bytes), for l = 0..31:
//   element l      : low nibble of ql[l],      bits 0-1 of qh[l]
//   element l + 32 : low nibble of ql[l + 32], bits 2-3 of qh[l]
//   element l + 64 : high nibble of ql[l],     bits 4-5 of qh[l]
//   element l + 96 : high nibble of ql[l + 32], bits 6-7 of qh[l]
void dequantize_q6_K(const void* src, float* dst, int64_t n) {
  const auto* b = blocks<block_q6_K>(src);
  for (int64_t i = 0; i < n / QK_K; ++i) {
    const float d = fp16_to_f32(b[i].d);
    const uint8_t* ql = b[i].ql;
    const uint8_t* qh = b[i].qh;
    const int8_t* sc = b[i].scales;
    for (int half = 0; half < QK_K / 128; ++half, dst += 128, ql += 64, qh += 32, sc += 8) {
      for (int l = 0; l < 32; ++l) {
        const int is = l / 16;
        const int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
        const int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
        const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
        const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
        // ggml evaluates d * sc * q left to right: (d * sc) * q.
        dst[l + 0] = d * static_cast<float>(sc[is + 0]) * static_cast<float>(q1);
        dst[l + 32] = d * static_cast<float>(sc[is + 2]) * static_cast<float>(q2);
        dst[l + 64] = d * static_cast<float>(sc[is + 4]) * static_cast<float>(q3);
        dst[l + 96] = d * static_cast<float>(sc[is + 6]) * static_cast<float>(q4);
      }
    }
  }
}

// ---- q8_K (292 bytes): x = d * q with a float32 d; bsums (sums of 16 quants) serve dot products only. ----
void dequantize_q8_K(const void* src, float* dst, int64_t n) {
  const auto* b = blocks<block_q8_K>(src);
  for (int64_t i = 0; i < n / QK_K; ++i)
    for (int j = 0; j < QK_K; ++j) *dst++ = b[i].d * static_cast<float>(b[i].qs[j]);
}

}  // namespace strata::ref
