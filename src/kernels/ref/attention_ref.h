// Scalar reference attention: the specification of kernels::attention (STYLE.md practice 4).
// Dequantizes one KV head at a time with load_kv_row (the spec of every KV format), materializes each
// query's full score row, softmax and accumulation in float64. Simple and slow on purpose.
#pragma once
#include <cstdint>

#include "kernels/attention.h"

namespace strata::kernels::ref {

// Row (kv_head, pos) of a KV view dequantized to float32 (head_dim values): the spec of every KV format.
void load_kv_row(const KvView& kv, int64_t kv_head, int64_t pos, int32_t head_dim, float* dst);

// Same contract as kernels::attention; out is [n_q][n_head][head_dim] in float64.
void attention_f64(const AttentionShape& s, const float* q, int64_t n_q, int64_t q_pos0, const KvView& k,
                   const KvView& v, int64_t n_kv, double* out);

// Same contract as kernels::attention (float32 out, computed as attention_f64).
void attention(const AttentionShape& s, const float* q, int64_t n_q, int64_t q_pos0, const KvView& k,
               const KvView& v, int64_t n_kv, float* out);

}  // namespace strata::kernels::ref
