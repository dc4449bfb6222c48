// Metadata values: type names, conversions, printing and equality.
#include <bit>
#include <cmath>
#include <limits>

#include "core/error.h"
#include "gguf/gguf.h"
#include "gguf/internal.h"

namespace strata::gguf {

const char* value_type_name(ValueType t) {
  switch (t) {
    case ValueType::kU8: return "u8";
    case ValueType::kI8: return "i8";
    case ValueType::kU16: return "u16";
    case ValueType::kI16: return "i16";
    case ValueType::kU32: return "u32";
    case ValueType::kI32: return "i32";
    case ValueType::kF32: return "f32";
    case ValueType::kBool: return "bool";
    case ValueType::kString: return "string";
    case ValueType::kArray: return "array";
    case ValueType::kU64: return "u64";
    case ValueType::kI64: return "i64";
    case ValueType::kF64: return "f64";
  }
  return "unknown";
}

namespace {

std::string type_desc(const Value& v) {
  if (v.type != ValueType::kArray) return value_type_name(v.type);
  return fmt::format("array of {} ({} elements)", value_type_name(v.elem_type), v.arr.size());
}

void append_escaped(std::string& out, std::string_view s) {
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20 || c == 0x7f) out += fmt::format("\\x{:02x}", c);
        else out += static_cast<char>(c);  // UTF-8 passes through
    }
  }
}

}  // namespace

namespace detail {

std::string printable(std::string_view s, size_t max_len) {
  std::string out;
  const bool cut = s.size() > max_len;
  for (unsigned char c : cut ? s.substr(0, max_len) : s) {
    if (c < 0x20 || c >= 0x7f || c == '\'' || c == '\\') out += fmt::format("\\x{:02x}", c);
    else out += static_cast<char>(c);
  }
  if (cut) out += fmt::format("...({} bytes)", s.size());
  return out;
}

std::string alignment_problem(const Value& v, uint64_t* out) {
  if (!v.is_int())
    return fmt::format("the alignment has type {}: expected an unsigned integer (u32), a power of two such as 32",
                       type_desc(v));
  const bool negative = is_signed_type(v.type) && v.i < 0;
  const uint64_t a = is_signed_type(v.type) ? static_cast<uint64_t>(v.i) : v.u;
  if (negative || !is_pow2(a))
    return fmt::format("alignment {} is not a power of two: expected a non-zero power of two such as 32",
                       negative ? fmt::format("{}", v.i) : fmt::format("{}", a));
  *out = a;
  return "";
}

}  // namespace detail

bool Value::is_int() const { return detail::is_unsigned_type(type) || detail::is_signed_type(type); }

bool Value::is_float() const { return type == ValueType::kF32 || type == ValueType::kF64; }

int64_t Value::as_int(const std::string& what) const {
  if (detail::is_signed_type(type)) return i;
  if (detail::is_unsigned_type(type)) {
    if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      fail("{}: value {} ({}) does not fit in a signed 64-bit integer", what, u, value_type_name(type));
    return static_cast<int64_t>(u);
  }
  fail("{}: expected an integer, found {}", what, type_desc(*this));
}

double Value::as_float(const std::string& what) const {
  if (is_float()) return f;
  if (detail::is_signed_type(type)) return static_cast<double>(i);
  if (detail::is_unsigned_type(type)) return static_cast<double>(u);
  fail("{}: expected a number, found {}", what, type_desc(*this));
}

const std::string& Value::as_string(const std::string& what) const {
  if (type != ValueType::kString) fail("{}: expected a string, found {}", what, type_desc(*this));
  return str;
}

bool Value::as_bool(const std::string& what) const {
  if (type != ValueType::kBool) fail("{}: expected a bool, found {}", what, type_desc(*this));
  return u != 0;
}

std::string Value::to_string(size_t max_elems) const {
  switch (type) {
    case ValueType::kU8: case ValueType::kU16: case ValueType::kU32: case ValueType::kU64:
      return fmt::format("{}", u);
    case ValueType::kI8: case ValueType::kI16: case ValueType::kI32: case ValueType::kI64:
      return fmt::format("{}", i);
    case ValueType::kF32: return fmt::format("{}", static_cast<float>(f));
    case ValueType::kF64: return fmt::format("{}", f);
    case ValueType::kBool: return u ? "true" : "false";
    case ValueType::kString: {
      std::string out = "\"";
      append_escaped(out, str);
      return out + "\"";
    }
    case ValueType::kArray: {
      std::string out = "[";
      const size_t n = std::min(arr.size(), max_elems);
      for (size_t k = 0; k < n; ++k) {
        if (k) out += ", ";
        out += arr[k].to_string(max_elems);
      }
      if (arr.size() > n) out += fmt::format("{}... {} more", n ? ", " : "", arr.size() - n);
      return out + "]";
    }
  }
  return "?";
}

bool Value::operator==(const Value& o) const {
  if (type != o.type) return false;
  switch (type) {
    case ValueType::kU8: case ValueType::kU16: case ValueType::kU32: case ValueType::kU64:
    case ValueType::kBool:
      return u == o.u;
    case ValueType::kI8: case ValueType::kI16: case ValueType::kI32: case ValueType::kI64:
      return i == o.i;
    case ValueType::kF32: case ValueType::kF64:
      // Bitwise (so -0 != +0), and any NaN equals any NaN (float->double may quiet a signalling NaN).
      return (std::isnan(f) && std::isnan(o.f)) || std::bit_cast<uint64_t>(f) == std::bit_cast<uint64_t>(o.f);
    case ValueType::kString: return str == o.str;
    case ValueType::kArray: return elem_type == o.elem_type && arr == o.arr;
  }
  return false;
}

}  // namespace strata::gguf
