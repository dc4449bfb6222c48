// Fused producers of the int8 kernels' activations (issue 4: no byte moved twice). Each computes a per-row
// operation of ops.h and quantizes its result (quantize_act.h) in the same pass, for every activation
// format the next matmul's weights want (matmul.h: act_needs), so the float result is neither written back
// nor read again. The float rows are written too only when asked (y non-null: float or dequantized weights
// need them). matmul(..., Acts{x, slots}, ...) takes the result.
#pragma once
#include <cstdint>
#include <span>

#include "kernels/quantize_act.h"

namespace strata::kernels {

// rmsnorm (ops.h) of n_rows rows of n values, each row quantized into every slot (slot.q + row * n / 32);
// y (may be null) also receives the float rows, bit-identical to rmsnorm(). n must be a multiple of 32
// when there are slots. The quantized blocks are those quantize_act_rows() makes from rmsnorm()'s output.
void rmsnorm_quant(const float* x, const float* w, float* y, int64_t n_rows, int64_t n, float eps,
                   std::span<const ActSlot> slots);

// out = silu(gate) * up (ops.h: swiglu) of n_rows rows of n values, quantized into every slot; out (may be
// null, or alias gate or up) also receives the float values, bit-identical to swiglu(). n a multiple of 32
// when there are slots.
void swiglu_quant(const float* gate, const float* up, float* out, int64_t n_rows, int64_t n,
                  std::span<const ActSlot> slots);

namespace ref {
// Scalar references: ref::rmsnorm / ref::swiglu (ref/ops_ref.h), then a plain quantization of each block
// of 32 (d = max|v| / 127, q = round-to-nearest-even(v * 127 / max|v|), the sums as in quantize_act.h).
void rmsnorm_quant(const float* x, const float* w, float* y, int64_t n_rows, int64_t n, float eps,
                   std::span<const ActSlot> slots);
void swiglu_quant(const float* gate, const float* up, float* out, int64_t n_rows, int64_t n,
                  std::span<const ActSlot> slots);
// One block of 32 values into the block `o` in format f.
void quantize_block(const float* v, ActFormat f, QAct& o);
}  // namespace ref

}  // namespace strata::kernels
