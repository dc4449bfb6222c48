#include "core/reserved_memory.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "core/error.h"

namespace strata {

size_t ReservedMemory::page_size() {
  static const size_t ps = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  return ps;
}

SharedFd::~SharedFd() {
  if (fd >= 0) ::close(fd);
}

void SharedFd::punch(size_t offset, size_t bytes) const {
  const size_t ps = ReservedMemory::page_size();
  const size_t b = round_up(offset, ps), e = (offset + bytes) / ps * ps;
  if (e > b) ::fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(b), static_cast<off_t>(e - b));
}

size_t SharedFd::allocated_bytes() const {
  struct stat st;
  return ::fstat(fd, &st) == 0 ? static_cast<size_t>(st.st_blocks) * 512 : 0;
}

namespace {

std::shared_ptr<SharedFd> new_memfd(size_t size) {
  const int fd = ::memfd_create(kKvMemfdName, MFD_CLOEXEC);
  if (fd < 0) return nullptr;
  auto f = std::make_shared<SharedFd>(fd);
  if (::ftruncate(fd, static_cast<off_t>(size)) != 0)
    fail("cannot size a {:.1f} MiB memory file: {}", static_cast<double>(size) / (1 << 20), std::strerror(errno));
  return f;
}

}  // namespace

void* mmap_huge_aligned(size_t bytes, int prot, int flags) {
  constexpr size_t kHuge = ReservedMemory::kHugePage;
  const size_t span = bytes + kHuge;
  void* p = ::mmap(nullptr, span, prot, flags, -1, 0);
  if (p == MAP_FAILED) return p;
  uint8_t* raw = static_cast<uint8_t*>(p);
  uint8_t* base = reinterpret_cast<uint8_t*>(round_up(reinterpret_cast<uintptr_t>(raw), kHuge));
  if (base > raw) ::munmap(raw, static_cast<size_t>(base - raw));
  if (raw + span > base + bytes) ::munmap(base + bytes, static_cast<size_t>(raw + span - (base + bytes)));
  return base;
}

ReservedMemory::ReservedMemory(size_t bytes, Backing backing) {
  if (bytes == 0) return;
  size_ = round_up(bytes, page_size());
  void* p = mmap_huge_aligned(size_, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE);
  if (p == MAP_FAILED)
    fail("cannot reserve {:.1f} MiB of address space: {}", static_cast<double>(size_) / (1 << 20),
         std::strerror(errno));
  base_ = static_cast<uint8_t*>(p);
  if (backing == Backing::kSharedFile) file_ = new_memfd(size_);
}

ReservedMemory::ReservedMemory(ReservedMemory&& o) noexcept
    : base_(std::exchange(o.base_, nullptr)), size_(std::exchange(o.size_, 0)), file_(std::move(o.file_)) {}

ReservedMemory& ReservedMemory::operator=(ReservedMemory&& o) noexcept {
  if (this != &o) {
    if (base_) ::munmap(base_, size_);
    base_ = std::exchange(o.base_, nullptr);
    size_ = std::exchange(o.size_, 0);
    file_ = std::move(o.file_);
  }
  return *this;
}

ReservedMemory::~ReservedMemory() {
  if (base_) ::munmap(base_, size_);
}

void ReservedMemory::commit(size_t offset, size_t bytes) {
  if (bytes == 0) return;
  STRATA_ASSERT(offset + bytes <= size_, "commit past the end of the reservation");
  const size_t ps = page_size();
  const size_t b = offset / ps * ps;
  const size_t e = round_up(offset + bytes, ps);
  const bool ok = file_ ? ::mmap(base_ + b, e - b, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, file_->fd,
                                 static_cast<off_t>(b)) != MAP_FAILED
                        : ::mprotect(base_ + b, e - b, PROT_READ | PROT_WRITE) == 0;
  if (!ok)
    fail("cannot commit {:.1f} MiB of memory: {}", static_cast<double>(e - b) / (1 << 20), std::strerror(errno));
}

void ReservedMemory::decommit(size_t offset, size_t bytes) {
  STRATA_ASSERT(offset + bytes <= size_, "decommit past the end of the reservation");
  const size_t ps = page_size();
  const size_t b = round_up(offset, ps);
  const size_t e = (offset + bytes) / ps * ps;
  if (e <= b) return;
  if (file_) {
    unmap(b, e - b);
    file_->punch(b, e - b);
    return;
  }
  ::madvise(base_ + b, e - b, MADV_DONTNEED);
  ::mprotect(base_ + b, e - b, PROT_NONE);
}

void ReservedMemory::map_private(size_t offset, size_t bytes, const SharedFd& file) {
  const size_t ps = page_size();
  STRATA_ASSERT(offset % ps == 0 && bytes % ps == 0 && offset + bytes <= size_, "map_private of whole pages");
  if (bytes == 0) return;
  if (::mmap(base_ + offset, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED, file.fd,
             static_cast<off_t>(offset)) == MAP_FAILED)
    fail("cannot map {:.1f} MiB of shared KV memory: {}", static_cast<double>(bytes) / (1 << 20),
         std::strerror(errno));
}

void ReservedMemory::unmap(size_t offset, size_t bytes) {
  const size_t ps = page_size();
  STRATA_ASSERT(offset % ps == 0 && bytes % ps == 0 && offset + bytes <= size_, "unmap of whole pages");
  if (bytes == 0) return;
  // A fresh PROT_NONE anonymous mapping in place: the address range stays reserved.
  if (::mmap(base_ + offset, bytes, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0) ==
      MAP_FAILED)
    fail("cannot release {:.1f} MiB of memory: {}", static_cast<double>(bytes) / (1 << 20), std::strerror(errno));
}

void ReservedMemory::renew_file() {
  STRATA_ASSERT(file_ != nullptr, "renew_file of an anonymous reservation");
  file_ = new_memfd(size_);
  if (!file_) fail("cannot create a memory file: {}", std::strerror(errno));
}

namespace {
// -1: not yet read from the environment; 0: off (STRATA_HUGE_PAGES=0, or the kernel refused); 1: on.
std::atomic<int> g_huge{-1};
std::atomic<bool> g_huge_worked{false};  // a collapse succeeded once: later EINVALs are about the range
}  // namespace

bool ReservedMemory::huge_pages_enabled() {
  int v = g_huge.load(std::memory_order_relaxed);
  if (v < 0) {
    const char* e = std::getenv("STRATA_HUGE_PAGES");
    v = e && e[0] == '0' ? 0 : 1;
    g_huge.store(v, std::memory_order_relaxed);
  }
  return v == 1;
}

size_t ReservedMemory::collapse_huge(size_t offset, size_t bytes) {
#ifndef MADV_COLLAPSE
  constexpr int MADV_COLLAPSE = 25;  // Linux 6.1 (older headers lack it; older kernels answer EINVAL)
#endif
  STRATA_ASSERT(offset + bytes <= size_, "collapse_huge past the end of the reservation");
  if (!huge_pages_enabled()) return 0;
  const size_t b = round_up(offset, kHugePage), e = (offset + bytes) / kHugePage * kHugePage;
  size_t done = 0;
  for (size_t c = b; c < e; c += kHugePage) {
    if (::madvise(base_ + c, kHugePage, MADV_COLLAPSE) == 0) {
      done += kHugePage;
      g_huge_worked.store(true, std::memory_order_relaxed);
    } else if ((errno == EINVAL || errno == EPERM) && !g_huge_worked.load(std::memory_order_relaxed)) {
      // No MADV_COLLAPSE on this kernel (or THP "deny"): stop asking
      g_huge.store(0, std::memory_order_relaxed);
      break;
    }  // EAGAIN / ENOMEM: no huge page free now; the chunk stays in small pages
  }
  return done;
}

namespace {
// Sum of one "<field>: N kB" line of /proc/self/smaps over the mappings whose line names `mapping_name`
// (all of them, from smaps_rollup, without a name).
size_t sum_smaps_field(std::string_view mapping_name, const char* field) {
  std::FILE* f = std::fopen(mapping_name.empty() ? "/proc/self/smaps_rollup" : "/proc/self/smaps", "r");
  if (!f) return 0;
  char line[512];
  size_t total = 0, kib = 0;
  bool in = mapping_name.empty();
  while (std::fgets(line, sizeof line, f)) {
    // A mapping's header line starts with its address range "lo-hi perms ...": it opens a new mapping.
    unsigned long lo = 0, hi = 0;
    if (!mapping_name.empty() && std::sscanf(line, "%lx-%lx ", &lo, &hi) == 2) {
      in = std::string_view(line).find(mapping_name) != std::string_view::npos;
      continue;
    }
    const std::string_view l(line);
    if (in && l.starts_with(field) && l.size() > std::strlen(field) && l[std::strlen(field)] == ':' &&
        std::sscanf(line + std::strlen(field) + 1, " %zu kB", &kib) == 1)
      total += kib;
  }
  std::fclose(f);
  return total * 1024;
}
}  // namespace

size_t process_pss_bytes(std::string_view mapping_name) { return sum_smaps_field(mapping_name, "Pss"); }

size_t process_huge_shmem_bytes(std::string_view mapping_name) {
  return sum_smaps_field(mapping_name, "ShmemPmdMapped");
}

}  // namespace strata
