// The traits table: ggml ids, names, block sizes and bytes, lookups, row sizes and unsupported types.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <string>
#include <vector>

#include "core/error.h"
#include "tensor/dtype.h"

namespace strata {
namespace {

std::vector<const TypeTraits*> all_traits() {
  std::vector<const TypeTraits*> v;
  for (uint32_t id = 0; id < 256; ++id)
    if (const TypeTraits* t = find_traits(id)) v.push_back(t);
  return v;
}

TEST(Traits, IdsMatchGgml) {
  // ggml_type values (ggml.h); a GGUF file stores these numbers.
  EXPECT_EQ(static_cast<uint32_t>(DType::F32), 0u);
  EXPECT_EQ(static_cast<uint32_t>(DType::Q8_0), 8u);
  EXPECT_EQ(static_cast<uint32_t>(DType::Q2_K), 10u);
  EXPECT_EQ(static_cast<uint32_t>(DType::IQ4_NL), 20u);
  EXPECT_EQ(static_cast<uint32_t>(DType::IQ4_XS), 23u);
  EXPECT_EQ(static_cast<uint32_t>(DType::BF16), 30u);
  EXPECT_EQ(static_cast<uint32_t>(DType::TQ1_0), 34u);
  EXPECT_EQ(static_cast<uint32_t>(DType::TQ2_0), 35u);
  EXPECT_EQ(static_cast<uint32_t>(DType::MXFP4), 39u);
  for (const TypeTraits* t : all_traits()) EXPECT_EQ(find_traits(static_cast<uint32_t>(t->type)), t) << t->name;
  EXPECT_EQ(all_traits().size(), 32u);  // ids 0-30 without 4, 5; 34, 35, 39
}

TEST(Traits, UnknownIdsGiveNull) {
  for (uint32_t id : {4u, 5u, 31u, 32u, 33u, 36u, 37u, 38u, 40u, 99u, 1000u, 0xFFFFFFFFu})
    EXPECT_EQ(find_traits(id), nullptr) << id;
}

TEST(Traits, TypeSizeIsSizeofBlock) {
  struct Row { DType t; size_t size; int64_t block; };
  const Row rows[] = {
      {DType::F32, sizeof(float), 1},          {DType::F16, sizeof(uint16_t), 1},
      {DType::BF16, sizeof(uint16_t), 1},      {DType::Q4_0, sizeof(block_q4_0), QK4_0},
      {DType::Q4_1, sizeof(block_q4_1), QK4_1}, {DType::Q5_0, sizeof(block_q5_0), QK5_0},
      {DType::Q5_1, sizeof(block_q5_1), QK5_1}, {DType::Q8_0, sizeof(block_q8_0), QK8_0},
      {DType::Q8_1, sizeof(block_q8_1), QK8_1}, {DType::Q2_K, sizeof(block_q2_K), QK_K},
      {DType::Q3_K, sizeof(block_q3_K), QK_K},  {DType::Q4_K, sizeof(block_q4_K), QK_K},
      {DType::Q5_K, sizeof(block_q5_K), QK_K},  {DType::Q6_K, sizeof(block_q6_K), QK_K},
      {DType::Q8_K, sizeof(block_q8_K), QK_K},  {DType::IQ4_NL, sizeof(block_iq4_nl), QK4_NL},
      {DType::IQ4_XS, sizeof(block_iq4_xs), QK_K}, {DType::TQ1_0, sizeof(block_tq1_0), QK_K},
      {DType::TQ2_0, sizeof(block_tq2_0), QK_K},
  };
  for (const Row& r : rows) {
    const TypeTraits& t = traits(r.t);
    EXPECT_EQ(t.type_size, r.size) << t.name;
    EXPECT_EQ(t.block_size, r.block) << t.name;
    EXPECT_TRUE(t.supported) << t.name;
    EXPECT_NE(t.to_float, nullptr) << t.name;
    EXPECT_NE(t.from_float, nullptr) << t.name;
  }
  // Every supported type is in the list above (19 of them).
  int supported = 0;
  for (const TypeTraits* t : all_traits()) supported += t->supported;
  EXPECT_EQ(supported, static_cast<int>(std::size(rows)));
}

TEST(Traits, UnsupportedTypesHaveNoFunctions) {
  for (const TypeTraits* t : all_traits()) {
    if (t->supported) continue;
    EXPECT_EQ(t->to_float, nullptr) << t->name;
    EXPECT_EQ(t->from_float, nullptr) << t->name;
    EXPECT_GT(t->type_size, 0u) << t->name;  // sizes are still known, so files can be indexed
  }
  // Sizes of the not-yet-supported ggml blocks (ggml-common.h), so tensor byte sizes are right.
  EXPECT_EQ(traits(DType::IQ2_XXS).type_size, 66u);
  EXPECT_EQ(traits(DType::IQ2_XS).type_size, 74u);
  EXPECT_EQ(traits(DType::IQ2_S).type_size, 82u);
  EXPECT_EQ(traits(DType::IQ3_XXS).type_size, 98u);
  EXPECT_EQ(traits(DType::IQ3_S).type_size, 110u);
  EXPECT_EQ(traits(DType::IQ1_S).type_size, 50u);
  EXPECT_EQ(traits(DType::IQ1_M).type_size, 56u);
  EXPECT_EQ(traits(DType::MXFP4).type_size, 17u);
  EXPECT_EQ(traits(DType::MXFP4).block_size, 32);
}

TEST(Traits, VecDotTypes) {
  EXPECT_EQ(traits(DType::Q4_0).vec_dot_type, DType::Q8_0);
  EXPECT_EQ(traits(DType::Q4_1).vec_dot_type, DType::Q8_1);
  EXPECT_EQ(traits(DType::Q5_1).vec_dot_type, DType::Q8_1);
  EXPECT_EQ(traits(DType::Q4_K).vec_dot_type, DType::Q8_K);
  EXPECT_EQ(traits(DType::IQ4_NL).vec_dot_type, DType::Q8_0);
  EXPECT_EQ(traits(DType::IQ4_XS).vec_dot_type, DType::Q8_K);
  EXPECT_EQ(traits(DType::TQ2_0).vec_dot_type, DType::Q8_K);
  EXPECT_EQ(traits(DType::F16).vec_dot_type, DType::F16);
}

TEST(Traits, NamesUniqueAndRoundTrip) {
  std::set<std::string> names;
  for (const TypeTraits* t : all_traits()) {
    EXPECT_TRUE(names.insert(t->name).second) << "duplicate name " << t->name;
    EXPECT_EQ(dtype_from_name(t->name), t->type) << t->name;
    EXPECT_STREQ(dtype_name(t->type), t->name);
    std::string upper = t->name;
    for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    EXPECT_EQ(dtype_from_name(upper), t->type) << upper;
  }
  EXPECT_EQ(dtype_from_name("q4_k"), DType::Q4_K);
  EXPECT_STREQ(dtype_name(DType::Q4_K), "q4_K");  // ggml's spelling
  EXPECT_FALSE(dtype_from_name("q4_2").has_value());
  EXPECT_FALSE(dtype_from_name("").has_value());
  EXPECT_FALSE(dtype_from_name("f32 ").has_value());
}

TEST(Traits, RowBytes) {
  EXPECT_EQ(row_bytes(DType::F32, 7), 28u);
  EXPECT_EQ(row_bytes(DType::F16, 3), 6u);
  EXPECT_EQ(row_bytes(DType::Q4_0, 64), 36u);
  EXPECT_EQ(row_bytes(DType::Q4_K, 512), 288u);
  EXPECT_EQ(row_bytes(DType::Q8_0, 0), 0u);
  EXPECT_EQ(row_bytes(DType::IQ2_XXS, 256), 66u);  // sizes work for unsupported types too
  EXPECT_THROW(row_bytes(DType::Q4_0, 33), Error);
  EXPECT_THROW(row_bytes(DType::Q6_K, 128), Error);
  EXPECT_THROW(row_bytes(DType::Q8_0, -32), Error);
  try {
    row_bytes(DType::Q4_K, 100);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("q4_K"), std::string::npos) << msg;
    EXPECT_NE(msg.find("256"), std::string::npos) << msg;
  }
}

TEST(Traits, RequireSupportedNamesTheType) {
  for (DType t : {DType::IQ2_XXS, DType::IQ2_XS, DType::IQ2_S, DType::IQ3_XXS, DType::IQ3_S, DType::IQ1_S,
                  DType::IQ1_M, DType::MXFP4}) {
    try {
      require_supported(t, "blk.0.attn_q.weight");
      FAIL() << "expected an error for " << dtype_name(t);
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find(std::string("tensor type ") + dtype_name(t)), std::string::npos) << msg;
      EXPECT_NE(msg.find("blk.0.attn_q.weight"), std::string::npos) << msg;
      EXPECT_NE(msg.find("not supported"), std::string::npos) << msg;
      EXPECT_NE(msg.find("q4_K"), std::string::npos) << "should list what is supported: " << msg;
    }
  }
  EXPECT_NO_THROW(require_supported(DType::Q4_K, "x"));
  EXPECT_NO_THROW(require_supported(DType::TQ1_0, "x"));
  // dequantize_row / quantize_row refuse unsupported types with the same message.
  std::vector<uint8_t> buf(66);
  std::vector<float> f(256);
  EXPECT_THROW(dequantize_row(DType::IQ2_XXS, buf.data(), f.data(), 256), Error);
  EXPECT_THROW(quantize_row(DType::IQ1_S, f.data(), buf.data(), 256), Error);
  EXPECT_THROW(dequantize_row(DType::Q4_0, buf.data(), f.data(), 31), Error);
}

TEST(Traits, SupportedListNamesEverySupportedType) {
  std::set<std::string> listed;
  const std::string list(supported_type_list());
  for (size_t pos = 0; pos <= list.size();) {
    const size_t end = std::min(list.find(", ", pos), list.size());
    listed.insert(list.substr(pos, end - pos));
    pos = end + 2;
  }
  std::set<std::string> supported;
  for (const TypeTraits* t : all_traits())
    if (t->supported) supported.insert(t->name);
  EXPECT_EQ(listed, supported) << list;
}

}  // namespace
}  // namespace strata
