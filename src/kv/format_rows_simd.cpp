// Vector row decoders (format_rows_simd.h), compiled for every x86 target Highway has and dispatched at run
// time. Each block's mantissas are widened to int8 (bfp4: 8 bytes -> 16 sign-extended nibbles in one
// 128-bit vector), then int8 -> int32 -> float32 times the block's scale, full vector width. int -> float
// and the multiply by a power of two (bfp) or an fp16 scale (q4_0) are the scalar codec's operations in
// the same order, so results are bit-identical.
#include "kv/format_rows_simd.h"

#include <cstring>

#include "core/fp16.h"
#include "kv/format_rows.h"
#include "tensor/dtype.h"

#ifndef HWY_DISABLED_TARGETS
#define HWY_DISABLED_TARGETS HWY_SSSE3
#endif
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kv/format_rows_simd.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep

#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace strata::kv::simd::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

#if HWY_TARGET != HWY_SCALAR

// out[0 .. 16*k) = m[i] * scale for 16 int8 mantissas per scale (k blocks of one row's mantissas in m).
template <class D>
HWY_INLINE void ScaleBlock16(D d, const int8_t* HWY_RESTRICT m, float scale, float* HWY_RESTRICT out) {
  const hn::Rebind<int32_t, D> di;
  const hn::Rebind<int8_t, D> d8;
  constexpr size_t kMax = hn::MaxLanes(D());
  static_assert(kMax <= 16 && 16 % kMax == 0, "a block of 16 must be whole vectors");
  const size_t N = hn::Lanes(d);
  const auto vs = hn::Set(d, scale);
  for (size_t i = 0; i < 16; i += N)
    hn::StoreU(hn::Mul(hn::ConvertTo(d, hn::PromoteTo(di, hn::LoadU(d8, m + i))), vs), d, out + i);
}

// The widest float vector whose int8 rebind a 16-mantissa block fills exactly.
using DF = hn::CappedTag<float, 16>;

void DecodeBfp8(const uint8_t* data, int64_t unit_stride, int64_t p0, int64_t p1, int32_t hd, float* out,
                int64_t ld) {
  using C = rows::Bfp8;
  const DF d;
  for (int64_t p = p0; p < p1; ++p) {
    const uint8_t* src = data + p * unit_stride;
    float* o = out + (p - p0) * ld;
    for (int32_t b = 0; b < hd / C::kBlock; ++b, src += C::kBytes, o += C::kBlock)
      ScaleBlock16(d, reinterpret_cast<const int8_t*>(src + 1), C::scale(src), o);
  }
}

// 8 bytes -> 16 mantissas: byte j holds m[j] (low nibble) and m[j+8] (high), each 4-bit two's complement.
HWY_INLINE void Nibbles16(const uint8_t* HWY_RESTRICT src, int8_t* HWY_RESTRICT m) {
  const hn::FixedTag<uint8_t, 16> d16;
  const hn::FixedTag<uint8_t, 8> d8;
  const hn::FixedTag<int8_t, 16> di16;
  const auto b = hn::LoadU(d8, src);
  const auto lo = hn::And(b, hn::Set(d8, uint8_t{0x0F}));
  const auto hi = hn::ShiftRight<4>(b);
  const auto v = hn::Xor(hn::Combine(d16, hi, lo), hn::Set(d16, uint8_t{8}));  // (nib ^ 8) - 8: sign extend
  hn::StoreU(hn::Sub(hn::BitCast(di16, v), hn::Set(di16, int8_t{8})), di16, m);
}

void DecodeBfp4(const uint8_t* data, int64_t unit_stride, int64_t p0, int64_t p1, int32_t hd, float* out,
                int64_t ld) {
  using C = rows::Bfp4;
  const DF d;
  HWY_ALIGN int8_t m[16];
  for (int64_t p = p0; p < p1; ++p) {
    const uint8_t* src = data + p * unit_stride;
    float* o = out + (p - p0) * ld;
    for (int32_t b = 0; b < hd / C::kBlock; ++b, src += C::kBytes, o += C::kBlock) {
      Nibbles16(src + 1, m);
      ScaleBlock16(d, m, C::scale(src), o);
    }
  }
}

// q4_0: fp16 d + 16 bytes; byte j holds q[j] (low) and q[j+16] (high); x = (q - 8) * d.
void DecodeQ4_0(const uint8_t* data, int64_t unit_stride, int64_t p0, int64_t p1, int32_t hd, float* out,
                int64_t ld) {
  const DF d;
  const hn::FixedTag<uint8_t, 16> du;
  const hn::FixedTag<int8_t, 16> di;
  HWY_ALIGN int8_t m[32];
  constexpr size_t kBytes = sizeof(block_q4_0);
  for (int64_t p = p0; p < p1; ++p) {
    const uint8_t* src = data + p * unit_stride;
    float* o = out + (p - p0) * ld;
    for (int32_t b = 0; b < hd / QK4_0; ++b, src += kBytes, o += QK4_0) {
      const float s = fp16_to_f32(rows::load_u16(src));
      const auto q = hn::LoadU(du, src + 2);
      const auto eight = hn::Set(di, int8_t{8});
      hn::Store(hn::Sub(hn::BitCast(di, hn::And(q, hn::Set(du, uint8_t{0x0F}))), eight), di, m);
      hn::Store(hn::Sub(hn::BitCast(di, hn::ShiftRight<4>(q)), eight), di, m + 16);
      ScaleBlock16(d, m, s, o);
      ScaleBlock16(d, m + 16, s, o + 16);
    }
  }
}

#else  // HWY_SCALAR: the scalar codecs themselves.

void DecodeBfp8(const uint8_t* data, int64_t unit_stride, int64_t p0, int64_t p1, int32_t hd, float* out,
                int64_t ld) {
  for (int64_t p = p0; p < p1; ++p) rows::Bfp8::decode(data + p * unit_stride, out + (p - p0) * ld, hd);
}
void DecodeBfp4(const uint8_t* data, int64_t unit_stride, int64_t p0, int64_t p1, int32_t hd, float* out,
                int64_t ld) {
  for (int64_t p = p0; p < p1; ++p) rows::Bfp4::decode(data + p * unit_stride, out + (p - p0) * ld, hd);
}
void DecodeQ4_0(const uint8_t* data, int64_t unit_stride, int64_t p0, int64_t p1, int32_t hd, float* out,
                int64_t ld) {
  for (int64_t p = p0; p < p1; ++p) rows::Q4_0::decode(data + p * unit_stride, out + (p - p0) * ld, hd);
}

#endif  // HWY_TARGET != HWY_SCALAR

const char* TargetName() { return hwy::TargetName(HWY_TARGET); }

}  // namespace strata::kv::simd::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace strata::kv::simd {

HWY_EXPORT(DecodeBfp8);
HWY_EXPORT(DecodeBfp4);
HWY_EXPORT(DecodeQ4_0);
HWY_EXPORT(TargetName);

void decode_bfp8(const uint8_t* data, int64_t unit_stride, int64_t p0, int64_t p1, int32_t head_dim, float* out,
                 int64_t ld) {
  HWY_DYNAMIC_DISPATCH(DecodeBfp8)(data, unit_stride, p0, p1, head_dim, out, ld);
}
void decode_bfp4(const uint8_t* data, int64_t unit_stride, int64_t p0, int64_t p1, int32_t head_dim, float* out,
                 int64_t ld) {
  HWY_DYNAMIC_DISPATCH(DecodeBfp4)(data, unit_stride, p0, p1, head_dim, out, ld);
}
void decode_q4_0(const uint8_t* data, int64_t unit_stride, int64_t p0, int64_t p1, int32_t head_dim, float* out,
                 int64_t ld) {
  HWY_DYNAMIC_DISPATCH(DecodeQ4_0)(data, unit_stride, p0, p1, head_dim, out, ld);
}
const char* decode_target_name() { return HWY_DYNAMIC_DISPATCH(TargetName)(); }

}  // namespace strata::kv::simd
#endif  // HWY_ONCE
