#include "kv/kv_cache.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"
#include "core/fp16.h"

namespace strata::kv {

namespace {

constexpr int64_t kCommitChunk = 64;  // positions committed at a time

void store_row(DType t, const float* src, uint8_t* dst, int64_t n) {
  if (t == DType::F32) {
    std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
  } else {
    auto* h = reinterpret_cast<uint16_t*>(dst);
    for (int64_t i = 0; i < n; ++i) h[i] = f32_to_fp16(src[i]);
  }
}

}  // namespace

KvCache::KvCache(const KvCacheConfig& cfg) : cfg_(cfg) {
  for (DType t : {cfg.type_k, cfg.type_v})
    if (!supported_type(t))
      fail("KV cache type {} is not supported yet: use f32 or f16 (-ctk/-ctv)", dtype_name(t));
  if (cfg.n_ctx <= 0) fail("context size must be positive (got {})", cfg.n_ctx);
  const size_t ps = ReservedMemory::page_size();
  row_k_ = row_bytes(cfg.type_k, cfg.head_dim_k);
  row_v_ = row_bytes(cfg.type_v, cfg.head_dim_v);
  stride_k_ = round_up(row_k_ * static_cast<size_t>(cfg.n_ctx), ps);
  stride_v_ = round_up(row_v_ * static_cast<size_t>(cfg.n_ctx), ps);
  layer_bytes_ = (stride_k_ + stride_v_) * static_cast<size_t>(cfg.n_head_kv);
  mem_ = ReservedMemory(layer_bytes_ * static_cast<size_t>(cfg.n_layer));
}

size_t KvCache::region_offset(int64_t layer, int kind, int64_t head) const {
  const size_t base = layer_bytes_ * static_cast<size_t>(layer);
  return kind == 0 ? base + stride_k_ * static_cast<size_t>(head)
                   : base + stride_k_ * static_cast<size_t>(cfg_.n_head_kv) + stride_v_ * static_cast<size_t>(head);
}

void KvCache::reserve(int64_t n) {
  if (n > cfg_.n_ctx) fail("the context is full: {} tokens needed, --ctx is {}: raise --ctx", n, cfg_.n_ctx);
  if (n <= n_committed_) return;
  const int64_t target = std::min(cfg_.n_ctx, (n + kCommitChunk - 1) / kCommitChunk * kCommitChunk);
  for (int64_t l = 0; l < cfg_.n_layer; ++l)
    for (int64_t h = 0; h < cfg_.n_head_kv; ++h) {
      mem_.commit(region_offset(l, 0, h), row_k_ * static_cast<size_t>(target));
      mem_.commit(region_offset(l, 1, h), row_v_ * static_cast<size_t>(target));
    }
  n_committed_ = target;
}

void KvCache::store(int64_t layer, int64_t pos0, int64_t n_tok, const float* k, const float* v) {
  STRATA_ASSERT(pos0 >= 0 && pos0 + n_tok <= n_committed_, "KV store outside the reserved positions");
  const int64_t dk = cfg_.head_dim_k, dv = cfg_.head_dim_v, nh = cfg_.n_head_kv;
  uint8_t* base = mem_.data();
  for (int64_t t = 0; t < n_tok; ++t) {
    const size_t pos = static_cast<size_t>(pos0 + t);
    for (int64_t h = 0; h < nh; ++h) {
      store_row(cfg_.type_k, k + (t * nh + h) * dk, base + region_offset(layer, 0, h) + pos * row_k_, dk);
      store_row(cfg_.type_v, v + (t * nh + h) * dv, base + region_offset(layer, 1, h) + pos * row_v_, dv);
    }
  }
}

void KvCache::set_used(int64_t n) {
  STRATA_ASSERT(n >= 0 && n <= n_committed_, "KV positions used beyond those reserved");
  n_used_ = n;
}

void KvCache::truncate(int64_t n) { n_used_ = std::min(n_used_, std::max<int64_t>(n, 0)); }

kernels::KvView KvCache::k_view(int64_t layer) const {
  return {cfg_.type_k, mem_.data() + region_offset(layer, 0, 0), static_cast<int64_t>(stride_k_),
          static_cast<int64_t>(row_k_)};
}

kernels::KvView KvCache::v_view(int64_t layer) const {
  return {cfg_.type_v, mem_.data() + region_offset(layer, 1, 0), static_cast<int64_t>(stride_v_),
          static_cast<int64_t>(row_v_)};
}

size_t KvCache::committed_bytes() const {
  const size_t ps = ReservedMemory::page_size();
  const size_t per_head = round_up(row_k_ * static_cast<size_t>(n_committed_), ps) +
                          round_up(row_v_ * static_cast<size_t>(n_committed_), ps);
  return per_head * static_cast<size_t>(cfg_.n_head_kv * cfg_.n_layer);
}

}  // namespace strata::kv
