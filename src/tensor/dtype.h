// Tensor element types, bit-compatible with ggml (same ids, same block layouts).
// One traits table (STYLE.md practice 1): see traits.cpp. Block structs are pinned with static_assert.
#pragma once
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace strata {

// ggml_type ids as stored in GGUF files. Gaps (4, 5, 31-33, 36-38) are ids ggml removed.
enum class DType : uint32_t {
  F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q8_1 = 9,
  Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, Q8_K = 15,
  IQ2_XXS = 16, IQ2_XS = 17, IQ3_XXS = 18, IQ1_S = 19, IQ4_NL = 20, IQ3_S = 21, IQ2_S = 22, IQ4_XS = 23,
  I8 = 24, I16 = 25, I32 = 26, I64 = 27, F64 = 28, IQ1_M = 29, BF16 = 30,
  TQ1_0 = 34, TQ2_0 = 35, MXFP4 = 39,
};

using ToFloatFn = void (*)(const void* src, float* dst, int64_t n);        // n multiple of block_size
using FromFloatFn = void (*)(const float* src, void* dst, int64_t n);      // n multiple of block_size

struct TypeTraits {
  DType type;
  const char* name;        // ggml's name: "q4_0", "q4_K", "iq4_nl", "bf16", ...
  int64_t block_size;      // elements per block
  size_t type_size;        // bytes per block
  bool supported;          // strata can dequantize/compute with it (IQ1/IQ2/IQ3, MXFP4: not yet)
  ToFloatFn to_float;      // scalar reference dequantization (nullptr when !supported)
  FromFloatFn from_float;  // scalar reference quantization (nullptr when !supported)
  DType vec_dot_type;      // type activations are quantized to for dot products with this type
};

// Traits of a known type id, or nullptr for an id ggml never had / removed.
const TypeTraits* find_traits(uint32_t id);
// Traits of a known type (asserts it is in the table).
const TypeTraits& traits(DType t);
// Parses a ggml type name (case-insensitive: "Q4_0", "q4_k", "f16").
std::optional<DType> dtype_from_name(std::string_view name);
inline const char* dtype_name(DType t) { return traits(t).name; }

// Bytes of a row of n elements; throws strata::Error if n is not a multiple of the block size.
size_t row_bytes(DType t, int64_t n);
// Throws strata::Error naming the type when strata cannot compute with it, e.g.
// "tensor type iq2_xxs is not supported by strata yet (supported: f32, f16, ...)".
void require_supported(DType t, std::string_view what);
// Comma-separated list of the supported type names.
std::string_view supported_type_list();

// Dequantize n elements (multiple of block size) with the scalar reference.
void dequantize_row(DType t, const void* src, float* dst, int64_t n);
// Quantize n elements (multiple of block size) with the scalar reference.
void quantize_row(DType t, const float* src, void* dst, int64_t n);

// ---- Block layouts (ggml-common.h). ggml_half is stored as raw uint16_t. ----
constexpr int QK4_0 = 32, QK4_1 = 32, QK5_0 = 32, QK5_1 = 32, QK8_0 = 32, QK8_1 = 32, QK4_NL = 32;
constexpr int QK_K = 256, K_SCALE_SIZE = 12;

struct block_q4_0 { uint16_t d; uint8_t qs[QK4_0 / 2]; };
struct block_q4_1 { uint16_t d, m; uint8_t qs[QK4_1 / 2]; };
struct block_q5_0 { uint16_t d; uint8_t qh[4]; uint8_t qs[QK5_0 / 2]; };
struct block_q5_1 { uint16_t d, m; uint8_t qh[4]; uint8_t qs[QK5_1 / 2]; };
struct block_q8_0 { uint16_t d; int8_t qs[QK8_0]; };
struct block_q8_1 { uint16_t d, s; int8_t qs[QK8_1]; };  // s = d * sum(qs)
struct block_q2_K { uint8_t scales[QK_K / 16]; uint8_t qs[QK_K / 4]; uint16_t d, dmin; };
struct block_q3_K { uint8_t hmask[QK_K / 8]; uint8_t qs[QK_K / 4]; uint8_t scales[12]; uint16_t d; };
struct block_q4_K { uint16_t d, dmin; uint8_t scales[K_SCALE_SIZE]; uint8_t qs[QK_K / 2]; };
struct block_q5_K { uint16_t d, dmin; uint8_t scales[K_SCALE_SIZE]; uint8_t qh[QK_K / 8]; uint8_t qs[QK_K / 2]; };
struct block_q6_K { uint8_t ql[QK_K / 2]; uint8_t qh[QK_K / 4]; int8_t scales[QK_K / 16]; uint16_t d; };
struct block_q8_K { float d; int8_t qs[QK_K]; int16_t bsums[QK_K / 16]; };
struct block_iq4_nl { uint16_t d; uint8_t qs[QK4_NL / 2]; };
struct block_iq4_xs { uint16_t d; uint16_t scales_h; uint8_t scales_l[QK_K / 64]; uint8_t qs[QK_K / 2]; };
struct block_tq1_0 { uint8_t qs[(QK_K - 4 * QK_K / 64) / 5]; uint8_t qh[QK_K / 64]; uint16_t d; };
struct block_tq2_0 { uint8_t qs[QK_K / 4]; uint16_t d; };

static_assert(sizeof(block_q4_0) == 18);
static_assert(sizeof(block_q4_1) == 20);
static_assert(sizeof(block_q5_0) == 22);
static_assert(sizeof(block_q5_1) == 24);
static_assert(sizeof(block_q8_0) == 34);
static_assert(sizeof(block_q8_1) == 36);
static_assert(sizeof(block_q2_K) == 84);
static_assert(sizeof(block_q3_K) == 110);
static_assert(sizeof(block_q4_K) == 144);
static_assert(sizeof(block_q5_K) == 176);
static_assert(sizeof(block_q6_K) == 210);
static_assert(sizeof(block_q8_K) == 292);
static_assert(sizeof(block_iq4_nl) == 18);
static_assert(sizeof(block_iq4_xs) == 136);
static_assert(sizeof(block_tq1_0) == 54);
static_assert(sizeof(block_tq2_0) == 66);

}  // namespace strata
