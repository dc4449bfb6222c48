// A shared prefix stored once: fork() maps the pages of the prefix copy-on-write instead of copying them,
// keeping each cache's own contiguous virtual layout (vAttention: the attention kernels see plain strided
// memory and need no page table).
//
// Every cache's reservation is backed by its own memfd (ReservedMemory::Backing::kSharedFile), its
// committed ranges mapped MAP_SHARED from it. To share the whole pages [0, P) of a region, the source maps
// them again MAP_PRIVATE from its own file (same physical pages, same contents) and the new cache maps the
// same file range MAP_PRIVATE at the same offset of its own reservation (both caches of one config have
// the same layout). The pages are then "frozen": no one maps them shared, so no one writes them through
// the file, and a write by either cache (after a truncate, a shift) gets a private copy from the kernel.
// That is the point of remapping the source: a MAP_PRIVATE view of a file is NOT isolated from writes
// others make through a MAP_SHARED mapping of it (only from its own writes).
//
// Bookkeeping. A FrozenPages holds the file and the ranges frozen in one fork; each cache lists the
// pieces it maps (a shared_ptr each). The file's frozen pages are freed (punched) when the last piece
// goes; a cache whose own file has frozen pages continues on a new file when it drops its memory, since it
// may not reuse those offsets. Per region, the pieces cover a prefix [0, mapped_r) of its bytes; clean_ is
// the lowest position written since they were mapped, so a later fork knows which pieces still hold the
// prefix (a cache that rewrote part of its shared prefix shares only below that, and copies the rest).
#include <algorithm>
#include <cstring>

#include "core/error.h"
#include "kv/kv_cache.h"

namespace strata::kv {

struct FrozenPages {
  std::shared_ptr<SharedFd> file;
  std::vector<std::pair<size_t, size_t>> ranges;  // (offset, bytes) of the file, whole pages
  explicit FrozenPages(std::shared_ptr<SharedFd> f) : file(std::move(f)) {}
  FrozenPages(const FrozenPages&) = delete;
  FrozenPages& operator=(const FrozenPages&) = delete;
  // No cache maps the pages any more (each releases its pieces after unmapping them).
  ~FrozenPages() {
    for (auto [o, n] : ranges) file->punch(o, n);
  }
};

void KvCache::share_prefix_into(KvCache& b, int64_t lo_b) {
  const size_t ps = ReservedMemory::page_size();
  const auto enc_bytes = [&](int kind, int64_t pos) { return static_cast<size_t>(pos / tpu_[kind]) * unit_[kind]; };
  const auto mapped = [&](size_t r) { return mapped_.empty() ? size_t{0} : mapped_[r]; };
  const size_t n_regions = static_cast<size_t>(2 * cfg_.n_layer * cfg_.n_head_kv);
  const bool can_share = mem_.file() && b.mem_.file();
  // The pieces are all intact when no write since reached below the end of any of them.
  bool all_clean = true;
  for (int64_t l = 0; l < cfg_.n_layer; ++l)
    for (int kind = 0; kind < 2; ++kind)
      for (int64_t h = 0; h < cfg_.n_head_kv; ++h)
        if (clean_ != INT64_MAX && mapped(region_index(l, kind, h)) > enc_bytes(kind, clean_) / ps * ps)
          all_clean = false;
  std::shared_ptr<FrozenPages> frozen;
  if (can_share && all_clean) {
    frozen = std::make_shared<FrozenPages>(mem_.file());
    if (mapped_.empty()) mapped_.assign(n_regions, 0);
  }
  if (can_share) b.mapped_.assign(n_regions, 0);
  for (int64_t l = 0; l < cfg_.n_layer; ++l)
    for (int kind = 0; kind < 2; ++kind)
      for (int64_t h = 0; h < cfg_.n_head_kv; ++h) {
        const size_t r = region_index(l, kind, h), off = region_offset(l, kind, h);
        const size_t enc = enc_bytes(kind, lo_b), full = enc / ps * ps;
        size_t share = 0;
        if (can_share && all_clean) {
          // Freeze this cache's own pages [mapped, full): the same file pages, now mapped copy-on-write.
          if (full > mapped_[r]) {
            const size_t o = off + mapped_[r], n = full - mapped_[r];
            mem_.map_private(o, n, *mem_.file());
            frozen->ranges.emplace_back(o, n);
            pieces_.push_back({frozen, o, n});
            mapped_[r] = full;
            own_frozen_ = true;
          }
          share = full;
        } else if (can_share) {
          // Only intact pieces: below the first page written since (the rest is copied).
          share = std::min({full, mapped(r), clean_ == INT64_MAX ? full : enc_bytes(kind, clean_) / ps * ps});
        }
        // b maps [0, share) exactly as this cache does: from the files of the pieces covering it.
        for (const Piece& p : pieces_) {
          const size_t b0 = std::max(p.offset, off), b1 = std::min(p.offset + p.bytes, off + share);
          if (b1 <= b0) continue;
          b.mem_.map_private(b0, b1 - b0, *p.pages->file);
          b.pieces_.push_back({p.pages, b0, b1 - b0});
        }
        if (can_share) b.mapped_[r] = share;
        if (enc > share) std::memcpy(b.mem_.data() + off + share, mem_.data() + off + share, enc - share);
      }
  if (frozen && frozen->ranges.empty()) frozen.reset();
  if (all_clean) clean_ = INT64_MAX;  // every piece holds what this cache holds
}

void KvCache::drop_memory(bool reuse) {
  if (!mem_.data()) return;  // moved from
  if (!mem_.file() || !own_frozen_) {
    mem_.decommit(0, mem_.reserved());  // unmaps, and frees the pages of the own file
  } else {
    // Free the own file's pages except the frozen ones (other caches may map them; FrozenPages frees
    // those), then continue on a new file: the frozen offsets may not be written again.
    mem_.unmap(0, mem_.reserved());
    for (int64_t l = 0; l < cfg_.n_layer; ++l)
      for (int kind = 0; kind < 2; ++kind)
        for (int64_t h = 0; h < cfg_.n_head_kv; ++h) {
          const size_t m = mapped_.empty() ? 0 : mapped_[region_index(l, kind, h)];
          mem_.file()->punch(region_offset(l, kind, h) + m, stride_[kind] - m);
        }
    if (reuse) mem_.renew_file();
    own_frozen_ = false;
  }
  pieces_.clear();  // after the unmap: the last holder of a FrozenPages frees its pages
  mapped_.clear();
  clean_ = INT64_MAX;
}

size_t KvCache::shared_bytes() const {
  size_t bytes = 0;
  for (const Piece& p : pieces_) bytes += p.bytes;
  return bytes;
}

KvCache::~KvCache() { drop_memory(false); }

KvCache& KvCache::operator=(KvCache&& o) noexcept {
  if (this != &o) {
    this->~KvCache();
    new (this) KvCache(std::move(o));
  }
  return *this;
}

}  // namespace strata::kv
