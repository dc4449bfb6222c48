// KvCache swap image (kv_cache.h): the whole state of one sequence's cache as one contiguous byte image, so
// the server can preempt a sequence (save, release its pages) and resume it later (restore) bit for bit,
// without recomputing its prompt.
//
// Image: a fixed header, then for every (layer, K/V, KV head) region the encoded units [0, lo / tokens per
// unit) exactly as they sit in memory, then for every region the f16 tail rows of positions [lo, n_used)
// in position order. The header names the shape and formats (so a mismatch says what differs), a hash of
// the calibration permutations, the counters, the payload size (a truncated image is caught before any
// byte is copied) and a checksum of the header itself. The payload is not checksummed: it never leaves
// the process, and hashing every byte would cost as much as the copy.
#include <algorithm>
#include <cstddef>
#include <cstring>

#include "core/error.h"
#include "kv/kv_cache.h"

namespace strata::kv {

namespace {

constexpr char kMagic[8] = {'S', 'T', 'R', 'A', 'K', 'V', 'S', 'W'};
constexpr uint32_t kVersion = 1;

struct SwapHeader {
  char magic[8];
  uint32_t version;
  uint32_t header_bytes;
  int64_t n_layer, n_head_kv, head_dim_k, head_dim_v;
  int32_t window;
  uint8_t format_k, format_v, pad[2];
  uint64_t unit_k, unit_v;         // bytes of one unit (pins the formats' encodings)
  uint64_t calibration_hash;       // 0 without calibration
  int64_t n_used, lo, pos_offset;  // the counters
  uint64_t payload_bytes;
  uint64_t check;  // FNV-1a of every byte above
};
static_assert(sizeof(SwapHeader) == 120, "the swap header is part of the image format");

uint64_t fnv1a(const void* p, size_t n, uint64_t h = 1469598103934665603ull) {
  const auto* b = static_cast<const uint8_t*>(p);
  for (size_t i = 0; i < n; ++i) h = (h ^ b[i]) * 1099511628211ull;
  return h;
}

uint64_t header_check(const SwapHeader& h) { return fnv1a(&h, offsetof(SwapHeader, check)); }

}  // namespace

// Positions [0, lo) sit in the main regions as units; [lo, n_used) in the rings. Bytes of both, all regions.
size_t KvCache::saved_size() const {
  size_t bytes = sizeof(SwapHeader);
  for (int kind = 0; kind < 2; ++kind) {
    const size_t units = static_cast<size_t>(lo_ / tpu_[kind]);
    const size_t tail = static_cast<size_t>(n_used_ - lo_) * static_cast<size_t>(head_dim(kind)) * sizeof(uint16_t);
    bytes += (units * unit_[kind] + tail) * static_cast<size_t>(cfg_.n_layer * cfg_.n_head_kv);
  }
  return bytes;
}

void KvCache::save(std::span<std::byte> out) const {
  // Between store() and set_used() the layers disagree on what is encoded: no consistent image exists.
  if (lo_ != lo_step_ && n_used_ > 0)
    fail("KV swap: save() during a step (after store(), before set_used()): save between steps");
  const size_t need = saved_size();
  if (out.size() < need) fail("KV swap: the buffer holds {} bytes, the image needs {}", out.size(), need);
  SwapHeader h{};
  std::memcpy(h.magic, kMagic, sizeof kMagic);
  h.version = kVersion;
  h.header_bytes = sizeof(SwapHeader);
  h.n_layer = cfg_.n_layer;
  h.n_head_kv = cfg_.n_head_kv;
  h.head_dim_k = cfg_.head_dim_k;
  h.head_dim_v = cfg_.head_dim_v;
  h.window = cfg_.window;
  h.format_k = static_cast<uint8_t>(fmt_[0]);
  h.format_v = static_cast<uint8_t>(fmt_[1]);
  h.unit_k = unit_[0];
  h.unit_v = unit_[1];
  h.calibration_hash = calibration_hash();
  h.n_used = n_used_;
  h.lo = lo_;
  h.pos_offset = pos_offset_;
  h.payload_bytes = need - sizeof(SwapHeader);
  h.check = header_check(h);
  std::byte* w = out.data();
  std::memcpy(w, &h, sizeof h);
  w += sizeof h;
  for (int64_t l = 0; l < cfg_.n_layer; ++l)
    for (int kind = 0; kind < 2; ++kind) {
      const size_t bytes = static_cast<size_t>(lo_ / tpu_[kind]) * unit_[kind];
      for (int64_t hd = 0; hd < cfg_.n_head_kv; ++hd, w += bytes)
        if (bytes) std::memcpy(w, mem_.data() + region_offset(l, kind, hd), bytes);
    }
  for (int64_t l = 0; l < cfg_.n_layer; ++l)
    for (int kind = 0; kind < 2; ++kind)
      for (int64_t hd = 0; hd < cfg_.n_head_kv; ++hd) {
        const size_t row = static_cast<size_t>(head_dim(kind)) * sizeof(uint16_t);
        for (int64_t p = lo_; p < n_used_; ++p, w += row)
          std::memcpy(w, ring(l, kind, hd) + (p % ring_cap_) * head_dim(kind), row);
      }
  STRATA_ASSERT(static_cast<size_t>(w - out.data()) == need, "KV swap image size");
}

void KvCache::release() {
  drop_memory();
  n_committed_ = n_used_ = lo_ = lo_step_ = pos_offset_ = 0;
  std::vector<uint16_t>().swap(rings_);  // reallocated by the next reserve()
}

void KvCache::restore(std::span<const std::byte> image) {
  SwapHeader h;
  if (image.size() < sizeof h)
    fail("KV swap: the image is truncated ({} bytes, the header alone is {})", image.size(), sizeof h);
  std::memcpy(&h, image.data(), sizeof h);
  if (std::memcmp(h.magic, kMagic, sizeof kMagic) != 0) fail("KV swap: not a strata KV swap image (bad magic)");
  if (h.version != kVersion || h.header_bytes != sizeof h)
    fail("KV swap: image version {} ({}-byte header), this build reads version {}", h.version, h.header_bytes,
         kVersion);
  if (h.check != header_check(h)) fail("KV swap: the image header is corrupt (checksum mismatch)");
  const auto describe = [](int64_t L, int64_t H, int64_t dk, int64_t dv, int w, uint8_t fk, uint8_t fv) {
    const auto name = [](uint8_t f) {
      return f < all_formats().size() ? format_name(static_cast<KvFormat>(f)) : "?";
    };
    return fmt::format("{} layers x {} KV heads, head_dim {}/{}, -ctk {} -ctv {}, --kv-window {}", L, H, dk, dv,
                       name(fk), name(fv), w);
  };
  const std::string mine = describe(cfg_.n_layer, cfg_.n_head_kv, cfg_.head_dim_k, cfg_.head_dim_v, cfg_.window,
                                    static_cast<uint8_t>(fmt_[0]), static_cast<uint8_t>(fmt_[1]));
  const std::string theirs =
      describe(h.n_layer, h.n_head_kv, h.head_dim_k, h.head_dim_v, h.window, h.format_k, h.format_v);
  if (mine != theirs || h.unit_k != unit_[0] || h.unit_v != unit_[1])
    fail("KV swap: the image was saved from another cache ({}); this cache is {}", theirs, mine);
  if (h.calibration_hash != calibration_hash())
    fail("KV swap: the image was saved with other channel permutations (calibration) than this cache's");
  const int64_t t = std::max(tpu_[0], tpu_[1]);
  if (h.n_used < 0 || h.lo < 0 || h.lo > h.n_used || h.lo % t != 0 || h.pos_offset < 0)
    fail("KV swap: the image header is inconsistent (n_used {}, encoded {})", h.n_used, h.lo);
  if (h.n_used > cfg_.n_ctx)
    fail("KV swap: the image holds {} tokens, this cache's --ctx is {}: raise --ctx", h.n_used, cfg_.n_ctx);
  if (ring_cap_ == 0 ? h.lo != h.n_used : h.n_used - h.lo > ring_cap_)
    fail("KV swap: the image header is inconsistent ({} tail rows)", h.n_used - h.lo);
  release();
  n_used_ = h.n_used;
  lo_ = lo_step_ = h.lo;  // saved_size() now computes the payload the header must announce
  const size_t need = saved_size();
  n_used_ = lo_ = lo_step_ = 0;
  if (h.payload_bytes != need - sizeof h)
    fail("KV swap: the image header is inconsistent (payload {} bytes, {} expected)", h.payload_bytes,
         need - sizeof h);
  if (image.size() < need) fail("KV swap: the image is truncated ({} of {} bytes)", image.size(), need);

  reserve(h.n_used);
  const std::byte* r = image.data() + sizeof h;
  for (int64_t l = 0; l < cfg_.n_layer; ++l)
    for (int kind = 0; kind < 2; ++kind) {
      const size_t bytes = static_cast<size_t>(h.lo / tpu_[kind]) * unit_[kind];
      for (int64_t hd = 0; hd < cfg_.n_head_kv; ++hd, r += bytes)
        if (bytes) std::memcpy(mem_.data() + region_offset(l, kind, hd), r, bytes);
    }
  for (int64_t l = 0; l < cfg_.n_layer; ++l)
    for (int kind = 0; kind < 2; ++kind)
      for (int64_t hd = 0; hd < cfg_.n_head_kv; ++hd) {
        const size_t row = static_cast<size_t>(head_dim(kind)) * sizeof(uint16_t);
        for (int64_t p = h.lo; p < h.n_used; ++p, r += row)
          std::memcpy(ring(l, kind, hd) + (p % ring_cap_) * head_dim(kind), r, row);
      }
  n_used_ = h.n_used;
  lo_ = lo_step_ = h.lo;
  pos_offset_ = h.pos_offset;
}

uint64_t KvCache::calibration_hash() const {
  if (!cfg_.calibration || !(format_info(fmt_[0]).needs_calibration() || format_info(fmt_[1]).needs_calibration()))
    return 0;
  const KvCalibration& c = *cfg_.calibration;
  uint64_t h = fnv1a(c.perm_k.data(), c.perm_k.size() * sizeof(uint16_t));
  return fnv1a(c.perm_v.data(), c.perm_v.size() * sizeof(uint16_t), h) | 1;  // never 0
}

}  // namespace strata::kv
