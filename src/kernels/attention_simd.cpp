// One attention work item per call, compiled for every x86 instruction set Highway targets and dispatched
// at run time. Layout (per item): the item's R query rows (q positions × the group's query heads) sit in
// the vector lanes. Qt[c][r] = scale·q[r][c] (transposed once per item), scores St[j][r] and the output
// accumulator Ot[c][r] keep rows in lanes too, so
//   scores:  St[j][:] += K[j][c] (broadcast) · Qt[c][:]     — no horizontal sums,
//   softmax: per-row max/sum are lane-wise max/add over j    — no horizontal ops,
//   PV:      Ot[c][:] += V[j][c] (broadcast) · Pt[j][:]
// and K/V are only ever broadcast from a tile dequantized once per item and tile (one row loader per
// format, attention_kv_rows-inl.h). Register blocks: KB keys (or dims) × RV row vectors of accumulators.
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
  for (int32_t c = 0; c < hd; ++c) {
    V qv[RV];
    for (size_t r = 0; r < RV; ++r) qv[r] = hn::Load(d, qt + c * rp + r * N);
    for (size_t k = 0; k < KB; ++k) {
      const V kb = hn::Set(d, kt[k * ldk + c]);
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

// Ot[c block][rv block] = alpha·Ot + sum_j V[j][c] · Pt[j][rv block] for DB dims.
template <size_t DB, size_t RV, class D>
HWY_INLINE void PvBlock(D d, float* HWY_RESTRICT ot, size_t rp, const float* HWY_RESTRICT alpha, bool rescale,
                        const float* HWY_RESTRICT pt, const float* HWY_RESTRICT vt, int64_t ldv, int64_t jt) {
  using V = hn::Vec<D>;
  const size_t N = hn::Lanes(d);
  V acc[DB][RV];
  for (size_t c = 0; c < DB; ++c)
    for (size_t r = 0; r < RV; ++r) acc[c][r] = hn::Load(d, ot + c * rp + r * N);
  if (rescale)
    for (size_t r = 0; r < RV; ++r) {
      const V a = hn::Load(d, alpha + r * N);
      for (size_t c = 0; c < DB; ++c) acc[c][r] = hn::Mul(acc[c][r], a);
    }
  for (int64_t j = 0; j < jt; ++j) {
    V pv[RV];
    for (size_t r = 0; r < RV; ++r) pv[r] = hn::Load(d, pt + j * rp + r * N);
    for (size_t c = 0; c < DB; ++c) {
      const V vb = hn::Set(d, vt[j * ldv + c]);
      for (size_t r = 0; r < RV; ++r) acc[c][r] = hn::MulAdd(vb, pv[r], acc[c][r]);
    }
  }
  for (size_t c = 0; c < DB; ++c)
    for (size_t r = 0; r < RV; ++r) hn::Store(acc[c][r], d, ot + c * rp + r * N);
}

template <size_t RV, class D>
HWY_INLINE void PvRows(D d, float* ot, size_t rp, const float* alpha, bool rescale, const float* pt,
                       const float* vt, int64_t ldv, int32_t hd, int64_t jt) {
  constexpr size_t DB = BlockWidth(RV);
  int32_t c = 0;
  for (; c + static_cast<int32_t>(DB) <= hd; c += DB)
    PvBlock<DB, RV>(d, ot + c * rp, rp, alpha, rescale, pt, vt + c, ldv, jt);
  for (; c < hd; ++c) PvBlock<1, RV>(d, ot + c * rp, rp, alpha, rescale, pt, vt + c, ldv, jt);
}

template <class D>
HWY_INLINE void Pv(D d, float* ot, size_t rp, size_t nrv, const float* alpha, bool rescale, const float* pt,
                   const float* vt, int64_t ldv, int32_t hd, int64_t jt) {
  const size_t N = hn::Lanes(d);
  size_t rv = 0;
  for (; rv + kMaxRV <= nrv; rv += kMaxRV)
    PvRows<kMaxRV>(d, ot + rv * N, rp, alpha + rv * N, rescale, pt + rv * N, vt, ldv, hd, jt);
  switch (nrv - rv) {
    case 0: break;
    case 1: PvRows<1>(d, ot + rv * N, rp, alpha + rv * N, rescale, pt + rv * N, vt, ldv, hd, jt); break;
    case 2: PvRows<2>(d, ot + rv * N, rp, alpha + rv * N, rescale, pt + rv * N, vt, ldv, hd, jt); break;
    default:
      if constexpr (kMaxRV > 3) PvRows<3>(d, ot + rv * N, rp, alpha + rv * N, rescale, pt + rv * N, vt, ldv, hd, jt);
      break;
  }
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

template <class D>
void RunItemT(D d, const detail::AttnItem& it, AttentionIoStats& st) {
  const AttentionShape& s = *it.shape;
  const size_t N = hn::Lanes(d);
  const int32_t hd = s.head_dim;
  const int32_t group = s.n_head / s.n_head_kv;
  const int64_t R = it.q_count * group;
  const size_t nrv = (static_cast<size_t>(R) + N - 1) / N;
  const size_t rp = nrv * N;
  const int64_t T = it.kv_tile;
  const int64_t ldb = (hd + 15) & ~int64_t{15};

  static thread_local Scratch scratch;
  const size_t need = 2 * hd * rp + static_cast<size_t>(T) * rp + 4 * rp + 2 * static_cast<size_t>(T * ldb);
  float* qt = scratch.get(need);
  float* ot = qt + hd * rp;
  float* stile = ot + hd * rp;
  float* m = stile + T * rp;
  float* l = m + rp;
  float* alpha = l + rp;
  float* lim = alpha + rp;
  float* kbuf = lim + rp;
  float* vbuf = kbuf + T * ldb;

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
  std::fill(ot, ot + hd * rp, 0.f);
  std::fill(l, l + rp, 0.f);
  std::fill(m, m + rp, -kInf);

  // Shared max estimate: each row's scores against key 0 and against its own last key (real scores, so
  // never above the true max: nothing that matters underflows).
  if (it.seed_max && it.n_kv > 0) {
    int64_t ld;
    const float* k0 = LoadKvTile(d, *it.k, it.kv_head, 0, 1, hd, kbuf, ld, st.k_bytes);
    for (int64_t qi = it.q_begin; qi < it.q_begin + it.q_count; ++qi) {
      const int64_t last = s.causal ? it.q_pos0 + qi : it.n_kv - 1;
      const float* kl = LoadKvTile(d, *it.k, it.kv_head, last, 1, hd, vbuf, ld, st.k_bytes);
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
    int64_t ldk, ldv;
    const float* kt = LoadKvTile(d, *it.k, it.kv_head, j0, jt, hd, kbuf, ldk, st.k_bytes);
    Scores(d, qt, rp, nrv, kt, ldk, hd, jt, stile);
    if (j0 + jt - 1 > min_lim) MaskTile(d, stile, rp, nrv, j0, jt, lim);
    const bool rescale = SoftmaxTile(d, stile, rp, nrv, jt, m, l, alpha, it.max_slack, st.rescales);
    const float* vt = LoadKvTile(d, *it.v, it.kv_head, j0, jt, hd, vbuf, ldv, st.v_bytes);
    Pv(d, ot, rp, nrv, alpha, rescale, stile, vt, ldv, hd, jt);
    ++st.kv_tiles;
  }

  if (it.out) {
    for (int64_t r = 0; r < R; ++r) {
      const int64_t qi = it.q_begin + r / group;
      const int32_t h = it.kv_head * group + static_cast<int32_t>(r % group);
      float* o = it.out + (qi * s.n_head + h) * hd;
      const float inv = l[r] > 0 ? 1.f / l[r] : 0.f;
      for (int32_t c = 0; c < hd; ++c) o[c] = ot[c * rp + r] * inv;
    }
    st.o_bytes += R * hd * 4;
  } else {
    for (int64_t r = 0; r < R; ++r) {
      float* p = it.partial + r * (hd + 2);
      for (int32_t c = 0; c < hd; ++c) p[c] = ot[c * rp + r];
      p[hd] = m[r];
      p[hd + 1] = l[r];
    }
    st.partial_bytes += R * (hd + 2) * 4;
  }
  ++st.items;
}

// Rows in lanes: use vectors no wider than the item's rows (decode has one row per query head).
void RunItem(const detail::AttnItem& it, AttentionIoStats& st) {
  const hn::ScalableTag<float> d;
  const int64_t rows = it.q_count * (it.shape->n_head / it.shape->n_head_kv);
  if constexpr (hn::MaxLanes(d) > 8) {
    if (rows <= 8 && hn::Lanes(d) > 8) return RunItemT(hn::CappedTag<float, 8>(), it, st);
  }
  if constexpr (hn::MaxLanes(d) > 4) {
    if (rows <= 4 && hn::Lanes(d) > 4) return RunItemT(hn::CappedTag<float, 4>(), it, st);
  }
  RunItemT(d, it, st);
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
