// GGUF (versions 2 and 3): metadata, tensor index and tensor data, validated against the file's size.
// Layout reference: ggml's docs/gguf.md. All multi-byte values little-endian.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/mapped_file.h"

namespace strata::gguf {

// Metadata value types, with GGUF's on-disk ids.
enum class ValueType : uint32_t {
  kU8 = 0, kI8 = 1, kU16 = 2, kI16 = 3, kU32 = 4, kI32 = 5, kF32 = 6, kBool = 7,
  kString = 8, kArray = 9, kU64 = 10, kI64 = 11, kF64 = 12,
};
const char* value_type_name(ValueType t);

// One metadata value. Scalars keep their exact type; arrays keep their element type and may nest.
struct Value {
  ValueType type = ValueType::kU8;
  uint64_t u = 0;          // kU8/kU16/kU32/kU64/kBool
  int64_t i = 0;           // kI8/kI16/kI32/kI64
  double f = 0;            // kF32/kF64
  std::string str;         // kString
  ValueType elem_type = ValueType::kU8;  // kArray: element type
  std::vector<Value> arr;  // kArray: elements

  bool is_int() const;     // any integer type (not bool)
  bool is_float() const;   // kF32/kF64
  // Conversions that throw strata::Error naming `what` when the type does not fit.
  int64_t as_int(const std::string& what) const;
  double as_float(const std::string& what) const;  // ints convert too
  const std::string& as_string(const std::string& what) const;
  bool as_bool(const std::string& what) const;
  std::string to_string(size_t max_elems = 8) const;  // human-readable, arrays abbreviated

  bool operator==(const Value& o) const;
};

struct TensorInfo {
  std::string name;
  uint32_t type = 0;             // ggml type id (see tensor/dtype.h); validated to be a known type
  std::vector<int64_t> ne;       // dims, ne[0] is the contiguous (row) dimension; 1..4 dims
  uint64_t offset = 0;           // byte offset relative to the start of the tensor data section
  uint64_t nbytes = 0;           // size in bytes (overflow-checked)
  const uint8_t* data = nullptr; // points into the mapped file (valid while the File lives)
  int64_t n_elements() const;
  int64_t n_rows() const;        // product of ne[1..]
};

struct ReadOptions {
  MappedFile::Mode mode = MappedFile::Mode::kMmap;
  bool progress = false;  // show a progress bar while parsing large files (terminal only)
};

// A parsed GGUF file. Throws strata::Error on any malformed input: the message names the field, its byte
// offset and what was expected, e.g. "gguf: tensor 'blk.0.attn_q.weight' (header byte 1234): data
// [offset 4096, 1 MiB) ends past the end of the file (900 KiB): the file is truncated".
class File {
 public:
  static File open(const std::string& path, const ReadOptions& opts = {});
  // Parses bytes in memory (used by the fuzzer and tests); the span must outlive the File.
  static File parse(std::span<const uint8_t> bytes, const std::string& name = "<memory>");

  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }  // absolute file offset of the tensor data
  size_t file_size() const { return bytes_.size(); }
  const std::string& path() const { return path_; }

  // Metadata in file order.
  const std::vector<std::pair<std::string, Value>>& metadata() const { return kv_; }
  const Value* find(const std::string& key) const;
  bool has(const std::string& key) const { return find(key) != nullptr; }
  // Typed getters: the default when absent; strata::Error naming the key when present with a wrong type.
  int64_t get_int(const std::string& key, int64_t def) const;
  double get_float(const std::string& key, double def) const;
  bool get_bool(const std::string& key, bool def) const;
  std::string get_string(const std::string& key, const std::string& def = "") const;
  // A token id or other index where llama.cpp writes u32 0xFFFFFFFF (or -1) for "none": `def` when the key
  // is absent or holds that sentinel, the value otherwise; error when present but not an integer.
  int64_t get_id(const std::string& key, int64_t def = -1) const;
  // Required variants: strata::Error "missing required key K" when absent.
  int64_t require_int(const std::string& key) const;
  std::string require_string(const std::string& key) const;
  // Arrays (empty when absent; error when present with another element type).
  std::vector<std::string> get_string_array(const std::string& key) const;
  std::vector<float> get_f32_array(const std::string& key) const;
  std::vector<int32_t> get_i32_array(const std::string& key) const;

  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const TensorInfo* find_tensor(const std::string& name) const;
  // The whole file's bytes (mapped or caller-owned), valid while the File lives.
  std::span<const uint8_t> bytes() const { return bytes_; }

 private:
  std::string path_;
  std::shared_ptr<MappedFile> mapped_;  // null when parsing caller-owned bytes
  std::span<const uint8_t> bytes_;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  uint64_t data_offset_ = 0;
  std::vector<std::pair<std::string, Value>> kv_;
  std::map<std::string, size_t> kv_index_;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t> tensor_index_;
  friend class Parser;
};

// Writes GGUF v3. Metadata and tensors are written in the order added; data aligned to `alignment`
// (taken from general.alignment when set). read -> write -> read gives identical metadata and bytes.
class Writer {
 public:
  void set(const std::string& key, Value v);          // replaces an existing key in place
  void add_tensor(const std::string& name, uint32_t type, std::vector<int64_t> ne,
                  std::span<const uint8_t> data);     // data is copied at write() time, must stay valid
  void write(const std::string& path) const;          // throws strata::Error on I/O errors
  std::vector<uint8_t> to_bytes() const;
  // Streams the file to `sink` in order (header, padding, tensor data); throws strata::Error on invalid
  // metadata (a value that does not fit its type, an array element of another type, a bad alignment).
  void write_to(const std::function<void(const void* data, size_t size)>& sink) const;

  // Convenience constructors for values.
  static Value u32(uint32_t v);
  static Value i32(int32_t v);
  static Value u64(uint64_t v);
  static Value f32(float v);
  static Value boolean(bool v);
  static Value string(std::string v);
  static Value string_array(const std::vector<std::string>& v);
  static Value f32_array(const std::vector<float>& v);
  static Value i32_array(const std::vector<int32_t>& v);

 private:
  struct PendingTensor {
    std::string name;
    uint32_t type;
    std::vector<int64_t> ne;
    std::span<const uint8_t> data;
  };
  std::vector<std::pair<std::string, Value>> kv_;
  std::vector<PendingTensor> tensors_;
};

}  // namespace strata::gguf
