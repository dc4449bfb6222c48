// Internal: one attention work item (KV head × query tile × KV split), the unit the threads share.
// attention.cpp plans the items and combines split partials; attention_simd.cpp runs an item with the
// best instruction set of this CPU (Highway dynamic dispatch).
#pragma once
#include <cstdint>

#include "kernels/attention.h"

namespace strata::kernels::detail {

struct AttnItem {
  const AttentionShape* shape = nullptr;
  const float* q = nullptr;  // all queries [n_q][n_head][head_dim]
  int64_t q_pos0 = 0;
  int64_t n_kv = 0;
  const KvView* k = nullptr;
  const KvView* v = nullptr;
  int32_t kv_head = 0, kv_heads = 1;  // KV heads [kv_head, kv_head + kv_heads), interleaved per tile
  int64_t q_begin = 0, q_count = 0;  // query positions (indices into q) of the item
  int64_t kv_begin = 0, kv_end = 0;  // keys of the item (causal clipping is applied inside)
  int32_t kv_tile = 64;
  float max_slack = 30.f;
  bool seed_max = false;
  // Q·Kᵀ in int8 where the K format and the CPU allow (attention_i8-inl.h): 0 off, 1 or 2 digits per query
  // value (AttentionConfig::int8_scores).
  int8_t int8_scores = 0;
  // Q·Kᵀ and P·V on AMX tiles where the CPU, the K/V formats and the rows allow (attention_amx.h): 0 off,
  // 1 one bf16 product, 2 two (q and p split into bf16 hi + lo: float32-like) (AttentionConfig::amx).
  int8_t amx = 0;
  // Exactly one is set: out = the whole output array (rows are normalized and written in place);
  // partial = [kv_heads][rows][head_dim + 2]: the unnormalized o row, then its running max m and sum l.
  float* out = nullptr;
  float* partial = nullptr;
};

// Runs one item, adding what it reads and writes to `stats` (the caller's per-worker counters).
void run_attention_item(const AttnItem& item, AttentionIoStats& stats);

// Name of the instruction set run_attention_item uses on this CPU (e.g. "AVX3", "AVX2").
const char* attention_target_name();

}  // namespace strata::kernels::detail
