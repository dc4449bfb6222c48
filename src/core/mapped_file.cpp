#include "core/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "core/error.h"

namespace strata {

namespace {
struct Fd {
  int fd = -1;
  ~Fd() { if (fd >= 0) ::close(fd); }
};
}  // namespace

MappedFile MappedFile::open(const std::string& path, Mode mode) {
  MappedFile f;
  f.path_ = path;
  Fd fd{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  if (fd.fd < 0) fail("cannot open '{}': {}", path, std::strerror(errno));
  struct stat st {};
  if (::fstat(fd.fd, &st) != 0) fail("cannot stat '{}': {}", path, std::strerror(errno));
  if (S_ISDIR(st.st_mode)) fail("'{}' is a directory, not a file", path);
  f.size_ = static_cast<size_t>(st.st_size);
  if (f.size_ == 0) {
    f.data_ = nullptr;
    return f;
  }
  if (mode == Mode::kMmap) {
    void* p = ::mmap(nullptr, f.size_, PROT_READ, MAP_PRIVATE, fd.fd, 0);
    if (p != MAP_FAILED) {
      f.data_ = static_cast<const uint8_t*>(p);
      f.mapped_ = true;
      return f;
    }
  }
  f.owned_.resize(f.size_);
  size_t done = 0;
  while (done < f.size_) {
    ssize_t n = ::pread(fd.fd, f.owned_.data() + done, f.size_ - done, static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) fail("cannot read '{}' at byte {}: {}", path, done, n == 0 ? "unexpected end of file" : std::strerror(errno));
    done += static_cast<size_t>(n);
  }
  f.data_ = f.owned_.data();
  return f;
}

MappedFile::MappedFile(MappedFile&& o) noexcept { *this = std::move(o); }

MappedFile& MappedFile::operator=(MappedFile&& o) noexcept {
  if (this != &o) {
    if (mapped_ && data_) ::munmap(const_cast<uint8_t*>(data_), size_);
    path_ = std::move(o.path_);
    size_ = o.size_;
    mapped_ = o.mapped_;
    owned_ = std::move(o.owned_);
    data_ = mapped_ ? o.data_ : owned_.data();
    if (!mapped_ && owned_.empty()) data_ = nullptr;
    o.data_ = nullptr;
    o.size_ = 0;
    o.mapped_ = false;
  }
  return *this;
}

MappedFile::~MappedFile() {
  if (mapped_ && data_) ::munmap(const_cast<uint8_t*>(data_), size_);
}

}  // namespace strata
