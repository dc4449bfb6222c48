// The matmul kernel registry (STYLE.md practice 5): one line per weight type with a fast kernel. It feeds
// dispatch (matmul.cpp), the per-target kernels (gemm_int8_*.cpp, gemm_float.cpp), the packer
// (repack_int8.cpp), the tests and the benchmarks. Every other supported type runs the dequantize-and-dot
// path (a row is dequantized into a thread-local buffer, then SIMD float dots).
#pragma once
#include <span>

#include "tensor/dtype.h"

// Int8 panel kernels: activations quantized to int8 per 32 columns (QAct), weights as int8 panels
// (int8_panel.h).  X(type, columns per superblock, columns per scale group, meta bytes and value bytes
// per row and superblock, multiplier of the activation sums: the quant offset, or 1 for a min term)
#define STRATA_INT8_PANEL_KERNELS(X) \
  X(Q4_0, 32, 32, 2, 16, -8)         \
  X(Q4_1, 32, 32, 4, 16, 1)          \
  X(Q5_0, 32, 32, 2, 20, -16)        \
  X(Q8_0, 32, 32, 2, 32, 0)          \
  X(Q4_K, 256, 32, 20, 128, 1)       \
  X(Q5_K, 256, 32, 20, 160, 1)       \
  X(Q6_K, 256, 16, 18, 192, -32)

// Float kernels: f32 activations times f32/f16/bf16 weights, dot-product tiles of rows x tokens.
#define STRATA_FLOAT_KERNELS(X) X(F32) X(F16) X(BF16)

namespace strata::kernels {

enum class KernelFamily {
  kInt8Panel,  // STRATA_INT8_PANEL_KERNELS
  kFloat,      // STRATA_FLOAT_KERNELS
  kDequant,    // every other supported type: dequantize a row, then float dots
};

struct MatmulKernelInfo {
  DType type;
  KernelFamily family;
  const char* name;  // e.g. "q4_0 x q8 int8-panel"
};

// One entry per supported weight type (the fast ones first), for tests and benchmarks.
std::span<const MatmulKernelInfo> matmul_kernels();
const MatmulKernelInfo& matmul_kernel(DType t);  // asserts the type is supported

}  // namespace strata::kernels
