// Scalar references for ggml's ternary types (BitNet b1.58, TriLMs): each element is d * t, t in {-1, 0, 1},
// with one fp16 d per 256 elements (d = the block's largest magnitude).
//
// tq2_0 (66 bytes, 2.0625 bpw): 2 bits per element, stored as t + 1. qs: 2 chunks of 32 bytes; in chunk c,
//   byte m holds element 128c + 32n + m at bits 2n (n = 0..3).
// tq1_0 (54 bytes, 1.6875 bpw): 5 trits per byte (3^5 = 243 <= 256) in qs[48], 4 trits per byte in qh[4].
//   A byte stores the base-3 number v = sum t_k' 3^(4-k) (t' = t + 1, first trit most significant) as
//   ceil(v * 256 / 243), a fixed-point fraction of 243, so that trit k is recovered with a multiply and a
//   shift: ((uint8_t)(q * 3^k) * 3) >> 8.
//   qs[0..31]:  element 32n + m    is trit n of qs[m]           (elements 0..159)
//   qs[32..47]: element 160 + 16n + m is trit n of qs[32 + m]   (elements 160..239)
//   qh[0..3]:   element 240 + 4n + j is trit n of qh[j], n = 0..3 (elements 240..255; trit 4 unused)
#include <algorithm>
#include <cmath>

#include "tensor/quant_common.h"
#include "tensor/quant_ref.h"

namespace strata::ref {

using detail::blocks;

namespace {

constexpr uint8_t kPow3[6] = {1, 3, 9, 27, 81, 243};

// Trit n (0 = most significant) of a tq1_0 byte, as -1, 0 or 1.
inline int tq1_trit(uint8_t byte, int n) {
  const uint8_t q = static_cast<uint8_t>(byte * kPow3[n]);  // modulo 256: drops the higher trits
  return ((static_cast<uint16_t>(q) * 3) >> 8) - 1;
}

// Ceiling of v * 256 / 243: the fixed-point encoding of a base-3 number v < 243.
inline uint8_t tq1_encode(int v) { return static_cast<uint8_t>((v * 256 + (243 - 1)) / 243); }

// Ternary value of x / d as ggml computes it: lroundf(x * id) + 1 in {0, 1, 2}.
inline int ternary(float x, float id) { return static_cast<int>(std::lround(x * id)) + 1; }

float absmax(const float* x, int n) {
  float amax = 0.0f;
  for (int j = 0; j < n; ++j) amax = std::max(amax, std::fabs(x[j]));
  return amax;
}

}  // namespace

void dequantize_tq1_0(const void* src, float* dst, int64_t n) {
  const auto* b = blocks<block_tq1_0>(src);
  constexpr int kQs = sizeof(b->qs);           // 48
  constexpr int kQs32 = kQs - kQs % 32;        // 32 bytes in the 32-wide part
  for (int64_t i = 0; i < n / QK_K; ++i) {
    const float d = fp16_to_f32(b[i].d);
    for (int j = 0; j < kQs32; j += 32)
      for (int t = 0; t < 5; ++t)
        for (int m = 0; m < 32; ++m) *dst++ = static_cast<float>(tq1_trit(b[i].qs[j + m], t)) * d;
    for (int j = kQs32; j < kQs; j += 16)
      for (int t = 0; t < 5; ++t)
        for (int m = 0; m < 16; ++m) *dst++ = static_cast<float>(tq1_trit(b[i].qs[j + m], t)) * d;
    for (int t = 0; t < 4; ++t)
      for (int j = 0; j < static_cast<int>(sizeof(b->qh)); ++j)
        *dst++ = static_cast<float>(tq1_trit(b[i].qh[j], t)) * d;
  }
}

void quantize_tq1_0(const float* src, void* dst, int64_t n) {
  auto* y = blocks<block_tq1_0>(dst);
  constexpr int kQs = sizeof(y->qs);
  constexpr int kQs32 = kQs - kQs % 32;
  constexpr int kQh = sizeof(y->qh);
  for (int64_t i = 0; i < n / QK_K; ++i) {
    const float* x = src + i * QK_K;
    const float d = absmax(x, QK_K);
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[i].d = f32_to_fp16(d);
    for (int j = 0; j < kQs32; j += 32, x += 5 * 32) {
      for (int m = 0; m < 32; ++m) {
        int v = 0;
        for (int t = 0; t < 5; ++t) v = v * 3 + ternary(x[m + t * 32], id);
        y[i].qs[j + m] = tq1_encode(v);
      }
    }
    for (int j = kQs32; j < kQs; j += 16, x += 5 * 16) {
      for (int m = 0; m < 16; ++m) {
        int v = 0;
        for (int t = 0; t < 5; ++t) v = v * 3 + ternary(x[m + t * 16], id);
        y[i].qs[j + m] = tq1_encode(v);
      }
    }
    for (int j = 0; j < kQh; ++j) {
      int v = 0;
      for (int t = 0; t < 4; ++t) v = v * 3 + ternary(x[j + t * kQh], id);
      y[i].qh[j] = tq1_encode(v * 3);  // 4 trits, shifted so the first is the most significant of 5
    }
  }
}

void dequantize_tq2_0(const void* src, float* dst, int64_t n) {
  const auto* b = blocks<block_tq2_0>(src);
  for (int64_t i = 0; i < n / QK_K; ++i) {
    const float d = fp16_to_f32(b[i].d);
    for (size_t j = 0; j < sizeof(b->qs); j += 32)
      for (int l = 0; l < 4; ++l)
        for (int m = 0; m < 32; ++m) {
          const int q = (b[i].qs[j + m] >> (l * 2)) & 3;
          *dst++ = static_cast<float>(q - 1) * d;
        }
  }
}

void quantize_tq2_0(const float* src, void* dst, int64_t n) {
  auto* y = blocks<block_tq2_0>(dst);
  for (int64_t i = 0; i < n / QK_K; ++i) {
    const float* x = src + i * QK_K;
    const float d = absmax(x, QK_K);
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[i].d = f32_to_fp16(d);
    for (size_t j = 0; j < sizeof(y->qs); j += 32, x += 4 * 32) {
      for (int m = 0; m < 32; ++m) {
        int q = 0;
        for (int t = 0; t < 4; ++t) q += (ternary(x[m + t * 32], id) & 3) << (2 * t);
        y[i].qs[j + m] = static_cast<uint8_t>(q);
      }
    }
  }
}

}  // namespace strata::ref
