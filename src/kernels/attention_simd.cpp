// One attention work item per call, compiled for every x86 instruction set Highway targets and dispatched
// at run time. Per item (one KV head; R query rows = q positions × the group's query heads):
//   scores:  St[j][:] += K[j][c] (broadcast) · Qt[c][:]   rows in lanes (Qt = scale·Q transposed once per
//            item): no horizontal sums, per-row max/sum of the online softmax are lane-wise ops;
//   PV:      O[r][:]  += P[j][r] (broadcast) · V[j][:]    head dims in lanes, full-width vectors even when
//            the rows are few (decode: 8 rows), O row-major like the output.
// K/V tiles are dequantized once per item and tile by one row loader per format (attention_kv_rows-inl.h),
// the next tile is prefetched, and every K/V tile serves all query heads of the group. Register blocks:
// KB keys × RV row vectors (scores), RB rows × DVB dim vectors (PV).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "kernels/attention_item.h"

// SSSE3 adds compile time and no speed over SSE4 (which every x86-64 CPU of the last 15 years has).
#ifndef HWY_DISABLED_TARGETS
#define HWY_DISABLED_TARGETS HWY_SSSE3
#endif
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/attention_simd.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep

#include "hwy/aligned_allocator.h"
#include "hwy/contrib/math/math-inl.h"
#include "hwy/highway.h"
#include "kernels/attention_kv_rows-inl.h"

HWY_BEFORE_NAMESPACE();
namespace strata::kernels::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Accumulator registers a block may use: 12 of 16 with AVX2/SSE4, 24 of 32 with AVX-512.
#if HWY_TARGET <= HWY_AVX3 && HWY_ARCH_X86
constexpr size_t kAccRegs = 24;
constexpr size_t kMaxRV = 4;
#else
constexpr size_t kAccRegs = 12;
constexpr size_t kMaxRV = 3;
#endif
// Keys (scores) or dims (PV) per block for RV row vectors: enough independent FMAs to hide latency.
constexpr size_t BlockWidth(size_t rv) { return kAccRegs / rv > 8 ? 8 : kAccRegs / rv; }

// St[j][rv block] = sum_c K[j][c] · Qt[c][rv block] for KB keys from kt (row stride ldk).
template <size_t KB, size_t RV, class D>
HWY_INLINE void ScoreBlock(D d, const float* HWY_RESTRICT qt, size_t rp, const float* HWY_RESTRICT kt,
                           int64_t ldk, int32_t hd, float* HWY_RESTRICT st) {
  using V = hn::Vec<D>;
  const size_t N = hn::Lanes(d);
  V acc[KB][RV];
  for (size_t k = 0; k < KB; ++k)
    for (size_t r = 0; r < RV; ++r) acc[k][r] = hn::Zero(d);
  const float* kp[KB];
  for (size_t k = 0; k < KB; ++k) kp[k] = kt + k * ldk;
  for (int32_t c = 0; c < hd; ++c) {
    V qv[RV];
    for (size_t r = 0; r < RV; ++r) qv[r] = hn::Load(d, qt + c * rp + r * N);
    for (size_t k = 0; k < KB; ++k) {
      const V kb = hn::Set(d, kp[k][c]);
      for (size_t r = 0; r < RV; ++r) acc[k][r] = hn::MulAdd(kb, qv[r], acc[k][r]);
    }
  }
  for (size_t k = 0; k < KB; ++k)
    for (size_t r = 0; r < RV; ++r) hn::Store(acc[k][r], d, st + k * rp + r * N);
}

template <size_t RV, class D>
HWY_INLINE void ScoreRows(D d, const float* qt, size_t rp, const float* kt, int64_t ldk, int32_t hd, int64_t jt,
                          float* st) {
  constexpr size_t KB = BlockWidth(RV);
  int64_t j = 0;
  for (; j + static_cast<int64_t>(KB) <= jt; j += KB) ScoreBlock<KB, RV>(d, qt, rp, kt + j * ldk, ldk, hd, st + j * rp);
  for (; j < jt; ++j) ScoreBlock<1, RV>(d, qt, rp, kt + j * ldk, ldk, hd, st + j * rp);
}

// Scores of all row vectors against jt keys.
template <class D>
HWY_INLINE void Scores(D d, const float* qt, size_t rp, size_t nrv, const float* kt, int64_t ldk, int32_t hd,
                       int64_t jt, float* st) {
  const size_t N = hn::Lanes(d);
  size_t rv = 0;
  for (; rv + kMaxRV <= nrv; rv += kMaxRV) ScoreRows<kMaxRV>(d, qt + rv * N, rp, kt, ldk, hd, jt, st + rv * N);
  switch (nrv - rv) {
    case 0: break;
    case 1: ScoreRows<1>(d, qt + rv * N, rp, kt, ldk, hd, jt, st + rv * N); break;
    case 2: ScoreRows<2>(d, qt + rv * N, rp, kt, ldk, hd, jt, st + rv * N); break;
    default:
      if constexpr (kMaxRV > 3) ScoreRows<3>(d, qt + rv * N, rp, kt, ldk, hd, jt, st + rv * N);
      break;
  }
}

// PV rows/dims per block: RB rows × DVB vectors of accumulators (+ DVB V vectors in registers).
#if HWY_TARGET <= HWY_AVX3 && HWY_ARCH_X86
constexpr size_t kPvRows = 4;
#else
constexpr size_t kPvRows = 2;
#endif
constexpr size_t kPvVecs = 4;

// O[r block][c block] = alpha[r]·O + sum_j P[j][r] · V[j][c block] (o, alpha, pt at the block's first row,
// o and vt at its first dim).
template <size_t RB, size_t DVB, class D>
HWY_INLINE void PvBlock(D d, float* HWY_RESTRICT o, size_t ldo, const float* HWY_RESTRICT alpha, bool rescale,
                        const float* HWY_RESTRICT pt, size_t rp, const float* HWY_RESTRICT vt, int64_t ldv,
                        int64_t jt) {
  using V = hn::Vec<D>;
  const size_t N = hn::Lanes(d);
  V acc[RB][DVB];
  for (size_t r = 0; r < RB; ++r) {
    const V a = hn::Set(d, rescale ? alpha[r] : 1.f);
    for (size_t b = 0; b < DVB; ++b) acc[r][b] = hn::Mul(hn::Load(d, o + r * ldo + b * N), a);
  }
  for (int64_t j = 0; j < jt; ++j) {
    V vv[DVB];
    for (size_t b = 0; b < DVB; ++b) vv[b] = hn::LoadU(d, vt + j * ldv + b * N);
    for (size_t r = 0; r < RB; ++r) {
      const V pb = hn::Set(d, pt[j * rp + r]);
      for (size_t b = 0; b < DVB; ++b) acc[r][b] = hn::MulAdd(pb, vv[b], acc[r][b]);
    }
  }
  for (size_t r = 0; r < RB; ++r)
    for (size_t b = 0; b < DVB; ++b) hn::Store(acc[r][b], d, o + r * ldo + b * N);
}

template <size_t RB, class D>
HWY_INLINE void PvRows(D d, float* o, size_t ldo, const float* alpha, bool rescale, const float* pt, size_t rp,
                       const float* vt, int64_t ldv, int32_t hd, int64_t jt) {
  const int32_t N = static_cast<int32_t>(hn::Lanes(d));
  int32_t c = 0;
  for (; c + static_cast<int32_t>(kPvVecs) * N <= hd; c += kPvVecs * N)
    PvBlock<RB, kPvVecs>(d, o + c, ldo, alpha, rescale, pt, rp, vt + c, ldv, jt);
  for (; c < hd; c += N) PvBlock<RB, 1>(d, o + c, ldo, alpha, rescale, pt, rp, vt + c, ldv, jt);
}

// All R rows; head_dim is a multiple of the lanes of d.
template <class D>
HWY_INLINE void Pv(D d, float* o, size_t ldo, int64_t rows, const float* alpha, bool rescale, const float* pt,
                   size_t rp, const float* vt, int64_t ldv, int32_t hd, int64_t jt) {
  int64_t r = 0;
  for (; r + static_cast<int64_t>(kPvRows) <= rows; r += kPvRows)
    PvRows<kPvRows>(d, o + r * ldo, ldo, alpha + r, rescale, pt + r, rp, vt, ldv, hd, jt);
  for (; r < rows; ++r) PvRows<1>(d, o + r * ldo, ldo, alpha + r, rescale, pt + r, rp, vt, ldv, hd, jt);
}

// Causal mask of a tile that crosses the diagonal: key j0+j is hidden from rows whose last key is lower.
template <class D>
HWY_INLINE void MaskTile(D d, float* st, size_t rp, size_t nrv, int64_t j0, int64_t jt, const float* lim) {
  const size_t N = hn::Lanes(d);
  const auto neg_inf = hn::Set(d, -std::numeric_limits<float>::infinity());
  for (int64_t j = 0; j < jt; ++j) {
    const auto jf = hn::Set(d, static_cast<float>(j0 + j));
    for (size_t rv = 0; rv < nrv; ++rv) {
      float* p = st + j * rp + rv * N;
      hn::Store(hn::IfThenElse(hn::Gt(jf, hn::Load(d, lim + rv * N)), neg_inf, hn::Load(d, p)), d, p);
    }
  }
}

// Online softmax step over a tile of scores (turned into probabilities in place). A row's running max m
// is raised only when the tile's max exceeds it by more than `slack`; alpha = exp(m_old - m_new) then
// rescales that row's l here and its O in Pv. Returns whether any row was raised; counts raises of a
// finite (seeded or earlier) max in `rescales`.
template <class D>
HWY_INLINE bool SoftmaxTile(D d, float* st, size_t rp, size_t nrv, int64_t jt, float* m, float* l, float* alpha,
                            float slack, int64_t& rescales) {
  using V = hn::Vec<D>;
  const size_t N = hn::Lanes(d);
  const V neg_inf = hn::Set(d, -std::numeric_limits<float>::infinity());
  const V vslack = hn::Set(d, slack);
  const V one = hn::Set(d, 1.f);
  bool any = false;
  for (size_t rv = 0; rv < nrv; ++rv) {
    float* col = st + rv * N;
    V mt = neg_inf;
    for (int64_t j = 0; j < jt; ++j) mt = hn::Max(mt, hn::Load(d, col + j * rp));
    const V m_old = hn::Load(d, m + rv * N);
    const auto raise = hn::Gt(mt, hn::Add(m_old, vslack));
    V m_new = m_old;
    V a = one;
    if (!hn::AllFalse(d, raise)) {
      any = true;
      rescales += static_cast<int64_t>(hn::CountTrue(d, hn::And(raise, hn::Gt(m_old, neg_inf))));
      m_new = hn::IfThenElse(raise, mt, m_old);
      a = hn::IfThenElse(raise, hn::Exp(d, hn::Sub(m_old, m_new)), one);
      hn::Store(m_new, d, m + rv * N);
    }
    hn::Store(a, d, alpha + rv * N);
    // Rows with every key masked so far keep m = -inf: subtract 0 instead (their p are all 0).
    const V m_sub = hn::IfThenZeroElse(hn::Eq(m_new, neg_inf), m_new);
    V sum0 = hn::Zero(d), sum1 = hn::Zero(d);
    int64_t j = 0;
    for (; j + 2 <= jt; j += 2) {
      const V p0 = hn::Exp(d, hn::Sub(hn::Load(d, col + j * rp), m_sub));
      const V p1 = hn::Exp(d, hn::Sub(hn::Load(d, col + (j + 1) * rp), m_sub));
      hn::Store(p0, d, col + j * rp);
      hn::Store(p1, d, col + (j + 1) * rp);
      sum0 = hn::Add(sum0, p0);
      sum1 = hn::Add(sum1, p1);
    }
    for (; j < jt; ++j) {
      const V p = hn::Exp(d, hn::Sub(hn::Load(d, col + j * rp), m_sub));
      hn::Store(p, d, col + j * rp);
      sum0 = hn::Add(sum0, p);
    }
    hn::Store(hn::MulAdd(hn::Load(d, l + rv * N), a, hn::Add(sum0, sum1)), d, l + rv * N);
  }
  return any;
}

// Per-thread scratch, grown as needed and reused across calls (pool threads persist).
struct Scratch {
  hwy::AlignedFreeUniquePtr<float[]> buf;
  size_t size = 0;
  float* get(size_t n) {
    if (n > size) {
      buf = hwy::AllocateAligned<float>(n);
      size = n;
    }
    return buf.get();
  }
};

// dq: rows in lanes (scores, softmax); dv: head dims in lanes (PV; head_dim is a multiple of its lanes).
template <class DQ, class DV>
void RunItemT(DQ dq, DV dv, const detail::AttnItem& it, AttentionIoStats& st) {
  const hn::ScalableTag<float> dl;  // row loaders: full width
  const AttentionShape& s = *it.shape;
  const size_t N = hn::Lanes(dq);
  const int32_t hd = s.head_dim;
  const int32_t group = s.n_head / s.n_head_kv;
  const int64_t R = it.q_count * group;
  const size_t nrv = (static_cast<size_t>(R) + N - 1) / N;
  const size_t rp = nrv * N;
  const size_t ldo = static_cast<size_t>(hd);
  const int64_t T = it.kv_tile;
  const int64_t ldb = (hd + 15) & ~int64_t{15};

  // Scratch, each part 64-byte aligned: Qt [hd][rp], St [T][rp], m l alpha lim [rp], K and V tiles
  // [T][ldb], O [R][ldo].
  static thread_local Scratch scratch;
  auto up = [](size_t n) { return (n + 15) & ~size_t{15}; };
  const size_t sizes[] = {up(hd * rp), up(T * rp), up(rp), up(rp), up(rp), up(rp), up(T * ldb), up(T * ldb),
                          up(R * ldo)};
  size_t need = 0;
  for (size_t x : sizes) need += x;
  float* parts[9];
  parts[0] = scratch.get(need);
  for (int i = 1; i < 9; ++i) parts[i] = parts[i - 1] + sizes[i - 1];
  float *qt = parts[0], *stile = parts[1], *m = parts[2], *l = parts[3], *alpha = parts[4], *lim = parts[5],
        *kbuf = parts[6], *vbuf = parts[7], *o = parts[8];

  constexpr float kInf = std::numeric_limits<float>::infinity();
  // Qt, row limits; padded rows have q = 0 and no limit.
  std::fill(qt, qt + hd * rp, 0.f);
  for (int64_t r = 0; r < R; ++r) {
    const int64_t qi = it.q_begin + r / group;
    const int32_t h = it.kv_head * group + static_cast<int32_t>(r % group);
    const float* qr = it.q + (qi * s.n_head + h) * hd;
    for (int32_t c = 0; c < hd; ++c) qt[c * rp + r] = qr[c] * s.scale;
    lim[r] = s.causal ? static_cast<float>(it.q_pos0 + qi) : kInf;
  }
  for (size_t r = R; r < rp; ++r) lim[r] = kInf;
  st.q_bytes += R * hd * 4;
  std::fill(o, o + R * ldo, 0.f);
  std::fill(l, l + rp, 0.f);
  std::fill(m, m + rp, -kInf);

  // Shared max estimate: each row's scores against key 0 and against its own last key (real scores, so
  // never above the true max: nothing that matters underflows).
  if (it.seed_max && it.n_kv > 0) {
    int64_t ld;
    const float* k0 = LoadKvTile(dl, *it.k, it.kv_head, 0, 1, hd, kbuf, ld, st.k_bytes);
    for (int64_t qi = it.q_begin; qi < it.q_begin + it.q_count; ++qi) {
      const int64_t last = s.causal ? it.q_pos0 + qi : it.n_kv - 1;
      const float* kl = LoadKvTile(dl, *it.k, it.kv_head, last, 1, hd, vbuf, ld, st.k_bytes);
      for (int32_t g = 0; g < group; ++g) {
        const int64_t r = (qi - it.q_begin) * group + g;
        float s0 = 0, s1 = 0;
        for (int32_t c = 0; c < hd; ++c) {
          s0 += qt[c * rp + r] * k0[c];
          s1 += qt[c * rp + r] * kl[c];
        }
        m[r] = std::max(s0, s1);
      }
    }
  }

  int64_t j_end = it.kv_end;
  if (s.causal) j_end = std::min(j_end, it.q_pos0 + it.q_begin + it.q_count);  // the last row's last key + 1
  const int64_t min_lim = s.causal ? it.q_pos0 + it.q_begin : std::numeric_limits<int64_t>::max();
  for (int64_t j0 = it.kv_begin; j0 < j_end; j0 += T) {
    const int64_t jt = std::min(T, j_end - j0);
    if (j0 + jt < j_end) {  // the next tile streams in while this one is computed
      const int64_t jn = std::min(T, j_end - j0 - jt);
      PrefetchKvTile(*it.k, it.kv_head, j0 + jt, jn, hd);
      PrefetchKvTile(*it.v, it.kv_head, j0 + jt, jn, hd);
    }
    int64_t ldk, ldv;
    const float* kt = LoadKvTile(dl, *it.k, it.kv_head, j0, jt, hd, kbuf, ldk, st.k_bytes);
    Scores(dq, qt, rp, nrv, kt, ldk, hd, jt, stile);
    if (j0 + jt - 1 > min_lim) MaskTile(dq, stile, rp, nrv, j0, jt, lim);
    const bool rescale = SoftmaxTile(dq, stile, rp, nrv, jt, m, l, alpha, it.max_slack, st.rescales);
    const float* vt = LoadKvTile(dl, *it.v, it.kv_head, j0, jt, hd, vbuf, ldv, st.v_bytes);
    Pv(dv, o, ldo, R, alpha, rescale, stile, rp, vt, ldv, hd, jt);
    ++st.kv_tiles;
  }

  if (it.out) {
    for (int64_t r = 0; r < R; ++r) {
      const int64_t qi = it.q_begin + r / group;
      const int32_t h = it.kv_head * group + static_cast<int32_t>(r % group);
      float* dst = it.out + (qi * s.n_head + h) * hd;
      const float inv = l[r] > 0 ? 1.f / l[r] : 0.f;
      for (int32_t c = 0; c < hd; ++c) dst[c] = o[r * ldo + c] * inv;
    }
    st.o_bytes += R * hd * 4;
  } else {
    for (int64_t r = 0; r < R; ++r) {
      float* p = it.partial + r * (hd + 2);
      std::memcpy(p, o + r * ldo, hd * sizeof(float));
      p[hd] = m[r];
      p[hd + 1] = l[r];
    }
    st.partial_bytes += R * (hd + 2) * 4;
  }
  ++st.items;
}

template <class DQ>
void RunItemQ(DQ dq, const detail::AttnItem& it, AttentionIoStats& st) {
  const hn::ScalableTag<float> d;
  if (it.shape->head_dim % hn::Lanes(d) == 0) return RunItemT(dq, d, it, st);
  RunItemT(dq, hn::CappedTag<float, 1>(), it, st);
}

// Rows in lanes: use vectors no wider than the item's rows (decode has one row per query head).
void RunItem(const detail::AttnItem& it, AttentionIoStats& st) {
  const hn::ScalableTag<float> d;
  const int64_t rows = it.q_count * (it.shape->n_head / it.shape->n_head_kv);
  if constexpr (hn::MaxLanes(d) > 8) {
    if (rows <= 8 && hn::Lanes(d) > 8) return RunItemQ(hn::CappedTag<float, 8>(), it, st);
  }
  if constexpr (hn::MaxLanes(d) > 4) {
    if (rows <= 4 && hn::Lanes(d) > 4) return RunItemQ(hn::CappedTag<float, 4>(), it, st);
  }
  RunItemQ(d, it, st);
}

const char* TargetName() { return hwy::TargetName(HWY_TARGET); }

}  // namespace strata::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace strata::kernels::detail {

HWY_EXPORT(RunItem);
HWY_EXPORT(TargetName);

void run_attention_item(const AttnItem& item, AttentionIoStats& stats) {
  HWY_DYNAMIC_DISPATCH(RunItem)(item, stats);
}

const char* attention_target_name() { return HWY_DYNAMIC_DISPATCH(TargetName)(); }

}  // namespace strata::kernels::detail
#endif  // HWY_ONCE
