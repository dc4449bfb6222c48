// Softmax over a vocabulary-sized vector, for sampling: the Two-Pass Softmax algorithm (XNNPACK).
// Pass 1 reads the logits once and keeps, per lane, the sum of exp as a (mantissa, exponent) pair that is
// rescaled whenever the exponent grows: the max and the sum come out of one pass, and no exp can
// overflow whatever the logits. Pass 2 reads them again and writes exp(x - log_sum_exp).
// softmax_top_k fuses the selection of the k most likely tokens into pass 1, so the top-k probabilities
// (normalized over the whole vocabulary) cost one read of the logits and no write.
#pragma once
#include <cstdint>
#include <vector>

namespace strata::kernels {

// log(sum_i exp(scale * x[i])) in one pass over x (pass 1). scale is 1/temperature. Scaled logits below
// -1e6 count as -inf (probability 0); returns -inf when every logit is -inf (or n == 0).
float log_sum_exp(const float* x, int64_t n, float scale = 1.f);

// y[i] = exp(scale * x[i] - lse) with lse = log_sum_exp(x, n, scale): both passes. y may alias x.
// Returns lse (so log p_i = scale * x[i] - lse). All -inf: y = 0 and returns -inf.
float softmax(const float* x, float* y, int64_t n, float scale = 1.f);

struct TokenCandidate {
  int32_t id;
  float logit;  // the raw logit x[id]
  float p;      // softmax(scale * x)[id] over the whole vocabulary
};

// The k most likely tokens (k <= 0: no top-k cut), then the shortest prefix of them whose probabilities
// add up to at least top_p (>= 1: no top-p cut; at least one token kept). Most likely first, lower id
// first on equal logits. One read of the logits (plus a second one only when top_p needs more than the
// first 256 candidates and k <= 0). Returns log_sum_exp(x, n, scale).
float softmax_top_k(const float* x, int64_t n, float scale, int32_t k, float top_p,
                    std::vector<TokenCandidate>& out);

}  // namespace strata::kernels
