#include "serve/swap_store.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <span>

#include "core/error.h"

namespace strata::serve {

// ---- KvSizer ----

KvSizer::KvSizer(const kv::KvCacheConfig& cfg) {
  kv::KvCache probe(cfg);
  empty_ = probe.committed_bytes();
  size_t last = empty_;
  for (int64_t n = 1; n <= cfg.n_ctx; ++n) {
    probe.reserve(n);  // a no-op unless n crosses a commit chunk
    const size_t b = probe.committed_bytes();
    if (b != last) steps_.emplace_back(n, b), last = b;
  }
}

size_t KvSizer::bytes(int64_t n) const {
  if (n <= 0) return empty_;
  // The last step whose first n is <= n.
  auto it = std::upper_bound(steps_.begin(), steps_.end(), n,
                             [](int64_t v, const std::pair<int64_t, size_t>& s) { return v < s.first; });
  return it == steps_.begin() ? empty_ : std::prev(it)->second;
}

// ---- SwapStore ----

namespace {

struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

struct Map {
  void* p = MAP_FAILED;
  size_t n = 0;
  ~Map() {
    if (p != MAP_FAILED) ::munmap(p, n);
  }
};

}  // namespace

SwapStore::SwapStore(std::string dir) : dir_(std::move(dir)) {
  if (dir_.empty()) return;
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(dir_, ec);
  if (ec || !fs::is_directory(dir_, ec))
    fail("--swap-dir {}: cannot create the folder ({}): give a writable folder", dir_, ec ? ec.message() : "not a folder");
  // Can a file be made there? (Better to learn it now than at the first preemption.)
  const std::string probe = (fs::path(dir_) / fmt::format("strata-swap-{}-probe", ::getpid())).string();
  const int fd = ::open(probe.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
  if (fd < 0) fail("--swap-dir {}: cannot create a file there ({}): give a writable folder", dir_, std::strerror(errno));
  ::close(fd);
  ::unlink(probe.c_str());
}

SwapStore::~SwapStore() = default;

SwapStore::Image::~Image() {
  if (!path_.empty()) ::unlink(path_.c_str());
}

std::unique_ptr<SwapStore::Image> SwapStore::save(const kv::KvCache& kv) {
  std::unique_ptr<Image> img(new Image);
  img->size_ = kv.saved_size();
  if (!dir_.empty() && img->size_ > 0) {
    const std::string path =
        (std::filesystem::path(dir_) / fmt::format("strata-swap-{}-{}.kv", ::getpid(), ++counter_)).string();
    std::string err;
    {
      Fd f;
      f.fd = ::open(path.c_str(), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600);
      if (f.fd < 0) {
        err = fmt::format("cannot create {}: {}", path, std::strerror(errno));
      } else {
        img->path_ = path;  // from here on the file is deleted with the image, whatever happens
        Map m;
        m.n = img->size_;
        // posix_fallocate: the blocks exist before the mapping is written (a full disk fails here, not with
        // a SIGBUS in the middle of save()).
        if (const int e = ::posix_fallocate(f.fd, 0, static_cast<off_t>(img->size_)); e != 0) {
          err = fmt::format("cannot allocate {} bytes in {}: {}", img->size_, path, std::strerror(e));
        } else if ((m.p = ::mmap(nullptr, m.n, PROT_READ | PROT_WRITE, MAP_SHARED, f.fd, 0)) == MAP_FAILED) {
          err = fmt::format("cannot map {}: {}", path, std::strerror(errno));
        } else {
          kv.save(std::span<std::byte>(static_cast<std::byte*>(m.p), m.n));
          // Start writing the image back now, in one sequential run, without waiting for it.
          ::sync_file_range(f.fd, 0, static_cast<off_t>(m.n), SYNC_FILE_RANGE_WRITE);
        }
      }
    }
    if (err.empty()) return img;
    if (!img->path_.empty()) ::unlink(img->path_.c_str()), img->path_.clear();
    if (!warned_) {
      std::fprintf(stderr, "strata: --swap-dir: %s; preempted sequences are kept in RAM instead\n", err.c_str());
      warned_ = true;
    }
  }
  img->ram_.reset(new std::byte[std::max<size_t>(img->size_, 1)]);  // uninitialized: save() writes it all
  kv.save(std::span<std::byte>(img->ram_.get(), img->size_));
  return img;
}

void SwapStore::load(const Image& img, kv::KvCache& kv) {
  if (!img.on_disk()) {
    kv.restore(std::span<const std::byte>(img.ram_.get(), img.size_));
    return;
  }
  Fd f;
  f.fd = ::open(img.path_.c_str(), O_RDONLY | O_CLOEXEC);
  if (f.fd < 0) fail("cannot open the swapped KV cache {}: {}", img.path_, std::strerror(errno));
  Map m;
  m.n = img.size_;
  m.p = ::mmap(nullptr, m.n, PROT_READ, MAP_PRIVATE, f.fd, 0);
  if (m.p == MAP_FAILED) fail("cannot map the swapped KV cache {}: {}", img.path_, std::strerror(errno));
  ::madvise(m.p, m.n, MADV_SEQUENTIAL);
  ::madvise(m.p, m.n, MADV_WILLNEED);  // read ahead the whole image
  kv.restore(std::span<const std::byte>(static_cast<const std::byte*>(m.p), m.n));
}

}  // namespace strata::serve
