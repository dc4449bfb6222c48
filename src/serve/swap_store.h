// Preemption support for the scheduler: what a sequence's KV cache costs in memory, and where the cache of
// a preempted sequence waits (RAM, or a file in --swap-dir) until the sequence resumes.
//
// A preempted cache leaves as ONE contiguous image (kv::KvCache::save: the committed units of the used
// positions, the f16 tail and the counters), its pages go back to the OS (release()), and restore() gives
// back a bit-identical cache: the sequence continues with exactly the tokens it would have produced without
// the interruption, nothing is recomputed. On disk the image is one file written front to back through a
// shared mapping (the kernel writes it back in large sequential runs; writeback is started at once), read
// back the same way, and deleted as soon as it is restored (or the sequence ends, or the server stops).
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "kv/kv_cache.h"

namespace strata::serve {

// Committed bytes of one sequence's cache as a function of its positions: probed once on an empty cache of
// the configuration (reserve(n) for every n; only the commit-chunk boundaries commit anything, and nothing
// is touched, so no page is allocated).
class KvSizer {
 public:
  KvSizer() = default;
  explicit KvSizer(const kv::KvCacheConfig& cfg);
  // Bytes committed by a cache holding n positions (n clamped to [0, n_ctx]).
  size_t bytes(int64_t n) const;

 private:
  size_t empty_ = 0;                                // committed by an empty cache (its f16 tail rings)
  std::vector<std::pair<int64_t, size_t>> steps_;   // (smallest n with this size, bytes), increasing
};

class SwapStore {
 public:
  // dir "": images stay in RAM (the process's heap, outside the KV budget). Otherwise one file per image in
  // dir (created if missing). Throws strata::Error when dir cannot be created or written to.
  explicit SwapStore(std::string dir = "");
  ~SwapStore();
  SwapStore(const SwapStore&) = delete;
  SwapStore& operator=(const SwapStore&) = delete;

  // One saved cache. Destroying it frees the memory or deletes the file.
  class Image {
   public:
    ~Image();
    Image(const Image&) = delete;
    Image& operator=(const Image&) = delete;
    size_t size() const { return size_; }
    bool on_disk() const { return !path_.empty(); }
    const std::string& path() const { return path_; }

   private:
    friend class SwapStore;
    Image() = default;
    size_t size_ = 0;
    std::unique_ptr<std::byte[]> ram_;
    std::string path_;
  };

  // Writes kv's image (the caller then releases the cache). On a disk error the image is kept in RAM
  // instead (reported once on stderr), so a full disk slows nothing down but memory.
  std::unique_ptr<Image> save(const kv::KvCache& kv);
  // Restores the image into kv (an empty cache of the same configuration). The image stays valid (the caller
  // drops it). Throws strata::Error when the file cannot be read or the image does not fit the cache.
  void load(const Image& img, kv::KvCache& kv);

  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
  uint64_t counter_ = 0;
  bool warned_ = false;
};

}  // namespace strata::serve
