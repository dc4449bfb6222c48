// Scalar references for ggml's 4-bit non-linear types iq4_nl and iq4_xs. Each 4-bit index selects one of
// 16 fixed levels (kvalues_iq4nl, roughly uniform in the quantile of a Gaussian), times a block scale.
//
// iq4_nl (18 bytes per 32 elements, 4.5 bpw): fp16 d, qs[16]: byte j holds element j (low nibble) and
//   element j + 16 (high nibble). x = d * kvalues[q].
// iq4_xs (136 bytes per 256 elements, 4.25 bpw): fp16 d, 8 sub-blocks of 32 with 6-bit scales ls
//   (stored + 32): low 4 bits in scales_l[ib / 2] (nibble ib % 2), high 2 bits in scales_h at bit 2*ib.
//   qs: 16 bytes per sub-block, packed as in iq4_nl. x = d * (ls - 32) * kvalues[q].
//
// The quantizers are ggml's quantize_iq4_nl / quantize_iq4_xs without an importance matrix (what
// llama-quantize runs, and what quantize_row_iq4_xs_ref calls): for each block, try the scale that maps the
// largest element to the extreme level and 15 neighbours, keeping the best weighted (w = x^2)
// least-squares fit. (Recent ggml's quantize_row_iq4_nl_ref skips that search, ntry = -1, for speed when
// filling a KV cache; model files are written with the search, and so is strata's reference.)
#include <algorithm>
#include <cmath>
#include <cstring>

#include "tensor/quant_common.h"
#include "tensor/quant_ref.h"

namespace strata::ref {

using detail::blocks;
using detail::kGroupMaxEps;
using detail::nearest_int;

namespace {

constexpr int8_t kValuesIq4nl[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

// Index of the level nearest to x in the sorted table val[0..n) (n a power of two). x picks level i once
// it reaches the midpoint of val[i-1] and val[i] (ties go up). Comparing 2x with the integer sum of two
// neighbours is exact, so the result does not depend on rounding.
int best_index_int8(int n, const int8_t* val, float x) {
  const float x2 = x + x;
  int idx = 0;
  for (int step = n >> 1; step > 0; step >>= 1) {
    const int j = idx + step;
    if (x2 >= static_cast<float>(val[j - 1] + val[j])) idx = j;
  }
  return idx;
}

// ggml's quantize_row_iq4_nl_impl (no importance weights, ntry = 7) for one super-block of
// super_block_size elements split in blocks of 32. Writes *dh, q4 and (iq4_xs) the 6-bit block scales.
void quantize_iq4_block(int super_block_size, const float* x, uint16_t* dh, uint8_t* q4, uint16_t* scales_h,
                        uint8_t* scales_l) {
  constexpr int kBlock = 32;
  constexpr int kTry = 7;
  const int8_t* values = kValuesIq4nl;
  float scales[QK_K / kBlock];
  float weight[kBlock];
  uint8_t L[QK_K];
  const int nblocks = super_block_size / kBlock;

  std::memset(q4, 0, static_cast<size_t>(super_block_size / 2));
  *dh = f32_to_fp16(0.f);

  float max_scale = 0, amax_scale = 0;
  for (int ib = 0; ib < nblocks; ++ib) {
    const float* xb = x + ib * kBlock;
    uint8_t* Lb = L + ib * kBlock;
    for (int j = 0; j < kBlock; ++j) weight[j] = xb[j] * xb[j];
    float amax = 0, max = 0;
    for (int j = 0; j < kBlock; ++j) {
      const float ax = std::fabs(xb[j]);
      if (ax > amax) {
        amax = ax;
        max = xb[j];
      }
    }
    if (amax < kGroupMaxEps) {
      scales[ib] = 0;
      std::memset(Lb, 0, kBlock);
      continue;
    }
    // First guess: the largest element lands on level values[0] = -127 (with the sign of max).
    float d = -max / values[0];
    float id = 1 / d;
    float sumqx = 0, sumq2 = 0;
    for (int j = 0; j < kBlock; ++j) {
      const int l = best_index_int8(16, values, id * xb[j]);
      Lb[j] = static_cast<uint8_t>(l);
      const float q = values[l];
      sumqx += weight[j] * q * xb[j];
      sumq2 += weight[j] * q * q;
    }
    d = sumq2 > 0 ? sumqx / sumq2 : 0.f;
    float best = d * sumqx;
    for (int itry = -kTry; itry <= kTry; ++itry) {
      id = static_cast<float>(itry + values[0]) / max;
      sumqx = sumq2 = 0;
      for (int j = 0; j < kBlock; ++j) {
        const int l = best_index_int8(16, values, id * xb[j]);
        const float q = values[l];
        sumqx += weight[j] * q * xb[j];
        sumq2 += weight[j] * q * q;
      }
      if (sumq2 > 0 && sumqx * sumqx > best * sumq2) {
        d = sumqx / sumq2;
        best = d * sumqx;
      }
    }
    scales[ib] = d;
    const float abs_d = std::fabs(d);
    if (abs_d > amax_scale) {
      amax_scale = abs_d;
      max_scale = d;
    }
  }

  if (nblocks > 1) {
    // iq4_xs: quantize the block scales to 6 bits against d = -max_scale / 32, then re-pick every level.
    *scales_h = 0;
    const float d = -max_scale / 32;
    *dh = f32_to_fp16(d);
    const float id = d != 0.0f ? 1 / d : 0.f;
    for (int ib = 0; ib < nblocks; ++ib) {
      int l = std::max(-32, std::min(31, nearest_int(id * scales[ib])));
      const float dl = d * static_cast<float>(l);
      const float idl = dl != 0.0f ? 1 / dl : 0.f;
      uint8_t* Lb = L + ib * kBlock;
      const float* xb = x + ib * kBlock;
      for (int j = 0; j < kBlock; ++j) Lb[j] = static_cast<uint8_t>(best_index_int8(16, values, idl * xb[j]));
      l += 32;
      const uint8_t l_l = static_cast<uint8_t>(l & 0xf);
      const uint8_t l_h = static_cast<uint8_t>(l >> 4);
      if (ib % 2 == 0)
        scales_l[ib / 2] = l_l;
      else
        scales_l[ib / 2] = static_cast<uint8_t>(scales_l[ib / 2] | (l_l << 4));
      *scales_h = static_cast<uint16_t>(*scales_h | (l_h << 2 * (ib % 8)));
    }
  } else {
    // iq4_nl: d is stored as is; levels are re-picked with the unrounded scale.
    *dh = f32_to_fp16(scales[0]);
    const float id = scales[0] != 0.0f ? 1 / scales[0] : 0;
    for (int j = 0; j < super_block_size; ++j) L[j] = static_cast<uint8_t>(best_index_int8(16, values, id * x[j]));
  }

  for (int i = 0; i < super_block_size / 32; ++i)
    for (int j = 0; j < 16; ++j) q4[16 * i + j] = static_cast<uint8_t>(L[32 * i + j] | (L[32 * i + 16 + j] << 4));
}

}  // namespace

void dequantize_iq4_nl(const void* src, float* dst, int64_t n) {
  const auto* b = blocks<block_iq4_nl>(src);
  for (int64_t i = 0; i < n / QK4_NL; ++i, dst += QK4_NL) {
    const float d = fp16_to_f32(b[i].d);
    for (int j = 0; j < QK4_NL / 2; ++j) {
      dst[j] = d * static_cast<float>(kValuesIq4nl[b[i].qs[j] & 0xf]);
      dst[j + QK4_NL / 2] = d * static_cast<float>(kValuesIq4nl[b[i].qs[j] >> 4]);
    }
  }
}

void quantize_iq4_nl(const float* src, void* dst, int64_t n) {
  auto* y = blocks<block_iq4_nl>(dst);
  for (int64_t i = 0; i < n / QK4_NL; ++i) {
    quantize_iq4_block(QK4_NL, src + QK4_NL * i, &y[i].d, y[i].qs, nullptr, nullptr);
  }
}

void dequantize_iq4_xs(const void* src, float* dst, int64_t n) {
  const auto* b = blocks<block_iq4_xs>(src);
  for (int64_t i = 0; i < n / QK_K; ++i) {
    const float d = fp16_to_f32(b[i].d);
    const uint8_t* qs = b[i].qs;
    for (int ib = 0; ib < QK_K / 32; ++ib, dst += 32, qs += 16) {
      const int ls = ((b[i].scales_l[ib / 2] >> 4 * (ib % 2)) & 0xf) | (((b[i].scales_h >> 2 * ib) & 3) << 4);
      const float dl = d * static_cast<float>(ls - 32);
      for (int j = 0; j < 16; ++j) {
        dst[j + 0] = dl * static_cast<float>(kValuesIq4nl[qs[j] & 0xf]);
        dst[j + 16] = dl * static_cast<float>(kValuesIq4nl[qs[j] >> 4]);
      }
    }
  }
}

void quantize_iq4_xs(const float* src, void* dst, int64_t n) {
  auto* y = blocks<block_iq4_xs>(dst);
  for (int64_t i = 0; i < n / QK_K; ++i) {
    quantize_iq4_block(QK_K, src + QK_K * i, &y[i].d, y[i].qs, &y[i].scales_h, y[i].scales_l);
  }
}

}  // namespace strata::ref
