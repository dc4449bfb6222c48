// Element-wise and per-row operations of a transformer layer: RMSNorm, rotary position embedding (RoPE),
// SwiGLU, residual add, embedding lookup. Float32 activations, row-major. kernels::ref holds the scalar
// reference of each (the specification); the versions here are the fast ones and are tested against it.
#pragma once
#include <cstdint>

#include "tensor/dtype.h"

namespace strata::kernels {

// RoPE pairing. kNormal (llama.cpp rope type 0, llama2.c, Llama): the adjacent pairs (x[2i], x[2i+1]).
// kNeox (llama.cpp rope type 2, GPT-NeoX, Qwen2): the pairs (x[i], x[i + n_rot/2]).
enum class RopeMode { kNormal, kNeox };

// Per-pair angular frequencies: inv_freq[i] = freq_scale * base^(-2i/n_rot) / freq_factors[i]
// for i < n_rot/2 (freq_factors may be null: all 1; Llama 3 stores them as rope_freqs.weight).
void rope_inv_freq(int n_rot, double base, double freq_scale, const float* freq_factors, float* inv_freq);

// y = x / sqrt(mean(x²) + eps) * w, for each of n_rows rows of n values. y may alias x.
void rmsnorm(const float* x, const float* w, float* y, int64_t n_rows, int64_t n, float eps);

// Rotates the first n_rot values of every head in place: x is [n_tok][n_head][head_dim] (rows of
// n_head*head_dim), token t at position pos0 + t, pair i by the angle pos * inv_freq[i].
void rope(float* x, int64_t n_tok, int n_head, int head_dim, int n_rot, int64_t pos0, const float* inv_freq,
          RopeMode mode);

// The angles of rope() at one position: cs[2i] = cos(pos * inv_freq[i]), cs[2i+1] = sin(...), i < n_rot/2.
void rope_cos_sin(int64_t pos, int n_rot, const float* inv_freq, float* cs);
// One head of head_dim values rotated by the angles cs (rope_cos_sin) into y, the values past n_rot copied;
// y may alias x. rope() is this for every head of every token (bit-identical).
void rope_head(const float* x, float* y, int head_dim, int n_rot, const float* cs, RopeMode mode);

// out = silu(gate) * up = gate / (1 + exp(-gate)) * up, n values. out may alias gate or up.
void swiglu(const float* gate, const float* up, float* out, int64_t n);

// out = a + b, n values. out may alias a or b.
void add(const float* a, const float* b, float* out, int64_t n);

// out[t] = bias + out[t] for each of n_rows rows of n values (a bias broadcast over rows).
void add_bias(float* out, const float* bias, int64_t n_rows, int64_t n);

// Embedding lookup: out[t] = row ids[t] of table, dequantized. table is [n_rows][n] of `type`.
// Throws strata::Error when an id is outside [0, n_rows).
void embedding(DType type, const void* table, int64_t n_rows, int64_t n, const int32_t* ids, int64_t n_ids,
               float* out);

}  // namespace strata::kernels
