// Helpers shared by the GGUF reader and writer: on-disk constants, value-type sizes, checked arithmetic,
// and quoting of names for error messages. Internal to src/gguf (not part of the API).
#pragma once
#include <bit>
#include <cstdint>
#include <string>
#include <string_view>

#include "gguf/gguf.h"

namespace strata::gguf::detail {

static_assert(std::endian::native == std::endian::little, "the GGUF reader assumes a little-endian host");

constexpr uint32_t kMagic = 0x46554747;          // "GGUF" read as a little-endian u32
constexpr uint32_t kWriteVersion = 3;
constexpr uint32_t kMaxDims = 4;
constexpr int kMaxArrayDepth = 8;                // arrays of arrays nest at most this deep
constexpr uint64_t kDefaultAlignment = 32;
// Metadata arrays may hold at most this many elements in all (each is a ~100-byte Value in memory; real
// files hold up to about a million: vocabularies, merges, scores).
constexpr uint64_t kMaxArrayElements = uint64_t{1} << 24;
constexpr uint32_t kNumValueTypes = 13;          // ids 0..12
constexpr const char* kAlignmentKey = "general.alignment";
// The smallest possible encodings, used to bound counts by the bytes left in the file.
constexpr uint64_t kMinKvBytes = 8 + 4 + 1;              // empty key, type, 1-byte value
constexpr uint64_t kMinTensorInfoBytes = 8 + 4 + 8 + 4 + 8;  // empty name, n_dims, 1 dim, type, offset

constexpr bool is_valid_value_type(uint32_t t) { return t < kNumValueTypes; }

// Bytes of a scalar value on disk; 0 for strings and arrays.
constexpr uint64_t scalar_size(ValueType t) {
  switch (t) {
    case ValueType::kU8: case ValueType::kI8: case ValueType::kBool: return 1;
    case ValueType::kU16: case ValueType::kI16: return 2;
    case ValueType::kU32: case ValueType::kI32: case ValueType::kF32: return 4;
    case ValueType::kU64: case ValueType::kI64: case ValueType::kF64: return 8;
    case ValueType::kString: case ValueType::kArray: return 0;
  }
  return 0;
}

// The fewest bytes one element of this type can take: a scalar its size, a string its u64 length,
// an array its u32 element type + u64 count.
constexpr uint64_t min_encoded_size(ValueType t) {
  switch (t) {
    case ValueType::kString: return 8;
    case ValueType::kArray: return 12;
    default: return scalar_size(t);
  }
}

constexpr bool is_unsigned_type(ValueType t) {
  return t == ValueType::kU8 || t == ValueType::kU16 || t == ValueType::kU32 || t == ValueType::kU64;
}
constexpr bool is_signed_type(ValueType t) {
  return t == ValueType::kI8 || t == ValueType::kI16 || t == ValueType::kI32 || t == ValueType::kI64;
}

// a + b, a * b, and a rounded up to a multiple of the power of two `align`; false on overflow.
inline bool add_ok(uint64_t a, uint64_t b, uint64_t* r) { return !__builtin_add_overflow(a, b, r); }
inline bool mul_ok(uint64_t a, uint64_t b, uint64_t* r) { return !__builtin_mul_overflow(a, b, r); }
inline bool align_up_ok(uint64_t a, uint64_t align, uint64_t* r) {
  if (!add_ok(a, align - 1, r)) return false;
  *r &= ~(align - 1);
  return true;
}
constexpr bool is_pow2(uint64_t x) { return x != 0 && (x & (x - 1)) == 0; }

// 'name' with control and non-ASCII bytes escaped, cut at max_len bytes (names in messages stay readable).
std::string printable(std::string_view s, size_t max_len = 96);

// Checks a general.alignment value (an integer, a non-zero power of two): "" and *out set when it is
// valid, else what is wrong with it.
std::string alignment_problem(const Value& v, uint64_t* out);

}  // namespace strata::gguf::detail
