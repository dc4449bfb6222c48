// The GGUF parser: header, metadata, tensor index, data placement. Every read is checked against the
// bytes left in the file before it happens, every count is bounded by those bytes before anything is
// allocated, and every error names the field, its byte offset and what was expected.
#include <algorithm>
#include <cstring>
#include <numeric>

#include <fmt/ranges.h>

#include "core/error.h"
#include "core/progress.h"
#include "gguf/gguf.h"
#include "gguf/internal.h"
#include "tensor/dtype.h"

namespace strata::gguf {

using detail::printable;

class Parser {
 public:
  Parser(File& f, bool progress) : f_(f), b_(f.bytes_), size_(f.bytes_.size()), progress_(progress) {}

  void run() {
    read_header();
    std::unique_ptr<Progress> bar;
    if (progress_ && size_ >= (uint64_t{1} << 30) && Progress::enabled())
      bar = std::make_unique<Progress>("reading " + f_.path_, n_kv_ + n_tensors_);
    read_metadata(bar.get());
    read_alignment();
    read_tensor_infos(bar.get());
    place_data();
    if (bar) bar->finish();
  }

 private:
  File& f_;
  std::span<const uint8_t> b_;
  uint64_t size_;
  bool progress_;
  uint64_t pos_ = 0;
  uint64_t n_tensors_ = 0, n_kv_ = 0;
  // Where we are, for messages: the field ("key 'x'", "tensor 'y'") and, inside arrays, the element path.
  std::string where_ = "header";
  std::vector<uint64_t> path_;
  std::vector<uint64_t> tensor_header_pos_;  // byte where each tensor's info starts
  uint64_t alignment_key_pos_ = 0;           // byte where the general.alignment pair starts
  uint64_t array_elems_ = 0;                 // elements of all metadata arrays so far

  template <class... Args>
  [[noreturn]] void fail_at(uint64_t at, fmt::format_string<Args...> fmt_str, Args&&... args) const {
    std::string where = where_;
    for (uint64_t k : path_) where += fmt::format("[{}]", k);
    throw Error(fmt::format("gguf: {}: {} (byte {}): {}", f_.path_, where, at,
                            fmt::format(fmt_str, std::forward<Args>(args)...)));
  }

  uint64_t remaining() const { return size_ - pos_; }

  void need(uint64_t n, const char* what) const {
    if (n > remaining())
      fail_at(pos_, "expected {} ({} bytes) but only {} bytes are left in the file ({} bytes): "
              "the file is truncated or not a GGUF file", what, n, remaining(), size_);
  }

  template <class T>
  T read(const char* what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, b_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }

  std::string read_string(const char* what) {
    const uint64_t at = pos_;
    if (remaining() < 8)
      fail_at(pos_, "expected the length of a {} (u64, 8 bytes) but only {} bytes are left in the file ({} bytes): "
              "the file is truncated or not a GGUF file", what, remaining(), size_);
    const uint64_t len = read<uint64_t>(what);
    if (len > remaining())
      fail_at(at, "{} length {} is larger than the {} bytes left in the file ({} bytes): "
              "the file is truncated or not a GGUF file", what, len, remaining(), size_);
    std::string s(reinterpret_cast<const char*>(b_.data() + pos_), len);
    pos_ += len;
    return s;
  }

  ValueType read_value_type(const char* what) {
    const uint64_t at = pos_;
    const uint32_t t = read<uint32_t>(what);
    if (!detail::is_valid_value_type(t))
      fail_at(at, "unknown {} {}: expected 0..12 (u8, i8, u16, i16, u32, i32, f32, bool, string, array, "
              "u64, i64, f64)", what, t);
    return static_cast<ValueType>(t);
  }

  Value read_value(ValueType t, int depth) {
    Value v;
    v.type = t;
    switch (t) {
      case ValueType::kU8: v.u = read<uint8_t>("a u8 value"); break;
      case ValueType::kI8: v.i = read<int8_t>("an i8 value"); break;
      case ValueType::kU16: v.u = read<uint16_t>("a u16 value"); break;
      case ValueType::kI16: v.i = read<int16_t>("an i16 value"); break;
      case ValueType::kU32: v.u = read<uint32_t>("a u32 value"); break;
      case ValueType::kI32: v.i = read<int32_t>("an i32 value"); break;
      case ValueType::kU64: v.u = read<uint64_t>("a u64 value"); break;
      case ValueType::kI64: v.i = read<int64_t>("an i64 value"); break;
      case ValueType::kF32: v.f = read<float>("an f32 value"); break;
      case ValueType::kF64: v.f = read<double>("an f64 value"); break;
      case ValueType::kBool: v.u = read<uint8_t>("a bool value"); break;  // raw byte kept for round-trips
      case ValueType::kString: v.str = read_string("string"); break;
      case ValueType::kArray: read_array(v, depth + 1); break;
    }
    return v;
  }

  void read_array(Value& v, int depth) {
    if (depth > detail::kMaxArrayDepth)
      fail_at(pos_, "arrays nested {} deep: at most {} levels are allowed", depth, detail::kMaxArrayDepth);
    v.elem_type = read_value_type("array element type");
    const uint64_t at = pos_;
    const uint64_t count = read<uint64_t>("array element count");
    const uint64_t min_size = detail::min_encoded_size(v.elem_type);
    if (count > remaining() / min_size)
      fail_at(at, "array count {} of {} elements needs at least {} bytes each, but only {} bytes are left "
              "in the file ({} bytes): the file is truncated or not a GGUF file",
              count, value_type_name(v.elem_type), min_size, remaining(), size_);
    array_elems_ += count;  // a Value is ~100 bytes: cap the total, whatever the file's size
    if (array_elems_ > detail::kMaxArrayElements)
      fail_at(at, "metadata arrays hold more than {} elements in total (this array has {}): expected at most "
              "about a million (the largest vocabularies)", detail::kMaxArrayElements, count);
    v.arr.reserve(count);  // bounded by the bytes left and the cap, above
    path_.push_back(0);
    for (uint64_t k = 0; k < count; ++k) {
      path_.back() = k;
      v.arr.push_back(read_value(v.elem_type, depth));
    }
    path_.pop_back();
  }

  void read_header() {
    if (size_ < 4)
      fail_at(0, "the file is {} bytes, too small for a GGUF file: expected the magic \"GGUF\"", size_);
    const uint32_t magic = read<uint32_t>("the magic");
    if (magic != detail::kMagic) {
      const std::string_view m(reinterpret_cast<const char*>(b_.data()), 4);
      const bool legacy = m == "lmgg" || m == "fmgg" || m == "tjgg" || m == "algg";  // GGML/GGMF/GGJT/GGLA
      fail_at(0, "magic is \"{}\" (0x{:08x}): expected \"GGUF\": {}", printable(m), magic,
              legacy ? "this is a pre-GGUF llama.cpp file (GGML/GGJT): convert it to GGUF with llama.cpp"
                     : "not a GGUF file");
    }
    const uint32_t version = read<uint32_t>("the version (u32)");
    if (version == 1)
      fail_at(4, "GGUF version 1 is not supported (it used 32-bit counts and was replaced in 2023): "
              "expected version 2 or 3; re-convert the model with a current llama.cpp");
    if (version != 2 && version != 3) {
      if ((version & 0xffff) == 0 && (version >> 16) != 0)
        fail_at(4, "version 0x{:08x} looks byte-swapped: this is a big-endian GGUF file, which strata does "
                "not read: expected a little-endian GGUF version 2 or 3", version);
      fail_at(4, "unknown GGUF version {}: expected 2 or 3", version);
    }
    f_.version_ = version;
    n_tensors_ = read<uint64_t>("the tensor count (u64)");
    n_kv_ = read<uint64_t>("the metadata key-value count (u64)");
    if (n_tensors_ > remaining() / detail::kMinTensorInfoBytes)
      fail_at(8, "tensor count {} is impossible: each tensor needs at least {} header bytes and only {} bytes "
              "are left in the file ({} bytes): the file is truncated or not a GGUF file",
              n_tensors_, detail::kMinTensorInfoBytes, remaining(), size_);
    if (n_kv_ > remaining() / detail::kMinKvBytes)
      fail_at(16, "metadata key-value count {} is impossible: each pair needs at least {} bytes and only {} "
              "bytes are left in the file ({} bytes): the file is truncated or not a GGUF file",
              n_kv_, detail::kMinKvBytes, remaining(), size_);
  }

  void read_metadata(Progress* bar) {
    f_.kv_.reserve(n_kv_);
    std::vector<uint64_t> key_pos;
    key_pos.reserve(n_kv_);
    for (uint64_t k = 0; k < n_kv_; ++k) {
      where_ = fmt::format("metadata pair #{}", k);
      const uint64_t at = pos_;
      std::string key = read_string("key");
      where_ = fmt::format("key '{}'", printable(key));
      if (auto it = f_.kv_index_.find(key); it != f_.kv_index_.end())
        fail_at(at, "duplicate key: it is also metadata pair #{} (byte {}): expected each key once",
                it->second, key_pos[it->second]);
      const ValueType t = read_value_type("value type");
      Value v = read_value(t, 0);
      f_.kv_index_.emplace(key, f_.kv_.size());
      key_pos.push_back(at);
      f_.kv_.emplace_back(std::move(key), std::move(v));
      if (bar) bar->update(k);
    }
    alignment_key_pos_ = f_.kv_index_.count(detail::kAlignmentKey) ? key_pos[f_.kv_index_[detail::kAlignmentKey]] : 0;
  }

  void read_alignment() {
    f_.alignment_ = detail::kDefaultAlignment;
    const Value* v = f_.find(detail::kAlignmentKey);
    if (!v) return;
    where_ = fmt::format("key '{}'", detail::kAlignmentKey);
    const std::string problem = detail::alignment_problem(*v, &f_.alignment_);
    if (!problem.empty()) fail_at(alignment_key_pos_, "{}", problem);
  }

  void read_tensor_infos(Progress* bar) {
    f_.tensors_.reserve(n_tensors_);
    tensor_header_pos_.reserve(n_tensors_);
    for (uint64_t k = 0; k < n_tensors_; ++k) {
      where_ = fmt::format("tensor #{}", k);
      const uint64_t start = pos_;
      TensorInfo t;
      t.name = read_string("tensor name");
      where_ = fmt::format("tensor '{}'", printable(t.name));
      if (auto it = f_.tensor_index_.find(t.name); it != f_.tensor_index_.end())
        fail_at(start, "duplicate tensor name: it is also tensor #{} (header byte {}): expected unique names",
                it->second, tensor_header_pos_[it->second]);
      read_shape_and_type(t);
      const uint64_t off_at = pos_;
      t.offset = read<uint64_t>("the data offset (u64)");
      if (t.offset % f_.alignment_ != 0)
        fail_at(off_at, "data offset {} is not a multiple of the alignment {}: the tensor data is misaligned",
                t.offset, f_.alignment_);
      f_.tensor_index_.emplace(t.name, f_.tensors_.size());
      tensor_header_pos_.push_back(start);
      f_.tensors_.push_back(std::move(t));
      if (bar) bar->update(n_kv_ + k);
    }
  }

  void read_shape_and_type(TensorInfo& t) {
    const uint64_t nd_at = pos_;
    const uint32_t n_dims = read<uint32_t>("the number of dimensions (u32)");
    if (n_dims == 0 || n_dims > detail::kMaxDims)
      fail_at(nd_at, "n_dims is {}: expected 1 to {}", n_dims, detail::kMaxDims);
    t.ne.resize(n_dims);
    uint64_t n_elements = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      const uint64_t at = pos_;
      t.ne[d] = read<int64_t>("a dimension (i64)");
      if (t.ne[d] <= 0)
        fail_at(at, "dimension ne[{}] is {}: expected a positive size", d, t.ne[d]);
      if (!detail::mul_ok(n_elements, static_cast<uint64_t>(t.ne[d]), &n_elements) ||
          n_elements > static_cast<uint64_t>(INT64_MAX))
        fail_at(at, "shape [{}] has more than 2^63-1 elements (the product of the dimensions overflows)",
                fmt::join(t.ne.begin(), t.ne.begin() + d + 1, ", "));
    }
    const uint64_t type_at = pos_;
    t.type = read<uint32_t>("the tensor type (u32)");
    const TypeTraits* tr = find_traits(t.type);
    if (!tr)
      fail_at(type_at, "unknown tensor type id {}: expected a ggml type id (0-3, 6-30, 34, 35, 39); the file is "
              "corrupt or needs a newer strata", t.type);
    if (t.ne[0] % tr->block_size != 0)
      fail_at(nd_at + 4, "ne[0] = {} is not a multiple of the {} block size {}: rows must hold whole blocks",
              t.ne[0], tr->name, tr->block_size);
    const uint64_t rows = n_elements / static_cast<uint64_t>(t.ne[0]);
    const uint64_t blocks = static_cast<uint64_t>(t.ne[0] / tr->block_size);
    uint64_t row_bytes = 0;
    if (!detail::mul_ok(blocks, tr->type_size, &row_bytes) || !detail::mul_ok(row_bytes, rows, &t.nbytes))
      fail_at(type_at, "the byte size of shape [{}] as {} overflows 64 bits", fmt::join(t.ne, ", "), tr->name);
  }

  void place_data() {
    where_ = "tensor data";
    const uint64_t header_end = pos_;
    if (!detail::align_up_ok(header_end, f_.alignment_, &f_.data_offset_))
      fail_at(header_end, "aligning the data section start to {} overflows", f_.alignment_);
    for (size_t k = 0; k < f_.tensors_.size(); ++k) {
      TensorInfo& t = f_.tensors_[k];
      uint64_t begin = 0, end = 0;
      const bool begin_ok = detail::add_ok(f_.data_offset_, t.offset, &begin);
      const bool end_ok = begin_ok && detail::add_ok(begin, t.nbytes, &end);
      if (!end_ok || end > size_) {
        where_ = fmt::format("tensor '{}'", printable(t.name));
        fail_at_header(k, "data [{}, {}) ({} bytes at offset {} of the data section, which starts at byte {}) "
                       "ends past the end of the file ({} bytes): the file is truncated or not a GGUF file",
                       begin_ok ? fmt::format("{}", begin) : std::string("2^64+"),
                       end_ok ? fmt::format("{}", end) : std::string("2^64+"), t.nbytes, t.offset,
                       f_.data_offset_, size_);
      }
      t.data = b_.data() + begin;
    }
    // No two tensors may share bytes.
    std::vector<size_t> order(f_.tensors_.size());
    std::iota(order.begin(), order.end(), size_t{0});
    std::sort(order.begin(), order.end(),
              [&](size_t a, size_t b) { return f_.tensors_[a].offset < f_.tensors_[b].offset; });
    for (size_t k = 1; k < order.size(); ++k) {
      const TensorInfo& prev = f_.tensors_[order[k - 1]];
      const TensorInfo& cur = f_.tensors_[order[k]];
      if (prev.offset + prev.nbytes > cur.offset) {
        where_ = fmt::format("tensor '{}'", printable(cur.name));
        fail_at_header(order[k], "data [{}, {}) overlaps the data of tensor '{}' [{}, {}): expected tensors not "
                       "to share bytes", f_.data_offset_ + cur.offset, f_.data_offset_ + cur.offset + cur.nbytes,
                       printable(prev.name), f_.data_offset_ + prev.offset,
                       f_.data_offset_ + prev.offset + prev.nbytes);
      }
    }
  }

  template <class... Args>
  [[noreturn]] void fail_at_header(size_t tensor, fmt::format_string<Args...> fmt_str, Args&&... args) const {
    throw Error(fmt::format("gguf: {}: {} (header byte {}): {}", f_.path_, where_, tensor_header_pos_[tensor],
                            fmt::format(fmt_str, std::forward<Args>(args)...)));
  }
};

File File::parse(std::span<const uint8_t> bytes, const std::string& name) {
  File f;
  f.path_ = name;
  f.bytes_ = bytes;
  Parser(f, false).run();
  return f;
}

File File::open(const std::string& path, const ReadOptions& opts) {
  File f;
  f.path_ = path;
  f.mapped_ = std::make_shared<MappedFile>(MappedFile::open(path, opts.mode));
  f.bytes_ = f.mapped_->bytes();
  Parser(f, opts.progress).run();
  return f;
}

}  // namespace strata::gguf
