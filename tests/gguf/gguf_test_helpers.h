// Shared by the GGUF tests: a raw byte builder for hand-made (malformed) files, a small valid sample made
// with the Writer, a map of every field's byte range in a valid file, and an "expect this error" helper.
#pragma once
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "gguf/gguf.h"

namespace strata::gguf::test {

// Appends little-endian GGUF fields to a byte vector: for files the Writer refuses to make.
struct Raw {
  std::vector<uint8_t> b;
  size_t pos() const { return b.size(); }
  template <class T>
  Raw& put(T v) {
    const size_t n = b.size();
    b.resize(n + sizeof(T));
    std::memcpy(b.data() + n, &v, sizeof(T));
    return *this;
  }
  Raw& str(std::string_view s) {
    put<uint64_t>(s.size());
    b.insert(b.end(), s.begin(), s.end());
    return *this;
  }
  Raw& header(uint32_t version, uint64_t n_tensors, uint64_t n_kv) {
    return put<uint32_t>(0x46554747).put<uint32_t>(version).put<uint64_t>(n_tensors).put<uint64_t>(n_kv);
  }
  Raw& kv_u32(std::string_view key, uint32_t v) { return str(key).put<uint32_t>(4).put<uint32_t>(v); }
  Raw& kv_str(std::string_view key, std::string_view v) { return str(key).put<uint32_t>(8).str(v); }
  Raw& tensor(std::string_view name, const std::vector<int64_t>& ne, uint32_t type, uint64_t offset) {
    str(name).put<uint32_t>(static_cast<uint32_t>(ne.size()));
    for (int64_t d : ne) put<int64_t>(d);
    return put<uint32_t>(type).put<uint64_t>(offset);
  }
  Raw& pad(size_t align = 32) {
    while (b.size() % align) b.push_back(0);
    return *this;
  }
  Raw& zeros(size_t n) {
    b.resize(b.size() + n, 0);
    return *this;
  }
};

inline File parse(const std::vector<uint8_t>& b) { return File::parse(b, "test.gguf"); }

// Parses `b` and expects strata::Error whose message contains every one of `parts`.
inline void expect_error(const std::vector<uint8_t>& b, std::initializer_list<std::string_view> parts) {
  try {
    (void)parse(b);
    ADD_FAILURE() << "expected an error containing '" << *parts.begin() << "', but the file parsed";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.rfind("gguf: test.gguf: ", 0), 0u) << msg;
    for (std::string_view p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' not in: " << msg;
  }
}

inline Value u8(uint8_t v) { Value x; x.type = ValueType::kU8; x.u = v; return x; }
inline Value i8(int8_t v) { Value x; x.type = ValueType::kI8; x.i = v; return x; }
inline Value u16(uint16_t v) { Value x; x.type = ValueType::kU16; x.u = v; return x; }
inline Value i16(int16_t v) { Value x; x.type = ValueType::kI16; x.i = v; return x; }
inline Value i64(int64_t v) { Value x; x.type = ValueType::kI64; x.i = v; return x; }
inline Value f64(double v) { Value x; x.type = ValueType::kF64; x.f = v; return x; }
inline Value array(ValueType elem, std::vector<Value> elems) {
  Value x;
  x.type = ValueType::kArray;
  x.elem_type = elem;
  x.arr = std::move(elems);
  return x;
}

// A small valid file: every value type, string arrays, nested arrays, an empty array, and tensors of
// several types (f32, f16, q4_0, q4_K) with recognisable bytes. The data spans live in the Sample.
struct Sample {
  Writer w;
  std::vector<std::vector<uint8_t>> data;
  std::vector<std::string> names;

  Sample() {
    w.set("general.architecture", Writer::string("llama"));
    w.set("general.name", Writer::string("sample \"quoted\"\n"));
    w.set("t.u8", u8(200));
    w.set("t.i8", i8(-100));
    w.set("t.u16", u16(60000));
    w.set("t.i16", i16(-30000));
    w.set("t.u32", Writer::u32(4000000000u));
    w.set("t.i32", Writer::i32(-2000000000));
    w.set("t.f32", Writer::f32(1e-5f));
    w.set("t.bool", Writer::boolean(true));
    w.set("t.u64", Writer::u64(UINT64_MAX));
    w.set("t.i64", i64(INT64_MIN));
    w.set("t.f64", f64(3.141592653589793));
    w.set("t.strings", Writer::string_array({"<unk>", "", "héllo", std::string("a\0b", 3)}));
    w.set("t.f32s", Writer::f32_array({0.f, -0.f, 1.5f}));
    w.set("t.i32s", Writer::i32_array({-1, 0, 7}));
    w.set("t.nested", array(ValueType::kArray, {array(ValueType::kI16, {i16(1), i16(-2)}),
                                                array(ValueType::kI16, {}),
                                                array(ValueType::kI16, {i16(3)})}));
    w.set("t.empty", array(ValueType::kString, {}));
    w.set("t.id_none", Writer::u32(0xFFFFFFFFu));
    add("a", 0 /*f32*/, {4, 3}, 48);
    add("b", 1 /*f16*/, {8}, 16);
    add("c", 2 /*q4_0*/, {64, 2}, 4 * 18);
    add("d", 12 /*q4_K*/, {256}, 144);
  }
  void add(const std::string& name, uint32_t type, std::vector<int64_t> ne, size_t nbytes) {
    std::vector<uint8_t> d(nbytes);
    for (size_t k = 0; k < nbytes; ++k) d[k] = static_cast<uint8_t>(k * 7 + names.size() * 31 + 1);
    data.push_back(std::move(d));
    names.push_back(name);
    w.add_tensor(name, type, std::move(ne), data.back());
  }
  std::vector<uint8_t> bytes() const { return w.to_bytes(); }
};

// The byte range of each field of a valid GGUF file, in file order, with a label naming the field as
// the reader's messages do ("metadata pair #3", "key 't.u8'", "tensor #1", "tensor 'b'", "tensor data").
struct Field {
  std::string label;  // what the error for a cut inside this field names
  std::string what;   // what the field is (for test failure messages)
  size_t begin, end;
};

inline std::vector<Field> map_fields(const std::vector<uint8_t>& b) {
  std::vector<Field> out;
  size_t p = 0;
  auto field = [&](std::string label, std::string what, size_t n) {
    out.push_back({std::move(label), std::move(what), p, p + n});
    uint64_t v = 0;
    if (n <= 8) std::memcpy(&v, b.data() + p, n);
    p += n;
    return v;
  };
  field("header", "magic", 4);
  field("header", "version", 4);
  const uint64_t n_tensors = field("header", "n_tensors", 8);
  const uint64_t n_kv = field("header", "n_kv", 8);
  // Values: recursive walk (scalars by size; strings and arrays by their counts).
  auto scalar = [](uint32_t t) -> size_t {
    static const size_t sz[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    return sz[t];
  };
  std::function<void(const std::string&, uint32_t)> value = [&](const std::string& label, uint32_t t) {
    if (t == 8) {
      const uint64_t len = field(label, "string length", 8);
      if (len) field(label, "string bytes", len);
    } else if (t == 9) {
      const uint32_t et = static_cast<uint32_t>(field(label, "array element type", 4));
      const uint64_t n = field(label, "array count", 8);
      for (uint64_t k = 0; k < n; ++k) value(label, et);
    } else {
      field(label, "scalar", scalar(t));
    }
  };
  for (uint64_t k = 0; k < n_kv; ++k) {
    const std::string pair = "metadata pair #" + std::to_string(k);
    const uint64_t len = field(pair, "key length", 8);
    std::string key(reinterpret_cast<const char*>(b.data() + p), len);
    if (len) field(pair, "key bytes", len);
    const std::string label = "key '" + key + "'";
    const uint32_t t = static_cast<uint32_t>(field(label, "value type", 4));
    value(label, t);
  }
  std::vector<std::pair<std::string, uint64_t>> offsets;
  for (uint64_t k = 0; k < n_tensors; ++k) {
    const std::string num = "tensor #" + std::to_string(k);
    const uint64_t len = field(num, "tensor name length", 8);
    std::string name(reinterpret_cast<const char*>(b.data() + p), len);
    if (len) field(num, "tensor name bytes", len);
    const std::string label = "tensor '" + name + "'";
    const uint32_t nd = static_cast<uint32_t>(field(label, "n_dims", 4));
    for (uint32_t d = 0; d < nd; ++d) field(label, "dim", 8);
    field(label, "type", 4);
    offsets.emplace_back(label, field(label, "offset", 8));
  }
  const size_t data_start = (p + 31) / 32 * 32;
  if (data_start > p) field("padding", "padding before the data", data_start - p);
  // Data, then the padding after it: a cut in that padding leaves this tensor whole and the next one short.
  const File f = File::parse(b);
  for (size_t k = 0; k < offsets.size(); ++k) {
    const size_t begin = data_start + offsets[k].second;
    const size_t end = begin + f.tensors()[k].nbytes;
    const size_t next = k + 1 < offsets.size() ? data_start + offsets[k + 1].second : b.size();
    p = begin;
    field(offsets[k].first, "tensor data", end - begin);
    if (next > end) field(k + 1 < offsets.size() ? offsets[k + 1].first : "end", "padding after the data", next - end);
  }
  return out;
}

}  // namespace strata::gguf::test
