// Highway variants of sparse_ffn_accumulate (sparse_ffn_simd.h). Per active neuron and token row: a dot
// product of the up part with x (four vector accumulators; Q8_0 sums each block of 32 in float and scales it
// by the block's d) and an axpy of the down part into acc (Q8_0: scale c·dot·d per block). Odd lengths
// (F32/F16/BF16 rows whose n_embd is not a multiple of the lanes) finish with a scalar tail.
#include "kernels/simd_config.h"  // first: the target list

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/sparse_ffn_simd.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include <cstring>
#include <utility>

#include "core/error.h"
#include "core/fp16.h"
#include "kernels/sparse_ffn_simd.h"

HWY_BEFORE_NAMESPACE();
namespace strata::kernels::sparse::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;
using DF = hn::ScalableTag<float>;
using VF = hn::Vec<DF>;

HWY_INLINE float Bits16ToF(const hwy::float16_t* p) {
  uint16_t b;
  std::memcpy(&b, p, 2);
  return fp16_to_f32(b);
}
HWY_INLINE float Bits16ToF(const hwy::bfloat16_t* p) {
  uint16_t b;
  std::memcpy(&b, p, 2);
  return bf16_to_f32(b);
}
HWY_INLINE float OneW(const float* p) { return *p; }
HWY_INLINE float OneW(const hwy::float16_t* p) { return Bits16ToF(p); }
HWY_INLINE float OneW(const hwy::bfloat16_t* p) { return Bits16ToF(p); }
HWY_INLINE VF LoadW(DF df, const float* p) { return hn::LoadU(df, p); }
HWY_INLINE VF LoadW(DF df, const hwy::float16_t* p) { return hn::PromoteTo(df, hn::LoadU(hn::Rebind<hwy::float16_t, DF>(), p)); }
HWY_INLINE VF LoadW(DF df, const hwy::bfloat16_t* p) { return hn::PromoteTo(df, hn::LoadU(hn::Rebind<hwy::bfloat16_t, DF>(), p)); }

// Float-like rows (F32, F16, BF16): w[0, n) · x.
template <class T>
HWY_INLINE float DotW(const T* HWY_RESTRICT w, const float* HWY_RESTRICT x, int64_t n) {
  const DF df;
  const int64_t L = static_cast<int64_t>(hn::Lanes(df));
  VF s0 = hn::Zero(df), s1 = hn::Zero(df), s2 = hn::Zero(df), s3 = hn::Zero(df);
  int64_t j = 0;
  for (; j + 4 * L <= n; j += 4 * L) {
    s0 = hn::MulAdd(LoadW(df, w + j), hn::LoadU(df, x + j), s0);
    s1 = hn::MulAdd(LoadW(df, w + j + L), hn::LoadU(df, x + j + L), s1);
    s2 = hn::MulAdd(LoadW(df, w + j + 2 * L), hn::LoadU(df, x + j + 2 * L), s2);
    s3 = hn::MulAdd(LoadW(df, w + j + 3 * L), hn::LoadU(df, x + j + 3 * L), s3);
  }
  for (; j + L <= n; j += L) s0 = hn::MulAdd(LoadW(df, w + j), hn::LoadU(df, x + j), s0);
  float s = hn::GetLane(hn::SumOfLanes(df, hn::Add(hn::Add(s0, s1), hn::Add(s2, s3))));
  for (; j < n; ++j) s += OneW(w + j) * x[j];
  return s;
}

// o[0, n) += h · w[0, n).
template <class T>
HWY_INLINE void AxpyW(float h, const T* HWY_RESTRICT w, float* HWY_RESTRICT o, int64_t n) {
  const DF df;
  const int64_t L = static_cast<int64_t>(hn::Lanes(df));
  const VF vh = hn::Set(df, h);
  int64_t j = 0;
  for (; j + L <= n; j += L) hn::StoreU(hn::MulAdd(LoadW(df, w + j), vh, hn::LoadU(df, o + j)), df, o + j);
  for (; j < n; ++j) o[j] += h * OneW(w + j);
}

// 32 int8 values of a Q8_0 block, L at a time, as floats.
HWY_INLINE VF LoadQ8(DF df, const int8_t* p) {
  const hn::Rebind<int32_t, DF> di;
  const hn::Rebind<int8_t, DF> d8;
  return hn::ConvertTo(df, hn::PromoteTo(di, hn::LoadU(d8, p)));
}

HWY_INLINE float DotQ8(const block_q8_0* HWY_RESTRICT w, const float* HWY_RESTRICT x, int64_t nb) {
  const DF df;
  const int64_t L = static_cast<int64_t>(hn::Lanes(df));
  VF s0 = hn::Zero(df), s1 = hn::Zero(df);
  int64_t b = 0;
  // Two blocks at a time: two independent chains.
  for (; b + 2 <= nb; b += 2) {
    VF b0 = hn::Zero(df), b1 = hn::Zero(df);
    for (int64_t k = 0; k < 32; k += L) {
      b0 = hn::MulAdd(LoadQ8(df, w[b].qs + k), hn::LoadU(df, x + b * 32 + k), b0);
      b1 = hn::MulAdd(LoadQ8(df, w[b + 1].qs + k), hn::LoadU(df, x + (b + 1) * 32 + k), b1);
    }
    s0 = hn::MulAdd(b0, hn::Set(df, fp16_to_f32(w[b].d)), s0);
    s1 = hn::MulAdd(b1, hn::Set(df, fp16_to_f32(w[b + 1].d)), s1);
  }
  for (; b < nb; ++b) {
    VF b0 = hn::Zero(df);
    for (int64_t k = 0; k < 32; k += L) b0 = hn::MulAdd(LoadQ8(df, w[b].qs + k), hn::LoadU(df, x + b * 32 + k), b0);
    s0 = hn::MulAdd(b0, hn::Set(df, fp16_to_f32(w[b].d)), s0);
  }
  return hn::GetLane(hn::SumOfLanes(df, hn::Add(s0, s1)));
}

HWY_INLINE void AxpyQ8(float h, const block_q8_0* HWY_RESTRICT w, float* HWY_RESTRICT o, int64_t nb) {
  const DF df;
  const int64_t L = static_cast<int64_t>(hn::Lanes(df));
  for (int64_t b = 0; b < nb; ++b) {
    const VF vs = hn::Set(df, h * fp16_to_f32(w[b].d));
    float* ob = o + b * 32;
    for (int64_t k = 0; k < 32; k += L)
      hn::StoreU(hn::MulAdd(LoadQ8(df, w[b].qs + k), vs, hn::LoadU(df, ob + k)), df, ob + k);
  }
}

// The neuron loop for one row layout: Dot(up, x_t) and Axpy(h, down, acc_t).
template <class GetRow, class Dot, class Axpy>
HWY_INLINE void Neurons(const SparseFfnJob& j, int64_t begin, int64_t end, float* acc, GetRow get, Dot dot, Axpy axpy) {
  const int64_t ne = j.n_embd;
  for (int64_t a = begin; a < end; ++a) {
    const int64_t i = j.neurons[a];
    const auto [up, down] = get(j.rows[a]);
    for (int64_t t = 0; t < j.n_tok; ++t) {
      const float c = j.coef[t * j.coef_stride + i];
      if (c == 0.0f) continue;
      axpy(c * dot(up, j.x + t * ne), down, acc + t * ne);
    }
  }
}

template <class T>
void FloatRows(const SparseFfnJob& j, int64_t begin, int64_t end, float* acc) {
  const int64_t ne = j.n_embd;
  Neurons(
      j, begin, end, acc,
      [&](const uint8_t* r) {
        const T* w = reinterpret_cast<const T*>(r);
        return std::pair<const T*, const T*>(w, w + ne);
      },
      [&](const T* up, const float* x) { return DotW(up, x, ne); },
      [&](float h, const T* down, float* o) { AxpyW(h, down, o, ne); });
}

void Accumulate(const SparseFfnJob& j, int64_t begin, int64_t end, float* acc, float* scratch) {
  const int64_t ne = j.n_embd;
  switch (j.type) {
    case DType::F32: return FloatRows<float>(j, begin, end, acc);
    case DType::F16: return FloatRows<hwy::float16_t>(j, begin, end, acc);
    case DType::BF16: return FloatRows<hwy::bfloat16_t>(j, begin, end, acc);
    case DType::Q8_0: {
      const int64_t nb = ne / 32;
      return Neurons(
          j, begin, end, acc,
          [&](const uint8_t* r) {
            const block_q8_0* w = reinterpret_cast<const block_q8_0*>(r);
            return std::pair<const block_q8_0*, const block_q8_0*>(w, w + nb);
          },
          [&](const block_q8_0* up, const float* x) { return DotQ8(up, x, nb); },
          [&](float h, const block_q8_0* down, float* o) { AxpyQ8(h, down, o, nb); });
    }
    default:
      return Neurons(
          j, begin, end, acc,
          [&](const uint8_t* r) {
            dequantize_row(j.type, r, scratch, 2 * ne);
            return std::pair<const float*, const float*>(scratch, scratch + ne);
          },
          [&](const float* up, const float* x) { return DotW(up, x, ne); },
          [&](float h, const float* down, float* o) { AxpyW(h, down, o, ne); });
  }
}

}  // namespace strata::kernels::sparse::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace strata::kernels {
namespace sparse {
HWY_EXPORT(Accumulate);
}  // namespace sparse

void sparse_ffn_accumulate(const SparseFfnJob& j, int64_t begin, int64_t end, float* acc, float* scratch) {
  STRATA_ASSERT(j.n_embd % traits(j.type).block_size == 0, "sparse_ffn_accumulate: n_embd not a multiple of the block");
  HWY_DYNAMIC_DISPATCH(sparse::Accumulate)(j, begin, end, acc, scratch);
}

namespace ref {
void sparse_ffn_accumulate(const SparseFfnJob& j, int64_t begin, int64_t end, float* acc, float* scratch) {
  const int64_t ne = j.n_embd;
  for (int64_t a = begin; a < end; ++a) {
    const int64_t i = j.neurons[a];
    dequantize_row(j.type, j.rows[a], scratch, 2 * ne);
    const float* up = scratch;
    const float* down = scratch + ne;
    for (int64_t t = 0; t < j.n_tok; ++t) {
      const float c = j.coef[t * j.coef_stride + i];
      if (c == 0.0f) continue;
      const float* x = j.x + t * ne;
      float dot = 0;
      for (int64_t k = 0; k < ne; ++k) dot += up[k] * x[k];
      const float h = c * dot;
      float* o = acc + t * ne;
      for (int64_t k = 0; k < ne; ++k) o[k] += h * down[k];
    }
  }
}
}  // namespace ref

}  // namespace strata::kernels
#endif  // HWY_ONCE
