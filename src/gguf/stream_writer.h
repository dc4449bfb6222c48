// Streams a GGUF v3 file whose tensor data is produced piece by piece, so a file far larger than memory
// (a 7B model) can be written: the header (metadata from a gguf::Writer, then the tensor index) goes first,
// then each tensor's bytes in declaration order, each tensor aligned to `alignment`.
// The file is written beside `path` under a temporary name and renamed into place by finish().
#pragma once
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "gguf/gguf.h"

namespace strata::gguf {

struct TensorDecl {
  std::string name;
  uint32_t type = 0;         // ggml type id
  std::vector<int64_t> ne;   // ne[0] is the row length
};

class StreamWriter {
 public:
  // `metadata` holds only key/values (its tensors are ignored) and must not set general.alignment to
  // anything but `alignment`. Throws strata::Error on an invalid tensor (unknown type, bad shape, a row
  // length that is not a multiple of the type's block) or when the file cannot be created.
  StreamWriter(const std::string& path, const Writer& metadata, std::vector<TensorDecl> tensors,
               uint64_t alignment = 32);
  ~StreamWriter();  // removes the temporary file unless finish() succeeded
  StreamWriter(const StreamWriter&) = delete;
  StreamWriter& operator=(const StreamWriter&) = delete;

  // Appends bytes to the tensor being written; moves to the next tensor when one is complete.
  // Throws strata::Error when more bytes are given than the tensors hold, or on I/O errors.
  void write(const void* data, size_t n);
  // Checks every tensor got all its bytes, flushes, closes and renames the file to `path`.
  void finish();

  const std::vector<TensorDecl>& tensors() const { return tensors_; }
  uint64_t tensor_nbytes(size_t i) const { return nbytes_.at(i); }
  size_t current_tensor() const { return cur_; }  // index of the tensor the next write() goes to
  uint64_t file_size() const { return file_size_; }  // size of the finished file

 private:
  void put(const void* data, size_t n);
  void pad(uint64_t n);
  std::string path_, tmp_;
  std::FILE* f_ = nullptr;
  std::vector<TensorDecl> tensors_;
  std::vector<uint64_t> nbytes_;
  uint64_t alignment_;
  uint64_t file_size_ = 0;
  size_t cur_ = 0;        // tensor being written
  uint64_t written_ = 0;  // bytes of tensor cur_ written so far
  bool done_ = false;
};

}  // namespace strata::gguf
