// Attention over a KV cache in any storage format, without materializing the score matrix.
// Prefill: tiled with online softmax (FlashAttention); decode: KV split across threads (flash-decoding)
// with one shared max estimate (FlashDecoding++). Grouped-query attention: each K/V tile is loaded once per
// KV head and reused by every query head of its group.
#pragma once
#include <cstdint>

#include "core/thread_pool.h"
#include "tensor/dtype.h"

namespace strata::kernels {

// One layer's K or V for one sequence. Element (kv_head h, position p) is a row of head_dim values of
// `type` (F32, F16, Q8_0; more formats later) starting at data + h*head_stride + p*pos_stride (bytes).
struct KvView {
  DType type = DType::F32;
  const void* data = nullptr;
  int64_t head_stride = 0;  // bytes
  int64_t pos_stride = 0;   // bytes
};

struct AttentionShape {
  int32_t n_head = 0;     // query heads
  int32_t n_head_kv = 0;  // KV heads (n_head % n_head_kv == 0; query head j uses KV head j / (n_head/n_head_kv))
  int32_t head_dim = 0;
  float scale = 0;        // usually 1/sqrt(head_dim)
  bool causal = true;
};

// q:   [n_q][n_head][head_dim] float32, the queries at positions q_pos0 .. q_pos0 + n_q - 1.
// k,v: positions 0 .. n_kv - 1 (n_kv >= q_pos0 + n_q when causal).
// out: [n_q][n_head][head_dim] float32.
// Causal: query i attends to keys 0 .. q_pos0 + i. Not causal: to all n_kv keys.
void attention(const AttentionShape& s, const float* q, int64_t n_q, int64_t q_pos0, const KvView& k,
               const KvView& v, int64_t n_kv, float* out, ThreadPool& pool);

}  // namespace strata::kernels
