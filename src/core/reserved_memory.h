// Reserved virtual memory: a large address range taken up front with no physical pages behind it
// (mmap PROT_NONE + MAP_NORESERVE), made usable piece by piece with commit(). Pages are physically
// allocated (and zero-filled) by the kernel only when first written, so a 128K-token KV cache costs nothing
// until tokens arrive. Accesses outside committed ranges fault, which catches out-of-range reads early.
//
// Backing. kAnonymous: committed pages are private anonymous memory. kSharedFile: the reservation is backed
// by a memfd of the same size (sparse), committed ranges are mapped MAP_SHARED from it at the same offset.
// That makes the pages nameable, so another reservation can map them copy-on-write (map_private): the
// same physical pages back both, and a write by either gets a private copy from the kernel. The kernel
// isolates a MAP_PRIVATE mapping only from writes that do not go through the file, so a range others map
// privately must not be written through a shared mapping or punched any more: its owner maps it privately
// too (map_private with its own file) — see kv/kv_sequence.cpp.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

namespace strata {

// An open file descriptor, closed with its last owner (a memfd outlives the reservation that made it while
// other reservations' copy-on-write views, or their bookkeeping, still need it).
struct SharedFd {
  int fd = -1;
  explicit SharedFd(int f) : fd(f) {}
  SharedFd(const SharedFd&) = delete;
  SharedFd& operator=(const SharedFd&) = delete;
  ~SharedFd();
  // Frees the file's pages in the whole pages inside [offset, offset + bytes) (the file keeps its size).
  void punch(size_t offset, size_t bytes) const;
  // Bytes of memory the file holds (st_blocks): its pages, however many mappings share them.
  size_t allocated_bytes() const;
};

class ReservedMemory {
 public:
  enum class Backing { kAnonymous, kSharedFile };

  ReservedMemory() = default;
  // Reserves `bytes` (rounded up to whole pages) of address space. Throws strata::Error when the address
  // space is exhausted (the message names the size). kSharedFile falls back to kAnonymous when the system
  // has no memfd (file() is then null).
  explicit ReservedMemory(size_t bytes, Backing backing = Backing::kAnonymous);
  ReservedMemory(ReservedMemory&& o) noexcept;
  ReservedMemory& operator=(ReservedMemory&& o) noexcept;
  ReservedMemory(const ReservedMemory&) = delete;
  ReservedMemory& operator=(const ReservedMemory&) = delete;
  ~ReservedMemory();

  uint8_t* data() const { return base_; }
  size_t reserved() const { return size_; }
  // Makes [offset, offset + bytes) readable and writable (widened to whole pages). Idempotent; committed
  // memory reads as zero until written. Throws strata::Error when the system refuses (out of memory).
  // The caller keeps count of what it committed (this class keeps no per-page table). File-backed: the
  // range is (re)mapped shared from the file, replacing any copy-on-write view there.
  void commit(size_t offset, size_t bytes);
  // Returns the whole pages inside [offset, offset + bytes) to the system and makes them inaccessible
  // (file-backed: also frees the file's pages there).
  void decommit(size_t offset, size_t bytes);

  // ---- kSharedFile only ----
  const std::shared_ptr<SharedFd>& file() const { return file_; }
  // [offset, offset + bytes) (whole pages) becomes a copy-on-write view of the same range of `file`.
  void map_private(size_t offset, size_t bytes, const SharedFd& file);
  // Makes [offset, offset + bytes) (whole pages) inaccessible without touching the file.
  void unmap(size_t offset, size_t bytes);
  // Continues on a new empty file (the old one lives on while others hold it); every range must be
  // unmapped first.
  void renew_file();

  // ---- Huge pages ----
  // The reservation starts on a kHugePage boundary, so its offsets (and, file-backed, the file's offsets)
  // line up with the CPU's 2 MiB pages. collapse_huge() turns the whole kHugePage-aligned chunks inside
  // [offset, offset + bytes) into huge pages now (madvise MADV_COLLAPSE, Linux 6.1+; for the memory file
  // too, whatever /sys/kernel/mm/transparent_hugepage/shmem_enabled says, short of "deny"): every byte of
  // such a chunk must be committed, and its pages not yet present are allocated (zero) by the collapse.
  // Best effort: returns the bytes collapsed (0 where the kernel cannot, or with STRATA_HUGE_PAGES=0).
  static constexpr size_t kHugePage = size_t{2} << 20;
  size_t collapse_huge(size_t offset, size_t bytes);
  // False with STRATA_HUGE_PAGES=0 in the environment, or once the kernel refused MADV_COLLAPSE.
  static bool huge_pages_enabled();

  static size_t page_size();

 private:
  uint8_t* base_ = nullptr;
  size_t size_ = 0;
  std::shared_ptr<SharedFd> file_;  // kSharedFile: the memfd of size_ bytes
};

inline size_t round_up(size_t n, size_t to) { return (n + to - 1) / to * to; }

// mmap(nullptr, bytes, prot, flags, -1, 0) starting on a ReservedMemory::kHugePage boundary (so every whole
// 2 MiB of it can be a huge page): maps 2 MiB more, then unmaps the unaligned head and the rest of the tail.
// MAP_FAILED (errno set) on failure.
void* mmap_huge_aligned(size_t bytes, int prot, int flags);

// The process's proportional set size (Pss): resident memory with every page divided by the number of
// mappings of it, so pages shared by two copy-on-write views count once. With a name: only the mappings
// whose path contains it (/proc/self/smaps; "memfd:strata-kv": the KV caches' memory, private copies
// included, the f16 tails on the heap not); without: the whole process (/proc/self/smaps_rollup).
// Pages count only while mapped, and a new mapping is filled in as it is touched. 0 when the kernel does
// not report it.
size_t process_pss_bytes(std::string_view mapping_name = {});
// Bytes of memory-file (shmem) pages mapped as huge pages (smaps ShmemPmdMapped), of the mappings whose
// path contains mapping_name (all without one). 0 when the kernel does not report it.
size_t process_huge_shmem_bytes(std::string_view mapping_name = {});
// The name of KvCache's memory files in /proc/self/maps ("/memfd:strata-kv (deleted)").
inline constexpr const char* kKvMemfdName = "strata-kv";

}  // namespace strata
