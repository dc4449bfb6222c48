// Typed getters, Value conversions and printing, and the Writer's own checks.
#include "gguf/gguf.h"
#include "gguf_test_helpers.h"

namespace strata::gguf::test {
namespace {

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

class GgufGetters : public ::testing::Test {
 protected:
  Sample s;
  std::vector<uint8_t> bytes = s.bytes();
  File f = parse(bytes);
};

TEST_F(GgufGetters, DefaultsWhenAbsent) {
  EXPECT_EQ(f.get_int("nope", 42), 42);
  EXPECT_EQ(f.get_float("nope", 2.5), 2.5);
  EXPECT_TRUE(f.get_bool("nope", true));
  EXPECT_EQ(f.get_string("nope", "d"), "d");
  EXPECT_EQ(f.get_id("nope"), -1);
  EXPECT_EQ(f.get_id("nope", 7), 7);
  EXPECT_TRUE(f.get_string_array("nope").empty());
  EXPECT_TRUE(f.get_f32_array("nope").empty());
  EXPECT_TRUE(f.get_i32_array("nope").empty());
  EXPECT_FALSE(f.has("nope"));
  EXPECT_TRUE(f.has("t.u8"));
}

TEST_F(GgufGetters, IntegersOfEveryWidth) {
  EXPECT_EQ(f.get_int("t.u8", 0), 200);
  EXPECT_EQ(f.get_int("t.i8", 0), -100);
  EXPECT_EQ(f.get_int("t.u16", 0), 60000);
  EXPECT_EQ(f.get_int("t.i16", 0), -30000);
  EXPECT_EQ(f.get_int("t.u32", 0), 4000000000);
  EXPECT_EQ(f.get_int("t.i32", 0), -2000000000);
  EXPECT_EQ(f.get_int("t.i64", 0), INT64_MIN);
  EXPECT_EQ(f.require_int("t.u32"), 4000000000);
  // u64 max does not fit an int64: an error naming the key, not a silent wrap.
  const std::string msg = error_of([&] { (void)f.get_int("t.u64", 0); });
  EXPECT_NE(msg.find("key 't.u64'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("does not fit in a signed 64-bit integer"), std::string::npos) << msg;
}

TEST_F(GgufGetters, FloatsStringsBools) {
  EXPECT_FLOAT_EQ(static_cast<float>(f.get_float("t.f32", 0)), 1e-5f);
  EXPECT_EQ(f.get_float("t.f64", 0), 3.141592653589793);
  EXPECT_EQ(f.get_float("t.u16", 0), 60000.0);  // integers convert to float
  EXPECT_EQ(f.get_string("general.architecture"), "llama");
  EXPECT_EQ(f.require_string("general.name"), "sample \"quoted\"\n");
  EXPECT_TRUE(f.get_bool("t.bool", false));
}

TEST_F(GgufGetters, WrongTypesNameTheKeyAndTypes) {
  std::string m = error_of([&] { (void)f.get_int("general.architecture", 0); });
  EXPECT_NE(m.find("gguf: test.gguf: key 'general.architecture': expected an integer, found string"), std::string::npos) << m;
  m = error_of([&] { (void)f.get_string("t.u8"); });
  EXPECT_NE(m.find("key 't.u8': expected a string, found u8"), std::string::npos) << m;
  m = error_of([&] { (void)f.get_bool("t.u8", false); });
  EXPECT_NE(m.find("expected a bool, found u8"), std::string::npos) << m;
  m = error_of([&] { (void)f.get_float("t.strings", 0); });
  EXPECT_NE(m.find("expected a number, found array of string (4 elements)"), std::string::npos) << m;
  m = error_of([&] { (void)f.require_int("llama.block_count"); });
  EXPECT_NE(m.find("missing required key 'llama.block_count'"), std::string::npos) << m;
  m = error_of([&] { (void)f.require_string("tokenizer.ggml.model"); });
  EXPECT_NE(m.find("missing required key 'tokenizer.ggml.model'"), std::string::npos) << m;
  m = error_of([&] { (void)f.get_id("general.name"); });
  EXPECT_NE(m.find("expected an integer"), std::string::npos) << m;
}

TEST_F(GgufGetters, Arrays) {
  EXPECT_EQ(f.get_string_array("t.strings")[0], "<unk>");
  EXPECT_EQ(f.get_f32_array("t.f32s")[2], 1.5f);
  EXPECT_EQ(f.get_i32_array("t.i32s"), (std::vector<int32_t>{-1, 0, 7}));
  EXPECT_TRUE(f.get_string_array("t.empty").empty());
  std::string m = error_of([&] { (void)f.get_f32_array("t.i32s"); });
  EXPECT_NE(m.find("key 't.i32s': expected an array of f32, found an array of i32"), std::string::npos) << m;
  m = error_of([&] { (void)f.get_string_array("t.u8"); });
  EXPECT_NE(m.find("expected an array of string, found u8"), std::string::npos) << m;
  m = error_of([&] { (void)f.get_i32_array("t.nested"); });
  EXPECT_NE(m.find("expected an array of i32, found an array of array"), std::string::npos) << m;
}

TEST(GgufGettersMore, I32ArraysAcceptNarrowIntegersThatFit) {
  Writer w;
  w.set("u32s", array(ValueType::kU32, {Writer::u32(5), Writer::u32(0xFFFFFFFFu)}));
  w.set("i8s", array(ValueType::kI8, {i8(-3), i8(4)}));
  const std::vector<uint8_t> b = w.to_bytes();
  const File f = parse(b);
  EXPECT_EQ(f.get_i32_array("i8s"), (std::vector<int32_t>{-3, 4}));
  const std::string m = error_of([&] { (void)f.get_i32_array("u32s"); });
  EXPECT_NE(m.find("key 'u32s'[1]: value 4294967295 does not fit in i32"), std::string::npos) << m;
}

TEST(GgufGettersMore, IdSentinels) {
  Writer w;
  w.set("a", Writer::u32(0xFFFFFFFFu));
  w.set("b", Writer::i32(-1));
  w.set("c", Writer::u64(UINT64_MAX));
  w.set("d", Writer::u32(12));
  w.set("e", Writer::i32(0));
  const std::vector<uint8_t> b = w.to_bytes();
  const File f = parse(b);
  EXPECT_EQ(f.get_id("a"), -1);
  EXPECT_EQ(f.get_id("b", -5), -5);
  EXPECT_EQ(f.get_id("c"), -1);
  EXPECT_EQ(f.get_id("d"), 12);
  EXPECT_EQ(f.get_id("e", -1), 0);
}

TEST(GgufValue, ToString) {
  EXPECT_EQ(u8(7).to_string(), "7");
  EXPECT_EQ(i64(-9).to_string(), "-9");
  EXPECT_EQ(Writer::f32(1e-5f).to_string(), "1e-05");
  EXPECT_EQ(f64(0.1).to_string(), "0.1");
  EXPECT_EQ(Writer::boolean(false).to_string(), "false");
  EXPECT_EQ(Writer::string("a\"b\n\x01").to_string(), "\"a\\\"b\\n\\x01\"");
  std::vector<int32_t> v(20);
  for (int k = 0; k < 20; ++k) v[k] = k;
  EXPECT_EQ(Writer::i32_array(v).to_string(3), "[0, 1, 2, ... 17 more]");
  EXPECT_EQ(Writer::i32_array({}).to_string(), "[]");
  EXPECT_EQ(array(ValueType::kArray, {Writer::i32_array({1}), Writer::i32_array({})}).to_string(), "[[1], []]");
  EXPECT_EQ(Writer::string_array({"x"}).to_string(0), "[... 1 more]");
  EXPECT_STREQ(value_type_name(ValueType::kF64), "f64");
  EXPECT_STREQ(value_type_name(ValueType::kArray), "array");
}

TEST(GgufValue, Equality) {
  EXPECT_TRUE(Writer::u32(3) == Writer::u32(3));
  EXPECT_FALSE(Writer::u32(3) == Writer::u64(3));  // the type is part of the value
  EXPECT_FALSE(Writer::f32(0.f) == Writer::f32(-0.f));
  EXPECT_TRUE(Writer::f32(std::nanf("")) == Writer::f32(std::nanf("1")));
  EXPECT_FALSE(Writer::i32_array({1, 2}) == Writer::i32_array({1, 3}));
  EXPECT_FALSE(array(ValueType::kI32, {}) == array(ValueType::kU32, {}));
  EXPECT_TRUE(Writer::string_array({"a", "b"}) == Writer::string_array({"a", "b"}));
}

TEST(GgufValue, Conversions) {
  EXPECT_TRUE(u16(1).is_int());
  EXPECT_FALSE(Writer::boolean(true).is_int());
  EXPECT_TRUE(f64(1).is_float());
  EXPECT_EQ(Writer::i32(-5).as_float("x"), -5.0);
  EXPECT_THROW((void)Writer::f32(1.f).as_int("x"), Error);
  EXPECT_THROW((void)Writer::string("1").as_bool("x"), Error);
  EXPECT_NE(error_of([] { (void)Writer::u32(1).as_string("my.key"); }).find("my.key: expected a string, found u32"),
            std::string::npos);
}

TEST(GgufWriter, SetReplacesInPlace) {
  Writer w;
  w.set("a", Writer::u32(1));
  w.set("b", Writer::u32(2));
  w.set("a", Writer::string("x"));
  const std::vector<uint8_t> b = w.to_bytes();
  const File f = parse(b);
  ASSERT_EQ(f.metadata().size(), 2u);
  EXPECT_EQ(f.metadata()[0].first, "a");
  EXPECT_EQ(f.get_string("a"), "x");
}

TEST(GgufWriter, RejectsWhatCannotBeReadBack) {
  std::vector<uint8_t> data(16);
  Writer w;
  EXPECT_NE(error_of([&] { w.add_tensor("t", 4, {4}, data); }).find("unknown tensor type id 4"), std::string::npos);
  EXPECT_NE(error_of([&] { w.add_tensor("t", 0, {5}, data); }).find("16 bytes of data given, expected 20"),
            std::string::npos);
  EXPECT_NE(error_of([&] { w.add_tensor("t", 0, {}, data); }).find("0 dimensions"), std::string::npos);
  EXPECT_NE(error_of([&] { w.add_tensor("t", 0, {4, 0}, data); }).find("invalid shape"), std::string::npos);
  EXPECT_NE(error_of([&] { w.add_tensor("t", 2, {16}, data); }).find("not a multiple of the q4_0 block size"),
            std::string::npos);
  w.add_tensor("t", 0, {4}, data);
  EXPECT_NE(error_of([&] { w.add_tensor("t", 0, {4}, data); }).find("already added"), std::string::npos);

  Writer bad_align;
  bad_align.set("general.alignment", Writer::u32(3));
  EXPECT_NE(error_of([&] { (void)bad_align.to_bytes(); }).find("alignment 3 is not a power of two"), std::string::npos);
  Writer too_big;
  Value v = u8(0);
  v.u = 300;
  too_big.set("k", v);
  EXPECT_NE(error_of([&] { (void)too_big.to_bytes(); }).find("key 'k': value 300 does not fit in u8"), std::string::npos);
  Writer mixed;
  mixed.set("m", array(ValueType::kI32, {Writer::i32(1), Writer::u32(2)}));
  EXPECT_NE(error_of([&] { (void)mixed.to_bytes(); }).find("element 1 has type u32 in an array of i32"),
            std::string::npos);
  Writer deep;
  Value d = Writer::i32_array({1});
  for (int k = 0; k < 8; ++k) d = array(ValueType::kArray, {d});
  deep.set("deep", d);
  EXPECT_NE(error_of([&] { (void)deep.to_bytes(); }).find("nested more than 8 deep"), std::string::npos);
}

}  // namespace
}  // namespace strata::gguf::test
