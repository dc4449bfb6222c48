#include "core/reserved_memory.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "core/error.h"

namespace strata {

size_t ReservedMemory::page_size() {
  static const size_t ps = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  return ps;
}

ReservedMemory::ReservedMemory(size_t bytes) {
  if (bytes == 0) return;
  size_ = round_up(bytes, page_size());
  void* p = ::mmap(nullptr, size_, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED)
    fail("cannot reserve {:.1f} MiB of address space: {}", static_cast<double>(size_) / (1 << 20),
         std::strerror(errno));
  base_ = static_cast<uint8_t*>(p);
}

ReservedMemory::ReservedMemory(ReservedMemory&& o) noexcept
    : base_(std::exchange(o.base_, nullptr)), size_(std::exchange(o.size_, 0)) {}

ReservedMemory& ReservedMemory::operator=(ReservedMemory&& o) noexcept {
  if (this != &o) {
    if (base_) ::munmap(base_, size_);
    base_ = std::exchange(o.base_, nullptr);
    size_ = std::exchange(o.size_, 0);
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
  if (::mprotect(base_ + b, e - b, PROT_READ | PROT_WRITE) != 0)
    fail("cannot commit {:.1f} MiB of memory: {}", static_cast<double>(e - b) / (1 << 20),
         std::strerror(errno));
}

void ReservedMemory::decommit(size_t offset, size_t bytes) {
  STRATA_ASSERT(offset + bytes <= size_, "decommit past the end of the reservation");
  const size_t ps = page_size();
  const size_t b = round_up(offset, ps);
  const size_t e = (offset + bytes) / ps * ps;
  if (e <= b) return;
  ::madvise(base_ + b, e - b, MADV_DONTNEED);
  ::mprotect(base_ + b, e - b, PROT_NONE);
}

}  // namespace strata
