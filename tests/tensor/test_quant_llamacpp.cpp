// The scalar references against llama.cpp, on the real model files in ../shared:
//  - dequantizing the tensors of models/quant/strata-tiny-256-TYPE.gguf reproduces llama.cpp's (gguf-py's)
//    values in reference/llamacpp/dequant/ bit for bit (no tolerance: same float operations, same order);
//  - quantizing the F32 model's tensors reproduces llama-quantize's bytes exactly;
//  - the F16 model holds exactly the round-to-nearest-even f16 of the F32 model's weights.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "gguf/gguf.h"
#include "tensor/dtype.h"
#include "test_util.h"

namespace strata {
namespace {

const char* kRefTensors[] = {"blk.0.attn_k.weight", "blk.0.ffn_down.weight"};
const char* kTypes[] = {"Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q2_K", "Q3_K",
                        "Q4_K", "Q5_K", "Q6_K", "IQ4_NL", "IQ4_XS", "TQ1_0", "TQ2_0"};

std::string quant_model(const std::string& type) { return "models/quant/strata-tiny-256-" + type + ".gguf"; }

// Number of floats whose bit patterns differ (so -0.0 vs 0.0 and NaN payloads count as differences).
int64_t count_bit_mismatches(const std::vector<float>& a, const float* b, int64_t n, const std::string& what) {
  int64_t bad = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (std::memcmp(&a[i], &b[i], sizeof(float)) != 0 && bad++ < 3)
      ADD_FAILURE() << what << " [" << i << "]: strata " << a[i] << " vs llama.cpp " << b[i];
  }
  return bad;
}

class LlamaCppType : public ::testing::TestWithParam<const char*> {};

TEST_P(LlamaCppType, DequantizeIsBitExact) {
  const std::string type = GetParam();
  STRATA_REQUIRE_SHARED(model, quant_model(type).c_str());
  const auto f = gguf::File::open(model);
  for (const char* name : kRefTensors) {
    STRATA_REQUIRE_SHARED(ref_path, ("reference/llamacpp/dequant/" + type + "." + name + ".f32").c_str());
    const auto ref = test::read_f32(ref_path);
    const gguf::TensorInfo* t = f.find_tensor(name);
    ASSERT_NE(t, nullptr) << name;
    ASSERT_EQ(dtype_from_name(type), static_cast<DType>(t->type)) << name;
    const int64_t n = t->n_elements();
    ASSERT_EQ(static_cast<size_t>(n), ref.size()) << name;
    ASSERT_EQ(row_bytes(static_cast<DType>(t->type), n), t->nbytes);
    std::vector<float> out(static_cast<size_t>(n));
    // One call per row, as the model will (rows are 256 or 768 elements).
    const int64_t row = t->ne[0];
    const size_t rb = row_bytes(static_cast<DType>(t->type), row);
    for (int64_t r = 0; r < n / row; ++r)
      dequantize_row(static_cast<DType>(t->type), t->data + r * rb, out.data() + r * row, row);
    EXPECT_EQ(count_bit_mismatches(out, ref.data(), n, type + " " + name), 0) << type << " " << name;
  }
}

// llama-quantize --pure without an imatrix reaches ggml_quantize_chunk -> quantize_TYPE(..., NULL), which
// for every type here runs the algorithm of our reference (quantize_row_*_ref; for iq4_nl/iq4_xs the
// ntry = 7 best-scale search). Compared on every 2-D weight of layer 0 and on the output head.
TEST_P(LlamaCppType, QuantizeIsByteExact) {
  const std::string type = GetParam();
  STRATA_REQUIRE_SHARED(f32_model, "models/strata-tiny-256.gguf");
  STRATA_REQUIRE_SHARED(model, quant_model(type).c_str());
  const auto src = gguf::File::open(f32_model);
  const auto q = gguf::File::open(model);
  const DType dt = *dtype_from_name(type);
  int checked = 0;
  for (const auto& tq : q.tensors()) {
    if (tq.type != static_cast<uint32_t>(dt)) continue;
    if (tq.name.rfind("blk.0.", 0) != 0 && tq.name != "output.weight") continue;
    const gguf::TensorInfo* ts = src.find_tensor(tq.name);
    ASSERT_NE(ts, nullptr) << tq.name;
    ASSERT_EQ(ts->type, static_cast<uint32_t>(DType::F32)) << tq.name;
    ASSERT_EQ(ts->ne, tq.ne) << tq.name;
    const int64_t row = ts->ne[0];
    const size_t rb = row_bytes(dt, row);
    ASSERT_EQ(rb * static_cast<size_t>(ts->n_rows()), tq.nbytes);
    std::vector<uint8_t> out(tq.nbytes);
    std::vector<float> x(static_cast<size_t>(row));
    for (int64_t r = 0; r < ts->n_rows(); ++r) {
      std::memcpy(x.data(), ts->data + r * row * 4, static_cast<size_t>(row) * 4);
      quantize_row(dt, x.data(), out.data() + r * rb, row);
    }
    const size_t bs = traits(dt).type_size;
    size_t bad = 0;
    for (size_t b = 0; b < tq.nbytes / bs; ++b) bad += std::memcmp(out.data() + b * bs, tq.data + b * bs, bs) != 0;
    EXPECT_EQ(bad, 0u) << type << " " << tq.name << ": " << bad << " of " << tq.nbytes / bs << " blocks differ";
    ++checked;
  }
  EXPECT_GE(checked, 8) << "expected the 7 weights of layer 0 and output.weight in " << type;
}

INSTANTIATE_TEST_SUITE_P(ModelsQuant, LlamaCppType, ::testing::ValuesIn(kTypes),
                         [](const auto& p) { return std::string(p.param); });

TEST(LlamaCppF16, F16ModelIsRoundedF32Model) {
  STRATA_REQUIRE_SHARED(f32_model, "models/strata-tiny-256.gguf");
  STRATA_REQUIRE_SHARED(f16_model, "models/strata-tiny-256-f16.gguf");
  const auto a = gguf::File::open(f32_model);
  const auto h = gguf::File::open(f16_model);
  int f16_tensors = 0;
  for (const auto& th : h.tensors()) {
    const gguf::TensorInfo* ta = a.find_tensor(th.name);
    ASSERT_NE(ta, nullptr) << th.name;
    ASSERT_EQ(ta->type, static_cast<uint32_t>(DType::F32));
    const int64_t n = th.n_elements();
    ASSERT_EQ(n, ta->n_elements());
    std::vector<float> x(static_cast<size_t>(n)), y(static_cast<size_t>(n));
    std::memcpy(x.data(), ta->data, static_cast<size_t>(n) * 4);
    dequantize_row(static_cast<DType>(th.type), th.data, y.data(), n);
    if (th.type == static_cast<uint32_t>(DType::F16)) {
      ++f16_tensors;
      // quantize(F32) reproduces the F16 file's bytes; dequantize gives the rounded F32 values.
      std::vector<uint8_t> bytes(static_cast<size_t>(n) * 2);
      quantize_row(DType::F16, x.data(), bytes.data(), n);
      EXPECT_EQ(std::memcmp(bytes.data(), th.data, bytes.size()), 0) << th.name;
      std::vector<float> rounded(static_cast<size_t>(n));
      dequantize_row(DType::F16, bytes.data(), rounded.data(), n);
      EXPECT_EQ(count_bit_mismatches(y, rounded.data(), n, th.name), 0) << th.name;
    } else {
      EXPECT_EQ(count_bit_mismatches(y, x.data(), n, th.name), 0) << th.name;  // F32 copied as is
    }
  }
  EXPECT_GT(f16_tensors, 0);
}

}  // namespace
}  // namespace strata
