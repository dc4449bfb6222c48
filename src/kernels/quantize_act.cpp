// Activation quantization to QAct blocks (quantize_act.h), one Highway variant per SIMD target.
#include "kernels/simd_config.h"  // first: the target list

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/quantize_act.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include "kernels/quantize_act.h"

HWY_BEFORE_NAMESPACE();
namespace strata::kernels::act::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

void QuantizeActRows(const float* HWY_RESTRICT x, int64_t n_rows, int64_t n, QAct* HWY_RESTRICT out,
                     float sum_scale, bool u8_offset) {
  const hn::ScalableTag<float> df;
  const hn::Rebind<int32_t, decltype(df)> di;
  const hn::Rebind<int8_t, decltype(df)> di8;
  constexpr size_t N = hn::MaxLanes(df);
  static_assert(16 % N == 0, "a vector must not straddle the two halves of a block");
  const int64_t nb = n / 32;
  for (int64_t t = 0; t < n_rows; ++t) {
    for (int64_t b = 0; b < nb; ++b) {
      const float* xb = x + t * n + b * 32;
      QAct& o = out[t * nb + b];
      auto vmax = hn::Zero(df);
      for (size_t i = 0; i < 32; i += N) vmax = hn::Max(vmax, hn::Abs(hn::LoadU(df, xb + i)));
      const float amax = hn::GetLane(hn::MaxOfLanes(df, vmax));
      const float d = amax / 127.0f;
      const auto vid = hn::Set(df, amax > 0.0f ? 127.0f / amax : 0.0f);
      int32_t sum[2] = {0, 0};
      for (size_t i = 0; i < 32; i += N) {
        const auto qi = hn::NearestInt(hn::Mul(hn::LoadU(df, xb + i), vid));
        auto q8 = hn::DemoteTo(di8, qi);
        if (u8_offset) q8 = hn::Xor(q8, hn::Set(di8, static_cast<int8_t>(-128)));  // q + 128 as a byte
        hn::StoreU(q8, di8, o.q + i);
        sum[i / 16] += hn::GetLane(hn::SumOfLanes(di, qi));
      }
      o.d = d;
      const float ds = d * sum_scale;
      o.s16[0] = ds * static_cast<float>(sum[0]);
      o.s16[1] = ds * static_cast<float>(sum[1]);
      o.s = ds * static_cast<float>(sum[0] + sum[1]);
    }
  }
}

}  // namespace strata::kernels::act::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace strata::kernels {
namespace act {
HWY_EXPORT(QuantizeActRows);
}  // namespace act

void quantize_act_rows(const float* x, int64_t n_rows, int64_t n, QAct* out, float sum_scale, bool u8_offset) {
  HWY_DYNAMIC_DISPATCH(act::QuantizeActRows)(x, n_rows, n, out, sum_scale, u8_offset);
}

}  // namespace strata::kernels
#endif  // HWY_ONCE
