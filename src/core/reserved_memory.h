// Reserved virtual memory: a large address range taken up front with no physical pages behind it
// (mmap PROT_NONE + MAP_NORESERVE), made usable piece by piece with commit(). Pages are physically
// allocated (and zero-filled) by the kernel only when first written, so a 128K-token KV cache costs nothing
// until tokens arrive. Accesses outside committed ranges fault, which catches out-of-range reads early.
#pragma once
#include <cstddef>
#include <cstdint>

namespace strata {

class ReservedMemory {
 public:
  ReservedMemory() = default;
  // Reserves `bytes` (rounded up to whole pages) of address space. Throws strata::Error when the address
  // space is exhausted (the message names the size).
  explicit ReservedMemory(size_t bytes);
  ReservedMemory(ReservedMemory&& o) noexcept;
  ReservedMemory& operator=(ReservedMemory&& o) noexcept;
  ReservedMemory(const ReservedMemory&) = delete;
  ReservedMemory& operator=(const ReservedMemory&) = delete;
  ~ReservedMemory();

  uint8_t* data() const { return base_; }
  size_t reserved() const { return size_; }
  // Makes [offset, offset + bytes) readable and writable (widened to whole pages). Idempotent; committed
  // memory reads as zero until written. Throws strata::Error when the system refuses (out of memory).
  // The caller keeps count of what it committed (this class keeps no per-page table).
  void commit(size_t offset, size_t bytes);
  // Returns the whole pages inside [offset, offset + bytes) to the system and makes them inaccessible.
  void decommit(size_t offset, size_t bytes);

  static size_t page_size();

 private:
  uint8_t* base_ = nullptr;
  size_t size_ = 0;
};

inline size_t round_up(size_t n, size_t to) { return (n + to - 1) / to * to; }

}  // namespace strata
