// Per-target int8 dot-product primitives for the int8 panel kernels (Highway 1.0.3 has no u8 x i8 dot op):
// x86 AVX2 / AVX-512 use maddubs + madd, AVX3_DL (AVX-512 VNNI) vpdpbusd; every other target (SSE4,
// NEON) the generic Highway code below, with the same results.
// Included by the gemm_int8_*.cpp translation units, once per target (Highway's -inl.h convention).
#if defined(STRATA_KERNELS_INT8_DOT_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef STRATA_KERNELS_INT8_DOT_INL_H_
#undef STRATA_KERNELS_INT8_DOT_INL_H_
#else
#define STRATA_KERNELS_INT8_DOT_INL_H_
#endif

#include <cstring>
#include <utility>

#include <hwy/highway.h>

// Highway 1.0.3's AVX3_DL target attribute lacks avx512vnni (its CPU detection does require it), and
// clang will not merge a second target attribute into Highway's: DotQuads therefore issues vpdpbusd
// through inline assembly, which needs no target feature and is only reached on AVX3_DL.
#undef STRATA_VNNI
#if HWY_TARGET == HWY_AVX3_DL
#define STRATA_VNNI 1
#else
#define STRATA_VNNI 0
#endif

HWY_BEFORE_NAMESPACE();
namespace strata::kernels::i8::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

#if HWY_TARGET != HWY_SCALAR

using DI32 = hn::ScalableTag<int32_t>;
using DI16 = hn::Repartition<int16_t, DI32>;
using DU16 = hn::Repartition<uint16_t, DI32>;
using DU8 = hn::Repartition<uint8_t, DI32>;
using DI8 = hn::Repartition<int8_t, DI32>;
using DF = hn::Repartition<float, DI32>;
using VI32 = hn::Vec<DI32>;
using VI16 = hn::Vec<DI16>;
using VU8 = hn::Vec<DU8>;
using VI8 = hn::Vec<DI8>;
using VF = hn::Vec<DF>;

// Rows per tile: one int32 lane per row.
constexpr size_t kR = hn::MaxLanes(DI32());

// Calls f(integral_constant<int, 0>) ... f(integral_constant<int, N-1>): compile-time unrolling.
template <class F, int... I>
HWY_INLINE void UnrollImpl(F&& f, std::integer_sequence<int, I...>) {
  (f(std::integral_constant<int, I>{}), ...);
}
template <int N, class F>
HWY_INLINE void Unroll(F&& f) {
  UnrollImpl(f, std::make_integer_sequence<int, N>{});
}

// The 4 activation bytes p[0..3] in every int32 lane.
HWY_INLINE VI8 BroadcastQuad(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return hn::BitCast(DI8(), hn::Set(DI32(), v));
}

// i16 lane i = sat(a[2i] * b[2i] + a[2i+1] * b[2i+1]), a unsigned, b signed (x86 pmaddubsw).
HWY_INLINE VI16 MulAddPairs(VU8 a, VI8 b) {
#if HWY_TARGET == HWY_AVX2
  return VI16{_mm256_maddubs_epi16(a.raw, b.raw)};
#elif HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
  return VI16{_mm512_maddubs_epi16(a.raw, b.raw)};
#else
  const DI16 d16;
  const DU16 du16;
  const auto a16 = hn::BitCast(du16, a);
  const auto a_even = hn::BitCast(d16, hn::And(a16, hn::Set(du16, 0xFF)));
  const auto a_odd = hn::BitCast(d16, hn::ShiftRight<8>(a16));
  const auto b16 = hn::BitCast(d16, b);
  const auto b_even = hn::ShiftRight<8>(hn::ShiftLeft<8>(b16));
  const auto b_odd = hn::ShiftRight<8>(b16);
  return hn::SaturatedAdd(hn::Mul(a_even, b_even), hn::Mul(a_odd, b_odd));
#endif
}

// i32 lane i = v[2i] + v[2i+1] (x86 pmaddwd with ones).
HWY_INLINE VI32 SumPairs(VI16 v) {
#if HWY_TARGET == HWY_AVX2
  return VI32{_mm256_madd_epi16(v.raw, _mm256_set1_epi16(1))};
#elif HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
  return VI32{_mm512_madd_epi16(v.raw, _mm512_set1_epi16(1))};
#else
  const auto v32 = hn::BitCast(DI32(), v);
  return hn::Add(hn::ShiftRight<16>(hn::ShiftLeft<16>(v32)), hn::ShiftRight<16>(v32));
#endif
}

#if STRATA_VNNI
// acc lane i += sum of the 4 products a[4i+j] * b[4i+j] (vpdpbusd, no saturation).
HWY_INLINE VI32 DotQuads(VI32 acc, VU8 a, VI8 b) {
  __m512i r = acc.raw;
  asm("vpdpbusd %2, %1, %0" : "+v"(r) : "v"(a.raw), "v"(b.raw));
  return VI32{r};
}
#endif

// Signed weights w: returns |w| (unsigned) and x with the sign of w applied, so that the unsigned x
// signed products above give w * x.
HWY_INLINE void ApplySign(VI8 w, VI8 x, VU8& a, VI8& b) {
#if HWY_TARGET == HWY_AVX2
  a = VU8{_mm256_abs_epi8(w.raw)};
  b = VI8{_mm256_sign_epi8(x.raw, w.raw)};
#elif HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
  a = VU8{_mm512_abs_epi8(w.raw)};
  b = VI8{_mm512_mask_sub_epi8(x.raw, _mm512_movepi8_mask(w.raw), _mm512_setzero_si512(), x.raw)};
#else
  const DI8 di8;
  a = hn::BitCast(DU8(), hn::Abs(w));
  b = hn::IfThenElse(hn::Lt(w, hn::Zero(di8)), hn::Sub(hn::Zero(di8), x), x);
#endif
}

// R floats from R fp16 values.
HWY_INLINE VF LoadHalves(const uint8_t* p) {
  const hn::Rebind<hwy::float16_t, DF> dh;
  return hn::PromoteTo(DF(), hn::LoadU(dh, reinterpret_cast<const hwy::float16_t*>(p)));
}
// R floats from R unsigned / signed bytes.
HWY_INLINE VF LoadU8AsFloat(const uint8_t* p) {
  const hn::Rebind<uint8_t, DI32> d8;
  return hn::ConvertTo(DF(), hn::PromoteTo(DI32(), hn::LoadU(d8, p)));
}
HWY_INLINE VF LoadI8AsFloat(const uint8_t* p) {
  const hn::Rebind<int8_t, DI32> d8;
  return hn::ConvertTo(DF(), hn::PromoteTo(DI32(), hn::LoadU(d8, reinterpret_cast<const int8_t*>(p))));
}

#endif  // HWY_TARGET != HWY_SCALAR

}  // namespace strata::kernels::i8::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // include guard
