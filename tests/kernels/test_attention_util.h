// Helpers for the attention tests: seeded random Q/K/V, KV caches in every format and layout.
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "core/fp16.h"
#include "kernels/attention.h"
#include "tensor/dtype.h"

namespace strata::test {

inline std::vector<float> random_floats(size_t n, uint64_t seed, float sigma) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> dist(0.f, sigma);
  std::vector<float> x(n);
  for (auto& e : x) e = dist(rng);
  return x;
}

// ggml's quantize_row_q8_0_ref, kept here so the attention tests depend only on the block layout.
inline void quantize_q8_0(const float* x, block_q8_0* y, int64_t n) {
  for (int64_t b = 0; b < n / QK8_0; ++b) {
    float amax = 0;
    for (int i = 0; i < QK8_0; ++i) amax = std::max(amax, std::fabs(x[b * QK8_0 + i]));
    const float d = amax / 127.f, id = d != 0 ? 1.f / d : 0.f;
    y[b].d = f32_to_fp16(d);
    for (int i = 0; i < QK8_0; ++i) y[b].qs[i] = static_cast<int8_t>(std::lround(x[b * QK8_0 + i] * id));
  }
}

inline size_t kv_row_bytes(DType t, int32_t d) {
  switch (t) {
    case DType::F32: return 4 * static_cast<size_t>(d);
    case DType::F16: return 2 * static_cast<size_t>(d);
    case DType::BF16: return 2 * static_cast<size_t>(d);
    case DType::Q8_0: return sizeof(block_q8_0) * static_cast<size_t>(d / QK8_0);
    case DType::Q4_0: return sizeof(block_q4_0) * static_cast<size_t>(d / QK4_0);
    default: ADD_FAILURE() << "unsupported KV type"; return 0;
  }
}

// One layer's K or V of n_pos positions × n_head_kv heads in `type`, from float values [pos][head][d].
// pos_major: rows laid out [pos][head] (a token's heads together, as the cache appends them);
// otherwise [head][pos]. `pad` extra bytes per row check that strides, not widths, are used.
struct KvBuffer {
  std::vector<uint8_t> bytes;
  kernels::KvView view;

  KvBuffer(DType type, const std::vector<float>& x, int64_t n_pos, int32_t n_head_kv, int32_t d,
           bool pos_major = true, size_t pad = 0) {
    const size_t rb = kv_row_bytes(type, d) + pad;
    bytes.assign(rb * n_pos * n_head_kv + 64, 0xA5);
    view.type = type;
    view.data = bytes.data();
    view.pos_stride = static_cast<int64_t>(pos_major ? rb * n_head_kv : rb);
    view.head_stride = static_cast<int64_t>(pos_major ? rb : rb * n_pos);
    for (int64_t p = 0; p < n_pos; ++p)
      for (int32_t h = 0; h < n_head_kv; ++h) {
        uint8_t* row = bytes.data() + h * view.head_stride + p * view.pos_stride;
        const float* src = x.data() + (p * n_head_kv + h) * d;
        switch (type) {
          case DType::F32: std::memcpy(row, src, 4 * static_cast<size_t>(d)); break;
          case DType::F16:
            for (int32_t i = 0; i < d; ++i) {
              const uint16_t hv = f32_to_fp16(src[i]);
              std::memcpy(row + 2 * i, &hv, 2);
            }
            break;
          case DType::BF16:
            for (int32_t i = 0; i < d; ++i) {
              const uint16_t hv = f32_to_bf16(src[i]);
              std::memcpy(row + 2 * i, &hv, 2);
            }
            break;
          case DType::Q8_0: {
            std::vector<block_q8_0> blk(static_cast<size_t>(d / QK8_0));
            quantize_q8_0(src, blk.data(), d);
            std::memcpy(row, blk.data(), blk.size() * sizeof(block_q8_0));
            break;
          }
          case DType::Q4_0: quantize_row(DType::Q4_0, src, row, d); break;  // tensor/'s reference
          default: ADD_FAILURE() << "unsupported KV type";
        }
      }
  }
};

// Largest |a - b| over the arrays.
inline double max_abs_diff(const float* a, const double* b, size_t n) {
  double e = 0;
  for (size_t i = 0; i < n; ++i) e = std::max(e, std::fabs(static_cast<double>(a[i]) - b[i]));
  return e;
}

}  // namespace strata::test

namespace strata::test {

// These tests check the exact float32 path against float64 at 5e-5, so the int8 scores (on by default when
// decoding with q8_0/q4_0 K on AVX-512 VNNI) are off in this binary unless a test asks for them
// (test_attention_i8.cpp does, with its own tolerances).
inline const bool kAttentionExactByDefault = (kernels::set_attention_int8_scores_default(false), true);

// Stated tolerances: largest |kernel - float64 reference| over the outputs, for values ~N(0, 1).
// The reference reads the same (dequantized) K/V rows, so the tolerance covers float32 arithmetic only
// (bf16 K/V decoding on AMX too: q and p as bf16 hi + lo, ~2^-17 relative; attention_amx.h).
inline double attention_tolerance(DType kv_type) {
  switch (kv_type) {
    case DType::F32: return 5e-5;
    case DType::F16: return 5e-5;
    case DType::BF16: return 5e-5;
    case DType::Q8_0: return 5e-5;
    case DType::Q4_0: return 5e-5;
    default: return 0;
  }
}

struct AttnCase {
  int64_t n_q = 1, q_pos0 = 0, n_kv = 1;
  int32_t n_head_kv = 1, group = 1, head_dim = 64;
  bool causal = true;
  DType type = DType::F16;
  int threads = 1;
  bool pos_major = true;
  // Spare bytes after each row (-1: none when pos_major, else 16, so strides and not widths are used).
  // 0 with !pos_major is kv::KvCache's layout: each KV head's rows one after another.
  int pad = -1;
  uint64_t seed = 1;
};

inline std::string describe(const AttnCase& c) {
  return "n_q=" + std::to_string(c.n_q) + " q_pos0=" + std::to_string(c.q_pos0) + " n_kv=" +
         std::to_string(c.n_kv) + " kv_heads=" + std::to_string(c.n_head_kv) + " group=" +
         std::to_string(c.group) + " d=" + std::to_string(c.head_dim) + (c.causal ? " causal" : " full") +
         " type=" + dtype_name(c.type) + " threads=" + std::to_string(c.threads);
}

struct AttnData {
  static size_t pad_of(const AttnCase& c) { return static_cast<size_t>(c.pad >= 0 ? c.pad : c.pos_major ? 0 : 16); }
  kernels::AttentionShape shape;
  std::vector<float> q;
  KvBuffer k, v;
  AttnData(const AttnCase& c, const std::vector<float>& kf, const std::vector<float>& vf)
      : q(random_floats(static_cast<size_t>(c.n_q * c.n_head_kv * c.group * c.head_dim), c.seed * 3 + 1,
                        1.5f)),
        k(c.type, kf, c.n_kv, c.n_head_kv, c.head_dim, c.pos_major, pad_of(c)),
        v(c.type, vf, c.n_kv, c.n_head_kv, c.head_dim, c.pos_major, pad_of(c)) {
    shape.n_head = c.n_head_kv * c.group;
    shape.n_head_kv = c.n_head_kv;
    shape.head_dim = c.head_dim;
    shape.scale = 1.f / std::sqrt(static_cast<float>(c.head_dim));
    shape.causal = c.causal;
  }
  explicit AttnData(const AttnCase& c)
      : AttnData(c, random_floats(static_cast<size_t>(c.n_kv * c.n_head_kv * c.head_dim), c.seed * 3 + 2, 1.f),
                 random_floats(static_cast<size_t>(c.n_kv * c.n_head_kv * c.head_dim), c.seed * 3 + 3, 1.f)) {}
  size_t out_size(const AttnCase& c) const { return static_cast<size_t>(c.n_q * shape.n_head * c.head_dim); }
};

}  // namespace strata::test
