// Helpers of the swap and sequence tests: a small multi-layer cache in any format, fed with seeded rows
// (outlier channels in K), its whole content decoded, and the attention output through the real kernel.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/thread_pool.h"
#include "kernels/attention.h"
#include "kv/kv_cache.h"
#include "test_format_helpers.h"

namespace strata::kv::seqtest {

constexpr int kLayers = 2, kHeadsKv = 2, kHeads = 4, kDim = 64;

// K, V of positions [0, n): [n][kHeadsKv][kDim] per layer (layer l uses seed + 2 l).
struct Rows {
  int64_t n = 0;
  std::vector<std::vector<float>> K, V;  // (layer)
};

inline Rows make(int64_t n, uint32_t seed) {
  Rows r{n, {}, {}};
  for (int l = 0; l < kLayers; ++l) {
    r.K.push_back(test::make_rows(static_cast<int>(n * kHeadsKv), kDim, seed + 2 * l, test::spread_outliers(kDim), 8.f, 4));
    r.V.push_back(test::make_rows(static_cast<int>(n * kHeadsKv), kDim, seed + 2 * l + 1, {}, 1.f, 4));
  }
  return r;
}

inline KvCacheConfig config(KvFormat f, int32_t window, int64_t n_ctx) {
  KvCacheConfig c;
  c.n_layer = kLayers;
  c.n_head_kv = kHeadsKv;
  c.head_dim_k = c.head_dim_v = kDim;
  c.n_ctx = n_ctx;
  c.format_k = c.format_v = f;
  c.window = window;
  if (format_info(f).needs_calibration())  // a fixed non-trivial permutation: reversed channels
    c.calibration = [] {
      KvCalibration cal = KvCalibration::identity(kLayers, kHeadsKv, kDim);
      for (size_t i = 0; i < cal.perm_k.size(); i += kDim) {
        std::reverse(cal.perm_k.begin() + i, cal.perm_k.begin() + i + kDim);
        std::rotate(cal.perm_v.begin() + i, cal.perm_v.begin() + i + 5, cal.perm_v.begin() + i + kDim);
      }
      return cal;
    }();
  return c;
}

// Stores rows [from, to) of r at cache positions (from - shift) .. in steps of `step` tokens.
inline void feed(KvCache& kv, const Rows& r, int64_t from, int64_t to, int64_t step, int64_t at = -1) {
  if (at < 0) at = from;
  for (int64_t p = from; p < to; p += step) {
    const int64_t n = std::min(step, to - p), pos = at + (p - from);
    kv.reserve(pos + n);
    for (int l = 0; l < kLayers; ++l)
      kv.store(l, pos, n, r.K[l].data() + p * kHeadsKv * kDim, r.V[l].data() + p * kHeadsKv * kDim);
    kv.set_used(pos + n);
  }
}

// Every row the cache holds, decoded: (layer, kind, head, position, channel).
inline std::vector<float> content(const KvCache& kv) {
  const int64_t n = kv.n_used();
  std::vector<float> out(static_cast<size_t>(kLayers * 2 * kHeadsKv * n * kDim));
  float* o = out.data();
  for (int l = 0; l < kLayers; ++l)
    for (int kind = 0; kind < 2; ++kind)
      for (int h = 0; h < kHeadsKv; ++h, o += n * kDim)
        if (n) kv.read_rows(l, kind, h, 0, n, o);
  return out;
}

// Attention of 3 seeded queries at the last positions, every layer, through the kernel and the views.
inline std::vector<float> attention_out(const KvCache& kv, uint32_t seed) {
  static ThreadPool pool(2);
  const int64_t n = kv.n_used(), n_q = std::min<int64_t>(3, n);
  kernels::AttentionShape s{kHeads, kHeadsKv, kDim, 1.f / std::sqrt(static_cast<float>(kDim)), true};
  std::vector<float> all;
  for (int l = 0; l < kLayers; ++l) {
    std::vector<float> q = test::make_rows(static_cast<int>(n_q * kHeads), kDim, seed + l), out(q.size());
    for (auto& x : q) x *= 0.3f;
    kv.query_to_stored(l, q.data(), n_q, kHeads);
    kernels::attention(s, q.data(), n_q, n - n_q, kv.k_view(l), kv.v_view(l), n, out.data(), pool);
    kv.output_from_stored(l, out.data(), n_q, kHeads);
    all.insert(all.end(), out.begin(), out.end());
  }
  return all;
}

// Bitwise equality of float vectors (NaN-safe, -0 != +0): the first differing index, or -1.
inline int64_t first_bit_difference(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return 0;
  for (size_t i = 0; i < a.size(); ++i)
    if (std::memcmp(&a[i], &b[i], sizeof(float)) != 0) return static_cast<int64_t>(i);
  return -1;
}

}  // namespace strata::kv::seqtest
