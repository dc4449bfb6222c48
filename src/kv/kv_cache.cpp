#include "kv/kv_cache.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/fp16.h"

namespace strata::kv {

namespace {

constexpr int64_t kCommitChunk = 64;  // positions committed at a time
constexpr int kMaxDim = 512;          // head_dim of the stack scratch rows

void to_f16(const float* x, uint16_t* h, int64_t n) {
  for (int64_t i = 0; i < n; ++i) h[i] = f32_to_fp16(x[i]);
}
void from_f16(const uint16_t* h, float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] = fp16_to_f32(h[i]);
}

}  // namespace

std::optional<KvFormat> KvCache::format_of(DType t) {
  for (const KvFormatInfo& i : all_formats())
    if (i.dtype && *i.dtype == t) return i.format;
  return std::nullopt;
}

bool KvCache::supported_type(DType t) { return format_of(t).has_value(); }

KvCache::KvCache(const KvCacheConfig& cfg) : cfg_(cfg) {
  if (cfg.n_ctx <= 0) fail("context size must be positive (got {})", cfg.n_ctx);
  if (cfg.window < 0) fail("--kv-window {}: must be 0 or more", cfg.window);
  if (cfg.head_dim_k > kMaxDim || cfg.head_dim_v > kMaxDim)
    fail("KV cache: head_dim {} is larger than the {} supported", std::max(cfg.head_dim_k, cfg.head_dim_v), kMaxDim);
  const DType types[2] = {cfg.type_k, cfg.type_v};
  const std::optional<KvFormat> formats[2] = {cfg.format_k, cfg.format_v};
  bool tail = cfg.window > 0;
  int64_t max_tpu = 1;
  for (int kind = 0; kind < 2; ++kind) {
    std::optional<KvFormat> f = formats[kind] ? formats[kind] : format_of(types[kind]);
    if (!f)
      fail("KV cache type {} is not supported: use one of {} (-ctk/-ctv)", dtype_name(types[kind]),
           format_name_list());
    fmt_[kind] = *f;
    const KvFormatInfo& info = format_info(*f);
    const int32_t d = static_cast<int32_t>(head_dim(kind));
    try {
      check_head_dim(*f, d);
    } catch (const Error& e) {  // name the flag the user gave
      fail("{} {}: {}", kind == 0 ? "--cache-type-k" : "--cache-type-v", format_name(*f), e.what());
    }
    tpu_[kind] = info.tokens_per_unit;
    unit_[kind] = unit_bytes(*f, d);
    transform_[kind] = info.transform != KvTransform::None;
    if (tpu_[kind] > 1) tail = true;
    max_tpu = std::max<int64_t>(max_tpu, tpu_[kind]);
  }
  for (int kind = 0; kind < 2; ++kind)
    native_[kind] = !tail && (fmt_[kind] == KvFormat::F32 || fmt_[kind] == KvFormat::F16 || fmt_[kind] == KvFormat::BF16 ||
                              fmt_[kind] == KvFormat::Q8_0 || fmt_[kind] == KvFormat::Q4_0);
  if (cfg.calibration) {
    cfg.calibration->check_shape(static_cast<int32_t>(cfg.n_layer), static_cast<int32_t>(cfg.n_head_kv),
                                 static_cast<int32_t>(cfg.head_dim_k));
    if (cfg.head_dim_k != cfg.head_dim_v) fail("KV calibration: K and V head sizes differ");
  }
  const size_t ps = ReservedMemory::page_size();
  for (int kind = 0; kind < 2; ++kind) {
    const int64_t units = (cfg.n_ctx + tpu_[kind] - 1) / tpu_[kind];
    stride_[kind] = round_up(unit_[kind] * static_cast<size_t>(units), ps);
  }
  layer_bytes_ = (stride_[0] + stride_[1]) * static_cast<size_t>(cfg.n_head_kv);
  // A memory file behind the reservation, so fork() can share pages copy-on-write (kv_share.cpp).
  mem_ = ReservedMemory(layer_bytes_ * static_cast<size_t>(cfg.n_layer), ReservedMemory::Backing::kSharedFile);
  if (tail) {
    ring_cap_ = cfg.window + (max_tpu > 1 ? max_tpu : 0);
    if (ring_cap_ < 1) ring_cap_ = 1;
  }  // the rings are allocated by the first reserve() (release() frees them)
  view_ctx_.resize(static_cast<size_t>(2 * cfg.n_layer));
  for (int64_t l = 0; l < cfg.n_layer; ++l)
    for (int kind = 0; kind < 2; ++kind)
      view_ctx_[static_cast<size_t>(2 * l + kind)] = {this, static_cast<int32_t>(l), kind};
}

size_t KvCache::region_offset(int64_t layer, int kind, int64_t head) const {
  const size_t base = layer_bytes_ * static_cast<size_t>(layer);
  return kind == 0 ? base + stride_[0] * static_cast<size_t>(head)
                   : base + stride_[0] * static_cast<size_t>(cfg_.n_head_kv) + stride_[1] * static_cast<size_t>(head);
}

const uint16_t* KvCache::ring(int64_t layer, int kind, int64_t head) const {
  const size_t per = static_cast<size_t>(ring_cap_) * static_cast<size_t>(std::max(cfg_.head_dim_k, cfg_.head_dim_v));
  return rings_.data() + per * static_cast<size_t>((layer * 2 + kind) * cfg_.n_head_kv + head);
}
uint16_t* KvCache::ring(int64_t layer, int kind, int64_t head) {
  return const_cast<uint16_t*>(static_cast<const KvCache*>(this)->ring(layer, kind, head));
}

FormatParams KvCache::params(int64_t layer, int kind, int64_t head) const {
  FormatParams p;
  p.head_dim = static_cast<int32_t>(head_dim(kind));
  if (cfg_.calibration && format_info(fmt_[kind]).needs_calibration())
    p.perm = kind == 0 ? cfg_.calibration->k_perm(static_cast<int32_t>(layer), static_cast<int32_t>(head))
                       : cfg_.calibration->v_perm(static_cast<int32_t>(layer), static_cast<int32_t>(head));
  return p;
}

int64_t KvCache::boundary(int64_t n) const {
  if (ring_cap_ == 0) return n;
  int64_t b = std::max<int64_t>(0, n - cfg_.window);
  // Both K and V move together: round down to the larger chunk (a multiple of both, since chunks are 1 or
  // the same GEAR chunk length for either).
  const int64_t t = std::max(tpu_[0], tpu_[1]);
  return b / t * t;
}

void KvCache::reserve(int64_t n) {
  if (n > cfg_.n_ctx) fail("the context is full: {} tokens needed, --ctx is {}: raise --ctx", n, cfg_.n_ctx);
  if (ring_cap_ > 0 && rings_.empty() && n > 0) {
    const size_t per = static_cast<size_t>(ring_cap_) * static_cast<size_t>(std::max(cfg_.head_dim_k, cfg_.head_dim_v));
    rings_.assign(per * static_cast<size_t>(2 * cfg_.n_layer * cfg_.n_head_kv), 0);
  }
  if (n <= n_committed_) return;
  if (n_committed_ == 0) {  // nothing mapped yet, or all of it dropped (release, truncate(0) of a fork)
    n_mapped_ = 0;
    huge_done_.clear();
  }
  const int64_t target = std::min(cfg_.n_ctx, (n + kCommitChunk - 1) / kCommitChunk * kCommitChunk);
  if (target > n_mapped_) {
    // Mapped an eighth ahead (free until written): a 2 MiB chunk that ends in the middle of a head's region
    // is then whole by the time it is 7/8 written (collapse_filled_chunks).
    const int64_t ahead = std::min(cfg_.n_ctx, (target + target / 8 + kCommitChunk - 1) / kCommitChunk * kCommitChunk);
    for (int64_t l = 0; l < cfg_.n_layer; ++l)
      for (int kind = 0; kind < 2; ++kind) {
        // Only the new units: the pages below may be copy-on-write views shared with another cache.
        const int64_t units = (ahead + tpu_[kind] - 1) / tpu_[kind];
        const int64_t old = (n_mapped_ + tpu_[kind] - 1) / tpu_[kind];
        for (int64_t h = 0; h < cfg_.n_head_kv; ++h)
          mem_.commit(region_offset(l, kind, h) + unit_[kind] * static_cast<size_t>(old),
                      unit_[kind] * static_cast<size_t>(units - old));
      }
    n_mapped_ = ahead;
  }
  n_committed_ = target;
}

// Huge pages: the KV cache is read end to end by every decode step, and in 4 KiB pages a 32-key f16 tile of
// one head is a page: a TLB miss (a nested page walk in a VM) per tile and stream, and the hardware
// prefetcher stops at every page. So a 2 MiB chunk of the memory file is collapsed into one huge page once
// it is whole (mapped) and at most 1/8 of it is still unwritten (what the collapse allocates early; the
// padding after a region's last position counts as written: it never will be). Not while pages are
// shared copy-on-write (fork: kv_share.cpp). ReservedMemory::collapse_huge: STRATA_HUGE_PAGES=0 turns it off.
void KvCache::collapse_filled_chunks() {
  if (!pieces_.empty() || own_frozen_ || !mem_.file() || !ReservedMemory::huge_pages_enabled()) return;
  constexpr size_t kChunk = ReservedMemory::kHugePage;
  const size_t n_chunks = mem_.reserved() / kChunk;  // whole chunks only
  if (n_chunks == 0) return;
  if (huge_done_.size() != n_chunks) huge_done_.assign(n_chunks, 0);
  size_t written[2], mapped[2], data[2];  // per region of each kind: bytes from its start
  for (int kind = 0; kind < 2; ++kind) {
    const int64_t t = tpu_[kind];
    written[kind] = unit_[kind] * static_cast<size_t>(lo_ / t);
    mapped[kind] = unit_[kind] * static_cast<size_t>((n_mapped_ + t - 1) / t);
    data[kind] = unit_[kind] * static_cast<size_t>((cfg_.n_ctx + t - 1) / t);
  }
  const size_t per_layer_k = stride_[0] * static_cast<size_t>(cfg_.n_head_kv);
  // The region holding byte `off` of mem_: (its start, its kind).
  const auto region_at = [&](size_t off, size_t& start) {
    const size_t l = off / layer_bytes_, in = off % layer_bytes_;
    const int kind = in < per_layer_k ? 0 : 1;
    const size_t in_kind = kind == 0 ? in : in - per_layer_k;
    start = l * layer_bytes_ + (kind == 0 ? 0 : per_layer_k) + in_kind / stride_[kind] * stride_[kind];
    return kind;
  };
  const auto try_chunk = [&](size_t c) {
    if (c >= n_chunks || huge_done_[c]) return;
    const size_t c0 = c * kChunk, c1 = c0 + kChunk;
    size_t filled = 0;
    for (size_t off = c0; off < c1;) {
      size_t start;
      const int kind = region_at(off, start);
      const size_t end = std::min(c1, start + stride_[kind]);
      if (start + mapped[kind] < end && start + mapped[kind] < start + data[kind]) return;  // not whole yet
      const size_t w = start + written[kind], d = start + data[kind];
      filled += std::min(end, w) > off ? std::min(end, w) - off : 0;  // written positions
      filled += end > std::max(off, d) ? end - std::max(off, d) : 0;  // padding after the last position
      off = end;
    }
    if (filled < kChunk / 8 * 7) return;
    mem_.collapse_huge(c0, kChunk);
    huge_done_[c] = 1;  // collapsed, or not possible now: not asked again (until the memory is dropped)
  };
  // Candidates: the chunks up to each region's written end.
  for (int64_t l = 0; l < cfg_.n_layer; ++l)
    for (int kind = 0; kind < 2; ++kind)
      for (int64_t h = 0; h < cfg_.n_head_kv; ++h) {
        const size_t start = region_offset(l, kind, h);
        for (size_t c = start / kChunk; c * kChunk <= start + written[kind] && c < n_chunks; ++c) try_chunk(c);
      }
}

void KvCache::store(int64_t layer, int64_t pos0, int64_t n_tok, const float* k, const float* v,
                    const RopeParams* rope, int64_t rope_pos0) {
  STRATA_ASSERT(pos0 >= 0 && pos0 + n_tok <= n_committed_, "KV store outside the reserved positions");
  STRATA_ASSERT(pos0 >= lo_step_, "KV store before the encoded positions: truncate first");
  if (rope)
    STRATA_ASSERT(rope->n_rot >= 0 && rope->n_rot % 2 == 0 && rope->n_rot <= cfg_.head_dim_k && rope->inv_freq,
                  "KV store: bad rope parameters");
  const int64_t nh = cfg_.n_head_kv, n_new = pos0 + n_tok;
  const int64_t b_old = lo_step_, b_new = std::max(lo_step_, boundary(n_new));
  uint8_t* base = mem_.data();
  std::vector<float> chunk;
  // With rope: the angles of each new position (the keys are rotated row by row as they are stored).
  std::vector<float> cs;
  if (rope) {
    cs.resize(static_cast<size_t>(n_tok * rope->n_rot));
    for (int64_t t = 0; t < n_tok; ++t)
      kernels::rope_cos_sin(rope_pos0 + t, rope->n_rot, rope->inv_freq, cs.data() + t * rope->n_rot);
  }
  std::array<float, kMaxDim> rot;  // one rotated key row
  for (int kind = 0; kind < 2; ++kind) {
    const float* src = kind == 0 ? k : v;
    const int64_t d = head_dim(kind), tpu = tpu_[kind];
    const bool rotate = kind == 0 && rope != nullptr;
    for (int64_t h = 0; h < nh; ++h) {
      const FormatParams p = params(layer, kind, h);
      uint8_t* main = base + region_offset(layer, kind, h);
      uint16_t* rg = ring_cap_ ? ring(layer, kind, h) : nullptr;
      // The logical row of new position pos (>= pos0): the input, rotated into `buf` with rope.
      const auto new_row = [&](int64_t pos, float* buf) -> const float* {
        const float* r = src + ((pos - pos0) * nh + h) * d;
        if (!rotate) return r;
        kernels::rope_head(r, buf, static_cast<int>(d), rope->n_rot, cs.data() + (pos - pos0) * rope->n_rot,
                           rope->mode);
        return buf;
      };
      // The logical row of position pos: from the ring (older than this step) or the input.
      const auto row_of = [&](int64_t pos, float* out) {
        if (pos < pos0) {
          from_f16(rg + (pos % ring_cap_) * d, out, d);
        } else if (const float* r = new_row(pos, out); r != out) {
          std::memcpy(out, r, static_cast<size_t>(d) * sizeof(float));
        }
      };
      // 1. Positions leaving (or skipping) the tail: encode them.
      if (tpu == 1) {
        std::array<float, kMaxDim> row;
        for (int64_t pos = b_old; pos < b_new; ++pos) {
          const float* r = row.data();
          if (pos < pos0) row_of(pos, row.data());
          else r = new_row(pos, row.data());
          encode_unit(fmt_[kind], p, r, main + static_cast<size_t>(pos) * unit_[kind]);
        }
      } else {
        chunk.resize(static_cast<size_t>(tpu * d));
        for (int64_t c0 = b_old; c0 < b_new; c0 += tpu) {
          for (int64_t t = 0; t < tpu; ++t) row_of(c0 + t, chunk.data() + t * d);
          encode_unit(fmt_[kind], p, chunk.data(), main + static_cast<size_t>(c0 / tpu) * unit_[kind]);
        }
      }
      // 2. The new positions that stay in the tail: f16 into the ring.
      for (int64_t pos = std::max(b_new, pos0); pos < n_new; ++pos)
        to_f16(new_row(pos, rot.data()), rg + (pos % ring_cap_) * d, d);
    }
  }
  if (b_new > b_old) clean_ = std::min(clean_, b_old);  // units written from b_old on (kv_share.cpp)
  lo_ = b_new;
}

void KvCache::set_used(int64_t n) {
  STRATA_ASSERT(n >= 0 && n <= n_committed_, "KV positions used beyond those reserved");
  n_used_ = n;
  lo_step_ = lo_ = std::min(lo_, n);
  collapse_filled_chunks();
}

void KvCache::truncate(int64_t n) {
  n = std::max<int64_t>(n, 0);
  if (n == 0) pos_offset_ = 0;
  if (n == 0 && !pieces_.empty()) {  // all of it will be rewritten: drop the shared pages, not copy them
    drop_memory();
    n_committed_ = 0;
  }
  n_used_ = std::min(n_used_, n);
  if (lo_ <= n_used_) {
    lo_step_ = lo_;
    return;
  }
  // Positions [n_used, lo) were encoded and are forgotten. A row format keeps [0, n_used) encoded; a GEAR
  // chunk cut in two goes back to the tail (decoded into the ring).
  const int64_t t = std::max(tpu_[0], tpu_[1]);
  const int64_t new_lo = n_used_ / t * t;
  if (new_lo < n_used_) {
    std::vector<float> rows(static_cast<size_t>(t * std::max(cfg_.head_dim_k, cfg_.head_dim_v)));
    for (int64_t l = 0; l < cfg_.n_layer; ++l)
      for (int kind = 0; kind < 2; ++kind)
        for (int64_t h = 0; h < cfg_.n_head_kv; ++h) {
          const int64_t d = head_dim(kind);
          read_rows(l, kind, h, new_lo, n_used_, rows.data());
          for (int64_t pos = new_lo; pos < n_used_; ++pos)
            to_f16(rows.data() + (pos - new_lo) * d, ring(l, kind, h) + (pos % ring_cap_) * d, d);
        }
  }
  lo_step_ = lo_ = new_lo;
}

void KvCache::decode_stored(int32_t layer, int kind, int32_t head, int64_t p0, int64_t p1, float* out,
                            int64_t ld) const {
  const int32_t d = static_cast<int32_t>(head_dim(kind));
  const int64_t lo = std::min(p1, lo_);
  if (p0 < lo)
    decode_range_stored(fmt_[kind], d, mem_.data() + region_offset(layer, kind, head),
                        static_cast<int64_t>(unit_[kind]), p0, lo, out, ld);
  if (p1 <= lo) return;
  STRATA_ASSERT(ring_cap_ > 0, "KV rows read beyond the stored positions");
  const uint16_t* rg = ring(layer, kind, head);
  const FormatParams p = params(layer, kind, head);
  std::array<float, kMaxDim> row;
  for (int64_t pos = std::max(p0, lo_); pos < p1; ++pos) {
    float* o = out + (pos - p0) * ld;
    if (transform_[kind]) {
      from_f16(rg + (pos % ring_cap_) * d, row.data(), d);
      prepare_query(fmt_[kind], p, row.data(), o);  // the stored domain: T·x
    } else {
      from_f16(rg + (pos % ring_cap_) * d, o, d);
    }
  }
}

void KvCache::decode_view_rows(const void* ctx, int32_t head, int64_t p0, int64_t p1, int32_t head_dim, float* out,
                               int64_t ld) {
  const auto& c = *static_cast<const ViewCtx*>(ctx);
  (void)head_dim;
  c.cache->decode_stored(c.layer, c.kind, head, p0, p1, out, ld == 0 ? c.cache->head_dim(c.kind) : ld);
}

kernels::KvView KvCache::view(int64_t layer, int kind) const {
  kernels::KvView v;
  if (native_[kind]) {
    v.type = *format_info(fmt_[kind]).dtype;  // f32, f16, bf16, q8_0, q4_0: decoded by the kernel itself
    v.data = mem_.data() + region_offset(layer, kind, 0);
    v.head_stride = static_cast<int64_t>(stride_[kind]);
    v.pos_stride = static_cast<int64_t>(unit_[kind]);
    return v;
  }
  ViewCtx& ctx = view_ctx_[static_cast<size_t>(2 * layer + kind)];
  ctx.cache = this;
  v.decode = &KvCache::decode_view_rows;
  v.decode_ctx = &ctx;
  v.decode_bytes_per_row = kv::bytes_per_token(fmt_[kind], static_cast<int32_t>(head_dim(kind)));
  return v;
}

kernels::KvView KvCache::k_view(int64_t layer) const { return view(layer, 0); }
kernels::KvView KvCache::v_view(int64_t layer) const { return view(layer, 1); }

void KvCache::query_to_stored(int64_t layer, float* q, int64_t n_tok, int64_t n_head) const {
  if (!transform_[0]) return;
  const int64_t d = cfg_.head_dim_k, group = n_head / cfg_.n_head_kv;
  std::array<float, kMaxDim> t;
  for (int64_t i = 0; i < n_tok; ++i)
    for (int64_t j = 0; j < n_head; ++j) {
      float* row = q + (i * n_head + j) * d;
      prepare_query(fmt_[0], params(layer, 0, j / group), row, t.data());
      std::copy_n(t.data(), d, row);
    }
}

void KvCache::output_from_stored(int64_t layer, float* out, int64_t n_tok, int64_t n_head) const {
  if (!transform_[1]) return;
  const int64_t d = cfg_.head_dim_v, group = n_head / cfg_.n_head_kv;
  std::array<float, kMaxDim> t;
  for (int64_t i = 0; i < n_tok; ++i)
    for (int64_t j = 0; j < n_head; ++j) {
      float* row = out + (i * n_head + j) * d;
      finish_output(fmt_[1], params(layer, 1, j / group), row, t.data());
      std::copy_n(t.data(), d, row);
    }
}

void KvCache::read_rows(int64_t layer, int kind, int64_t head, int64_t p0, int64_t p1, float* out) const {
  const int64_t d = head_dim(kind);
  decode_stored(static_cast<int32_t>(layer), kind, static_cast<int32_t>(head), p0, p1, out, d);
  if (!transform_[kind]) return;
  const FormatParams p = params(layer, kind, head);
  std::array<float, kMaxDim> t;
  for (int64_t i = 0; i < p1 - p0; ++i) {
    finish_output(fmt_[kind], p, out + i * d, t.data());
    std::copy_n(t.data(), d, out + i * d);
  }
}

size_t KvCache::committed_bytes() const {
  const size_t ps = ReservedMemory::page_size();
  size_t per_head = 0;
  for (int kind = 0; kind < 2; ++kind) {
    const int64_t units = (n_committed_ + tpu_[kind] - 1) / tpu_[kind];
    per_head += round_up(unit_[kind] * static_cast<size_t>(units), ps);
  }
  return per_head * static_cast<size_t>(cfg_.n_head_kv * cfg_.n_layer) + rings_.size() * sizeof(uint16_t);
}

double KvCache::bytes_per_token() const {
  return (kv::bytes_per_token(fmt_[0], static_cast<int32_t>(cfg_.head_dim_k)) +
          kv::bytes_per_token(fmt_[1], static_cast<int32_t>(cfg_.head_dim_v))) *
         static_cast<double>(cfg_.n_head_kv * cfg_.n_layer);
}

namespace {
// Rows [0, n) of one layer, K or V, all heads, logical: [n][n_head_kv][d].
std::vector<float> layer_rows(const KvCache& kv, int64_t layer, int kind, int64_t n) {
  const KvCacheConfig& c = kv.config();
  const int64_t d = kind == 0 ? c.head_dim_k : c.head_dim_v, nh = c.n_head_kv;
  std::vector<float> head(static_cast<size_t>(n * d)), out(static_cast<size_t>(n * nh * d));
  for (int64_t h = 0; h < nh; ++h) {
    kv.read_rows(layer, kind, h, 0, n, head.data());
    for (int64_t p = 0; p < n; ++p) std::copy_n(head.data() + p * d, d, out.data() + (p * nh + h) * d);
  }
  return out;
}
}  // namespace

void KvCache::apply_update(const KvBudgetUpdate& u, std::span<const KvSlotMeta> slots) {
  STRATA_ASSERT(u.n_before == n_used_ && static_cast<int64_t>(slots.size()) == n_used_,
                "KV budget update prepared for another cache state");
  if (u.noop()) return;
  const int64_t n = n_used_, na = u.n_after(), nh = cfg_.n_head_kv;
  std::vector<std::vector<float>> K(static_cast<size_t>(cfg_.n_layer)), V(K.size());
  for (int64_t l = 0; l < cfg_.n_layer; ++l) {
    K[l] = layer_rows(*this, l, 0, n);
    V[l] = layer_rows(*this, l, 1, n);
    apply_update_rows(u, slots, K[l].data(), static_cast<int32_t>(nh * cfg_.head_dim_k));
    apply_update_rows(u, slots, V[l].data(), static_cast<int32_t>(nh * cfg_.head_dim_v));
  }
  const int64_t offset = pos_offset_ + (n - na);
  truncate(0);
  reserve(na);
  for (int64_t l = 0; l < cfg_.n_layer; ++l) store(l, 0, na, K[l].data(), V[l].data());
  set_used(na);
  pos_offset_ = offset;
}

std::vector<float> KvCache::recent_key_attention(int64_t n_obs) const {
  const int64_t n = n_used_, d = cfg_.head_dim_k, nh = cfg_.n_head_kv;
  n_obs = std::clamp<int64_t>(n_obs, 1, std::max<int64_t>(n, 1));
  std::vector<float> score(static_cast<size_t>(n), 0.f);
  std::vector<double> s(static_cast<size_t>(n));
  const double scale = 1.0 / std::sqrt(static_cast<double>(d));
  for (int64_t l = 0; l < cfg_.n_layer; ++l) {
    const std::vector<float> k = layer_rows(*this, l, 0, n);
    for (int64_t h = 0; h < nh; ++h)
      for (int64_t r = n - n_obs; r < n; ++r) {
        const float* kr = k.data() + (r * nh + h) * d;
        double m = -1e300, sum = 0;
        for (int64_t j = 0; j < n; ++j) {
          const float* kj = k.data() + (j * nh + h) * d;
          double x = 0;
          for (int64_t c = 0; c < d; ++c) x += static_cast<double>(kr[c]) * kj[c];
          s[j] = x * scale;
          m = std::max(m, s[j]);
        }
        for (int64_t j = 0; j < n; ++j) sum += (s[j] = std::exp(s[j] - m));
        for (int64_t j = 0; j < n; ++j) score[j] += static_cast<float>(s[j] / sum);
      }
  }
  return score;
}

std::vector<float> KvCache::unit_keys() const {
  const int64_t n = n_used_, w = cfg_.n_head_kv * cfg_.head_dim_k, L = cfg_.n_layer;
  std::vector<float> keys(static_cast<size_t>(n * L * w));
  for (int64_t l = 0; l < L; ++l) {
    const std::vector<float> k = layer_rows(*this, l, 0, n);
    for (int64_t p = 0; p < n; ++p) std::copy_n(k.data() + p * w, w, keys.data() + (p * L + l) * w);
  }
  for (int64_t p = 0; p < n; ++p) {
    float* row = keys.data() + p * L * w;
    double ss = 0;
    for (int64_t i = 0; i < L * w; ++i) ss += static_cast<double>(row[i]) * row[i];
    const float inv = ss > 0 ? static_cast<float>(1.0 / std::sqrt(ss)) : 0.f;
    for (int64_t i = 0; i < L * w; ++i) row[i] *= inv;
  }
  return keys;
}

KvCalibration calibrate_from(const KvCache& kv) {
  const KvCacheConfig& c = kv.config();
  if (c.head_dim_k != c.head_dim_v) fail("KV calibration: K and V head sizes differ");
  const int64_t n = kv.n_used(), d = c.head_dim_k, nh = c.n_head_kv;
  if (n == 0) fail("KV calibration: the cache holds no tokens: feed a calibration text first");
  KvCalibrator cal(static_cast<int32_t>(c.n_layer), static_cast<int32_t>(nh), static_cast<int32_t>(d));
  std::vector<float> head(static_cast<size_t>(n * d)), k(static_cast<size_t>(n * nh * d)), v(k.size());
  for (int64_t l = 0; l < c.n_layer; ++l) {
    for (int kind = 0; kind < 2; ++kind)
      for (int64_t h = 0; h < nh; ++h) {
        kv.read_rows(l, kind, h, 0, n, head.data());
        float* dst = kind == 0 ? k.data() : v.data();
        for (int64_t p = 0; p < n; ++p) std::copy_n(head.data() + p * d, d, dst + (p * nh + h) * d);
      }
    cal.add(static_cast<int32_t>(l), k.data(), v.data(), n);
  }
  return cal.finish();
}

}  // namespace strata::kv
