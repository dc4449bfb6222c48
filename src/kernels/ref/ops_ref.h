// Scalar references (the specification) of the operations in kernels/ops.h: the same signatures, computed
// plainly in double precision where it matters (sums, angles, exponentials), rounded to float at the end.
#pragma once
#include <cstdint>

#include "kernels/ops.h"
#include "tensor/dtype.h"

namespace strata::kernels::ref {

void rope_inv_freq(int n_rot, double base, double freq_scale, const float* freq_factors, float* inv_freq);
void rmsnorm(const float* x, const float* w, float* y, int64_t n_rows, int64_t n, float eps);
void rope(float* x, int64_t n_tok, int n_head, int head_dim, int n_rot, int64_t pos0, const float* inv_freq,
          RopeMode mode);
void swiglu(const float* gate, const float* up, float* out, int64_t n);
void add(const float* a, const float* b, float* out, int64_t n);
void add_bias(float* out, const float* bias, int64_t n_rows, int64_t n);
void embedding(DType type, const void* table, int64_t n_rows, int64_t n, const int32_t* ids, int64_t n_ids,
               float* out);

}  // namespace strata::kernels::ref
