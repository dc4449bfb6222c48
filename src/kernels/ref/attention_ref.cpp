#include "kernels/ref/attention_ref.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "core/error.h"
#include "core/fp16.h"

namespace strata::kernels::ref {

void load_kv_row(const KvView& kv, int64_t kv_head, int64_t pos, int32_t head_dim, float* dst) {
  if (kv.decode) {  // a format decoded by its owner (kv/): one row
    kv.decode(kv.decode_ctx, static_cast<int32_t>(kv_head), pos, pos + 1, head_dim, dst, head_dim);
    return;
  }
  const auto* row = static_cast<const uint8_t*>(kv.data) + kv_head * kv.head_stride + pos * kv.pos_stride;
  switch (kv.type) {
    case DType::F32: {
      const auto* x = reinterpret_cast<const float*>(row);
      for (int32_t i = 0; i < head_dim; ++i) dst[i] = x[i];
      return;
    }
    case DType::F16: {
      const auto* x = reinterpret_cast<const uint16_t*>(row);
      for (int32_t i = 0; i < head_dim; ++i) dst[i] = fp16_to_f32(x[i]);
      return;
    }
    case DType::BF16: {
      const auto* x = reinterpret_cast<const uint16_t*>(row);
      for (int32_t i = 0; i < head_dim; ++i) dst[i] = bf16_to_f32(x[i]);
      return;
    }
    case DType::Q8_0: {
      STRATA_ASSERT(head_dim % QK8_0 == 0, "q8_0 KV needs head_dim to be a multiple of 32");
      const auto* b = reinterpret_cast<const block_q8_0*>(row);
      for (int32_t i = 0; i < head_dim; ++i) {
        const block_q8_0& blk = b[i / QK8_0];
        dst[i] = fp16_to_f32(blk.d) * static_cast<float>(blk.qs[i % QK8_0]);
      }
      return;
    }
    case DType::Q4_0: {  // the spec: (nibble - 8) * d, low nibbles first
      STRATA_ASSERT(head_dim % QK4_0 == 0, "q4_0 KV needs head_dim to be a multiple of 32");
      const auto* b = reinterpret_cast<const block_q4_0*>(row);
      for (int32_t i = 0; i < head_dim; ++i) {
        const block_q4_0& blk = b[i / QK4_0];
        const int j = i % QK4_0;
        const int q = j < QK4_0 / 2 ? (blk.qs[j] & 0x0F) : (blk.qs[j - QK4_0 / 2] >> 4);
        dst[i] = fp16_to_f32(blk.d) * static_cast<float>(q - 8);
      }
      return;
    }
    default:
      fail("attention: KV cache type {} is not supported (supported: f32, f16, bf16, q8_0, q4_0)", dtype_name(kv.type));
  }
}

void attention_f64(const AttentionShape& s, const float* q, int64_t n_q, int64_t q_pos0, const KvView& k,
                   const KvView& v, int64_t n_kv, double* out) {
  const int32_t d = s.head_dim;
  const int32_t group = s.n_head / s.n_head_kv;
  std::vector<float> kh(static_cast<size_t>(n_kv * d)), vh(kh.size());  // one KV head, dequantized
  std::vector<double> score(static_cast<size_t>(n_kv));
  for (int32_t hk = 0; hk < s.n_head_kv; ++hk) {
    for (int64_t j = 0; j < n_kv; ++j) {
      load_kv_row(k, hk, j, d, kh.data() + j * d);
      load_kv_row(v, hk, j, d, vh.data() + j * d);
    }
    for (int64_t i = 0; i < n_q; ++i) {
      const int64_t n_keys = s.causal ? std::min(n_kv, q_pos0 + i + 1) : n_kv;
      for (int32_t h = hk * group; h < (hk + 1) * group; ++h) {
        const float* qi = q + (i * s.n_head + h) * d;
        double m = -std::numeric_limits<double>::infinity();
        for (int64_t j = 0; j < n_keys; ++j) {
          double dot = 0;
          for (int32_t c = 0; c < d; ++c) dot += static_cast<double>(qi[c]) * kh[j * d + c];
          score[j] = dot * s.scale;
          m = std::max(m, score[j]);
        }
        double sum = 0;
        for (int64_t j = 0; j < n_keys; ++j) sum += (score[j] = std::exp(score[j] - m));
        double* o = out + (i * s.n_head + h) * d;
        std::fill(o, o + d, 0.0);
        for (int64_t j = 0; j < n_keys; ++j) {
          const double p = score[j] / sum;
          for (int32_t c = 0; c < d; ++c) o[c] += p * vh[j * d + c];
        }
      }
    }
  }
}

void attention(const AttentionShape& s, const float* q, int64_t n_q, int64_t q_pos0, const KvView& k,
               const KvView& v, int64_t n_kv, float* out) {
  std::vector<double> o(static_cast<size_t>(n_q * s.n_head * s.head_dim));
  attention_f64(s, q, n_q, q_pos0, k, v, n_kv, o.data());
  for (size_t i = 0; i < o.size(); ++i) out[i] = static_cast<float>(o[i]);
}

}  // namespace strata::kernels::ref
