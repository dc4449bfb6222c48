// The KV cache of one sequence: any registered KV format (kv_format.h), chosen separately for K and V, with
// an optional recent window kept in f16, in memory committed only as tokens arrive.
//
// Layout, per layer, for K and for V, per KV head: a "main" region of units of the format (a unit is a row,
// or a GEAR chunk of tokens_per_unit rows), unit u of head h at main + h*head_stride + u*unit_stride, with
// head_stride a page-rounded n_ctx worth of units. One head's positions are contiguous, so attention reads
// them through a KvView. The whole context is reserved as virtual memory up front (no physical pages) and
// committed in chunks as positions arrive, so a long --ctx costs nothing until it is used.
//
// The high-precision tail. Positions [0, lo) are encoded in the format; positions [lo, n) are f16 rows in a
// small ring per head (slot p % ring_cap), in the logical (untransformed) domain: the recent `window`
// positions (row formats), and for GEAR also the partial last chunk (a chunk is encoded once it is full and
// older than the window; never re-encoded). lo = max(0, n - window), rounded down to a chunk for GEAR.
// Positions that leave the tail are encoded from their f16 copy; positions that go straight to the main
// region (a long prompt) are encoded from float32.
//
// Views. For f32/f16/q8_0/q4_0 without a tail, k_view/v_view are plain strided views the attention kernel decodes
// natively. Otherwise they carry a row decoder (KvView::decode) that reads the main region with the format's
// decoder and the tail from f16, in the format's stored domain. Formats with a channel transform T (bfp4r:
// a permutation; q4h/bfp4h: Hadamard) need the query rotated before attention and the output rotated back:
// query_to_stored / output_from_stored (no-ops for other formats).
#pragma once
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "core/reserved_memory.h"
#include "kernels/attention.h"
#include "kv/calibration.h"
#include "kv/kv_format.h"
#include "kv/policy.h"
#include "tensor/dtype.h"

namespace strata::kv {

struct KvCacheConfig {
  int64_t n_layer = 0;
  int64_t n_head_kv = 0;
  int64_t head_dim_k = 0;
  int64_t head_dim_v = 0;
  int64_t n_ctx = 0;          // positions the cache can hold
  DType type_k = DType::F16;  // ggml-compatible types (f32, f16, bf16, q8_0, q4_0, q4_1); format_k overrides
  DType type_v = DType::F16;
  std::optional<KvFormat> format_k, format_v;  // any registered format (-ctk/-ctv); unset: from type_k/type_v
  int32_t window = 0;                          // the most recent positions kept in f16 (--kv-window)
  // Channel permutations of the reordered formats (bfp4r, bfp8r), copied by the cache; none: identity.
  std::optional<KvCalibration> calibration;
};

class KvCache {
 public:
  // Throws strata::Error when a format does not fit the head size, or the context cannot be reserved.
  explicit KvCache(const KvCacheConfig& cfg);

  const KvCacheConfig& config() const { return cfg_; }
  KvFormat format_k() const { return fmt_[0]; }
  KvFormat format_v() const { return fmt_[1]; }
  int64_t n_ctx() const { return cfg_.n_ctx; }
  // Positions [0, n_used) hold keys and values.
  int64_t n_used() const { return n_used_; }
  // Positions [0, n_encoded) are stored in the format, the rest in f16 (the tail).
  int64_t n_encoded() const { return lo_; }

  // Commits memory for positions [0, n). Throws strata::Error when n > n_ctx.
  void reserve(int64_t n);
  // Stores the keys and values of n_tok tokens at positions pos0 .. pos0+n_tok-1 for one layer, converting
  // from float32. k: [n_tok][n_head_kv * head_dim_k], v: [n_tok][n_head_kv * head_dim_v].
  // The positions must be reserved and follow the used ones (pos0 == n_used()).
  void store(int64_t layer, int64_t pos0, int64_t n_tok, const float* k, const float* v);
  // Records that positions [0, n) are filled (after every layer stored them).
  void set_used(int64_t n);
  // Forgets positions >= n (keeps the first n). Rows already encoded stay encoded (a window does not get
  // its f16 precision back); a GEAR chunk cut in two is decoded back into the tail.
  void truncate(int64_t n);

  // Views for kernels::attention over positions [0, n_used) (valid until the next store/truncate).
  kernels::KvView k_view(int64_t layer) const;
  kernels::KvView v_view(int64_t layer) const;
  // q: [n_tok][n_head][head_dim_k], in place: q of query head j becomes T_k q for the format of K (KV head
  // j / (n_head / n_head_kv)). out: the attention output [n_tok][n_head][head_dim_v] in V's stored domain,
  // in place back to the logical one. No-ops unless the format has a channel transform.
  void query_to_stored(int64_t layer, float* q, int64_t n_tok, int64_t n_head) const;
  void output_from_stored(int64_t layer, float* out, int64_t n_tok, int64_t n_head) const;

  // Rows p0 .. p1-1 (< n_used or stored) of one KV head, decoded to logical float32 [p1 - p0][head_dim].
  // kind 0 = K, 1 = V. For tests, merging and slow paths.
  void read_rows(int64_t layer, int kind, int64_t head, int64_t p0, int64_t p1, float* out) const;

  // ---- Budget (--kv-budget): slots != positions after an eviction ----
  // The rope position of slot n_used(): tokens evicted so far (0 until an update; truncate(0) resets it).
  int64_t pos_offset() const { return pos_offset_; }
  // Applies a prepared budget update (policy.h) to every layer: merges, then compaction. The rows are
  // decoded, updated and stored again (re-encoded in the cache's formats). slots: the metadata before it.
  void apply_update(const KvBudgetUpdate& u, std::span<const KvSlotMeta> slots);
  // Importance of every slot from attention (SnapKV-like, the recent keys standing in for the queries that
  // are not kept): sum over layers, KV heads and the last n_obs slots r of softmax_s(k_r . k_s / sqrt(d)).
  std::vector<float> recent_key_attention(int64_t n_obs) const;
  // The keys of every slot over all layers and heads, normalized: [n_used][n_layer * n_head_kv * head_dim].
  // Dot products of two rows are the cosine similarities the merge policy picks neighbours by.
  std::vector<float> unit_keys() const;

  size_t reserved_bytes() const { return mem_.reserved(); }
  size_t committed_bytes() const;
  // KV bytes per token of the whole cache in its formats (K and V, all layers and heads), tail excluded.
  double bytes_per_token() const;

  // True when the ggml type can be a KV cache type (it has a KV format).
  static bool supported_type(DType t);
  static std::optional<KvFormat> format_of(DType t);

 private:
  struct ViewCtx {
    const KvCache* cache = nullptr;
    int32_t layer = 0, kind = 0;
  };
  static void decode_view_rows(const void* ctx, int32_t head, int64_t p0, int64_t p1, int32_t head_dim, float* out,
                               int64_t ld);
  void decode_stored(int32_t layer, int kind, int32_t head, int64_t p0, int64_t p1, float* out, int64_t ld) const;
  kernels::KvView view(int64_t layer, int kind) const;
  size_t region_offset(int64_t layer, int kind, int64_t head) const;
  uint16_t* ring(int64_t layer, int kind, int64_t head);
  const uint16_t* ring(int64_t layer, int kind, int64_t head) const;
  FormatParams params(int64_t layer, int kind, int64_t head) const;
  int64_t boundary(int64_t n) const;  // lo for n positions (before the monotone max with the current lo)
  int64_t head_dim(int kind) const { return kind == 0 ? cfg_.head_dim_k : cfg_.head_dim_v; }

  KvCacheConfig cfg_;
  KvFormat fmt_[2] = {KvFormat::F16, KvFormat::F16};
  int32_t tpu_[2] = {1, 1};             // tokens per unit
  size_t unit_[2] = {0, 0};             // bytes of one unit of one head
  size_t stride_[2] = {0, 0};           // bytes between heads (page multiples)
  bool native_[2] = {false, false};     // the kernel decodes the main region itself (no tail, no transform)
  bool transform_[2] = {false, false};  // the format has a channel transform
  size_t layer_bytes_ = 0;
  ReservedMemory mem_;
  int64_t ring_cap_ = 0;               // f16 rows per ring (0: no tail)
  std::vector<uint16_t> rings_;        // (layer, kind, head, ring_cap, head_dim) f16, logical domain
  // (layer, kind): the decode contexts of the views; cache is refreshed by view() (the cache may be moved).
  mutable std::vector<ViewCtx> view_ctx_;
  int64_t n_committed_ = 0;            // positions committed
  int64_t n_used_ = 0;
  int64_t lo_ = 0;                     // positions [0, lo_) encoded (as of the current step's stores)
  int64_t lo_step_ = 0;                // lo_ at the start of the step (set_used / truncate commit it)
  int64_t pos_offset_ = 0;             // positions evicted (rope position = slot + pos_offset_)
};

// Calibration (bfp4r/bfp8r channel permutations) from the rows a cache holds, positions [0, n_used): run a
// calibration text through a session with an f32/f16 cache, then build the calibrated cache from this.
KvCalibration calibrate_from(const KvCache& kv);

}  // namespace strata::kv
