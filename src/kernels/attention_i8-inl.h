// Int8 scores (Q·Kᵀ) for int8-able K rows (q8_0, q4_0), AVX-512 VNNI only (HWY_AVX3_DL): each query row
// is quantized per 32-dim block to int8 (like llama.cpp's Q8_0 activations, but with a float32 scale),
// K rows are widened to unsigned bytes k + 128 once per tile, and vpdpbusd does 4 multiply-adds per int32
// lane: 8 instructions per key for 8 query rows of head dim 64, against 32 float FMAs (16 with the second
// digit of the query, the default: the rounding residual of q, times 254, as a second int8 vector).
//
// Layout: the "row pairs" of attention_simd.cpp, with quads of int8 dims instead of float pairs: lane
// 2r + e of the vector for dim octet o holds query row r's dims 8o + 4e .. 8o + 4e + 3, so one 64-bit
// broadcast of a key's 8 bytes at 8o multiplies every row, and adding a pair's two lanes gives the score.
// The +128 of K is undone by starting each block's accumulator at -128·Σq over the lane's dims.
// Score(r, j) = Σ_b d_q[r][b] · d_k[j][b] · Σ_{c in b} q8[r][c] · k8[j][c]: exact integer dots, so
// the only change from the float path is rounding q to int8 (checked with `strata ppl --kl-base`; with two
// digits the rounding error is 1/254 of one digit's).
// (Highway per-target header: included once per target by attention_simd.cpp.)
#if defined(STRATA_KERNELS_ATTENTION_I8_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef STRATA_KERNELS_ATTENTION_I8_INL_H_
#undef STRATA_KERNELS_ATTENTION_I8_INL_H_
#else
#define STRATA_KERNELS_ATTENTION_I8_INL_H_
#endif

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include "hwy/highway.h"
#include "kernels/attention.h"
#include "kernels/attention_kv_rows-inl.h"
#include "tensor/dtype.h"

HWY_BEFORE_NAMESPACE();
namespace strata::kernels::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

#if HWY_TARGET != HWY_SCALAR

// S2 rows (attention_simd.cpp's pair layout) of one row vector from KB keys' accumulators f[k * stride]
// (each lane pair: a row's two partial sums): the pairs added, keys 2i and 2i+1 interleaved into one
// vector; KB even, or 1 (the last key of an odd tile: its partner lane gets -inf).
template <size_t KB, class D>
HWY_INLINE void StoreKeyPairSums(D d, const hn::Vec<D>* f, size_t stride, float* HWY_RESTRICT s2, size_t rp2) {
  using V = hn::Vec<D>;
  if constexpr (KB == 1) {
    const V e = hn::Add(f[0], hn::Shuffle2301(f[0]));
    hn::Store(hn::OddEven(hn::Set(d, -std::numeric_limits<float>::infinity()), e), d, s2);
  } else {
    for (size_t k = 0; k + 1 < KB; k += 2) {
      const V e = hn::Add(f[k * stride], hn::Shuffle2301(f[k * stride]));
      const V o = hn::Add(f[(k + 1) * stride], hn::Shuffle2301(f[(k + 1) * stride]));
      hn::Store(hn::OddEven(o, e), d, s2 + (k / 2) * rp2);
    }
  }
}

// Scratch layout of the quantized query rows of one KV head (rp2 lanes per vector row, as S2):
// qv [hd/8][rp2] int32 (4 int8 dims per lane), corr [hd/32][rp2] int32 (-128·Σq), qd [hd/32][rp2] float;
// with two digits also qv_lo, corr_lo (the rounding residual times 254, in int8: 1/254 of the weight).
struct QueryI8 {
  int32_t* qv;
  int32_t* corr;
  float* qd;
  int32_t* qv_lo = nullptr;
  int32_t* corr_lo = nullptr;
  QueryI8 offset(size_t lanes) const {
    return {qv + lanes, corr + lanes, qd + lanes, qv_lo ? qv_lo + lanes : nullptr, corr_lo ? corr_lo + lanes : nullptr};
  }
};

// The weight of the second digit.
constexpr float kI8LoScale = 254.f;

// Quantizes row r (hd floats x, times the softmax scale `scale`) into the lanes 2r, 2r+1 of q: per 32-dim
// block d = max|x·scale| / 127, hi = round(x·scale / d); two digits: lo = round((x·scale / d - hi) · 254).
HWY_INLINE void QuantizeQueryRowI8(const float* x, float scale, int32_t hd, size_t rp2, int64_t r, const QueryI8& q) {
  for (int32_t b = 0; b < hd / 32; ++b) {
    float amax = 0;
    for (int32_t c = 0; c < 32; ++c) amax = std::max(amax, std::fabs(x[32 * b + c] * scale));
    const float d = amax / 127.f, id = d > 0 ? 1.f / d : 0.f;
    int32_t sum[2] = {0, 0}, sum_lo[2] = {0, 0};
    for (int32_t o = 4 * b; o < 4 * b + 4; ++o)
      for (int32_t e = 0; e < 2; ++e) {
        int8_t bytes[4], lo[4];
        for (int32_t t = 0; t < 4; ++t) {
          const float v = x[8 * o + 4 * e + t] * scale * id;
          const float h = std::clamp(std::nearbyint(v), -127.f, 127.f);
          bytes[t] = static_cast<int8_t>(h);
          lo[t] = static_cast<int8_t>(std::clamp(std::nearbyint((v - h) * kI8LoScale), -127.f, 127.f));
          sum[e] += bytes[t];
          sum_lo[e] += lo[t];
        }
        std::memcpy(&q.qv[o * rp2 + 2 * r + e], bytes, 4);
        if (q.qv_lo) std::memcpy(&q.qv_lo[o * rp2 + 2 * r + e], lo, 4);
      }
    for (int32_t e = 0; e < 2; ++e) {
      q.corr[b * rp2 + 2 * r + e] = -128 * sum[e];
      if (q.corr_lo) q.corr_lo[b * rp2 + 2 * r + e] = -128 * sum_lo[e];
      q.qd[b * rp2 + 2 * r + e] = d;
    }
  }
}

// K rows j0 .. j0+rows-1 of KV head `head` as unsigned bytes k + 128 [rows][n] and block scales
// [rows][n/32]; asks for the `ahead` rows that start `skip` rows after them.
HWY_INLINE void LoadKTileI8(const KvView& kv, int32_t head, int64_t j0, int64_t rows, int32_t n,
                            uint8_t* HWY_RESTRICT ku8, float* HWY_RESTRICT kd, int64_t& bytes, int64_t ahead,
                            int64_t skip) {
  const hn::FixedTag<uint8_t, 16> du;
  const hn::FixedTag<float, 4> df;
  const int32_t nb = n / 32;
  const uint8_t* base = static_cast<const uint8_t*>(kv.data) + head * kv.head_stride;
  bytes += rows * static_cast<int64_t>(KvRowBytesNative(kv.type, n));
  PrefetchKvRows(kv, head, j0 + rows + skip, j0 + rows + skip + ahead, n);
  const auto bias = hn::Set(du, uint8_t{0x80});
  const auto mask = hn::Set(du, uint8_t{0x0F});
  const auto b120 = hn::Set(du, uint8_t{120});  // q4_0: (q - 8) + 128
  for (int64_t j = 0; j < rows; ++j) {
    const uint8_t* src = base + (j0 + j) * kv.pos_stride;
    uint8_t* o = ku8 + j * n;
    if (kv.type == DType::Q8_0) {
      for (int32_t b = 0; b < nb; ++b) {
        const uint8_t* blk = src + b * sizeof(block_q8_0);
        kd[j * nb + b] = LoadScaleF16(df, blk);
        hn::StoreU(hn::Xor(hn::LoadU(du, blk + 2), bias), du, o + 32 * b);
        hn::StoreU(hn::Xor(hn::LoadU(du, blk + 18), bias), du, o + 32 * b + 16);
      }
    } else {  // Q4_0
      for (int32_t b = 0; b < nb; ++b) {
        const uint8_t* blk = src + b * sizeof(block_q4_0);
        kd[j * nb + b] = LoadScaleF16(df, blk);
        const auto q = hn::LoadU(du, blk + 2);
        hn::StoreU(hn::Add(hn::And(q, mask), b120), du, o + 32 * b);
        hn::StoreU(hn::Add(hn::ShiftRight<4>(q), b120), du, o + 32 * b + 16);
      }
    }
  }
}

#if HWY_TARGET == HWY_AVX3_DL && HWY_ARCH_X86
constexpr bool kHaveAttnI8 = true;

// Highway 1.0.3's AVX3_DL target attribute lacks avx512vnni (its CPU detection requires it): vpdpbusd is
// issued by inline assembly, as in int8_dot-inl.h.

// acc lane i += Σ_{t<4} a[4i+t] · b[4i+t], a unsigned bytes, b signed bytes (no saturation).
template <class VI>
HWY_INLINE VI DotQuadsI8(VI acc, VI a, VI b) {
  auto r = acc.raw;
  asm("vpdpbusd %2, %1, %0" : "+v"(r) : "v"(a.raw), "v"(b.raw));
  return VI{r};
}

// A key's 8 bytes in every 64-bit lane.
template <class DI>
HWY_INLINE hn::Vec<DI> BroadcastOctet(DI di, const uint8_t* p) {
  const hn::Repartition<int64_t, DI> d64;
  int64_t x;
  std::memcpy(&x, p, sizeof(x));
  return hn::BitCast(di, hn::Set(d64, x));
}

// S2 rows (pair layout, as ScoreBlock) for KB keys (KB even, or 1: partner lane -inf) of one row vector:
// q at the row vector's first lane, ku8 at the first key (row length hd), kd its scales. kTwo: both digits.
template <size_t KB, bool kTwo, class D>
HWY_NOINLINE void ScoreBlockI8(D d, const QueryI8& q, size_t rp2, const uint8_t* HWY_RESTRICT ku8,
                               const float* HWY_RESTRICT kd, int32_t hd, float* HWY_RESTRICT s2) {
  const hn::Rebind<int32_t, D> di;
  using V = hn::Vec<D>;
  using VI = hn::Vec<decltype(di)>;
  const int32_t nb = hd / 32;
  V f[KB];
  for (size_t k = 0; k < KB; ++k) f[k] = hn::Zero(d);
  for (int32_t b = 0; b < nb; ++b) {
    VI qo[4], ql[4];
    for (int32_t g = 0; g < 4; ++g) {
      qo[g] = hn::Load(di, q.qv + (4 * b + g) * rp2);
      if constexpr (kTwo) ql[g] = hn::Load(di, q.qv_lo + (4 * b + g) * rp2);
    }
    const V dq = hn::Load(d, q.qd + b * rp2);
    VI acc[KB], acl[KB];
    for (size_t k = 0; k < KB; ++k) {
      acc[k] = hn::Load(di, q.corr + b * rp2);
      if constexpr (kTwo) acl[k] = hn::Load(di, q.corr_lo + b * rp2);
    }
    for (int32_t g = 0; g < 4; ++g)
      for (size_t k = 0; k < KB; ++k) {
        const VI kv = BroadcastOctet(di, ku8 + k * hd + 32 * b + 8 * g);
        acc[k] = DotQuadsI8(acc[k], kv, qo[g]);
        if constexpr (kTwo) acl[k] = DotQuadsI8(acl[k], kv, ql[g]);
      }
    for (size_t k = 0; k < KB; ++k) {
      const V w = hn::Mul(dq, hn::Set(d, kd[k * nb + b]));
      if constexpr (kTwo) {
        const V lo = hn::Mul(hn::ConvertTo(d, acl[k]), hn::Set(d, 1.f / kI8LoScale));
        f[k] = hn::MulAdd(hn::Add(hn::ConvertTo(d, acc[k]), lo), w, f[k]);
      } else {
        f[k] = hn::MulAdd(hn::ConvertTo(d, acc[k]), w, f[k]);
      }
    }
  }
  StoreKeyPairSums<KB>(d, f, 1, s2, rp2);
}

template <bool kTwo, class D>
HWY_INLINE void ScoresI8T(D d, const QueryI8& q, size_t rp2, size_t nrv, const uint8_t* ku8, const float* kd,
                          int32_t hd, int64_t jt, float* s2) {
  constexpr size_t KB = kTwo ? 4 : 8;  // accumulators: 2·KB int + KB float + 4 or 8 query vectors
  const size_t N = hn::Lanes(d);
  const int32_t nb = hd / 32;
  for (size_t rv = 0; rv < nrv; ++rv) {
    const QueryI8 qr = q.offset(rv * N);
    float* s = s2 + rv * N;
    int64_t j = 0;
    for (; j + static_cast<int64_t>(KB) <= jt; j += KB)
      ScoreBlockI8<KB, kTwo>(d, qr, rp2, ku8 + j * hd, kd + j * nb, hd, s + (j / 2) * rp2);
    for (; j + 2 <= jt; j += 2) ScoreBlockI8<2, kTwo>(d, qr, rp2, ku8 + j * hd, kd + j * nb, hd, s + (j / 2) * rp2);
    if (j < jt) ScoreBlockI8<1, kTwo>(d, qr, rp2, ku8 + j * hd, kd + j * nb, hd, s + (j / 2) * rp2);
  }
}

// Scores of all nrv row vectors against jt keys (S2 layout); two digits when q.qv_lo is set.
template <class D>
HWY_INLINE void ScoresI8(D d, const QueryI8& q, size_t rp2, size_t nrv, const uint8_t* ku8, const float* kd,
                         int32_t hd, int64_t jt, float* s2) {
  if (q.qv_lo) return ScoresI8T<true>(d, q, rp2, nrv, ku8, kd, hd, jt, s2);
  ScoresI8T<false>(d, q, rp2, nrv, ku8, kd, hd, jt, s2);
}

#else
constexpr bool kHaveAttnI8 = false;
template <class D>
HWY_INLINE void ScoresI8(D, const QueryI8&, size_t, size_t, const uint8_t*, const float*, int32_t, int64_t,
                         float*) {}  // never called: UseScoresI8() is false on this target
#endif  // HWY_TARGET == HWY_AVX3_DL

#endif  // HWY_TARGET != HWY_SCALAR

}  // namespace strata::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // include guard (per target)
