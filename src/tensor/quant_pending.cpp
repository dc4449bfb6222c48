// TEMPORARY (being replaced by the tensor-types work): every function throws until implemented.
// Delete each pair from this file as its real implementation lands in quant_*.cpp.
#include "core/error.h"
#include "tensor/quant_ref.h"

namespace strata::ref {

void dequantize_f32(const void*, float*, int64_t) { fail("dequantize f32: not implemented yet"); }
void quantize_f32(const float*, void*, int64_t) { fail("quantize f32: not implemented yet"); }
void dequantize_f16(const void*, float*, int64_t) { fail("dequantize f16: not implemented yet"); }
void quantize_f16(const float*, void*, int64_t) { fail("quantize f16: not implemented yet"); }
void dequantize_bf16(const void*, float*, int64_t) { fail("dequantize bf16: not implemented yet"); }
void quantize_bf16(const float*, void*, int64_t) { fail("quantize bf16: not implemented yet"); }
void dequantize_q4_0(const void*, float*, int64_t) { fail("dequantize q4_0: not implemented yet"); }
void quantize_q4_0(const float*, void*, int64_t) { fail("quantize q4_0: not implemented yet"); }
void dequantize_q4_1(const void*, float*, int64_t) { fail("dequantize q4_1: not implemented yet"); }
void quantize_q4_1(const float*, void*, int64_t) { fail("quantize q4_1: not implemented yet"); }
void dequantize_q5_0(const void*, float*, int64_t) { fail("dequantize q5_0: not implemented yet"); }
void quantize_q5_0(const float*, void*, int64_t) { fail("quantize q5_0: not implemented yet"); }
void dequantize_q5_1(const void*, float*, int64_t) { fail("dequantize q5_1: not implemented yet"); }
void quantize_q5_1(const float*, void*, int64_t) { fail("quantize q5_1: not implemented yet"); }
void dequantize_q8_0(const void*, float*, int64_t) { fail("dequantize q8_0: not implemented yet"); }
void quantize_q8_0(const float*, void*, int64_t) { fail("quantize q8_0: not implemented yet"); }
void dequantize_q8_1(const void*, float*, int64_t) { fail("dequantize q8_1: not implemented yet"); }
void quantize_q8_1(const float*, void*, int64_t) { fail("quantize q8_1: not implemented yet"); }
void dequantize_q2_K(const void*, float*, int64_t) { fail("dequantize q2_K: not implemented yet"); }
void quantize_q2_K(const float*, void*, int64_t) { fail("quantize q2_K: not implemented yet"); }
void dequantize_q3_K(const void*, float*, int64_t) { fail("dequantize q3_K: not implemented yet"); }
void quantize_q3_K(const float*, void*, int64_t) { fail("quantize q3_K: not implemented yet"); }
void dequantize_q4_K(const void*, float*, int64_t) { fail("dequantize q4_K: not implemented yet"); }
void quantize_q4_K(const float*, void*, int64_t) { fail("quantize q4_K: not implemented yet"); }
void dequantize_q5_K(const void*, float*, int64_t) { fail("dequantize q5_K: not implemented yet"); }
void quantize_q5_K(const float*, void*, int64_t) { fail("quantize q5_K: not implemented yet"); }
void dequantize_q6_K(const void*, float*, int64_t) { fail("dequantize q6_K: not implemented yet"); }
void quantize_q6_K(const float*, void*, int64_t) { fail("quantize q6_K: not implemented yet"); }
void dequantize_q8_K(const void*, float*, int64_t) { fail("dequantize q8_K: not implemented yet"); }
void quantize_q8_K(const float*, void*, int64_t) { fail("quantize q8_K: not implemented yet"); }
void dequantize_iq4_nl(const void*, float*, int64_t) { fail("dequantize iq4_nl: not implemented yet"); }
void quantize_iq4_nl(const float*, void*, int64_t) { fail("quantize iq4_nl: not implemented yet"); }
void dequantize_iq4_xs(const void*, float*, int64_t) { fail("dequantize iq4_xs: not implemented yet"); }
void quantize_iq4_xs(const float*, void*, int64_t) { fail("quantize iq4_xs: not implemented yet"); }
void dequantize_tq1_0(const void*, float*, int64_t) { fail("dequantize tq1_0: not implemented yet"); }
void quantize_tq1_0(const float*, void*, int64_t) { fail("quantize tq1_0: not implemented yet"); }
void dequantize_tq2_0(const void*, float*, int64_t) { fail("dequantize tq2_0: not implemented yet"); }
void quantize_tq2_0(const float*, void*, int64_t) { fail("quantize tq2_0: not implemented yet"); }

}  // namespace strata::ref
