#include "storage/direct_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <utility>

#include "core/error.h"
#include "core/reserved_memory.h"

namespace strata::storage {

namespace {
int64_t ns(const struct timespec& t) { return static_cast<int64_t>(t.tv_sec) * 1000000000 + t.tv_nsec; }
}  // namespace

AlignedBuffer::AlignedBuffer(size_t bytes) {
  if (bytes == 0) return;
  size_ = (bytes + kDirectAlign - 1) / kDirectAlign * kDirectAlign;
  // Ring slots and load buffers are megabytes: with transparent huge pages an O_DIRECT read pins a few
  // 2 MiB pages instead of thousands of 4 KiB ones (get_user_pages was 6% of a streamed decode's profile),
  // and the disk gets one request per 2 MiB read instead of three (a 2 MiB read into 4 KiB pages is 512
  // segments, more than a virtio queue's 254). The start is 2 MiB-aligned so every whole 2 MiB of the
  // buffer can be a huge page; the size is not rounded up (that would count against --mem).
  const bool huge = size_ >= 2 * ReservedMemory::kHugePage;
  constexpr int kProt = PROT_READ | PROT_WRITE, kFlags = MAP_PRIVATE | MAP_ANONYMOUS;
  void* p = huge ? mmap_huge_aligned(size_, kProt, kFlags) : mmap(nullptr, size_, kProt, kFlags, -1, 0);
  if (p == MAP_FAILED) fail("cannot allocate {} bytes for model weights: {}", size_, std::strerror(errno));
  data_ = static_cast<uint8_t*>(p);
#ifdef MADV_HUGEPAGE
  if (huge) ::madvise(data_, size_, MADV_HUGEPAGE);
#endif
}

AlignedBuffer::AlignedBuffer(AlignedBuffer&& o) noexcept
    : data_(std::exchange(o.data_, nullptr)), size_(std::exchange(o.size_, 0)) {}

AlignedBuffer& AlignedBuffer::operator=(AlignedBuffer&& o) noexcept {
  if (this != &o) {
    if (data_) munmap(data_, size_);
    data_ = std::exchange(o.data_, nullptr);
    size_ = std::exchange(o.size_, 0);
  }
  return *this;
}

AlignedBuffer::~AlignedBuffer() {
  if (data_) munmap(data_, size_);
}

AlignedSpan aligned_span(uint64_t offset, size_t bytes) {
  AlignedSpan s;
  s.offset = offset / kDirectAlign * kDirectAlign;
  s.skip = static_cast<size_t>(offset - s.offset);
  const uint64_t end = (offset + bytes + kDirectAlign - 1) / kDirectAlign * kDirectAlign;
  s.bytes = static_cast<size_t>(end - s.offset);
  return s;
}

DirectFile DirectFile::open(const std::string& path) {
  DirectFile f;
  f.path_ = path;
  f.fd_ = ::open(path.c_str(), O_RDONLY | O_DIRECT | O_CLOEXEC);
  f.direct_ = f.fd_ >= 0;
  if (f.fd_ < 0 && errno == EINVAL) f.fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (f.fd_ < 0) fail("cannot open the model file '{}' for streaming: {}", path, std::strerror(errno));
  struct stat st {};
  if (fstat(f.fd_, &st) != 0) fail("cannot stat the model file '{}': {}", path, std::strerror(errno));
  f.size_ = static_cast<uint64_t>(st.st_size);
  f.mtime_ns_ = ns(st.st_mtim);
  f.ctime_ns_ = ns(st.st_ctim);
  return f;
}

DirectFile::DirectFile(DirectFile&& o) noexcept
    : path_(std::move(o.path_)),
      fd_(std::exchange(o.fd_, -1)),
      direct_(o.direct_),
      size_(o.size_),
      mtime_ns_(o.mtime_ns_),
      ctime_ns_(o.ctime_ns_) {
  bytes_read_ = o.bytes_read_.load();
  reads_ = o.reads_.load();
}

DirectFile& DirectFile::operator=(DirectFile&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    path_ = std::move(o.path_);
    fd_ = std::exchange(o.fd_, -1);
    direct_ = o.direct_;
    size_ = o.size_;
    mtime_ns_ = o.mtime_ns_;
    ctime_ns_ = o.ctime_ns_;
    bytes_read_ = o.bytes_read_.load();
    reads_ = o.reads_.load();
  }
  return *this;
}

DirectFile::~DirectFile() {
  if (fd_ >= 0) ::close(fd_);
}

bool DirectFile::changed_since_open() const {
  struct stat st {};
  if (fd_ < 0 || fstat(fd_, &st) != 0) return true;
  return static_cast<uint64_t>(st.st_size) != size_ || ns(st.st_mtim) != mtime_ns_ || ns(st.st_ctim) != ctime_ns_;
}

void DirectFile::drop_page_cache() const {
  if (fd_ >= 0) posix_fadvise(fd_, 0, 0, POSIX_FADV_DONTNEED);
}

const uint8_t* DirectFile::read(uint64_t offset, size_t bytes, uint8_t* buf, const std::string& what) const {
  STRATA_ASSERT(fd_ >= 0, "DirectFile::read on a closed file");
  STRATA_ASSERT(reinterpret_cast<uintptr_t>(buf) % kDirectAlign == 0, "DirectFile::read: unaligned buffer");
  const AlignedSpan s = aligned_span(offset, bytes);
  const size_t need = s.skip + bytes;  // the aligned tail past the end of the file may come back short
  size_t got = 0;
  while (got < s.bytes) {
    const ssize_t r = ::pread(fd_, buf + got, s.bytes - got, static_cast<off_t>(s.offset + got));
    if (r < 0) {
      if (errno == EINTR) continue;
      fail("reading {} from the model file '{}' (offset {}, {} bytes) failed: {}", what, path_, offset, bytes,
           std::strerror(errno));
    }
    if (r == 0) break;  // end of file
    got += static_cast<size_t>(r);
    if (got >= need && got % kDirectAlign != 0) break;  // a short read at the end of the file
  }
  if (got < need)
    fail("reading {} from the model file '{}': {} bytes at offset {} are past its end ({} bytes readable): "
         "the file was truncated or replaced while strata was using it; do not modify a model file in use",
         what, path_, bytes, offset, s.offset + got);
  if (!direct_) posix_fadvise(fd_, static_cast<off_t>(s.offset), static_cast<off_t>(s.bytes), POSIX_FADV_DONTNEED);
  bytes_read_.fetch_add(got, std::memory_order_relaxed);
  reads_.fetch_add(1, std::memory_order_relaxed);
  return buf + s.skip;
}

}  // namespace strata::storage
