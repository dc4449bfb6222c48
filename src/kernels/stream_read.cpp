// stream_read_sum (stream_read.h), one Highway variant per SIMD target.
#include "kernels/simd_config.h"  // first: the target list

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/stream_read.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include "kernels/stream_read.h"

HWY_BEFORE_NAMESPACE();
namespace strata::kernels::rd::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

uint64_t ReadSum(const uint8_t* HWY_RESTRICT p, size_t bytes) {
  const hn::ScalableTag<uint64_t> d;
  const size_t N = hn::Lanes(d);
  const auto* w = reinterpret_cast<const uint64_t*>(p);
  const size_t n = bytes / 8;
  auto a0 = hn::Zero(d), a1 = hn::Zero(d), a2 = hn::Zero(d), a3 = hn::Zero(d);
  size_t i = 0;
  for (; i + 4 * N <= n; i += 4 * N) {
    a0 = hn::Add(a0, hn::LoadU(d, w + i));
    a1 = hn::Add(a1, hn::LoadU(d, w + i + N));
    a2 = hn::Add(a2, hn::LoadU(d, w + i + 2 * N));
    a3 = hn::Add(a3, hn::LoadU(d, w + i + 3 * N));
  }
  uint64_t s = hn::GetLane(hn::SumOfLanes(d, hn::Add(hn::Add(a0, a1), hn::Add(a2, a3))));
  for (; i < n; ++i) s += w[i];
  return s;
}

}  // namespace strata::kernels::rd::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace strata::kernels {
namespace rd {
HWY_EXPORT(ReadSum);
}  // namespace rd

uint64_t stream_read_sum(const void* p, size_t bytes) {
  return HWY_DYNAMIC_DISPATCH(rd::ReadSum)(static_cast<const uint8_t*>(p), bytes);
}

}  // namespace strata::kernels
#endif  // HWY_ONCE
