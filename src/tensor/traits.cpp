// The one traits table: a row per ggml type id (STYLE.md practice 1).
#include <algorithm>
#include <array>
#include <cctype>
#include <string>

#include "core/error.h"
#include "tensor/dtype.h"
#include "tensor/quant_ref.h"

namespace strata {

namespace {

// clang-format off
constexpr TypeTraits kTable[] = {
  // type           name       block  bytes  supported  to_float               from_float              vec_dot_type
  {DType::F32,     "f32",      1,     4,    true,  ref::dequantize_f32,    ref::quantize_f32,    DType::F32},
  {DType::F16,     "f16",      1,     2,    true,  ref::dequantize_f16,    ref::quantize_f16,    DType::F16},
  {DType::Q4_0,    "q4_0",     32,    18,   true,  ref::dequantize_q4_0,   ref::quantize_q4_0,   DType::Q8_0},
  {DType::Q4_1,    "q4_1",     32,    20,   true,  ref::dequantize_q4_1,   ref::quantize_q4_1,   DType::Q8_1},
  {DType::Q5_0,    "q5_0",     32,    22,   true,  ref::dequantize_q5_0,   ref::quantize_q5_0,   DType::Q8_0},
  {DType::Q5_1,    "q5_1",     32,    24,   true,  ref::dequantize_q5_1,   ref::quantize_q5_1,   DType::Q8_1},
  {DType::Q8_0,    "q8_0",     32,    34,   true,  ref::dequantize_q8_0,   ref::quantize_q8_0,   DType::Q8_0},
  {DType::Q8_1,    "q8_1",     32,    36,   true,  ref::dequantize_q8_1,   ref::quantize_q8_1,   DType::Q8_1},
  {DType::Q2_K,    "q2_K",     256,   84,   true,  ref::dequantize_q2_K,   ref::quantize_q2_K,   DType::Q8_K},
  {DType::Q3_K,    "q3_K",     256,   110,  true,  ref::dequantize_q3_K,   ref::quantize_q3_K,   DType::Q8_K},
  {DType::Q4_K,    "q4_K",     256,   144,  true,  ref::dequantize_q4_K,   ref::quantize_q4_K,   DType::Q8_K},
  {DType::Q5_K,    "q5_K",     256,   176,  true,  ref::dequantize_q5_K,   ref::quantize_q5_K,   DType::Q8_K},
  {DType::Q6_K,    "q6_K",     256,   210,  true,  ref::dequantize_q6_K,   ref::quantize_q6_K,   DType::Q8_K},
  {DType::Q8_K,    "q8_K",     256,   292,  true,  ref::dequantize_q8_K,   ref::quantize_q8_K,   DType::Q8_K},
  {DType::IQ2_XXS, "iq2_xxs",  256,   66,   false, nullptr, nullptr, DType::Q8_K},
  {DType::IQ2_XS,  "iq2_xs",   256,   74,   false, nullptr, nullptr, DType::Q8_K},
  {DType::IQ3_XXS, "iq3_xxs",  256,   98,   false, nullptr, nullptr, DType::Q8_K},
  {DType::IQ1_S,   "iq1_s",    256,   50,   false, nullptr, nullptr, DType::Q8_K},
  {DType::IQ4_NL,  "iq4_nl",   32,    18,   true,  ref::dequantize_iq4_nl, ref::quantize_iq4_nl, DType::Q8_0},
  {DType::IQ3_S,   "iq3_s",    256,   110,  false, nullptr, nullptr, DType::Q8_K},
  {DType::IQ2_S,   "iq2_s",    256,   82,   false, nullptr, nullptr, DType::Q8_K},
  {DType::IQ4_XS,  "iq4_xs",   256,   136,  true,  ref::dequantize_iq4_xs, ref::quantize_iq4_xs, DType::Q8_K},
  {DType::I8,      "i8",       1,     1,    false, nullptr, nullptr, DType::I8},
  {DType::I16,     "i16",      1,     2,    false, nullptr, nullptr, DType::I16},
  {DType::I32,     "i32",      1,     4,    false, nullptr, nullptr, DType::I32},
  {DType::I64,     "i64",      1,     8,    false, nullptr, nullptr, DType::I64},
  {DType::F64,     "f64",      1,     8,    false, nullptr, nullptr, DType::F64},
  {DType::IQ1_M,   "iq1_m",    256,   56,   false, nullptr, nullptr, DType::Q8_K},
  {DType::BF16,    "bf16",     1,     2,    true,  ref::dequantize_bf16,   ref::quantize_bf16,   DType::BF16},
  {DType::TQ1_0,   "tq1_0",    256,   54,   true,  ref::dequantize_tq1_0,  ref::quantize_tq1_0,  DType::Q8_K},
  {DType::TQ2_0,   "tq2_0",    256,   66,   true,  ref::dequantize_tq2_0,  ref::quantize_tq2_0,  DType::Q8_K},
  {DType::MXFP4,   "mxfp4",    32,    17,   false, nullptr, nullptr, DType::Q8_0},
};
// clang-format on

constexpr uint32_t kMaxId = 40;

constexpr std::array<int8_t, kMaxId> make_index() {
  std::array<int8_t, kMaxId> idx{};
  for (auto& v : idx) v = -1;
  for (size_t i = 0; i < std::size(kTable); ++i) idx[static_cast<uint32_t>(kTable[i].type)] = static_cast<int8_t>(i);
  return idx;
}
constexpr auto kIndex = make_index();

}  // namespace

const TypeTraits* find_traits(uint32_t id) {
  if (id >= kMaxId || kIndex[id] < 0) return nullptr;
  return &kTable[kIndex[id]];
}

const TypeTraits& traits(DType t) {
  const TypeTraits* tr = find_traits(static_cast<uint32_t>(t));
  STRATA_ASSERT(tr != nullptr, "DType value outside the traits table");
  return *tr;
}

std::optional<DType> dtype_from_name(std::string_view name) {
  std::string lower(name);
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
  for (const auto& t : kTable) {
    std::string tn(t.name);
    std::transform(tn.begin(), tn.end(), tn.begin(), [](unsigned char c) { return std::tolower(c); });
    if (tn == lower) return t.type;
  }
  return std::nullopt;
}

std::string_view supported_type_list() {
  static const std::string list = [] {
    std::string s;
    for (const auto& t : kTable)
      if (t.supported) s += (s.empty() ? "" : ", ") + std::string(t.name);
    return s;
  }();
  return list;
}

size_t row_bytes(DType t, int64_t n) {
  const TypeTraits& tr = traits(t);
  if (n < 0 || n % tr.block_size != 0)
    fail("a row of {} elements cannot be stored as {}: the row length must be a multiple of its block size {}",
         n, tr.name, tr.block_size);
  return static_cast<size_t>(n / tr.block_size) * tr.type_size;
}

void require_supported(DType t, std::string_view what) {
  const TypeTraits& tr = traits(t);
  if (!tr.supported)
    fail("{}: tensor type {} is not supported by strata yet (supported: {})", what, tr.name, supported_type_list());
}

void dequantize_row(DType t, const void* src, float* dst, int64_t n) {
  const TypeTraits& tr = traits(t);
  require_supported(t, "dequantize");
  (void)row_bytes(t, n);
  tr.to_float(src, dst, n);
}

void quantize_row(DType t, const float* src, void* dst, int64_t n) {
  const TypeTraits& tr = traits(t);
  require_supported(t, "quantize");
  (void)row_bytes(t, n);
  tr.from_float(src, dst, n);
}

}  // namespace strata
