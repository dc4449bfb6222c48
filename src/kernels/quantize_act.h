// Activations quantized on the fly for the int8 kernels: each row of float activations becomes blocks of
// 32 int8 values with a float scale and the float sums the bias terms of the weights need (a min, or the
// fixed offset of Q4_0/Q5_0/Q6_K). Every activation row is quantized once per matmul.
#pragma once
#include <cstdint>

namespace strata::kernels {

// 32 activations x[i] ~= d * q[i], q in [-127, 127] (d = max|x| / 127).  48 bytes.
// The sums are premultiplied by the weight type's `sum_scale` (its quant offset, e.g. -8 for Q4_0, or 1)
// so that the kernels add them without a multiply.
// Kernels with signed weights on VNNI (Q8_0) take the activations as the unsigned operand of vpdpbusd:
// quantized with u8_offset, q holds the bytes of q + 128 (0..254) instead; d and the sums are unchanged.
struct QAct {
  float d;
  float s;       // sum_scale * d * sum(q[0..31])
  float s16[2];  // sum_scale * d * sum(q[0..15]), sum_scale * d * sum(q[16..31])  (Q6_K's 16-column groups)
  int8_t q[32];  // q, or with u8_offset the bytes of q + 128
};
static_assert(sizeof(QAct) == 48);

// Quantizes n_rows rows of n columns (n a multiple of 32): row t of x (x + t * n) into out + t * n / 32.
// Runs the best SIMD target (Highway dynamic dispatch).
void quantize_act_rows(const float* x, int64_t n_rows, int64_t n, QAct* out, float sum_scale = 1.0f,
                       bool u8_offset = false);

// One activation format of the int8 kernels: the sum scale and the u8 offset (above). Weights of different
// types may want different formats of the same activations (Q4_0: -8; Q4_K: 1; Q8_0 on VNNI: 0, u8).
struct ActFormat {
  float sum_scale = 1.0f;
  bool u8_offset = false;
  bool operator==(const ActFormat&) const = default;
};

// Activations quantized ahead of a matmul in one format (a fused producer wrote them, kernels/fused_ops.h):
// q holds n_tok rows of cols / 32 blocks.
struct ActSlot {
  ActFormat fmt;
  QAct* q = nullptr;
};

// The most activation formats one fused producer writes (and one matmul section reads).
inline constexpr int kMaxActFormats = 4;

}  // namespace strata::kernels
