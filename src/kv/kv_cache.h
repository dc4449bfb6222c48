// The KV cache of one sequence: any registered KV format (kv_format.h), chosen separately for K and V, with
// an optional recent window kept in f16, in memory committed only as tokens arrive.
//
// Layout, per layer, for K and for V, per KV head: a "main" region of units of the format (a unit is a row,
// or a GEAR chunk of tokens_per_unit rows), unit u of head h at main + h*head_stride + u*unit_stride, with
// head_stride a page-rounded n_ctx worth of units. One head's positions are contiguous, so attention reads
// them through a KvView. The whole context is reserved as virtual memory up front (no physical pages) and
// committed in chunks as positions arrive, so a long --ctx costs nothing until it is used. The reservation
// is backed by a memory file (memfd), so fork() can share the pages of a prefix copy-on-write with another
// cache while each keeps its own contiguous layout (kv_share.cpp); swap images: kv_swap.cpp; sequence
// operations: kv_sequence.cpp.
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
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "core/reserved_memory.h"
#include "kernels/attention.h"
#include "kernels/ops.h"
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

// The rotary embedding of a model's keys, for KvCache::shift (the model's inv_freq and pairing).
struct RopeParams {
  int32_t n_rot = 0;                 // rotated channels at the start of each head (even, <= head_dim_k)
  const float* inv_freq = nullptr;   // [n_rot / 2] (kernels::rope_inv_freq)
  kernels::RopeMode mode = kernels::RopeMode::kNormal;
};

struct FrozenPages;  // kv_share.cpp: memory file pages no cache writes through a shared mapping any more

class KvCache {
 public:
  // Throws strata::Error when a format does not fit the head size, or the context cannot be reserved.
  explicit KvCache(const KvCacheConfig& cfg);
  // Moves keep the pages (views taken before a move are invalid). The destructor returns the pages and
  // frees the cache's memory file except the pages other caches still share (kv_share.cpp).
  KvCache(KvCache&&) noexcept = default;
  KvCache& operator=(KvCache&& o) noexcept;
  ~KvCache();

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
  // With rope: the keys are rotated (kernels::rope at positions rope_pos0, rope_pos0 + 1, ...) on their way
  // into the cache, in the logical domain before any channel transform of the format; k itself is not
  // changed. The same stored bytes as rope() on k followed by store() (tested).
  void store(int64_t layer, int64_t pos0, int64_t n_tok, const float* k, const float* v,
             const RopeParams* rope = nullptr, int64_t rope_pos0 = 0);
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

  // ---- Swap (server preemption, kv_swap.cpp): the cache's whole state as one contiguous byte image ----
  // Bytes save() writes: the committed units of positions [0, n_used) of every region, the f16 tail and the
  // counters, so restore() gives back a bit-identical cache without recomputation.
  size_t saved_size() const;
  // Writes the image to out (out.size() >= saved_size()).
  void save(std::span<std::byte> out) const;
  // Drops every position and returns the committed pages to the OS (the reservation stays):
  // n_used() == 0 and committed_bytes() == 0 afterwards.
  void release();
  // Restores an image written by save() of a cache with the same config (replacing what this one holds).
  // Throws strata::Error when the image is truncated or was written with another config.
  void restore(std::span<const std::byte> image);

  // ---- Sequence operations (kv_sequence.cpp); pos_offset() is unchanged by all of them ----
  // A new cache of the same config holding positions [0, n) of this one (n <= n_used()), bit for bit.
  // The whole pages of the encoded prefix are shared copy-on-write with this cache (kv_share.cpp: a shared
  // prompt is stored once); the partial last page of each region and the f16 tail are copied. Not const:
  // this cache's prefix pages become copy-on-write too (same contents). Throws strata::Error for a bad n.
  KvCache fork(int64_t n);
  // Drops positions [p0, p1) (clamped to [0, n_used)); later positions move down by p1 - p0. Their keys
  // keep their rope rotation: shift() them to match. Row formats move their stored bytes (exact; the f16
  // tail moves with them); GEAR decodes and re-encodes from the chunk holding p0 on.
  void remove(int64_t p0, int64_t p1);
  // Keeps only positions [p0, p1), which become [0, p1 - p0).
  void keep(int64_t p0, int64_t p1);
  // Adds delta to the rope positions of the keys at [p0, p1) (clamped): rotates them by delta * inv_freq
  // (rotations compose) in the logical domain and re-encodes them in place (one more rounding of the
  // format). Values are not position-dependent and stay. Throws strata::Error for bad rope parameters.
  void shift(int64_t p0, int64_t p1, int64_t delta, const RopeParams& rope);

  size_t reserved_bytes() const { return mem_.reserved(); }
  // Memory committed for the positions (pages shared with other caches included) and the f16 tail.
  size_t committed_bytes() const;
  // The part of committed_bytes() mapped copy-on-write from pages shared with other caches (0 without
  // fork). A page stays shared until either cache writes it; the process's Pss (process_pss_bytes())
  // counts it once.
  size_t shared_bytes() const;
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
  // kv_share.cpp: every committed page back to the OS (this cache's own memory-file pages others still
  // map stay in the file for them); `reuse`: a fresh memory file for what comes next.
  void drop_memory(bool reuse = true);
  // kv_share.cpp: maps (copy-on-write) or copies the units [0, lo_b / tokens per unit) of every region of
  // this cache into b (freshly reserved), freezing this cache's own pages where it can.
  void share_prefix_into(KvCache& b, int64_t lo_b);
  size_t region_index(int64_t layer, int kind, int64_t head) const {
    return static_cast<size_t>((layer * 2 + kind) * cfg_.n_head_kv + head);
  }
  uint64_t calibration_hash() const;    // kv_swap.cpp: identifies the permutations an image was saved with

  KvCacheConfig cfg_;
  KvFormat fmt_[2] = {KvFormat::F16, KvFormat::F16};
  int32_t tpu_[2] = {1, 1};             // tokens per unit
  size_t unit_[2] = {0, 0};             // bytes of one unit of one head
  size_t stride_[2] = {0, 0};           // bytes between heads (page multiples)
  bool native_[2] = {false, false};     // the kernel decodes the main region itself (no tail, no transform)
  bool transform_[2] = {false, false};  // the format has a channel transform
  size_t layer_bytes_ = 0;
  // Copy-on-write sharing (kv_share.cpp). Declared before mem_, so they are released after it unmaps.
  struct Piece {
    std::shared_ptr<FrozenPages> pages;
    size_t offset = 0, bytes = 0;  // a range of mem_ mapped copy-on-write from pages->file at the same offset
  };
  std::vector<Piece> pieces_;
  std::vector<size_t> mapped_;         // (region): bytes [0, mapped) are pieces; empty: none anywhere
  int64_t clean_ = INT64_MAX;          // lowest position written since the pieces were mapped
  bool own_frozen_ = false;            // pages of mem_'s own file are frozen (others may map them)
  ReservedMemory mem_;
  int64_t ring_cap_ = 0;               // f16 rows per ring (0: no tail)
  std::vector<uint16_t> rings_;        // (layer, kind, head, ring_cap, head_dim) f16, logical domain
  // (layer, kind): the decode contexts of the views; cache is refreshed by view() (the cache may be moved).
  mutable std::vector<ViewCtx> view_ctx_;
  int64_t n_committed_ = 0;            // positions committed
  // Huge pages (kv_cache.cpp: reserve, set_used). Positions [n_committed_, n_mapped_) are mapped ahead
  // (nothing is allocated until written); huge_done_[c]: 2 MiB chunk c of mem_ is collapsed or given up on.
  int64_t n_mapped_ = 0;
  std::vector<uint8_t> huge_done_;
  void collapse_filled_chunks();
  int64_t n_used_ = 0;
  int64_t lo_ = 0;                     // positions [0, lo_) encoded (as of the current step's stores)
  int64_t lo_step_ = 0;                // lo_ at the start of the step (set_used / truncate commit it)
  int64_t pos_offset_ = 0;             // positions evicted (rope position = slot + pos_offset_)
};

// Calibration (bfp4r/bfp8r channel permutations) from the rows a cache holds, positions [0, n_used): run a
// calibration text through a session with an f32/f16 cache, then build the calibrated cache from this.
KvCalibration calibrate_from(const KvCache& kv);

}  // namespace strata::kv
