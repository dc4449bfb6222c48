// A simple KV cache for one sequence (the KV-tier issue replaces it with a managed one).
//
// Layout, per layer, for K and for V: [n_head_kv][n_ctx][head_dim] of `type` (F32 or F16), so that one
// head's positions are contiguous and kernels::attention reads it through a KvView
// (head_stride = a page-rounded n_ctx * row bytes, pos_stride = row bytes).
//
// The whole context is reserved as virtual memory up front (no physical pages) and committed in chunks as
// positions arrive, so a long --ctx costs nothing until it is used.
#pragma once
#include <cstdint>

#include "core/reserved_memory.h"
#include "kernels/attention.h"
#include "tensor/dtype.h"

namespace strata::kv {

struct KvCacheConfig {
  int64_t n_layer = 0;
  int64_t n_head_kv = 0;
  int64_t head_dim_k = 0;
  int64_t head_dim_v = 0;
  int64_t n_ctx = 0;          // positions the cache can hold
  DType type_k = DType::F16;  // F32 or F16
  DType type_v = DType::F16;
};

class KvCache {
 public:
  // Throws strata::Error when a type is not supported for the cache, or the context cannot be reserved.
  explicit KvCache(const KvCacheConfig& cfg);

  const KvCacheConfig& config() const { return cfg_; }
  int64_t n_ctx() const { return cfg_.n_ctx; }
  // Positions [0, n_used) hold keys and values.
  int64_t n_used() const { return n_used_; }

  // Commits memory for positions [0, n). Throws strata::Error when n > n_ctx.
  void reserve(int64_t n);
  // Stores the keys and values of n_tok tokens at positions pos0 .. pos0+n_tok-1 for one layer, converting
  // from float32. k: [n_tok][n_head_kv * head_dim_k], v: [n_tok][n_head_kv * head_dim_v].
  // The positions must be reserved.
  void store(int64_t layer, int64_t pos0, int64_t n_tok, const float* k, const float* v);
  // Records that positions [0, n) are filled (after every layer stored them).
  void set_used(int64_t n);
  // Forgets positions >= n (keeps the first n).
  void truncate(int64_t n);

  kernels::KvView k_view(int64_t layer) const;
  kernels::KvView v_view(int64_t layer) const;

  size_t reserved_bytes() const { return mem_.reserved(); }
  size_t committed_bytes() const;

  static bool supported_type(DType t) { return t == DType::F32 || t == DType::F16; }

 private:
  size_t region_offset(int64_t layer, int kind, int64_t head) const;  // kind 0 = K, 1 = V

  KvCacheConfig cfg_;
  size_t row_k_ = 0, row_v_ = 0;        // bytes of one head's row at one position
  size_t stride_k_ = 0, stride_v_ = 0;  // bytes between heads (page multiples)
  size_t layer_bytes_ = 0;
  ReservedMemory mem_;
  int64_t n_committed_ = 0;  // positions committed
  int64_t n_used_ = 0;
};

}  // namespace strata::kv
