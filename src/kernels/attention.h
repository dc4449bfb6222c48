// Attention over a KV cache in any storage format, without materializing the score matrix.
// Prefill: tiled with online softmax (FlashAttention); decode: KV split across threads (flash-decoding)
// with one shared max estimate (FlashDecoding++). Grouped-query attention: each K/V tile is loaded once per
// KV head and reused by every query head of its group.
#pragma once
#include <cstdint>

#include "core/thread_pool.h"
#include "tensor/dtype.h"

namespace strata::kernels {

// Decodes rows p0 .. p1-1 of KV head `head` to float32: row p at out + (p - p0) * ld. `ctx` is the
// KvView's decode_ctx. Used for storage formats the kernel does not decode natively (kv/ fills it in).
using KvRowsDecodeFn = void (*)(const void* ctx, int32_t head, int64_t p0, int64_t p1, int32_t head_dim,
                                float* out, int64_t ld);

// One layer's K or V for one sequence. Element (kv_head h, position p) is a row of head_dim values of
// `type` (F32, F16, BF16, Q8_0, Q4_0) starting at data + h*head_stride + p*pos_stride (bytes).
// With `decode` set, the kernel ignores type/data/strides and loads each tile through decode(decode_ctx,
// ...) instead: one indirect call per tile, fused into the tile loop (never a full-cache copy). Such rows
// are in the format's stored domain: a format with an orthogonal channel transform T (permutation,
// Hadamard) expects the caller to pass T·q as the query and to apply T^-1 to the output (kv::KvCache does).
struct KvView {
  DType type = DType::F32;
  const void* data = nullptr;
  int64_t head_stride = 0;  // bytes
  int64_t pos_stride = 0;   // bytes
  KvRowsDecodeFn decode = nullptr;
  const void* decode_ctx = nullptr;
  double decode_bytes_per_row = 0;  // storage bytes per (head, position) of a decoded view (I/O accounting)
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

// ---- Tiling, the shared max, and I/O accounting (for tests, benchmarks and `strata bench attn`) ----

// How a call is tiled. Zero fields are resolved from the cache sizes and the shape (resolve_attention_config).
// A work item is (KV heads, query tile, KV split); the query rows of an item are q_tile positions × the
// group's query heads, so each K/V tile is dequantized once and used by every query head of the group.
struct AttentionConfig {
  int32_t kv_tile = 0;    // keys per K/V tile (K and V tiles in f32 fit in 3/4 of the L1, 1/3 decoding)
  int32_t q_tile = 0;     // query positions per item (Q, O and a score tile of its rows fit in half the L2)
  int32_t kv_splits = 0;  // KV chunks per (KV heads, query tile), combined at the end (flash-decoding)
  // KV heads per item, processed tile by tile together so a token-major cache ([pos][head][dim]) is read
  // as one contiguous stream: all of them when decoding (threads then split the KV length), else 1.
  int32_t kv_heads_per_item = 0;
  // Shared max (FlashDecoding++): 1 seeds every row's running max with one estimate, the largest of the
  // row's scores against key 0 and its own last key, so all KV splits of a row start from the same value
  // and never wait for each other; 0 starts from -inf; -1 (default) = on when decoding (q_tile*group
  // rows are few). Either way the running max is raised (and the partial rescaled: the exact fallback)
  // only when a score exceeds it by more than max_slack, so exp() stays below e^max_slack and sums stay
  // far from float overflow.
  int32_t shared_max = -1;
  float max_slack = 30.f;
  // Int8 scores (attention_i8-inl.h): with K rows in q8_0 or q4_0 on an AVX-512 VNNI CPU, Q·Kᵀ in int8
  // (each query row quantized to int8 per 32 dims, float32 scale; vpdpbusd). 0 off (float32 scores of the
  // dequantized rows); 1: one int8 digit per query value; 2: two (the rounding residual too: 2× the
  // instructions, float32-like accuracy: the default, as one digit raised q8_0's KL by ~20% and moves
  // outputs by ~2e-2 of their size, beyond tests/kv's 1e-4 check against the decoded rows);
  // -1 (default) = 2 when decoding, unless attention_int8_scores_default() is off.
  int32_t int8_scores = -1;
  // AMX tiles (attention_amx.h): items of at most 16 query rows (decoding) over bf16 K/V with head_dim a
  // multiple of 32 run Q·Kᵀ and P·V as bf16 tile products on CPUs with AMX-BF16 (Sapphire Rapids and
  // later), the rest as above. 0 off; 1: one product (q and p rounded to bf16: ~1e-2 of outputs ~N(0,1));
  // 2: q and p split into bf16 hi + lo, two products (float32-like, ~1e-5: the default); -1 (default) = 2
  // unless attention_amx_default() says otherwise. Used only where attention_amx_usable().
  int32_t amx = -1;
};

// The process-wide default of AttentionConfig::int8_scores: on, unless STRATA_ATTN_INT8=0 is set in the
// environment or set_attention_int8_scores_default(false) was called (tests of the exact float32 path).
// STRATA_ATTN_INT8=all: on for prefill too (to measure the approximation with `strata ppl --kl-base`).
bool attention_int8_scores_default();
void set_attention_int8_scores_default(bool on);

// The process-wide default of AttentionConfig::amx: 2 (on), unless STRATA_ATTN_AMX=0 (off) or =1 (one
// product) is set in the environment or set_attention_amx_default() was called. Whether this CPU and OS
// allow AMX at all: attention_amx_usable().
int attention_amx_default();
void set_attention_amx_default(int amx);
bool attention_amx_usable();

// The bytes the algorithm moves between memory and the cores, counted per call (not measured):
// K/V rows of every tile it loads (storage format bytes), Q read, O written, split partials.
struct AttentionIoStats {
  int64_t q_bytes = 0;        // queries read (float32)
  int64_t k_bytes = 0;        // K rows read, including the shared-max probes
  int64_t v_bytes = 0;        // V rows read
  int64_t o_bytes = 0;        // outputs written (float32)
  int64_t partial_bytes = 0;  // split-KV partials (m, l, o) written and read back by the combine
  int64_t kv_tiles = 0;       // K/V tiles processed (fully masked tiles are skipped, not counted)
  int64_t rescales = 0;       // (row, tile) pairs where a seeded/finite running max had to be raised
  int64_t items = 0;          // work items run
  int64_t amx_items = 0;      // of which on AMX tiles (AttentionConfig::amx)
  AttentionConfig config;     // the resolved tiling of the call

  int64_t total_bytes() const { return q_bytes + k_bytes + v_bytes + o_bytes + partial_bytes; }
  void add(const AttentionIoStats& o);
};

// As attention() with an explicit tiling and optional I/O counting (stats may be null).
void attention(const AttentionShape& s, const float* q, int64_t n_q, int64_t q_pos0, const KvView& k,
               const KvView& v, int64_t n_kv, float* out, ThreadPool& pool, const AttentionConfig& config,
               AttentionIoStats* stats);

// Data cache sizes in bytes, read once from /sys/devices/system/cpu/cpu0/cache (defaults when absent).
struct CacheSizes {
  int64_t l1d = 32 << 10;
  int64_t l2 = 1 << 20;
  int64_t l3 = 8 << 20;
};
const CacheSizes& cache_sizes();

// The yardstick of "The I/O Complexity of Attention": exact attention of n_q queries over n_kv keys of
// head_dim d must move Ω(n_q·n_kv·d²/M) elements between memory and a cache of M elements (M >= d²), besides
// reading its inputs and writing its output once; FlashAttention's tiling attains it. Returns, per query
// head, max(n_q·n_kv·d²/M, (n_q + 2·n_kv + n_q)·d) elements × elem_bytes, with M = cache_bytes/elem_bytes
// (constant factor 1): the number `strata bench attn` prints beside AttentionIoStats::total_bytes().
double attention_io_bound_bytes(int64_t n_q, int64_t n_kv, int32_t head_dim, int64_t cache_bytes,
                                int32_t elem_bytes);

// The tiling attention() uses for this call: the zero fields of `config` filled in.
AttentionConfig resolve_attention_config(const AttentionShape& s, int64_t n_q, int64_t n_kv, int n_threads,
                                         const AttentionConfig& config = {});

}  // namespace strata::kernels
