// The per-neuron work of the sparse FFN over bundled rows (model/sparse_ffn.h, storage/ffn_bundle.h): for
// each active neuron i with bundle row [up_i | down_i] and each token row t with coefficient c = act(gate):
//
//   acc[t] += (c · (up_i · x[t])) · down_i
//
// One Highway variant per SIMD target (kernels/simd_config.h). Q8_0, F16, BF16 and F32 rows are used in
// place (the int8 / half values converted in registers, no dequantized copy); other types are dequantized
// into `scratch` (dequantize_row) and then take the float path. ref::sparse_ffn_accumulate is the plain
// scalar reference (dequantize, then sequential float sums); tests/kernels/test_sparse_ffn_kernel.cpp
// compares the two.
#pragma once
#include <cstdint>

#include "tensor/dtype.h"

namespace strata::kernels {

struct SparseFfnJob {
  DType type = DType::F32;            // the bundle's weight type
  int64_t n_embd = 0;                 // length of up_i and of down_i (a multiple of the type's block)
  int64_t n_tok = 0;                  // token rows of x and acc
  const float* x = nullptr;           // (n_tok, n_embd): the normalized input
  const float* coef = nullptr;        // coef[t * coef_stride + neuron]: act(gate); 0 = inactive for row t
  int64_t coef_stride = 0;
  const int32_t* neurons = nullptr;   // the active neurons
  const uint8_t* const* rows = nullptr;  // their bundle rows (row_bytes(type, 2 * n_embd) each)
};

// acc (n_tok, n_embd) += the contributions of neurons[begin, end). scratch: 2 * n_embd floats (used only for
// types without an in-place path).
void sparse_ffn_accumulate(const SparseFfnJob& j, int64_t begin, int64_t end, float* acc, float* scratch);

namespace ref {
void sparse_ffn_accumulate(const SparseFfnJob& j, int64_t begin, int64_t end, float* acc, float* scratch);
}  // namespace ref

}  // namespace strata::kernels
