// Which SIMD targets the kernels were compiled for, and which one runs (Highway dynamic dispatch).
#include "kernels/simd_config.h"  // first: the target list

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/dispatch.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include "kernels/matmul.h"

HWY_BEFORE_NAMESPACE();
namespace strata::kernels::disp::HWY_NAMESPACE {
int64_t CurrentTarget() { return HWY_TARGET; }
}  // namespace strata::kernels::disp::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace strata::kernels {
namespace disp {
HWY_EXPORT(CurrentTarget);
}  // namespace disp

std::vector<int64_t> simd_targets() {
  std::vector<int64_t> out;
  for (int64_t t = hwy::SupportedTargets() & HWY_TARGETS; t != 0; t &= t - 1) out.push_back(t & -t);
  return out;  // lower bits are better targets
}

int64_t simd_target() { return HWY_DYNAMIC_DISPATCH(disp::CurrentTarget)(); }

const char* simd_target_name(int64_t target) { return hwy::TargetName(target); }

}  // namespace strata::kernels
#endif  // HWY_ONCE
