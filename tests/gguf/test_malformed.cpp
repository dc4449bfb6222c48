// Hand-made malformed files: each is rejected with its specific error, naming the field and byte offset.
#include <cstring>

#include "gguf/gguf.h"
#include "gguf_test_helpers.h"

namespace strata::gguf::test {
namespace {

constexpr uint64_t k2p60 = uint64_t{1} << 60, k2p61 = uint64_t{1} << 61, k2p62 = uint64_t{1} << 62;

// One f32 tensor [4] at offset 0 after `kv` (already-encoded key-value pairs, n_kv of them).
std::vector<uint8_t> one_tensor(std::vector<int64_t> ne = {4}, uint32_t type = 0, uint64_t offset = 0,
                                size_t data_bytes = 16) {
  Raw r;
  r.header(3, 1, 0).tensor("w", ne, type, offset).pad().zeros(data_bytes);
  return r.b;
}

TEST(GgufMalformed, HandMadeValidFileParses) {
  const File f = parse(one_tensor());
  ASSERT_EQ(f.tensors().size(), 1u);
  EXPECT_EQ(f.tensors()[0].nbytes, 16u);
  EXPECT_EQ(f.data_offset(), 64u);  // 24 header + 33 info bytes, rounded up to 32
}

TEST(GgufMalformed, EmptyAndTinyFiles) {
  expect_error({}, {"header (byte 0)", "0 bytes, too small", "GGUF"});
  expect_error({'G', 'G'}, {"2 bytes, too small"});
  expect_error({'G', 'G', 'U', 'F'}, {"header (byte 4)", "version", "truncated"});
}

TEST(GgufMalformed, WrongMagic) {
  std::vector<uint8_t> b = one_tensor();
  std::memcpy(b.data(), "GGUX", 4);
  expect_error(b, {"header (byte 0)", "magic is \"GGUX\"", "expected \"GGUF\"", "not a GGUF file"});
  std::memcpy(b.data(), "tjgg", 4);  // llama.cpp's old GGJT files
  expect_error(b, {"pre-GGUF", "convert it"});
  std::memcpy(b.data(), "\x89PNG", 4);
  expect_error(b, {"magic is \"\\x89PNG\""});
}

TEST(GgufMalformed, Versions) {
  Raw v1;
  v1.header(1, 0, 0);
  expect_error(v1.b, {"header (byte 4)", "GGUF version 1 is not supported", "expected version 2 or 3"});
  Raw v99;
  v99.header(99, 0, 0);
  expect_error(v99.b, {"header (byte 4)", "unknown GGUF version 99: expected 2 or 3"});
  Raw v0;
  v0.header(0, 0, 0);
  expect_error(v0.b, {"unknown GGUF version 0"});
  Raw be;
  be.header(0x03000000, 0, 0);
  expect_error(be.b, {"big-endian"});
}

TEST(GgufMalformed, AbsurdCounts) {
  Raw kv;
  kv.header(3, 0, k2p60).kv_u32("a", 1);
  expect_error(kv.b, {"header (byte 16)", "metadata key-value count 1152921504606846976 is impossible"});
  Raw t;
  t.header(3, k2p60, 0).tensor("w", {4}, 0, 0);
  expect_error(t.b, {"header (byte 8)", "tensor count 1152921504606846976 is impossible"});
  Raw t2;  // just above what the bytes left could hold
  t2.header(3, 2, 0).tensor("w", {4}, 0, 0);
  expect_error(t2.b, {"tensor count 2 is impossible", "at least 32 header bytes"});
  Raw kv_all;
  kv_all.header(3, UINT64_MAX, UINT64_MAX);
  expect_error(kv_all.b, {"tensor count 18446744073709551615"});
}

TEST(GgufMalformed, AbsurdStringLengths) {
  Raw key;
  key.header(3, 0, 1).put<uint64_t>(k2p62).put<uint32_t>(4).put<uint32_t>(0);
  expect_error(key.b, {"metadata pair #0 (byte 24)", "key length 4611686018427387904 is larger than the 8 bytes left",
                       "truncated"});
  Raw val;
  val.header(3, 0, 1).str("k").put<uint32_t>(8).put<uint64_t>(k2p62).put<uint32_t>(0);
  expect_error(val.b, {"key 'k' (byte 37)", "string length 4611686018427387904 is larger than the 4 bytes left"});
  Raw name;
  name.header(3, 1, 0).put<uint64_t>(k2p62).zeros(32);
  expect_error(name.b, {"tensor #0 (byte 24)", "tensor name length 4611686018427387904"});
  Raw in_array;  // a string inside an array names its element index
  in_array.header(3, 0, 1).str("toks").put<uint32_t>(9).put<uint32_t>(8).put<uint64_t>(2).str("x").put<uint64_t>(
      UINT64_MAX);
  expect_error(in_array.b, {"key 'toks'[1] (byte 61)", "string length 18446744073709551615"});
}

TEST(GgufMalformed, AbsurdArrayCounts) {
  Raw r;
  r.header(3, 0, 1).str("arr").put<uint32_t>(9).put<uint32_t>(4).put<uint64_t>(k2p61).zeros(64);
  expect_error(r.b, {"key 'arr' (byte 43)", "array count 2305843009213693952 of u32 elements needs at least 4 bytes"});
  // Strings need at least their 8-byte length: 9 strings cannot fit in 64 bytes.
  Raw s;
  s.header(3, 0, 1).str("arr").put<uint32_t>(9).put<uint32_t>(8).put<uint64_t>(9).zeros(64);
  expect_error(s.b, {"array count 9 of string elements needs at least 8 bytes each"});
  Raw ok;  // ... while 8 empty strings do
  ok.header(3, 0, 1).str("arr").put<uint32_t>(9).put<uint32_t>(8).put<uint64_t>(8).zeros(64);
  EXPECT_EQ(parse(ok.b).get_string_array("arr").size(), 8u);
  Raw nested;  // an array of arrays: each inner array needs 12 bytes
  nested.header(3, 0, 1).str("n").put<uint32_t>(9).put<uint32_t>(9).put<uint64_t>(k2p60).zeros(24);
  expect_error(nested.b, {"array count 1152921504606846976 of array elements needs at least 12 bytes"});
}

TEST(GgufMalformed, ArrayElementsAreCappedInTotal) {
  // 2^24 + 1 one-byte elements fit the file but exceed the cap on metadata array elements.
  const uint64_t n = (uint64_t{1} << 24) + 1;
  Raw r;
  r.header(3, 0, 1).str("big").put<uint32_t>(9).put<uint32_t>(0).put<uint64_t>(n).zeros(n);
  expect_error(r.b, {"key 'big' (byte 43)", "metadata arrays hold more than 16777216 elements in total"});
}

TEST(GgufMalformed, ArrayNestingIsBounded) {
  auto nest = [](int depth) {
    Raw r;
    r.header(3, 0, 1).str("deep").put<uint32_t>(9);
    for (int d = 1; d < depth; ++d) r.put<uint32_t>(9).put<uint64_t>(1);  // arrays of one array
    r.put<uint32_t>(0).put<uint64_t>(1).put<uint8_t>(7);                   // innermost: [u8 7]
    return r.b;
  };
  const File f = parse(nest(8));
  const Value* v = f.find("deep");
  for (int d = 1; d < 8; ++d) v = &v->arr.at(0);
  EXPECT_EQ(v->arr.at(0).u, 7u);
  expect_error(nest(9), {"key 'deep'[0][0][0][0][0][0][0][0] (byte", "arrays nested 9 deep: at most 8 levels"});
  expect_error(nest(100000), {"arrays nested 9 deep"});  // no stack overflow on deep nesting
}

TEST(GgufMalformed, UnknownValueTypes) {
  Raw r;
  r.header(3, 0, 1).str("k").put<uint32_t>(13).put<uint32_t>(0);
  expect_error(r.b, {"key 'k' (byte 33)", "unknown value type 13: expected 0..12"});
  Raw a;
  a.header(3, 0, 1).str("k").put<uint32_t>(9).put<uint32_t>(200).put<uint64_t>(0);
  expect_error(a.b, {"key 'k' (byte 37)", "unknown array element type 200"});
}

TEST(GgufMalformed, DuplicateKeys) {
  Raw r;
  r.header(3, 0, 2).kv_u32("x", 1).kv_u32("x", 2);
  expect_error(r.b, {"key 'x' (byte 41)", "duplicate key: it is also metadata pair #0 (byte 24)"});
}

TEST(GgufMalformed, BadAlignment) {
  for (uint32_t a : {0u, 3u, 48u}) {
    Raw r;
    r.header(3, 0, 1).kv_u32("general.alignment", a);
    expect_error(r.b, {"key 'general.alignment' (byte 24)", fmt::format("alignment {} is not a power of two", a)});
  }
  Raw s;
  s.header(3, 0, 1).kv_str("general.alignment", "32");
  expect_error(s.b, {"the alignment has type string"});
  Raw neg;
  neg.header(3, 0, 1).str("general.alignment").put<uint32_t>(5).put<int32_t>(-32);
  expect_error(neg.b, {"alignment -32 is not a power of two"});
  Raw ok;  // a valid non-default alignment moves the data section
  ok.header(3, 1, 1).kv_u32("general.alignment", 256).tensor("w", {4}, 0, 0).pad(256).zeros(16);
  const File f = parse(ok.b);
  EXPECT_EQ(f.alignment(), 256u);
  EXPECT_EQ(f.data_offset(), 256u);
}

TEST(GgufMalformed, DimensionCounts) {
  Raw r0;
  r0.header(3, 1, 0).str("w").put<uint32_t>(0).put<uint32_t>(0).put<uint64_t>(0).zeros(64);
  expect_error(r0.b, {"tensor 'w' (byte 33)", "n_dims is 0: expected 1 to 4"});
  expect_error(one_tensor({1, 1, 1, 1, 4}), {"tensor 'w' (byte 33)", "n_dims is 5: expected 1 to 4"});
  // Four dimensions are fine.
  EXPECT_EQ(parse(one_tensor({4, 1, 1, 1})).tensors()[0].ne.size(), 4u);
}

TEST(GgufMalformed, BadDimensions) {
  expect_error(one_tensor({4, 0}), {"tensor 'w' (byte 45)", "dimension ne[1] is 0: expected a positive size"});
  expect_error(one_tensor({-4}), {"tensor 'w' (byte 37)", "dimension ne[0] is -4"});
  expect_error(one_tensor({int64_t{1} << 32, int64_t{1} << 32}),
               {"tensor 'w' (byte 45)", "shape [4294967296, 4294967296] has more than 2^63-1 elements"});
  // 2^62 f32 elements are countable but their byte size is not.
  expect_error(one_tensor({int64_t{1} << 62}), {"tensor 'w' (byte 45)", "byte size of shape [4611686018427387904] as f32 overflows"});
}

TEST(GgufMalformed, TensorTypes) {
  for (uint32_t id : {4u, 5u, 31u, 36u, 40u, 200u}) {
    expect_error(one_tensor({32}, id),
                 {"tensor 'w' (byte 45)", fmt::format("unknown tensor type id {}: expected a ggml type id", id)});
  }
  expect_error(one_tensor({33}, 2 /*q4_0*/), {"tensor 'w' (byte 37)", "ne[0] = 33 is not a multiple of the q4_0 block size 32"});
  expect_error(one_tensor({128}, 12 /*q4_K*/), {"q4_K block size 256"});
  // Known but unsupported types (iq2_xxs) are read: refusing them is for the layers that compute.
  const File f = parse(one_tensor({256}, 16, 0, 66));
  EXPECT_EQ(f.tensors()[0].nbytes, 66u);
}

TEST(GgufMalformed, TensorOffsets) {
  expect_error(one_tensor({4}, 0, 4), {"tensor 'w' (byte 49)", "data offset 4 is not a multiple of the alignment 32",
                                       "misaligned"});
  expect_error(one_tensor({4}, 0, 0, 15),
               {"tensor 'w' (header byte 24)", "data [64, 80)", "ends past the end of the file (79 bytes)", "truncated"});
  expect_error(one_tensor({4}, 0, 1024), {"data [1088, 1104)", "ends past the end of the file (80 bytes)"});
  expect_error(one_tensor({4}, 0, UINT64_MAX - 31), {"tensor 'w' (header byte 24)", "data [2^64+, 2^64+)"});
  // Tensors but no data section at all (the file ends with the header).
  Raw r;
  r.header(3, 1, 0).tensor("w", {4}, 0, 0);
  expect_error(r.b, {"data [64, 80)", "ends past the end of the file (57 bytes)"});
}

TEST(GgufMalformed, OverlappingTensors) {
  // a is f32 [16] = 64 bytes at offset 0; b (32 bytes) at offset 32 shares a's second half.
  Raw r;
  r.header(3, 2, 0).tensor("a", {16}, 0, 0).tensor("b", {8}, 0, 32).pad().zeros(96);
  expect_error(r.b, {"tensor 'b' (header byte 57)", "data [128, 160) overlaps the data of tensor 'a' [96, 160)"});
  // The same offset twice, listed in the other order: still caught.
  Raw same;
  same.header(3, 2, 0).tensor("a", {8}, 0, 32).tensor("b", {8}, 0, 32).pad().zeros(64);
  expect_error(same.b, {"overlaps the data of tensor"});
  // Adjacent tensors, listed out of offset order, are fine.
  Raw ok;
  ok.header(3, 2, 0).tensor("a", {8}, 0, 32).tensor("b", {8}, 0, 0).pad().zeros(64);
  const File f = parse(ok.b);
  EXPECT_EQ(f.find_tensor("a")->data - f.find_tensor("b")->data, 32);
}

TEST(GgufMalformed, DuplicateTensorNames) {
  Raw r;
  r.header(3, 2, 0).tensor("w", {4}, 0, 0).tensor("w", {4}, 0, 32).pad().zeros(64);
  expect_error(r.b, {"tensor 'w' (byte 57)", "duplicate tensor name: it is also tensor #0 (header byte 24)"});
}

TEST(GgufMalformed, NamesInMessagesAreEscaped) {
  Raw r;
  r.header(3, 1, 0).tensor(std::string("bad\nname\x01", 9), {4, 0}, 0, 0).pad().zeros(16);
  expect_error(r.b, {"tensor 'bad\\x0aname\\x01'", "ne[1] is 0"});
}

}  // namespace
}  // namespace strata::gguf::test
