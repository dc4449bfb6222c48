// A read-only view of a whole file: mmap when possible, else read into memory with pread.
#pragma once
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace strata {

class MappedFile {
 public:
  enum class Mode { kMmap, kRead };
  // Throws strata::Error naming the path and the system error when the file cannot be opened.
  // kMmap falls back to kRead if mmap fails (e.g. on a pipe or a filesystem without mmap).
  static MappedFile open(const std::string& path, Mode mode = Mode::kMmap);

  MappedFile() = default;
  MappedFile(MappedFile&& o) noexcept;
  MappedFile& operator=(MappedFile&& o) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile();

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  std::span<const uint8_t> bytes() const { return {data_, size_}; }
  const std::string& path() const { return path_; }
  bool is_mmapped() const { return mapped_; }

 private:
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  bool mapped_ = false;
  std::vector<uint8_t> owned_;  // kRead mode storage
};

}  // namespace strata
