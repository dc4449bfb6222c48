// KvCache sequence operations (kv_cache.h): fork (copy a prefix into a new cache, sharing its pages:
// kv_share.cpp), remove and keep (drop positions, later ones move down), shift (re-rotate keys to new rope
// positions). The llama.cpp memory interface's seq_cp / seq_rm / seq_keep / seq_add, for one sequence per
// cache (strata keeps one contiguous cache per sequence).
#include <algorithm>
#include <array>
#include <cstring>

#include "core/error.h"
#include "core/fp16.h"
#include "kv/kv_cache.h"

namespace strata::kv {

namespace {
constexpr int kMaxDim = 512;  // as kv_cache.cpp
}  // namespace

KvCache KvCache::fork(int64_t n) {
  if (n < 0 || n > n_used_) fail("KV fork of {} positions: the cache holds {}", n, n_used_);
  if (lo_ != lo_step_) fail("KV fork during a step (after store(), before set_used()): fork between steps");
  KvCache b(cfg_);
  // b takes the encoded units up to the chunk holding n, and the tail rows below n.
  const int64_t t = std::max(tpu_[0], tpu_[1]);
  const int64_t lo_b = std::min(lo_, (n + t - 1) / t * t), n_b = std::max(n, lo_b);
  b.reserve(n_b);
  share_prefix_into(b, lo_b);
  for (int64_t l = 0; l < cfg_.n_layer; ++l)
    for (int kind = 0; kind < 2; ++kind)
      for (int64_t h = 0; h < cfg_.n_head_kv; ++h)
        for (int64_t p = lo_b; p < n_b; ++p)  // rows of the tail (then lo_b == lo_)
          std::memcpy(b.ring(l, kind, h) + (p % ring_cap_) * head_dim(kind), ring(l, kind, h) + (p % ring_cap_) * head_dim(kind),
                      static_cast<size_t>(head_dim(kind)) * sizeof(uint16_t));
  b.n_used_ = n_b;
  b.lo_ = b.lo_step_ = lo_b;
  b.pos_offset_ = n > 0 ? pos_offset_ : 0;
  if (n < n_b) b.truncate(n);  // a GEAR chunk cut in two goes back into b's tail
  return b;
}

void KvCache::remove(int64_t p0, int64_t p1) {
  p0 = std::clamp<int64_t>(p0, 0, n_used_);
  p1 = std::clamp<int64_t>(p1, p0, n_used_);
  if (p1 == p0) return;
  if (lo_ != lo_step_) fail("KV remove during a step (after store(), before set_used())");
  const int64_t len = p1 - p0, n_new = n_used_ - len;
  if ((tpu_[0] == 1 && tpu_[1] == 1) || p0 >= lo_) {
    // Byte moves (exact). Encoded positions stay a prefix: [0, lo) minus the removed ones.
    const int64_t lo_new = lo_ - (std::min(p1, lo_) - std::min(p0, lo_));
    if (p1 < lo_)
      for (int64_t l = 0; l < cfg_.n_layer; ++l)
        for (int kind = 0; kind < 2; ++kind)
          for (int64_t h = 0; h < cfg_.n_head_kv; ++h) {
            uint8_t* main = mem_.data() + region_offset(l, kind, h);
            std::memmove(main + static_cast<size_t>(p0) * unit_[kind], main + static_cast<size_t>(p1) * unit_[kind],
                         static_cast<size_t>(lo_ - p1) * unit_[kind]);
          }
    if (ring_cap_ > 0 && n_new > lo_new) {
      // The tail's rows (new positions [lo_new, n_new)) through a copy: their ring slots may overlap.
      const int64_t d_max = std::max(cfg_.head_dim_k, cfg_.head_dim_v);
      std::vector<uint16_t> tmp(static_cast<size_t>((n_new - lo_new) * d_max));
      for (int64_t l = 0; l < cfg_.n_layer; ++l)
        for (int kind = 0; kind < 2; ++kind)
          for (int64_t h = 0; h < cfg_.n_head_kv; ++h) {
            const int64_t d = head_dim(kind);
            uint16_t* rg = ring(l, kind, h);
            for (int64_t q = lo_new; q < n_new; ++q) {
              const int64_t old = q < p0 ? q : q + len;
              std::copy_n(rg + (old % ring_cap_) * d, d, tmp.data() + (q - lo_new) * d);
            }
            for (int64_t q = lo_new; q < n_new; ++q) std::copy_n(tmp.data() + (q - lo_new) * d, d, rg + (q % ring_cap_) * d);
          }
    }
    if (p1 < lo_) clean_ = std::min(clean_, p0);
    n_used_ = n_new;
    lo_ = lo_step_ = lo_new;
    return;
  }
  // GEAR, removing encoded positions: chunks before the one holding p0 stay; the rest is decoded (without
  // [p0, p1)) and stored again from that chunk on.
  const int64_t t = std::max(tpu_[0], tpu_[1]), c0 = p0 / t * t, m = n_new - c0, nh = cfg_.n_head_kv;
  std::vector<std::vector<float>> rows(static_cast<size_t>(2 * cfg_.n_layer));  // (layer, kind): [m][nh][d]
  std::vector<float> head;
  for (int64_t l = 0; l < cfg_.n_layer; ++l)
    for (int kind = 0; kind < 2; ++kind) {
      const int64_t d = head_dim(kind);
      std::vector<float>& out = rows[static_cast<size_t>(2 * l + kind)];
      out.resize(static_cast<size_t>(m * nh * d));
      head.resize(static_cast<size_t>((n_used_ - c0) * d));
      for (int64_t h = 0; h < nh; ++h) {
        read_rows(l, kind, h, c0, n_used_, head.data());
        for (int64_t q = 0; q < m; ++q) {
          const int64_t old = c0 + q < p0 ? q : q + len;
          std::copy_n(head.data() + old * d, d, out.data() + (q * nh + h) * d);
        }
      }
    }
  const int64_t offset = pos_offset_;
  truncate(c0);
  reserve(n_new);
  for (int64_t l = 0; l < cfg_.n_layer; ++l)
    store(l, c0, m, rows[static_cast<size_t>(2 * l)].data(), rows[static_cast<size_t>(2 * l + 1)].data());
  set_used(n_new);
  pos_offset_ = offset;
}

void KvCache::keep(int64_t p0, int64_t p1) {
  p0 = std::clamp<int64_t>(p0, 0, n_used_);
  p1 = std::clamp<int64_t>(p1, p0, n_used_);
  remove(p1, n_used_);
  remove(0, p0);
}

void KvCache::shift(int64_t p0, int64_t p1, int64_t delta, const RopeParams& rope) {
  if (rope.n_rot <= 0 || rope.n_rot % 2 != 0 || rope.n_rot > cfg_.head_dim_k || !rope.inv_freq)
    fail("KV shift: rope over {} channels of {}-channel keys (need an even count, at most the head size, and "
         "the frequencies)",
         rope.n_rot, cfg_.head_dim_k);
  p0 = std::clamp<int64_t>(p0, 0, n_used_);
  p1 = std::clamp<int64_t>(p1, p0, n_used_);
  if (p1 == p0 || delta == 0) return;
  if (lo_ != lo_step_) fail("KV shift during a step (after store(), before set_used())");
  const int d = static_cast<int>(cfg_.head_dim_k);
  const int64_t tpu = tpu_[0], e1 = std::min(p1, lo_);
  // Rows at [0, n) of rows: rotate those whose position is in [p0, p1) by delta (rope at position delta
  // of "n heads of one token" rotates every row by the same angles).
  const auto rotate = [&](float* rows, int64_t first_pos, int64_t n) {
    const int64_t a = std::max(p0, first_pos), b = std::min(p1, first_pos + n);
    if (b > a)
      kernels::rope(rows + (a - first_pos) * d, 1, static_cast<int>(b - a), d, rope.n_rot, delta, rope.inv_freq,
                    rope.mode);
  };
  std::vector<float> unit_rows(static_cast<size_t>(tpu * d));
  std::array<float, kMaxDim> row;
  for (int64_t l = 0; l < cfg_.n_layer; ++l)
    for (int64_t h = 0; h < cfg_.n_head_kv; ++h) {
      const FormatParams p = params(l, 0, h);
      uint8_t* main = mem_.data() + region_offset(l, 0, h);
      // Encoded units overlapping [p0, e1): decode, rotate the rows in range, encode in place.
      if (p0 < e1)
        for (int64_t u = p0 / tpu; u <= (e1 - 1) / tpu; ++u) {
          uint8_t* dst = main + static_cast<size_t>(u) * unit_[0];
          decode_unit(fmt_[0], p, dst, unit_rows.data());
          rotate(unit_rows.data(), u * tpu, tpu);
          encode_unit(fmt_[0], p, unit_rows.data(), dst);
        }
      // The f16 tail.
      for (int64_t pos = std::max(p0, lo_); pos < p1; ++pos) {
        uint16_t* r = ring(l, 0, h) + (pos % ring_cap_) * d;
        for (int c = 0; c < d; ++c) row[c] = fp16_to_f32(r[c]);
        rotate(row.data(), pos, 1);
        for (int c = 0; c < d; ++c) r[c] = f32_to_fp16(row[c]);
      }
    }
  if (p0 < e1) clean_ = std::min(clean_, p0 / tpu * tpu);
}

}  // namespace strata::kv
