// Reading a model file without the page cache: O_DIRECT reads into page-aligned anonymous buffers, so the
// bytes strata streams are charged to strata's own memory (the ring), never to the kernel's page cache
// (a memory cgroup counts cached file pages against its limit and evicts them in LRU order: the thrash
// that plain mmap suffers under a budget).
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>

namespace strata::storage {

// O_DIRECT needs the file offset, the length and the memory address aligned to the device's logical block
// (512 B or 4 KiB): reads are widened to this.
inline constexpr size_t kDirectAlign = 4096;

// Page-aligned anonymous memory (mmap), returned to the system on destruction. No pages are touched until
// written.
class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  explicit AlignedBuffer(size_t bytes);  // throws strata::Error when the system refuses
  AlignedBuffer(AlignedBuffer&& o) noexcept;
  AlignedBuffer& operator=(AlignedBuffer&& o) noexcept;
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;
  ~AlignedBuffer();
  uint8_t* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

// [offset, offset + bytes) widened to kDirectAlign: read `bytes` from `offset`, the data starts `skip` in.
struct AlignedSpan {
  uint64_t offset = 0;
  size_t bytes = 0;
  size_t skip = 0;
};
AlignedSpan aligned_span(uint64_t offset, size_t bytes);

// A read-only file opened for direct I/O. pread is thread-safe: one DirectFile serves the loader, the
// streaming thread and the embedding gather at once.
class DirectFile {
 public:
  // Throws strata::Error naming the path when it cannot be opened. Filesystems without O_DIRECT (tmpfs)
  // fall back to buffered reads that drop the cached pages after each read (direct() is then false).
  static DirectFile open(const std::string& path);
  DirectFile() = default;
  DirectFile(DirectFile&& o) noexcept;
  DirectFile& operator=(DirectFile&& o) noexcept;
  DirectFile(const DirectFile&) = delete;
  DirectFile& operator=(const DirectFile&) = delete;
  ~DirectFile();

  // Reads [offset, offset + bytes) (any alignment) into `buf`, which must be kDirectAlign-aligned and hold
  // aligned_span(offset, bytes).bytes; returns where the requested bytes start in buf. Throws strata::Error
  // naming `what`, the offset and the file when the read fails or comes back short (a truncated file).
  const uint8_t* read(uint64_t offset, size_t bytes, uint8_t* buf, const std::string& what) const;

  // Drops the file's pages from the page cache (clean pages: nothing is lost).
  void drop_page_cache() const;

  // Whether the file's size, modification or status-change time differ from when it was opened (fstat):
  // any write or truncation through the filesystem changes them. Cheap (one system call): the streamer
  // asks at every read and then checks every byte it reads (weight_streamer.h).
  bool changed_since_open() const;

  const std::string& path() const { return path_; }
  uint64_t size_at_open() const { return size_; }
  bool direct() const { return direct_; }
  uint64_t bytes_read() const { return bytes_read_.load(std::memory_order_relaxed); }  // since open
  uint64_t reads() const { return reads_.load(std::memory_order_relaxed); }

 private:
  std::string path_;
  int fd_ = -1;
  bool direct_ = false;
  uint64_t size_ = 0;
  int64_t mtime_ns_ = 0, ctime_ns_ = 0;  // at open
  mutable std::atomic<uint64_t> bytes_read_{0}, reads_{0};
};

}  // namespace strata::storage
