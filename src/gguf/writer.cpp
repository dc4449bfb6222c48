// GGUF v3 writer: metadata and tensors in the order added, tensor data aligned to general.alignment.
// The header is serialized into memory; tensor data is streamed to the output (no copy of the weights).
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <limits>

#include <fmt/ranges.h>

#include "core/error.h"
#include "gguf/gguf.h"
#include "gguf/internal.h"
#include "tensor/dtype.h"

namespace strata::gguf {

using detail::printable;

namespace {

class Buf {
 public:
  std::vector<uint8_t> bytes;
  template <class T>
  void put(T v) {
    const size_t n = bytes.size();
    bytes.resize(n + sizeof(T));
    std::memcpy(bytes.data() + n, &v, sizeof(T));
  }
  void put_string(const std::string& s) {
    put<uint64_t>(s.size());
    bytes.insert(bytes.end(), s.begin(), s.end());
  }
};

[[noreturn]] void bad_value(const std::string& key, const std::string& what) {
  fail("gguf writer: key '{}': {}", printable(key), what);
}

template <class T>
void put_unsigned(Buf& b, const Value& v, const std::string& key) {
  if (v.u > std::numeric_limits<T>::max())
    bad_value(key, fmt::format("value {} does not fit in {}", v.u, value_type_name(v.type)));
  b.put<T>(static_cast<T>(v.u));
}

template <class T>
void put_signed(Buf& b, const Value& v, const std::string& key) {
  if (v.i < std::numeric_limits<T>::min() || v.i > std::numeric_limits<T>::max())
    bad_value(key, fmt::format("value {} does not fit in {}", v.i, value_type_name(v.type)));
  b.put<T>(static_cast<T>(v.i));
}

// The value's payload (no type tag): what follows the type inside an array, or after a key's type.
void put_payload(Buf& b, const Value& v, const std::string& key, int depth) {
  switch (v.type) {
    case ValueType::kU8: put_unsigned<uint8_t>(b, v, key); break;
    case ValueType::kU16: put_unsigned<uint16_t>(b, v, key); break;
    case ValueType::kU32: put_unsigned<uint32_t>(b, v, key); break;
    case ValueType::kU64: b.put<uint64_t>(v.u); break;
    case ValueType::kBool: put_unsigned<uint8_t>(b, v, key); break;
    case ValueType::kI8: put_signed<int8_t>(b, v, key); break;
    case ValueType::kI16: put_signed<int16_t>(b, v, key); break;
    case ValueType::kI32: put_signed<int32_t>(b, v, key); break;
    case ValueType::kI64: b.put<int64_t>(v.i); break;
    case ValueType::kF32: b.put<float>(static_cast<float>(v.f)); break;
    case ValueType::kF64: b.put<double>(v.f); break;
    case ValueType::kString: b.put_string(v.str); break;
    case ValueType::kArray:
      if (depth + 1 > detail::kMaxArrayDepth)
        bad_value(key, fmt::format("arrays nested more than {} deep cannot be read back", detail::kMaxArrayDepth));
      if (!detail::is_valid_value_type(static_cast<uint32_t>(v.elem_type)))
        bad_value(key, fmt::format("array element type {} is not a GGUF value type",
                                   static_cast<uint32_t>(v.elem_type)));
      b.put<uint32_t>(static_cast<uint32_t>(v.elem_type));
      b.put<uint64_t>(v.arr.size());
      for (size_t k = 0; k < v.arr.size(); ++k) {
        if (v.arr[k].type != v.elem_type)
          bad_value(key, fmt::format("element {} has type {} in an array of {}", k, value_type_name(v.arr[k].type),
                                     value_type_name(v.elem_type)));
        put_payload(b, v.arr[k], key, depth + 1);
      }
      break;
    default:
      bad_value(key, fmt::format("value type {} is not a GGUF value type", static_cast<uint32_t>(v.type)));
  }
}

uint64_t pad_to(uint64_t n, uint64_t align) { return (align - n % align) % align; }

}  // namespace

void Writer::set(const std::string& key, Value v) {
  for (auto& [k, old] : kv_)
    if (k == key) {
      old = std::move(v);
      return;
    }
  kv_.emplace_back(key, std::move(v));
}

void Writer::add_tensor(const std::string& name, uint32_t type, std::vector<int64_t> ne,
                        std::span<const uint8_t> data) {
  const std::string what = fmt::format("gguf writer: tensor '{}'", printable(name));
  for (const auto& t : tensors_)
    if (t.name == name) fail("{}: a tensor with this name was already added", what);
  const TypeTraits* tr = find_traits(type);
  if (!tr) fail("{}: unknown tensor type id {}", what, type);
  if (ne.empty() || ne.size() > detail::kMaxDims) fail("{}: {} dimensions: expected 1 to 4", what, ne.size());
  uint64_t n = 1;
  for (int64_t d : ne)
    if (d <= 0 || !detail::mul_ok(n, static_cast<uint64_t>(d), &n) || n > static_cast<uint64_t>(INT64_MAX))
      fail("{}: invalid shape (dimensions must be positive, their product below 2^63)", what);
  if (ne[0] % tr->block_size != 0)
    fail("{}: ne[0] = {} is not a multiple of the {} block size {}", what, ne[0], tr->name, tr->block_size);
  uint64_t nbytes = 0;
  if (!detail::mul_ok(static_cast<uint64_t>(ne[0] / tr->block_size) * tr->type_size,
                      n / static_cast<uint64_t>(ne[0]), &nbytes) || nbytes != data.size())
    fail("{}: {} bytes of data given, expected {} for shape [{}] as {}", what, data.size(), nbytes,
         fmt::join(ne, ", "), tr->name);
  tensors_.push_back({name, type, std::move(ne), data});
}

std::vector<uint8_t> Writer::to_bytes() const {
  std::vector<uint8_t> out;
  write_to([&](const void* p, size_t n) {
    const auto* c = static_cast<const uint8_t*>(p);
    out.insert(out.end(), c, c + n);
  });
  return out;
}

void Writer::write_to(const std::function<void(const void*, size_t)>& sink) const {
  uint64_t alignment = detail::kDefaultAlignment;
  for (const auto& [key, v] : kv_) {
    if (key == detail::kAlignmentKey) {
      const std::string problem = detail::alignment_problem(v, &alignment);
      if (!problem.empty()) bad_value(key, problem);
    }
  }
  Buf h;
  h.put<uint32_t>(detail::kMagic);
  h.put<uint32_t>(detail::kWriteVersion);
  h.put<uint64_t>(tensors_.size());
  h.put<uint64_t>(kv_.size());
  for (const auto& [key, v] : kv_) {
    h.put_string(key);
    h.put<uint32_t>(static_cast<uint32_t>(v.type));
    put_payload(h, v, key, 0);
  }
  uint64_t offset = 0;
  std::vector<uint64_t> pads;
  for (const auto& t : tensors_) {
    h.put_string(t.name);
    h.put<uint32_t>(static_cast<uint32_t>(t.ne.size()));
    for (int64_t d : t.ne) h.put<int64_t>(d);
    h.put<uint32_t>(t.type);
    h.put<uint64_t>(offset);
    offset += t.data.size();
    pads.push_back(pad_to(offset, alignment));
    offset += pads.back();
  }
  sink(h.bytes.data(), h.bytes.size());
  if (tensors_.empty()) return;  // a metadata-only file (e.g. a vocabulary) needs no data section
  const std::vector<uint8_t> zeros(std::min<uint64_t>(alignment, 1 << 16), 0);
  auto pad = [&](uint64_t n) {
    for (; n > 0; n -= std::min<uint64_t>(n, zeros.size())) sink(zeros.data(), std::min<uint64_t>(n, zeros.size()));
  };
  pad(pad_to(h.bytes.size(), alignment));
  for (size_t k = 0; k < tensors_.size(); ++k) {
    sink(tensors_[k].data.data(), tensors_[k].data.size());
    pad(pads[k]);
  }
}

void Writer::write(const std::string& path) const {
  const std::string tmp = fmt::format("{}.tmp{}", path, ::getpid());
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) fail("gguf writer: cannot create '{}': {}", tmp, std::strerror(errno));
  try {
    write_to([&](const void* p, size_t n) {
      if (n && std::fwrite(p, 1, n, f) != n) fail("gguf writer: cannot write '{}': {}", tmp, std::strerror(errno));
    });
    if (std::fflush(f) != 0) fail("gguf writer: cannot write '{}': {}", tmp, std::strerror(errno));
  } catch (...) {
    std::fclose(f);
    std::remove(tmp.c_str());
    throw;
  }
  if (std::fclose(f) != 0) {
    std::remove(tmp.c_str());
    fail("gguf writer: cannot write '{}': {}", tmp, std::strerror(errno));
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::remove(tmp.c_str());
    fail("gguf writer: cannot rename '{}' to '{}': {}", tmp, path, ec.message());
  }
}

Value Writer::u32(uint32_t v) { Value x; x.type = ValueType::kU32; x.u = v; return x; }
Value Writer::i32(int32_t v) { Value x; x.type = ValueType::kI32; x.i = v; return x; }
Value Writer::u64(uint64_t v) { Value x; x.type = ValueType::kU64; x.u = v; return x; }
Value Writer::f32(float v) { Value x; x.type = ValueType::kF32; x.f = v; return x; }
Value Writer::boolean(bool v) { Value x; x.type = ValueType::kBool; x.u = v ? 1 : 0; return x; }
Value Writer::string(std::string v) { Value x; x.type = ValueType::kString; x.str = std::move(v); return x; }

namespace {
template <class T, class F>
Value make_array(ValueType elem, const std::vector<T>& v, F make) {
  Value x;
  x.type = ValueType::kArray;
  x.elem_type = elem;
  x.arr.reserve(v.size());
  for (const T& e : v) x.arr.push_back(make(e));
  return x;
}
}  // namespace

Value Writer::string_array(const std::vector<std::string>& v) {
  return make_array(ValueType::kString, v, [](const std::string& s) { return string(s); });
}
Value Writer::f32_array(const std::vector<float>& v) {
  return make_array(ValueType::kF32, v, [](float e) { return f32(e); });
}
Value Writer::i32_array(const std::vector<int32_t>& v) {
  return make_array(ValueType::kI32, v, [](int32_t e) { return i32(e); });
}

}  // namespace strata::gguf
