// The rmsnorm scale of one row, 1 / sqrt(mean(x²) + eps), per SIMD target: shared by ops.cpp (rmsnorm) and
// fused_ops.cpp (rmsnorm + quantize) so that both compute the same bits on every target.
// (Highway per-target header: included once per target by those files.)
#if defined(STRATA_KERNELS_RMS_SCALE_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef STRATA_KERNELS_RMS_SCALE_INL_H_
#undef STRATA_KERNELS_RMS_SCALE_INL_H_
#else
#define STRATA_KERNELS_RMS_SCALE_INL_H_
#endif

#include <hwy/highway.h>

#include <cmath>
#include <cstdint>

HWY_BEFORE_NAMESPACE();
namespace strata::kernels::HWY_NAMESPACE {

// Two accumulator vectors, summed in double for the tail and the mean.
HWY_INLINE float RmsScale(const float* HWY_RESTRICT xr, int64_t n, float eps) {
  namespace hn = hwy::HWY_NAMESPACE;
  const hn::ScalableTag<float> d;
  const int64_t L = static_cast<int64_t>(hn::Lanes(d));
  auto acc0 = hn::Zero(d), acc1 = hn::Zero(d);
  int64_t i = 0;
  for (; i + 2 * L <= n; i += 2 * L) {
    const auto a = hn::LoadU(d, xr + i), b = hn::LoadU(d, xr + i + L);
    acc0 = hn::MulAdd(a, a, acc0);
    acc1 = hn::MulAdd(b, b, acc1);
  }
  double ss = hn::GetLane(hn::SumOfLanes(d, hn::Add(acc0, acc1)));
  for (; i < n; ++i) ss += static_cast<double>(xr[i]) * xr[i];
  return static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(n) + eps));
}

}  // namespace strata::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // include guard
