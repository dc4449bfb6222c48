// Row codecs of the KV formats (internal to src/kv): one struct per storage layout, with static functions
// the registry turns into typed loops (STYLE.md practice 2: the runtime format becomes a template argument
// once per range, so the per-row loops never branch on it).
//
// Every codec has: kBlock (head_dim multiple), bytes(d), encode(x, dst, d), decode(src, out, d),
// dot(q, src, d) = <q, decode(src)> and axpy(w, src, acc, d): acc += w * decode(src), the last two fused
// (no decoded row is materialized). Blocks are read with memcpy / byte offsets, so rows may sit at any
// address. ggml layouts are pinned by the structs of tensor/dtype.h.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "core/fp16.h"
#include "tensor/dtype.h"

namespace strata::kv::rows {

inline uint16_t load_u16(const uint8_t* p) { uint16_t v; std::memcpy(&v, p, 2); return v; }
inline void store_u16(uint8_t* p, uint16_t v) { std::memcpy(p, &v, 2); }
inline float load_f32(const uint8_t* p) { float v; std::memcpy(&v, p, 4); return v; }

// Round to nearest, ties to even (as std::nearbyint), for |x| < 2^22: the 1.5·2^23 trick, no libm call
// (the baseline ISA has no SSE4.1 round instruction).
inline int round_small(float x) {
  const float v = x + 12582912.f;
  int32_t i;
  std::memcpy(&i, &v, 4);
  return (i & 0x007fffff) - 0x00400000;
}

// round(v) clamped to [lo, hi]. std::min/max, not std::fmin/fmax: those are libm calls without
// -ffinite-math-only. A NaN rounds to 0 (then clamped): garbage in, no undefined behaviour.
inline int quant_clamp(float v, int lo, int hi) {
  const float c = std::min(std::max(v, static_cast<float>(lo)), static_cast<float>(hi));
  return std::clamp(round_small(c), lo, hi);
}

// ---- f32 / f16 / bf16: one element per block ----
struct F32 {
  static constexpr int kBlock = 1;
  static size_t bytes(int d) { return 4 * static_cast<size_t>(d); }
  static void encode(const float* x, uint8_t* dst, int d) { std::memcpy(dst, x, bytes(d)); }
  static void decode(const uint8_t* src, float* out, int d) { std::memcpy(out, src, bytes(d)); }
  static float dot(const float* q, const uint8_t* src, int d) {
    float s = 0;
    for (int c = 0; c < d; ++c) s += q[c] * load_f32(src + 4 * c);
    return s;
  }
  static void axpy(float w, const uint8_t* src, float* acc, int d) {
    for (int c = 0; c < d; ++c) acc[c] += w * load_f32(src + 4 * c);
  }
};

template <float (*ToF32)(uint16_t), uint16_t (*FromF32)(float)>
struct Half {
  static constexpr int kBlock = 1;
  static size_t bytes(int d) { return 2 * static_cast<size_t>(d); }
  static void encode(const float* x, uint8_t* dst, int d) {
    for (int c = 0; c < d; ++c) store_u16(dst + 2 * c, FromF32(x[c]));
  }
  static void decode(const uint8_t* src, float* out, int d) {
    for (int c = 0; c < d; ++c) out[c] = ToF32(load_u16(src + 2 * c));
  }
  static float dot(const float* q, const uint8_t* src, int d) {
    float s = 0;
    for (int c = 0; c < d; ++c) s += q[c] * ToF32(load_u16(src + 2 * c));
    return s;
  }
  static void axpy(float w, const uint8_t* src, float* acc, int d) {
    for (int c = 0; c < d; ++c) acc[c] += w * ToF32(load_u16(src + 2 * c));
  }
};
using F16 = Half<fp16_to_f32, f32_to_fp16>;
using BF16 = Half<bf16_to_f32, f32_to_bf16>;

// ---- ggml's q8_0: x = d * q, q int8; block of 32 = fp16 d + 32 int8 ----
struct Q8_0 {
  static constexpr int kBlock = QK8_0;
  static constexpr size_t kBytes = sizeof(block_q8_0);
  static_assert(offsetof(block_q8_0, qs) == 2);
  static size_t bytes(int d) { return kBytes * (d / kBlock); }
  static void encode(const float* x, uint8_t* dst, int d) { quantize_row(DType::Q8_0, x, dst, d); }
  static void decode(const uint8_t* src, float* out, int d) {
    for (int b = 0; b < d / kBlock; ++b, src += kBytes, out += kBlock) {
      const float s = fp16_to_f32(load_u16(src));
      const auto* qs = reinterpret_cast<const int8_t*>(src + 2);
      for (int j = 0; j < kBlock; ++j) out[j] = qs[j] * s;
    }
  }
  static float dot(const float* q, const uint8_t* src, int d) {
    float sum = 0;
    for (int b = 0; b < d / kBlock; ++b, src += kBytes, q += kBlock) {
      const auto* qs = reinterpret_cast<const int8_t*>(src + 2);
      float s = 0;
      for (int j = 0; j < kBlock; ++j) s += q[j] * qs[j];
      sum += s * fp16_to_f32(load_u16(src));
    }
    return sum;
  }
  static void axpy(float w, const uint8_t* src, float* acc, int d) {
    for (int b = 0; b < d / kBlock; ++b, src += kBytes, acc += kBlock) {
      const float ws = w * fp16_to_f32(load_u16(src));
      const auto* qs = reinterpret_cast<const int8_t*>(src + 2);
      for (int j = 0; j < kBlock; ++j) acc[j] += ws * qs[j];
    }
  }
};

// ---- ggml's q4_0 (x = d * (q - 8)) and q4_1 (x = d * q + m); byte j holds x[j] (low) and x[j+16] ----
template <bool kHasMin>
struct Q4 {
  static constexpr int kBlock = 32;
  static constexpr size_t kHead = kHasMin ? 4 : 2;  // fp16 d (and fp16 m)
  static constexpr size_t kBytes = kHead + 16;
  static_assert(sizeof(block_q4_0) == 18 && sizeof(block_q4_1) == 20);
  static_assert(offsetof(block_q4_0, qs) == 2 && offsetof(block_q4_1, qs) == 4);
  static constexpr DType kType = kHasMin ? DType::Q4_1 : DType::Q4_0;
  static size_t bytes(int d) { return kBytes * (d / kBlock); }
  static void encode(const float* x, uint8_t* dst, int d) { quantize_row(kType, x, dst, d); }
  static void scale_min(const uint8_t* blk, float& s, float& m) {
    s = fp16_to_f32(load_u16(blk));
    m = kHasMin ? fp16_to_f32(load_u16(blk + 2)) : 0.f;
  }
  static int lo(uint8_t b) { return kHasMin ? (b & 0x0F) : (b & 0x0F) - 8; }
  static int hi(uint8_t b) { return kHasMin ? (b >> 4) : (b >> 4) - 8; }
  static void decode(const uint8_t* src, float* out, int d) {
    for (int b = 0; b < d / kBlock; ++b, src += kBytes, out += kBlock) {
      float s, m;
      scale_min(src, s, m);
      const uint8_t* qs = src + kHead;
      for (int j = 0; j < 16; ++j) {
        if constexpr (kHasMin) {
          out[j] = lo(qs[j]) * s + m;
          out[j + 16] = hi(qs[j]) * s + m;
        } else {
          out[j] = lo(qs[j]) * s;
          out[j + 16] = hi(qs[j]) * s;
        }
      }
    }
  }
  static float dot(const float* q, const uint8_t* src, int d) {
    float sum = 0;
    for (int b = 0; b < d / kBlock; ++b, src += kBytes, q += kBlock) {
      float s, m;
      scale_min(src, s, m);
      const uint8_t* qs = src + kHead;
      float acc = 0, qsum = 0;
      for (int j = 0; j < 16; ++j) {
        acc += q[j] * lo(qs[j]) + q[j + 16] * hi(qs[j]);
        if constexpr (kHasMin) qsum += q[j] + q[j + 16];
      }
      sum += acc * s + qsum * m;
    }
    return sum;
  }
  static void axpy(float w, const uint8_t* src, float* acc, int d) {
    for (int b = 0; b < d / kBlock; ++b, src += kBytes, acc += kBlock) {
      float s, m;
      scale_min(src, s, m);
      const float ws = w * s, wm = w * m;
      const uint8_t* qs = src + kHead;
      for (int j = 0; j < 16; ++j) {
        acc[j] += ws * lo(qs[j]) + wm;
        acc[j + 16] += ws * hi(qs[j]) + wm;
      }
    }
  }
};
using Q4_0 = Q4<false>;
using Q4_1 = Q4<true>;

// ---- Block floating point: per 16 channels an int8 exponent e and signed mantissas m: x = m * 2^e ----
// Bits = 8: m in [-128, 127], 16 int8 (17 bytes per block). Bits = 4: m in [-8, 7], byte j holds m[j] (low
// nibble) and m[j+8] (high nibble) (9 bytes per block). The exponent is the one of {e0, e0 - 1} with the
// smaller squared error, e0 = the smallest exponent at which no mantissa clips.
inline float exp2i(int e) { return bits_to_f32(static_cast<uint32_t>(e + 127) << 23); }  // e in [-126, 127]

template <int kBits>
struct Bfp {
  static_assert(kBits == 4 || kBits == 8);
  static constexpr int kBlock = 16;
  static constexpr size_t kBytes = 1 + kBlock * kBits / 8;
  static constexpr int kQMax = (1 << (kBits - 1)) - 1;  // 7 or 127; -kQMax-1 is also used
  static size_t bytes(int d) { return kBytes * (d / kBlock); }

  static int mant(const uint8_t* m, int j) {
    if constexpr (kBits == 8) {
      return static_cast<int8_t>(m[j]);
    } else {
      const int nib = j < 8 ? (m[j] & 0x0F) : (m[j - 8] >> 4);
      return (nib ^ 8) - 8;  // sign-extend 4 bits
    }
  }
  static int quant(float x, float inv) { return quant_clamp(x * inv, -kQMax - 1, kQMax); }
  static void encode_block(const float* x, uint8_t* dst) {
    float amax = 0;
    for (int j = 0; j < kBlock; ++j) amax = std::max(amax, std::fabs(x[j]));
    int e = -126;
    if (amax > 0 && std::isfinite(amax)) {
      int k;
      const float f = std::frexp(amax / kQMax, &k);  // amax/kQMax = f * 2^k, f in [0.5, 1)
      const int e0 = std::clamp(f == 0.5f ? k - 1 : k, -125, 127);
      double err[2] = {0, 0};
      for (int c = 0; c < 2; ++c) {
        const float s = exp2i(e0 - c), inv = 1.f / s;
        for (int j = 0; j < kBlock; ++j) {
          const double r = x[j] - quant(x[j], inv) * s;
          err[c] += r * r;
        }
      }
      e = err[1] < err[0] ? e0 - 1 : e0;
    }
    dst[0] = static_cast<uint8_t>(static_cast<int8_t>(e));
    const float inv = 1.f / exp2i(e);
    uint8_t* m = dst + 1;
    if constexpr (kBits == 8) {
      for (int j = 0; j < kBlock; ++j) m[j] = static_cast<uint8_t>(static_cast<int8_t>(quant(x[j], inv)));
    } else {
      for (int j = 0; j < 8; ++j)
        m[j] = static_cast<uint8_t>((quant(x[j], inv) & 0x0F) | ((quant(x[j + 8], inv) & 0x0F) << 4));
    }
  }
  static float scale(const uint8_t* blk) { return exp2i(static_cast<int8_t>(blk[0])); }

  static void encode(const float* x, uint8_t* dst, int d) {
    for (int b = 0; b < d / kBlock; ++b) encode_block(x + b * kBlock, dst + b * kBytes);
  }
  static void decode(const uint8_t* src, float* out, int d) {
    for (int b = 0; b < d / kBlock; ++b, src += kBytes, out += kBlock) {
      const float s = scale(src);
      for (int j = 0; j < kBlock; ++j) out[j] = mant(src + 1, j) * s;
    }
  }
  static float dot(const float* q, const uint8_t* src, int d) {
    float sum = 0;
    for (int b = 0; b < d / kBlock; ++b, src += kBytes, q += kBlock) {
      float acc = 0;
      for (int j = 0; j < kBlock; ++j) acc += q[j] * mant(src + 1, j);
      sum += acc * scale(src);
    }
    return sum;
  }
  static void axpy(float w, const uint8_t* src, float* acc, int d) {
    for (int b = 0; b < d / kBlock; ++b, src += kBytes, acc += kBlock) {
      const float ws = w * scale(src);
      for (int j = 0; j < kBlock; ++j) acc[j] += ws * mant(src + 1, j);
    }
  }
};
using Bfp8 = Bfp<8>;
using Bfp4 = Bfp<4>;

}  // namespace strata::kv::rows
