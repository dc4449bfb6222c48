// Scalar reference quantize/dequantize for every supported type (the specification; bit-compatible with
// ggml's dequantize_row_* and quantize_row_*_ref). n is a multiple of the type's block size.
#pragma once
#include <cstdint>

namespace strata::ref {

#define STRATA_QUANT_REF(T)                                   \
  void dequantize_##T(const void* src, float* dst, int64_t n); \
  void quantize_##T(const float* src, void* dst, int64_t n);

STRATA_QUANT_REF(f32)
STRATA_QUANT_REF(f16)
STRATA_QUANT_REF(bf16)
STRATA_QUANT_REF(q4_0)
STRATA_QUANT_REF(q4_1)
STRATA_QUANT_REF(q5_0)
STRATA_QUANT_REF(q5_1)
STRATA_QUANT_REF(q8_0)
STRATA_QUANT_REF(q8_1)
STRATA_QUANT_REF(q2_K)
STRATA_QUANT_REF(q3_K)
STRATA_QUANT_REF(q4_K)
STRATA_QUANT_REF(q5_K)
STRATA_QUANT_REF(q6_K)
STRATA_QUANT_REF(q8_K)
STRATA_QUANT_REF(iq4_nl)
STRATA_QUANT_REF(iq4_xs)
STRATA_QUANT_REF(tq1_0)
STRATA_QUANT_REF(tq2_0)

#undef STRATA_QUANT_REF

}  // namespace strata::ref
