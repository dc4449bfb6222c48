#include "gguf/stream_writer.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <algorithm>
#include <filesystem>

#include "core/error.h"
#include "tensor/dtype.h"

namespace strata::gguf {
namespace {

template <class T>
void put_le(std::vector<uint8_t>& b, T v) {  // the host is little-endian (checked by the GGUF reader)
  const auto* p = reinterpret_cast<const uint8_t*>(&v);
  b.insert(b.end(), p, p + sizeof v);
}
void put_u32(std::vector<uint8_t>& b, uint32_t v) { put_le(b, v); }
void put_u64(std::vector<uint8_t>& b, uint64_t v) { put_le(b, v); }
uint64_t pad_to(uint64_t n, uint64_t align) { return (align - n % align) % align; }

}  // namespace

StreamWriter::StreamWriter(const std::string& path, const Writer& metadata, std::vector<TensorDecl> tensors,
                           uint64_t alignment)
    : path_(path), tensors_(std::move(tensors)), alignment_(alignment) {
  if (alignment_ == 0 || (alignment_ & (alignment_ - 1)) != 0)
    fail("gguf stream writer: alignment {} is not a power of two", alignment_);
  // Header: magic, version, n_tensors, n_kv and the key/values, as gguf::Writer serialises them for a file
  // without tensors; the tensor count is patched and the tensor index appended (GGUF v3 layout).
  std::vector<uint8_t> h = metadata.to_bytes();
  if (h.size() < 24) fail("gguf stream writer: metadata header is too short");
  uint64_t n_existing = 0;
  std::memcpy(&n_existing, h.data() + 8, 8);
  if (n_existing != 0) fail("gguf stream writer: the metadata Writer must not hold tensors");
  const uint64_t n = tensors_.size();
  std::memcpy(h.data() + 8, &n, 8);

  uint64_t offset = 0;
  for (const auto& t : tensors_) {
    const TypeTraits* tr = find_traits(t.type);
    if (!tr) fail("gguf stream writer: tensor '{}': unknown type id {}", t.name, t.type);
    if (t.ne.empty() || t.ne.size() > 4)
      fail("gguf stream writer: tensor '{}': {} dimensions, expected 1 to 4", t.name, t.ne.size());
    uint64_t rows = 1;
    for (size_t d = 0; d < t.ne.size(); ++d) {
      if (t.ne[d] <= 0) fail("gguf stream writer: tensor '{}': dimension {} is {}", t.name, d, t.ne[d]);
      if (d > 0) rows *= static_cast<uint64_t>(t.ne[d]);
    }
    if (t.ne[0] % tr->block_size != 0)
      fail("gguf stream writer: tensor '{}': row length {} is not a multiple of the {} block size {}", t.name,
           t.ne[0], tr->name, tr->block_size);
    const uint64_t nb = static_cast<uint64_t>(t.ne[0] / tr->block_size) * tr->type_size * rows;
    nbytes_.push_back(nb);
    put_u64(h, t.name.size());
    h.insert(h.end(), t.name.begin(), t.name.end());
    put_u32(h, static_cast<uint32_t>(t.ne.size()));
    for (int64_t d : t.ne) put_u64(h, static_cast<uint64_t>(d));
    put_u32(h, t.type);
    put_u64(h, offset);
    offset += nb + pad_to(nb, alignment_);
  }
  const uint64_t header_pad = n ? pad_to(h.size(), alignment_) : 0;
  file_size_ = h.size() + header_pad + offset;  // every tensor is padded, the last too (as gguf::Writer)

  tmp_ = path_ + ".tmp" + std::to_string(::getpid());
  f_ = std::fopen(tmp_.c_str(), "wb");
  if (!f_) fail("gguf stream writer: cannot create '{}': {}", tmp_, std::strerror(errno));
  std::setvbuf(f_, nullptr, _IOFBF, 1 << 20);
  put(h.data(), h.size());
  pad(header_pad);
}

StreamWriter::~StreamWriter() {
  if (f_) std::fclose(f_);
  if (!done_ && !tmp_.empty()) std::remove(tmp_.c_str());
}

void StreamWriter::put(const void* data, size_t n) {
  if (n && std::fwrite(data, 1, n, f_) != n)
    fail("gguf stream writer: cannot write '{}': {}", tmp_, std::strerror(errno));
}

void StreamWriter::pad(uint64_t n) {
  static const uint8_t zeros[256] = {};
  while (n > 0) {
    const size_t k = static_cast<size_t>(std::min<uint64_t>(n, sizeof zeros));
    put(zeros, k);
    n -= k;
  }
}

void StreamWriter::write(const void* data, size_t n) {
  const auto* p = static_cast<const uint8_t*>(data);
  while (n > 0) {
    if (cur_ >= tensors_.size())
      fail("gguf stream writer: more tensor data given than the {} tensors hold", tensors_.size());
    const uint64_t k = std::min<uint64_t>(n, nbytes_[cur_] - written_);
    put(p, static_cast<size_t>(k));
    p += k, n -= static_cast<size_t>(k), written_ += k;
    if (written_ == nbytes_[cur_]) {
      pad(pad_to(nbytes_[cur_], alignment_));
      written_ = 0;
      ++cur_;
    }
  }
}

void StreamWriter::finish() {
  if (done_) return;
  if (cur_ < tensors_.size())
    fail("gguf stream writer: tensor '{}' got {} of its {} bytes", tensors_[cur_].name, written_, nbytes_[cur_]);
  const bool ok = std::fflush(f_) == 0;
  const bool closed = std::fclose(f_) == 0;
  f_ = nullptr;
  if (!ok || !closed) fail("gguf stream writer: cannot write '{}': {}", tmp_, std::strerror(errno));
  std::error_code ec;
  std::filesystem::rename(tmp_, path_, ec);
  if (ec) fail("gguf stream writer: cannot rename '{}' to '{}': {}", tmp_, path_, ec.message());
  done_ = true;
}

}  // namespace strata::gguf
