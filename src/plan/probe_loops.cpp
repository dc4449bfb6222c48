// The timed loops of `strata probe` (probe_loops.h), one Highway variant per SIMD target, using the same
// target list as the kernels.
#include "kernels/simd_config.h"  // first: the target list

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "plan/probe_loops.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include "plan/probe_loops.h"

#undef STRATA_PROBE_VNNI
#if HWY_TARGET == HWY_AVX3_DL
#define STRATA_PROBE_VNNI 1
#else
#define STRATA_PROBE_VNNI 0
#endif

HWY_BEFORE_NAMESPACE();
namespace strata::plan::loops::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

constexpr int kChains = 12;  // independent accumulators: enough to hide a 4-5 cycle latency on 2 ports

float FmaLoop(int64_t iters, double* flops) {
  const hn::ScalableTag<float> d;
  hn::Vec<decltype(d)> acc[kChains];
  for (int j = 0; j < kChains; ++j) acc[j] = hn::Set(d, static_cast<float>(j));
  const auto m = hn::Set(d, 0.9999f), a = hn::Set(d, 0.0001f);
  for (int64_t i = 0; i < iters; ++i) {
    for (int j = 0; j < kChains; ++j) acc[j] = hn::MulAdd(acc[j], m, a);
  }
  auto s = acc[0];
  for (int j = 1; j < kChains; ++j) s = hn::Add(s, acc[j]);
  *flops = 2.0 * static_cast<double>(iters) * kChains * static_cast<double>(hn::Lanes(d));
  return hn::GetLane(hn::SumOfLanes(d, s));
}

int32_t Int8Loop(int64_t iters, double* ops) {
#if STRATA_PROBE_VNNI || HWY_TARGET == HWY_AVX2 || HWY_TARGET == HWY_AVX3
  const hn::ScalableTag<int32_t> d32;
  const hn::Repartition<int8_t, decltype(d32)> d8;
  const auto b = hn::Set(d8, 3);
#endif
#if STRATA_PROBE_VNNI
  const auto a = hn::Set(d8, 1);
  hn::Vec<decltype(d32)> acc[kChains];
  for (int j = 0; j < kChains; ++j) acc[j] = hn::Set(d32, j);
  for (int64_t i = 0; i < iters; ++i)
    for (int j = 0; j < kChains; ++j) {
      // vpdpbusd by inline assembly: Highway 1.0.3's AVX3_DL target attribute lacks avx512vnni (see
      // kernels/int8_dot-inl.h).
      __m512i r = acc[j].raw;
      asm("vpdpbusd %2, %1, %0" : "+v"(r) : "v"(a.raw), "v"(b.raw));
      acc[j] = hn::Vec<decltype(d32)>{r};
    }
  const double macs_per_op = static_cast<double>(hn::Lanes(d8));
  auto s = acc[0];
  for (int j = 1; j < kChains; ++j) s = hn::Add(s, acc[j]);
  *ops = 2.0 * macs_per_op * static_cast<double>(iters) * kChains;
  return hn::GetLane(hn::SumOfLanes(d32, s));
#elif HWY_TARGET == HWY_AVX2 || HWY_TARGET == HWY_AVX3
  const hn::Repartition<int16_t, decltype(d32)> d16;
  hn::Vec<decltype(d16)> acc[kChains];
  for (int j = 0; j < kChains; ++j) acc[j] = hn::Set(d16, static_cast<int16_t>(j));
  for (int64_t i = 0; i < iters; ++i) {
    for (int j = 0; j < kChains; ++j) {  // the accumulator feeds the multiply: nothing to hoist
#if HWY_TARGET == HWY_AVX2
      const hn::Vec<decltype(d16)> prod{_mm256_maddubs_epi16(acc[j].raw, b.raw)};
#else
      const hn::Vec<decltype(d16)> prod{_mm512_maddubs_epi16(acc[j].raw, b.raw)};
#endif
      acc[j] = hn::Add(acc[j], prod);
    }
  }
  auto s = acc[0];
  for (int j = 1; j < kChains; ++j) s = hn::Add(s, acc[j]);
  *ops = 2.0 * static_cast<double>(hn::Lanes(d8)) * static_cast<double>(iters) * kChains;
  return static_cast<int32_t>(hn::GetLane(s));
#else
  // Generic: int16 multiply-adds on widened bytes (what the generic int8 kernel does).
  const hn::ScalableTag<int16_t> d16;
  hn::Vec<decltype(d16)> acc[kChains];
  for (int j = 0; j < kChains; ++j) acc[j] = hn::Set(d16, static_cast<int16_t>(j));
  const auto bw = hn::Set(d16, static_cast<int16_t>(3));
  for (int64_t i = 0; i < iters; ++i)
    for (int j = 0; j < kChains; ++j) acc[j] = hn::Add(hn::Mul(acc[j], bw), bw);
  auto s = acc[0];
  for (int j = 1; j < kChains; ++j) s = hn::Add(s, acc[j]);
  *ops = 2.0 * static_cast<double>(hn::Lanes(d16)) * static_cast<double>(iters) * kChains;
  return static_cast<int32_t>(hn::GetLane(s));
#endif
}

}  // namespace strata::plan::loops::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace strata::plan {
namespace loops {
HWY_EXPORT(FmaLoop);
HWY_EXPORT(Int8Loop);
}  // namespace loops

float probe_fma_loop(int64_t iters, double* flops) { return HWY_DYNAMIC_DISPATCH(loops::FmaLoop)(iters, flops); }
int32_t probe_int8_loop(int64_t iters, double* ops) { return HWY_DYNAMIC_DISPATCH(loops::Int8Loop)(iters, ops); }

}  // namespace strata::plan
#endif  // HWY_ONCE
