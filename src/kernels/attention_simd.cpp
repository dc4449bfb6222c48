// One attention work item per call, compiled for every x86 instruction set Highway targets and dispatched
// at run time. Per item (KV heads taken tile by tile; per head, R query rows = q positions × its group's
// query heads):
//   scores:  row pairs in lanes (below): one 64-bit broadcast of K[j][c..c+1] multiplies every row; no
//            horizontal sums beyond adding each pair; the online softmax is lane-wise;
//   PV:      O[r][:] += P[j][r] (broadcast) · V[j][:], head dims in lanes, full-width vectors even when the
//            rows are few (decode: 8 rows), O row-major like the output.
// K/V tiles are dequantized once per item and tile by one row loader per format (attention_kv_rows-inl.h),
// the next tile is prefetched, and every K/V tile serves all query heads of the group. Register blocks:
// KB keys × RV row-pair vectors (scores), RB rows × DVB dim vectors (PV).
// Decoding with q8_0 / q4_0 K on AVX-512 VNNI (AVX3_DL), the scores are int8 dot products instead
// (attention_i8-inl.h; AttentionConfig::int8_scores): the same S2 layout, so softmax and PV are unchanged.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "kernels/simd_config.h"  // first: the target list (AVX3_DL for the int8 scores)
#include "kernels/attention_amx.h"
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
#include "kernels/attention_i8-inl.h"

HWY_BEFORE_NAMESPACE();
namespace strata::kernels::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

#if HWY_TARGET != HWY_SCALAR  // the vector kernels need at least two lanes; HWY_SCALAR: see below

// ---- Scores in "row pairs" layout. Each 64-bit lane pair holds one query row and two adjacent head dims:
// Q2[c/2][2r + c%2] = scale·q[r][c]. A key's dims (c, c+1) are adjacent in its row, so one 64-bit broadcast
// K[j][c..c+1] multiplies every row at once, and a vector holds Lanes/2 rows (8 decode rows fill AVX-512).
// Adding the two lanes of a pair gives the score; two keys' sums are interleaved into one vector:
// S2[j/2][2r + j%2] = score(row r, key j). The softmax works lane-wise on S2, PV reads P[j][r] from it.

// Accumulator registers a block may use: 12 of 16 with AVX2/SSE4, 24 of 32 with AVX-512.
#if HWY_TARGET <= HWY_AVX3 && HWY_ARCH_X86
constexpr size_t kAccRegs = 24;
constexpr size_t kMaxRV = 3;
#else
constexpr size_t kAccRegs = 12;
constexpr size_t kMaxRV = 2;
#endif
// Keys per block for RV row vectors: an even number, enough independent FMAs to hide their latency.
constexpr size_t KeysPerBlock(size_t rv) { return kAccRegs / rv >= 8 ? 8 : (kAccRegs / rv) & ~size_t{1}; }

template <class D>
HWY_INLINE hn::Vec<D> BroadcastPair(D d, const float* p) {
  const hn::Repartition<double, D> dd;
  double x;
  std::memcpy(&x, p, sizeof(x));
  return hn::BitCast(d, hn::Set(dd, x));
}

// S2 rows for KB keys (KB even, or 1 for the last key of an odd tile: its partner lane gets -inf) and RV
// row vectors: q2 at the block's first row vector (stride rp2 per dim pair), kt at the first key.
template <size_t KB, size_t RV, class D>
HWY_NOINLINE void ScoreBlock(D d, const float* HWY_RESTRICT q2, size_t rp2, const float* HWY_RESTRICT kt,
                             int64_t ldk, int32_t hd, float* HWY_RESTRICT s2) {
  using V = hn::Vec<D>;
  const size_t N = hn::Lanes(d);
  V acc[KB][RV];
  for (size_t k = 0; k < KB; ++k)
    for (size_t r = 0; r < RV; ++r) acc[k][r] = hn::Zero(d);
  const float* kp[KB];
  for (size_t k = 0; k < KB; ++k) kp[k] = kt + k * ldk;
  const int32_t n_pairs = hd / 2;
  int32_t cp = 0;
  for (; cp + 2 <= n_pairs; cp += 2) {  // two dim pairs per iteration: fewer pointer updates
    V qa[RV], qb[RV];
    for (size_t r = 0; r < RV; ++r) {
      qa[r] = hn::Load(d, q2 + cp * rp2 + r * N);
      qb[r] = hn::Load(d, q2 + (cp + 1) * rp2 + r * N);
    }
    for (size_t k = 0; k < KB; ++k) {
      const V ka = BroadcastPair(d, kp[k] + 2 * cp);
      const V kb = BroadcastPair(d, kp[k] + 2 * cp + 2);
      for (size_t r = 0; r < RV; ++r) acc[k][r] = hn::MulAdd(kb, qb[r], hn::MulAdd(ka, qa[r], acc[k][r]));
    }
  }
  for (; cp < n_pairs; ++cp) {
    V qa[RV];
    for (size_t r = 0; r < RV; ++r) qa[r] = hn::Load(d, q2 + cp * rp2 + r * N);
    for (size_t k = 0; k < KB; ++k) {
      const V ka = BroadcastPair(d, kp[k] + 2 * cp);
      for (size_t r = 0; r < RV; ++r) acc[k][r] = hn::MulAdd(ka, qa[r], acc[k][r]);
    }
  }
  // Pair sums; keys 2i and 2i+1 interleaved into one vector (attention_i8-inl.h).
  for (size_t r = 0; r < RV; ++r) StoreKeyPairSums<KB>(d, &acc[0][r], RV, s2 + r * N, rp2);
}

template <size_t RV, class D>
HWY_INLINE void ScoreRows(D d, const float* q2, size_t rp2, const float* kt, int64_t ldk, int32_t hd, int64_t jt,
                          float* s2) {
  constexpr size_t KB = KeysPerBlock(RV);
  int64_t j = 0;
  for (; j + static_cast<int64_t>(KB) <= jt; j += KB)
    ScoreBlock<KB, RV>(d, q2, rp2, kt + j * ldk, ldk, hd, s2 + (j / 2) * rp2);
  for (; j + 2 <= jt; j += 2) ScoreBlock<2, RV>(d, q2, rp2, kt + j * ldk, ldk, hd, s2 + (j / 2) * rp2);
  if (j < jt) ScoreBlock<1, RV>(d, q2, rp2, kt + j * ldk, ldk, hd, s2 + (j / 2) * rp2);
}

// Scores of all nrv row vectors against jt keys.
template <class D>
HWY_INLINE void Scores(D d, const float* q2, size_t rp2, size_t nrv, const float* kt, int64_t ldk, int32_t hd,
                       int64_t jt, float* s2) {
  const size_t N = hn::Lanes(d);
  size_t rv = 0;
  for (; rv + kMaxRV <= nrv; rv += kMaxRV) ScoreRows<kMaxRV>(d, q2 + rv * N, rp2, kt, ldk, hd, jt, s2 + rv * N);
  switch (nrv - rv) {
    case 0: break;
    case 1: ScoreRows<1>(d, q2 + rv * N, rp2, kt, ldk, hd, jt, s2 + rv * N); break;
    default:
      if constexpr (kMaxRV > 2) ScoreRows<2>(d, q2 + rv * N, rp2, kt, ldk, hd, jt, s2 + rv * N);
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

// O[r block][c block] = alpha[r]·O + sum_j P[j][r] · V[j][c block]. o at the block's first row and dim;
// a2 and p2 (pair layout: P[j][r] = p2[(j/2)·rp2 + 2r + j%2]) at its first row; vt at its first dim.
template <size_t RB, size_t DVB, class D>
HWY_NOINLINE void PvBlock(D d, float* HWY_RESTRICT o, size_t ldo, const float* HWY_RESTRICT a2, bool rescale,
                          const float* HWY_RESTRICT p2, size_t rp2, const float* HWY_RESTRICT vt, int64_t ldv,
                          int64_t jt) {
  using V = hn::Vec<D>;
  const size_t N = hn::Lanes(d);
  V acc[RB][DVB];
  for (size_t r = 0; r < RB; ++r) {
    const V a = hn::Set(d, rescale ? a2[2 * r] : 1.f);
    for (size_t b = 0; b < DVB; ++b) acc[r][b] = hn::Mul(hn::Load(d, o + r * ldo + b * N), a);
  }
  int64_t j = 0;
  for (; j + 2 <= jt; j += 2) {
    const float* pp = p2 + (j / 2) * rp2;
    V va[DVB], vb[DVB];
    for (size_t b = 0; b < DVB; ++b) {
      va[b] = hn::LoadU(d, vt + j * ldv + b * N);
      vb[b] = hn::LoadU(d, vt + (j + 1) * ldv + b * N);
    }
    for (size_t r = 0; r < RB; ++r) {
      const V pa = hn::Set(d, pp[2 * r]);
      const V pb = hn::Set(d, pp[2 * r + 1]);
      for (size_t b = 0; b < DVB; ++b) acc[r][b] = hn::MulAdd(pb, vb[b], hn::MulAdd(pa, va[b], acc[r][b]));
    }
  }
  if (j < jt) {
    const float* pp = p2 + (j / 2) * rp2;
    for (size_t b = 0; b < DVB; ++b) {
      const V va = hn::LoadU(d, vt + j * ldv + b * N);
      for (size_t r = 0; r < RB; ++r) acc[r][b] = hn::MulAdd(hn::Set(d, pp[2 * r]), va, acc[r][b]);
    }
  }
  for (size_t r = 0; r < RB; ++r)
    for (size_t b = 0; b < DVB; ++b) hn::Store(acc[r][b], d, o + r * ldo + b * N);
}

template <size_t RB, class D>
HWY_INLINE void PvRows(D d, float* o, size_t ldo, const float* a2, bool rescale, const float* p2, size_t rp2,
                       const float* vt, int64_t ldv, int32_t hd, int64_t jt) {
  const int32_t N = static_cast<int32_t>(hn::Lanes(d));
  int32_t c = 0;
  for (; c + static_cast<int32_t>(kPvVecs) * N <= hd; c += kPvVecs * N)
    PvBlock<RB, kPvVecs>(d, o + c, ldo, a2, rescale, p2, rp2, vt + c, ldv, jt);
  for (; c < hd; c += N) PvBlock<RB, 1>(d, o + c, ldo, a2, rescale, p2, rp2, vt + c, ldv, jt);
}

// All R rows; head_dim is a multiple of the lanes of d.
template <class D>
HWY_INLINE void Pv(D d, float* o, size_t ldo, int64_t rows, const float* a2, bool rescale, const float* p2,
                   size_t rp2, const float* vt, int64_t ldv, int32_t hd, int64_t jt) {
  int64_t r = 0;
  for (; r + static_cast<int64_t>(kPvRows) <= rows; r += kPvRows)
    PvRows<kPvRows>(d, o + r * ldo, ldo, a2 + 2 * r, rescale, p2 + 2 * r, rp2, vt, ldv, hd, jt);
  for (; r < rows; ++r) PvRows<1>(d, o + r * ldo, ldo, a2 + 2 * r, rescale, p2 + 2 * r, rp2, vt, ldv, hd, jt);
}

// Causal mask of a tile that crosses the diagonal: key j0+j is hidden from rows whose last key is lower.
// lim2 holds each row's last key in both lanes of its pair.
template <class D>
HWY_INLINE void MaskTile(D d, float* s2, size_t rp2, size_t nrv, int64_t j0, int64_t jt, const float* lim2) {
  using V = hn::Vec<D>;
  const size_t N = hn::Lanes(d);
  const V neg_inf = hn::Set(d, -std::numeric_limits<float>::infinity());
  const V odd = hn::OddEven(hn::Set(d, 1.f), hn::Zero(d));  // 0, 1, 0, 1, ...
  for (int64_t jp = 0; jp < (jt + 1) / 2; ++jp) {
    const V jv = hn::Add(hn::Set(d, static_cast<float>(j0 + 2 * jp)), odd);
    for (size_t rv = 0; rv < nrv; ++rv) {
      float* p = s2 + jp * rp2 + rv * N;
      hn::Store(hn::IfThenElse(hn::Gt(jv, hn::Load(d, lim2 + rv * N)), neg_inf, hn::Load(d, p)), d, p);
    }
  }
}

// Online softmax step over a tile of scores (turned into probabilities in place). A row's running max m2
// (both lanes of its pair) is raised only when the tile's max exceeds it by more than `slack`; then
// alpha2 = exp(m_old - m_new) rescales that row's sums l2 here and its O in Pv. l2 keeps one partial sum
// per lane (even and odd keys); the pair is added at the end. Returns whether any row was raised; counts
// raises of a finite (seeded or earlier) max in `rescales`.
template <class D>
HWY_INLINE bool SoftmaxTile(D d, float* s2, size_t rp2, size_t nrv, int64_t jt, float* m2, float* l2,
                            float* alpha2, float slack, int64_t& rescales) {
  using V = hn::Vec<D>;
  const size_t N = hn::Lanes(d);
  const V neg_inf = hn::Set(d, -std::numeric_limits<float>::infinity());
  const V vslack = hn::Set(d, slack);
  const V one = hn::Set(d, 1.f);
  const int64_t np = (jt + 1) / 2;
  bool any = false;
  for (size_t rv = 0; rv < nrv; ++rv) {
    float* col = s2 + rv * N;
    V mt = neg_inf;
    for (int64_t jp = 0; jp < np; ++jp) mt = hn::Max(mt, hn::Load(d, col + jp * rp2));
    mt = hn::Max(mt, hn::Shuffle2301(mt));
    const V m_old = hn::Load(d, m2 + rv * N);
    const auto raise = hn::Gt(mt, hn::Add(m_old, vslack));
    V m_new = m_old;
    V a = one;
    if (!hn::AllFalse(d, raise)) {
      any = true;
      rescales += static_cast<int64_t>(hn::CountTrue(d, hn::And(raise, hn::Gt(m_old, neg_inf)))) / 2;
      m_new = hn::IfThenElse(raise, mt, m_old);
      a = hn::IfThenElse(raise, hn::Exp(d, hn::Sub(m_old, m_new)), one);
      hn::Store(m_new, d, m2 + rv * N);
    }
    hn::Store(a, d, alpha2 + rv * N);
    // Rows with every key masked so far keep m = -inf: subtract 0 instead (their p are all 0).
    const V m_sub = hn::IfThenZeroElse(hn::Eq(m_new, neg_inf), m_new);
    V sum0 = hn::Zero(d), sum1 = hn::Zero(d);
    int64_t jp = 0;
    for (; jp + 2 <= np; jp += 2) {
      const V p0 = hn::Exp(d, hn::Sub(hn::Load(d, col + jp * rp2), m_sub));
      const V p1 = hn::Exp(d, hn::Sub(hn::Load(d, col + (jp + 1) * rp2), m_sub));
      hn::Store(p0, d, col + jp * rp2);
      hn::Store(p1, d, col + (jp + 1) * rp2);
      sum0 = hn::Add(sum0, p0);
      sum1 = hn::Add(sum1, p1);
    }
    for (; jp < np; ++jp) {
      const V p = hn::Exp(d, hn::Sub(hn::Load(d, col + jp * rp2), m_sub));
      hn::Store(p, d, col + jp * rp2);
      sum0 = hn::Add(sum0, p);
    }
    hn::Store(hn::MulAdd(hn::Load(d, l2 + rv * N), a, hn::Add(sum0, sum1)), d, l2 + rv * N);
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

// Digits of the item's int8 scores (0: float32 scores): int8 scores asked for, an AVX-512 VNNI target, K read
// natively as q8_0 or q4_0 rows (whole 32-dim blocks).
HWY_INLINE int UseScoresI8(const detail::AttnItem& it, int32_t hd) {
  if (!kHaveAttnI8 || it.int8_scores == 0 || it.k->decode || hd % 32 != 0) return 0;
  if (it.k->type != DType::Q8_0 && it.k->type != DType::Q4_0) return 0;
  return it.int8_scores;
}

// dq: row pairs in lanes (scores, softmax); dv: head dims in lanes (PV; head_dim is a multiple of its lanes).
// The item's KV heads are interleaved per tile: with a token-major cache ([pos][head][dim]) a tile of all
// heads is one contiguous range of memory.
template <class DQ, class DV>
void RunItemT(DQ dq, DV dv, const detail::AttnItem& it, AttentionIoStats& st) {
  const hn::ScalableTag<float> dl;  // row loaders: full width
  const AttentionShape& s = *it.shape;
  const size_t N = hn::Lanes(dq);
  const int32_t hd = s.head_dim;
  const int32_t group = s.n_head / s.n_head_kv;
  const int32_t nh = it.kv_heads;
  const int64_t R = it.q_count * group;
  const size_t nrv = (2 * static_cast<size_t>(R) + N - 1) / N;  // row-pair vectors
  const size_t rp2 = nrv * N;                                    // floats per dim pair / key pair
  const size_t ldo = static_cast<size_t>(hd);
  const int64_t T = it.kv_tile;
  const int64_t ldb = (hd + 15) & ~int64_t{15};

  // Scratch, each part 64-byte aligned. Per head: Q2 [hd/2][rp2], m2 l2 [rp2], O [R][ldo]. Shared: S2
  // [T/2][rp2], alpha2 lim2 [rp2], K and V tiles [T][ldb].
  static thread_local Scratch scratch;
  auto up = [](size_t n) { return (n + 15) & ~size_t{15}; };
  const size_t q2_size = up(hd / 2 * rp2), o_size = up(R * ldo), v_size = up(rp2);
  const size_t sizes[] = {nh * q2_size, nh * v_size, nh * v_size, nh * o_size, up((T + 1) / 2 * rp2),
                          v_size, v_size, up(T * ldb), up(T * ldb)};
  size_t need = 0;
  for (size_t x : sizes) need += x;
  float* parts[9];
  parts[0] = scratch.get(need);
  for (int i = 1; i < 9; ++i) parts[i] = parts[i - 1] + sizes[i - 1];
  float *q2_all = parts[0], *m2_all = parts[1], *l2_all = parts[2], *o_all = parts[3], *s2 = parts[4],
        *alpha2 = parts[5], *lim2 = parts[6], *kbuf = parts[7], *vbuf = parts[8];

  constexpr float kInf = std::numeric_limits<float>::infinity();
  // Q2 and row limits; padded rows have q = 0 and no limit.
  std::fill(q2_all, q2_all + nh * q2_size, 0.f);
  std::fill(lim2, lim2 + rp2, kInf);
  for (int64_t r = 0; r < R; ++r) {
    const int64_t qi = it.q_begin + r / group;
    lim2[2 * r] = lim2[2 * r + 1] = s.causal ? static_cast<float>(it.q_pos0 + qi) : kInf;
    for (int32_t x = 0; x < nh; ++x) {
      const int32_t h = (it.kv_head + x) * group + static_cast<int32_t>(r % group);
      const float* qr = it.q + (qi * s.n_head + h) * hd;
      float* dst = q2_all + x * q2_size + 2 * r;
      for (int32_t c = 0; c < hd; c += 2, dst += rp2) {
        dst[0] = qr[c] * s.scale;
        dst[1] = qr[c + 1] * s.scale;
      }
    }
  }
  st.q_bytes += nh * R * hd * 4;
  std::fill(o_all, o_all + nh * o_size, 0.f);
  std::fill(l2_all, l2_all + nh * v_size, 0.f);

  // Int8 scores (attention_i8-inl.h): the quantized query rows of every head, the K tile as bytes.
  const int i8 = UseScoresI8(it, hd);
  static thread_local Scratch scratch_i8;
  uint8_t* ku8 = nullptr;
  float* kd = nullptr;
  const size_t qv_size = up(hd / 8 * rp2), qb_size = up(hd / 32 * rp2);
  // Per head x: qv, qv_lo [qv_size], corr, corr_lo, qd [qb_size].
  float* q8_base = nullptr;
  auto head_q8 = [&](int32_t x) {
    float* h = q8_base + x * (2 * qv_size + 3 * qb_size);
    QueryI8 q{reinterpret_cast<int32_t*>(h), reinterpret_cast<int32_t*>(h + 2 * qv_size), h + 2 * qv_size + 2 * qb_size};
    if (i8 == 2) {
      q.qv_lo = reinterpret_cast<int32_t*>(h + qv_size);
      q.corr_lo = reinterpret_cast<int32_t*>(h + 2 * qv_size + qb_size);
    }
    return q;
  };
  if (i8) {
    const size_t q8_size = nh * (2 * qv_size + 3 * qb_size), ku8_size = up(T * hd / 4);
    const size_t i8_need = q8_size + ku8_size + up(T * hd / 32);
    q8_base = scratch_i8.get(i8_need);
    std::fill(q8_base, q8_base + q8_size, 0.f);  // padded rows: q = 0, no correction, scale 0
    ku8 = reinterpret_cast<uint8_t*>(q8_base + q8_size);
    kd = q8_base + q8_size + ku8_size;
    for (int64_t r = 0; r < R; ++r) {
      const int64_t qi = it.q_begin + r / group;
      for (int32_t x = 0; x < nh; ++x) {
        const int32_t h = (it.kv_head + x) * group + static_cast<int32_t>(r % group);
        const QueryI8 qx = head_q8(x);
        QuantizeQueryRowI8(it.q + (qi * s.n_head + h) * hd, s.scale, hd, rp2, r, qx);
      }
    }
  }
  std::fill(m2_all, m2_all + nh * v_size, -kInf);

  // Shared max estimate: each row's scores against key 0 and against its own last key (real scores, so
  // never above the true max: nothing that matters underflows). The probe keys go through the same
  // loader and score kernel as a tile: key 0, then each query position's last key.
  if (it.seed_max && it.n_kv > 0 && it.q_count + 1 <= T) {
    for (int32_t x = 0; x < nh; ++x) {
      int64_t ld;
      const float* row0 = LoadKvTile(dl, *it.k, it.kv_head + x, 0, 1, hd, kbuf, ld, st.k_bytes);
      if (row0 != kbuf) std::memcpy(kbuf, row0, hd * 4);  // f32 rows come straight from the cache
      for (int64_t i = 0; i < it.q_count; ++i) {
        const int64_t last = s.causal ? it.q_pos0 + it.q_begin + i : it.n_kv - 1;
        const float* row = LoadKvTile(dl, *it.k, it.kv_head + x, last, 1, hd, kbuf + (i + 1) * ldb, ld, st.k_bytes);
        if (row != kbuf + (i + 1) * ldb) std::memcpy(kbuf + (i + 1) * ldb, row, hd * 4);
      }
      Scores(dq, q2_all + x * q2_size, rp2, nrv, kbuf, ldb, hd, it.q_count + 1, s2);
      float* m2 = m2_all + x * v_size;
      for (int64_t r = 0; r < R; ++r) {
        const int64_t own = r / group + 1;  // probe index of the row's last key
        const float s0 = s2[2 * r], s1 = s2[(own / 2) * rp2 + 2 * r + (own & 1)];
        m2[2 * r] = m2[2 * r + 1] = std::max(s0, s1);
      }
    }
  }

  int64_t j_end = it.kv_end;
  if (s.causal) j_end = std::min(j_end, it.q_pos0 + it.q_begin + it.q_count);  // the last row's last key + 1
  // Prefetch distance: while tile t is converted, tile t + kPrefetchTiles is asked for (2 measured no worse
  // than 1 or 3 here; 0 was slower). Tiles 1 .. kPrefetchTiles-1 are asked for before the loop.
  constexpr int64_t kPrefetchTiles = 2;
  if (kPrefetchTiles > 1 && j_end > it.kv_begin) {
    const int64_t p0 = std::min(j_end, it.kv_begin + T), p1 = std::min(j_end, it.kv_begin + kPrefetchTiles * T);
    for (int32_t x = 0; x < nh; ++x)
      for (const KvView* kv : {it.k, it.v}) PrefetchKvRows(*kv, it.kv_head + x, p0, p1, hd);
  }
  const int64_t min_lim = s.causal ? it.q_pos0 + it.q_begin : std::numeric_limits<int64_t>::max();
  for (int64_t j0 = it.kv_begin; j0 < j_end; j0 += T) {
    const int64_t jt = std::min(T, j_end - j0);
    // Tile t + kPrefetchTiles starts skip rows after this tile's end.
    const int64_t skip = (kPrefetchTiles - 1) * T;
    const int64_t ahead = std::clamp<int64_t>(j_end - j0 - jt - skip, 0, T);
    for (int32_t x = 0; x < nh; ++x) {
      int64_t ldk, ldv;
      if (i8) {
        if constexpr (kHaveAttnI8) {
          LoadKTileI8(*it.k, it.kv_head + x, j0, jt, hd, ku8, kd, st.k_bytes, ahead, skip);
          ScoresI8(dq, head_q8(x), rp2, nrv, ku8, kd, hd, jt, s2);
        }
      } else {
        const float* kt = LoadKvTile(dl, *it.k, it.kv_head + x, j0, jt, hd, kbuf, ldk, st.k_bytes, ahead, skip);
        Scores(dq, q2_all + x * q2_size, rp2, nrv, kt, ldk, hd, jt, s2);
      }
      if (j0 + jt - 1 > min_lim) MaskTile(dq, s2, rp2, nrv, j0, jt, lim2);
      const bool rescale = SoftmaxTile(dq, s2, rp2, nrv, jt, m2_all + x * v_size, l2_all + x * v_size, alpha2,
                                       it.max_slack, st.rescales);
      const float* vt = LoadKvTile(dl, *it.v, it.kv_head + x, j0, jt, hd, vbuf, ldv, st.v_bytes, ahead, skip);
      Pv(dv, o_all + x * o_size, ldo, R, alpha2, rescale, s2, rp2, vt, ldv, hd, jt);
      ++st.kv_tiles;
    }
  }

  for (int32_t x = 0; x < nh; ++x) {
    const float* o = o_all + x * o_size;
    const float* m2 = m2_all + x * v_size;
    const float* l2 = l2_all + x * v_size;
    for (int64_t r = 0; r < R; ++r) {
      const float l = l2[2 * r] + l2[2 * r + 1];
      if (it.out) {
        const int64_t qi = it.q_begin + r / group;
        const int32_t h = (it.kv_head + x) * group + static_cast<int32_t>(r % group);
        float* dst = it.out + (qi * s.n_head + h) * hd;
        const float inv = l > 0 ? 1.f / l : 0.f;
        for (int32_t c = 0; c < hd; ++c) dst[c] = o[r * ldo + c] * inv;
      } else {
        float* p = it.partial + (x * R + r) * (hd + 2);
        std::memcpy(p, o + r * ldo, hd * sizeof(float));
        p[hd] = m2[2 * r];
        p[hd + 1] = l;
      }
    }
  }
  (it.out ? st.o_bytes : st.partial_bytes) += nh * R * (hd + (it.out ? 0 : 2)) * 4;
  ++st.items;
}

template <class DQ>
void RunItemQ(DQ dq, const detail::AttnItem& it, AttentionIoStats& st) {
  const hn::ScalableTag<float> d;
  if (it.shape->head_dim % hn::Lanes(d) == 0) return RunItemT(dq, d, it, st);
  RunItemT(dq, hn::CappedTag<float, 1>(), it, st);
}

// Row pairs in lanes: use vectors no wider than the item's rows need (decode: one row per query head).
void RunItem(const detail::AttnItem& it, AttentionIoStats& st) {
  const hn::ScalableTag<float> d;
  const int64_t lanes = 2 * it.q_count * (it.shape->n_head / it.shape->n_head_kv);
  if constexpr (hn::MaxLanes(d) > 8) {
    if (lanes <= 8 && hn::Lanes(d) > 8) return RunItemQ(hn::CappedTag<float, 8>(), it, st);
  }
  if constexpr (hn::MaxLanes(d) > 4) {
    if (lanes <= 4 && hn::Lanes(d) > 4) return RunItemQ(hn::CappedTag<float, 4>(), it, st);
  }
  RunItemQ(d, it, st);
}

#else  // HWY_TARGET == HWY_SCALAR: one row at a time, online softmax over the item's keys (same results).

void RunItem(const detail::AttnItem& it, AttentionIoStats& st) {
  const hn::ScalableTag<float> d;
  const AttentionShape& s = *it.shape;
  const int32_t hd = s.head_dim;
  const int32_t group = s.n_head / s.n_head_kv;
  std::vector<float> kr(hd), vr(hd), acc(hd);
  const int64_t R = it.q_count * group;
  for (int64_t xr = 0; xr < it.kv_heads * R; ++xr) {
    const int32_t hk = it.kv_head + static_cast<int32_t>(xr / R);
    const int64_t r = xr % R;
    const int64_t qi = it.q_begin + r / group;
    const int32_t h = hk * group + static_cast<int32_t>(r % group);
    const float* q = it.q + (qi * s.n_head + h) * hd;
    const int64_t end = s.causal ? std::min(it.kv_end, it.q_pos0 + qi + 1) : it.kv_end;
    float m = -std::numeric_limits<float>::infinity(), l = 0;
    std::fill(acc.begin(), acc.end(), 0.f);
    for (int64_t j = it.kv_begin; j < end; ++j) {
      int64_t ld;
      const float* kp = LoadKvTile(d, *it.k, hk, j, 1, hd, kr.data(), ld, st.k_bytes);
      const float* vp = LoadKvTile(d, *it.v, hk, j, 1, hd, vr.data(), ld, st.v_bytes);
      float sc = 0;
      for (int32_t c = 0; c < hd; ++c) sc += q[c] * s.scale * kp[c];
      if (sc > m) {
        const float a = std::exp(m - sc);
        l *= a;
        for (float& x : acc) x *= a;
        m = sc;
      }
      const float p = std::exp(sc - m);
      l += p;
      for (int32_t c = 0; c < hd; ++c) acc[c] += p * vp[c];
    }
    st.kv_tiles += end > it.kv_begin ? 1 : 0;
    if (it.out) {
      float* dst = it.out + (qi * s.n_head + h) * hd;
      for (int32_t c = 0; c < hd; ++c) dst[c] = l > 0 ? acc[c] / l : 0.f;
    } else {
      float* p = it.partial + xr * (hd + 2);
      std::copy(acc.begin(), acc.end(), p);
      p[hd] = m;
      p[hd + 1] = l;
    }
  }
  st.q_bytes += it.kv_heads * R * hd * 4;
  (it.out ? st.o_bytes : st.partial_bytes) += it.kv_heads * R * (hd + (it.out ? 0 : 2)) * 4;
  ++st.items;
}

#endif  // HWY_TARGET != HWY_SCALAR

const char* TargetName() { return hwy::TargetName(HWY_TARGET); }

}  // namespace strata::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace strata::kernels::detail {

HWY_EXPORT(RunItem);
HWY_EXPORT(TargetName);

void run_attention_item(const AttnItem& item, AttentionIoStats& stats) {
  if (item.amx && run_attention_item_amx(item, stats)) return;
  HWY_DYNAMIC_DISPATCH(RunItem)(item, stats);
}

const char* attention_target_name() { return HWY_DYNAMIC_DISPATCH(TargetName)(); }

}  // namespace strata::kernels::detail
#endif  // HWY_ONCE
