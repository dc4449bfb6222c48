// Fused rmsnorm + quantize and SwiGLU + quantize (fused_ops.h), one Highway variant per SIMD target. Each
// block of 32 results is computed into a small stack buffer (L1) and quantized from there into every slot;
// the arithmetic is that of ops.cpp and quantize_act.cpp, so the results are bit-identical to the two
// passes they replace.
#include "kernels/simd_config.h"  // first: the target list

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/fused_ops.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>
#include <hwy/contrib/math/math-inl.h>

#include "kernels/rms_scale-inl.h"

#include <cmath>
#include <cstring>

#include "core/error.h"
#include "kernels/fused_ops.h"

HWY_BEFORE_NAMESPACE();
namespace strata::kernels::fused::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// The 32 values of buf quantized into block b of every slot (the arithmetic of QuantizeActRows).
HWY_INLINE void QuantBlock(const float* HWY_RESTRICT buf, const ActSlot* slots, size_t n_slots, int64_t b) {
  const hn::ScalableTag<float> df;
  const hn::Rebind<int32_t, decltype(df)> di;
  const hn::Rebind<int8_t, decltype(df)> di8;
  constexpr size_t N = hn::MaxLanes(df);
  static_assert(16 % N == 0, "a vector must not straddle the two halves of a block");
  auto vmax = hn::Zero(df);
  for (size_t i = 0; i < 32; i += N) vmax = hn::Max(vmax, hn::Abs(hn::Load(df, buf + i)));
  const float amax = hn::GetLane(hn::MaxOfLanes(df, vmax));
  const float d = amax / 127.0f;
  const auto vid = hn::Set(df, amax > 0.0f ? 127.0f / amax : 0.0f);
  HWY_ALIGN int8_t q[32];
  int32_t sum[2] = {0, 0};
  for (size_t i = 0; i < 32; i += N) {
    const auto qi = hn::NearestInt(hn::Mul(hn::Load(df, buf + i), vid));
    hn::StoreU(hn::DemoteTo(di8, qi), di8, q + i);
    sum[i / 16] += hn::GetLane(hn::SumOfLanes(di, qi));
  }
  for (size_t s = 0; s < n_slots; ++s) {
    QAct& o = slots[s].q[b];
    if (slots[s].fmt.u8_offset) {
      for (int i = 0; i < 32; ++i) o.q[i] = static_cast<int8_t>(static_cast<uint8_t>(q[i]) ^ 0x80u);  // q + 128
    } else {
      std::memcpy(o.q, q, 32);
    }
    o.d = d;
    const float ds = d * slots[s].fmt.sum_scale;
    o.s16[0] = ds * static_cast<float>(sum[0]);
    o.s16[1] = ds * static_cast<float>(sum[1]);
    o.s = ds * static_cast<float>(sum[0] + sum[1]);
  }
}

void RmsnormQuant(const float* HWY_RESTRICT x, const float* HWY_RESTRICT w, float* HWY_RESTRICT y, int64_t n_rows,
                  int64_t n, float eps, const ActSlot* slots, size_t n_slots) {
  const hn::ScalableTag<float> d;
  const int64_t L = static_cast<int64_t>(hn::Lanes(d));
  HWY_ALIGN float buf[32];
  for (int64_t r = 0; r < n_rows; ++r) {
    const float* xr = x + r * n;
    const float scale = kernels::HWY_NAMESPACE::RmsScale(xr, n, eps);
    const auto vs = hn::Set(d, scale);
    if (n_slots == 0) {  // no quantized output: rmsnorm only
      float* yr = y + r * n;
      int64_t i = 0;
      for (; i + L <= n; i += L) hn::StoreU(hn::Mul(hn::Mul(hn::LoadU(d, xr + i), vs), hn::LoadU(d, w + i)), d, yr + i);
      for (; i < n; ++i) yr[i] = xr[i] * scale * w[i];
      continue;
    }
    for (int64_t b = 0; b < n / 32; ++b) {
      const int64_t c0 = b * 32;
      for (int64_t k = 0; k < 32; k += L)
        hn::Store(hn::Mul(hn::Mul(hn::LoadU(d, xr + c0 + k), vs), hn::LoadU(d, w + c0 + k)), d, buf + k);
      if (y) std::memcpy(y + r * n + c0, buf, sizeof(buf));
      QuantBlock(buf, slots, n_slots, r * (n / 32) + b);
    }
  }
}

void SwigluQuant(const float* gate, const float* up, float* out,  // out may alias gate or up
                 int64_t n_rows, int64_t n, const ActSlot* slots, size_t n_slots) {
  const hn::ScalableTag<float> d;
  const int64_t L = static_cast<int64_t>(hn::Lanes(d));
  const auto one = hn::Set(d, 1.0f), lim = hn::Set(d, 88.0f);  // as ops.cpp Swiglu
  HWY_ALIGN float buf[32];
  for (int64_t blk = 0; blk < n_rows * n / 32; ++blk) {
    const int64_t c0 = blk * 32;
    for (int64_t k = 0; k < 32; k += L) {
      const auto g = hn::LoadU(d, gate + c0 + k);
      const auto e = hn::Exp(d, hn::Min(hn::Neg(g), lim));
      hn::Store(hn::Mul(hn::Div(g, hn::Add(one, e)), hn::LoadU(d, up + c0 + k)), d, buf + k);
    }
    if (out) std::memcpy(out + c0, buf, sizeof(buf));
    QuantBlock(buf, slots, n_slots, blk);
  }
}

}  // namespace strata::kernels::fused::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include "kernels/ops.h"

namespace strata::kernels {
namespace fused {
HWY_EXPORT(RmsnormQuant);
HWY_EXPORT(SwigluQuant);
}  // namespace fused

void rmsnorm_quant(const float* x, const float* w, float* y, int64_t n_rows, int64_t n, float eps,
                   std::span<const ActSlot> slots) {
  STRATA_ASSERT(slots.size() <= static_cast<size_t>(kMaxActFormats), "rmsnorm_quant: too many slots");
  STRATA_ASSERT(slots.empty() ? y != nullptr : n % 32 == 0,
                "rmsnorm_quant: no output, or a row length that is not a multiple of 32");
  HWY_DYNAMIC_DISPATCH(fused::RmsnormQuant)(x, w, y, n_rows, n, eps, slots.data(), slots.size());
}

void swiglu_quant(const float* gate, const float* up, float* out, int64_t n_rows, int64_t n,
                  std::span<const ActSlot> slots) {
  STRATA_ASSERT(slots.size() <= static_cast<size_t>(kMaxActFormats), "swiglu_quant: too many slots");
  if (slots.empty()) {
    STRATA_ASSERT(out != nullptr, "swiglu_quant: no output");
    return swiglu(gate, up, out, n_rows * n);
  }
  STRATA_ASSERT(n % 32 == 0, "swiglu_quant: the row length must be a multiple of 32");
  HWY_DYNAMIC_DISPATCH(fused::SwigluQuant)(gate, up, out, n_rows, n, slots.data(), slots.size());
}

}  // namespace strata::kernels
#endif  // HWY_ONCE
