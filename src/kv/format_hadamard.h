// Randomized Hadamard rotation of a KV row (QuaRot-style), the alternative to channel reordering for
// spreading outlier channels: y = blockdiag(H_b / sqrt(b)) · (s ⊙ x), with H_b the Walsh–Hadamard matrix of
// the largest power-of-two block b dividing head_dim and s a fixed ±1 sign per channel (a pure function of
// the channel index: the stored format never depends on the machine or a seed). Orthogonal, so
// <q, x> = <rot(q), rot(x)>; its inverse is s ⊙ blockdiag(H_b / sqrt(b)) · y. O(d log b) per row.
#pragma once
#include <cstdint>

namespace strata::kv {

// The rotation's block: the largest power of two dividing head_dim (head_dim itself when it is one).
int32_t hadamard_block(int32_t head_dim);
// y = rot(x); x and y are [head_dim] and may alias.
void hadamard_forward(const float* x, float* y, int32_t head_dim);
// x = rot^-1(y); may alias.
void hadamard_inverse(const float* y, float* x, int32_t head_dim);
// The sign of channel c (+1 or -1).
float hadamard_sign(int32_t c);

}  // namespace strata::kv
