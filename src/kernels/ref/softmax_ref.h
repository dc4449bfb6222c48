// Scalar float64 references of kernels/softmax.h (the specification): max, sum of exp, divide.
#pragma once
#include <cstdint>
#include <vector>

#include "kernels/softmax.h"

namespace strata::kernels::ref {

double log_sum_exp(const float* x, int64_t n, float scale = 1.f);
// y[i] = exp(scale·x[i] - lse) rounded to float; returns lse.
double softmax(const float* x, float* y, int64_t n, float scale = 1.f);
// All tokens by logit (stable: lower id first on ties), cut at k then at cumulative probability top_p.
void softmax_top_k(const float* x, int64_t n, float scale, int32_t k, float top_p,
                   std::vector<TokenCandidate>& out);

}  // namespace strata::kernels::ref
