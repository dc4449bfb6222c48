// Attention items on AMX tiles (see attention_amx.h), bf16 K/V. Per item and K/V tile of T keys, per KV head:
//   1. S^T [16 keys][R] per 16-key block: TDPBF16PS with A = K rows as stored in the cache (row-major bf16
//      is the A layout; a tail tile is copied and zero-padded) and B = the item's Q^T in pair layout
//      (built once, q as bf16 hi and lo: two products);
//   2. S^T transposed to S [R][T] (gathers), masked, online softmax per row (running max raised only past
//      the slack, as attention_simd.cpp), P -> bf16 hi/lo [R][T] (the A operand of O = P·V);
//   3. V rows interleaved into key pairs [T/2][hd][2] (the B layout), O [R][16 dims] tiles loaded,
//      accumulated over the tile's 32-key chunks (P hi and P lo), stored back.
// Only the functions marked AMX_FN use AVX-512/AMX instructions; run_attention_item_amx calls them only
// after amx_usable() said yes, so the file is safe to link into a binary for any x86-64 CPU.
#include "kernels/attention_amx.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>

#include "core/fp16.h"
#include "tensor/dtype.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define STRATA_AMX_CODE 1
#include <cpuid.h>
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // GCC 12's AVX-512 headers (_mm512_undefined_*)
#endif
#endif

namespace strata::kernels::detail {

#if STRATA_AMX_CODE

namespace {

#define AMX_FN \
  __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,amx-tile,amx-bf16,fma")))

constexpr int kMaxRows = 16;    // query rows of an item (the M of the output tiles)
constexpr int kMaxHeadDim = 256;

bool detect_amx() {
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
  const bool avx512 = (b >> 16 & 1) && (b >> 17 & 1) && (b >> 30 & 1) && (b >> 31 & 1);  // F, DQ, BW, VL
  const bool amx = (d >> 22 & 1) && (d >> 24 & 1);                                        // AMX-BF16, AMX-TILE
  unsigned a1 = 0, b1 = 0, c1 = 0, d1 = 0;
  if (!avx512 || !amx || !__get_cpuid_count(7, 1, &a1, &b1, &c1, &d1) || !(a1 >> 5 & 1)) return false;  // AVX512-BF16
  unsigned a0 = 0, b0 = 0, c0 = 0, d0 = 0;
  if (!__get_cpuid(1, &a0, &b0, &c0, &d0) || !(c0 >> 27 & 1) || !(c0 >> 12 & 1)) return false;  // OSXSAVE, FMA
  unsigned lo = 0, hi = 0;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  if ((lo & 0xE6) != 0xE6) return false;  // the OS saves SSE, AVX and AVX-512 state
  // Linux hands out the 8 KiB tile state per process on request (ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA).
  constexpr long kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
  return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
}

// LDTILECFG's 64-byte operand (palette 1).
struct alignas(64) TileConfig {
  uint8_t palette = 1, start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

// The tile registers and their shapes (R = query rows of the item). Macros, not constants: GCC's tile
// intrinsics paste the register number into the instruction text.
#define kTS 0    // C: S^T block [16 keys][R] f32
#define kTK 1    // A: K [16 keys][32 dims] bf16
#define kTQ 2    // B: Q^T [16 dim pairs][R][2] bf16 (hi, then lo reloaded)
#define kTO 3    // C: O [R][16 dims] f32
#define kTP 4    // A: P hi [R][32 keys] bf16
#define kTV 5    // B: V [16 key pairs][16 dims][2] bf16
#define kTP2 7   // A: P lo [R][32 keys]

// Thread-local scratch, 64-byte aligned, grown as needed.
struct Scratch {
  struct Free {
    void operator()(uint8_t* p) const { std::free(p); }
  };
  std::unique_ptr<uint8_t, Free> buf;
  size_t size = 0;
  uint8_t* get(size_t n) {
    if (n > size) {
      n = (n + 4095) & ~size_t{4095};
      buf.reset(static_cast<uint8_t*>(std::aligned_alloc(64, n)));
      if (!buf) throw std::bad_alloc();
      size = n;
    }
    return buf.get();
  }
};

// bf16 of x (round to nearest even) and x's residual x - float(bf16(x)).
AMX_FN inline __m256i to_bf16(__m512 x) {
  const __m256bh h = _mm512_cvtneps_pbh(x);
  __m256i r;
  std::memcpy(&r, &h, sizeof(r));
  return r;
}
AMX_FN inline __m512 from_bf16(__m256i h) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}
AMX_FN inline void split_store(__m512 x, uint16_t* hi, uint16_t* lo, bool with_lo) {
  const __m256i h = to_bf16(x);
  _mm256_store_si256(reinterpret_cast<__m256i*>(hi), h);
  if (with_lo) _mm256_store_si256(reinterpret_cast<__m256i*>(lo), to_bf16(_mm512_sub_ps(x, from_bf16(h))));
}

// e^x for x <= 88 (larger is not asked for: scores are at most max_slack above the running max); exactly
// 0 below -87.3, so masked keys (-inf) weigh nothing. Cody-Waite reduction, degree-7 polynomial: ~1 ulp.
AMX_FN inline __m512 exp512(__m512 x) {
  const __mmask16 under = _mm512_cmp_ps_mask(x, _mm512_set1_ps(-87.3f), _CMP_LT_OQ);
  x = _mm512_max_ps(x, _mm512_set1_ps(-87.3f));
  x = _mm512_min_ps(x, _mm512_set1_ps(88.3f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.f / 5040);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f / 720));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f / 120));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f / 24));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f / 6));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f));
  return _mm512_maskz_mov_ps(static_cast<__mmask16>(~under), _mm512_scalef_ps(p, n));
}

AMX_FN inline void prefetch_rows(const uint8_t* p, int64_t rows, int64_t stride, size_t row_bytes) {
  for (int64_t j = 0; j < rows; ++j)
    for (size_t off = 0; off < row_bytes; off += 64) _mm_prefetch(reinterpret_cast<const char*>(p + j * stride + off), _MM_HINT_T1);
}

// A tail tile of K (jt < tp rows) -> kb [tp][hd], zero-padded (whole tiles are read in place).
AMX_FN void copy_k_tail(const uint8_t* src, int64_t stride, int64_t jt, int64_t tp, int hd, uint16_t* kb) {
  for (int64_t j = 0; j < jt; ++j) std::memcpy(kb + j * hd, src + j * stride, 2 * static_cast<size_t>(hd));
  std::memset(kb + jt * hd, 0, (tp - jt) * hd * 2);
}

// V rows -> vb [tp/2][hd][2] bf16: row p holds keys 2p and 2p+1 interleaved per dim (VNNI pairs; rows
// jt .. tp-1 zero). Asks for the rows `ahead` rows past each of the first pf_rows rows, of V and of K
// (k_src, k_stride: the same tile of K), as it goes: spread out, so that the requests do not queue up.
AMX_FN void interleave_v(const uint8_t* src, int64_t stride, int64_t jt, int64_t tp, int hd, uint16_t* vb,
                         int64_t ahead, int64_t pf_rows, const uint8_t* k_src, int64_t k_stride) {
  const size_t rb = 2 * static_cast<size_t>(hd);
  const __m512i w_lo = _mm512_set_epi16(47, 15, 46, 14, 45, 13, 44, 12, 43, 11, 42, 10, 41, 9, 40, 8, 39, 7, 38, 6,
                                        37, 5, 36, 4, 35, 3, 34, 2, 33, 1, 32, 0);
  const __m512i w_hi = _mm512_set_epi16(63, 31, 62, 30, 61, 29, 60, 28, 59, 27, 58, 26, 57, 25, 56, 24, 55, 23, 54,
                                        22, 53, 21, 52, 20, 51, 19, 50, 18, 49, 17, 48, 16);
  for (int64_t p = 0; p < tp / 2; ++p) {
    const int64_t ja = 2 * p, jb = 2 * p + 1;
    const uint8_t* ra = src + ja * stride;
    const uint8_t* rb_ = src + jb * stride;
    if (ja < pf_rows) {
      prefetch_rows(ra + ahead * stride, std::min<int64_t>(2, pf_rows - ja), stride, rb);
      prefetch_rows(k_src + (ja + ahead) * k_stride, std::min<int64_t>(2, pf_rows - ja), k_stride, rb);
    }
    uint16_t* h = vb + p * 2 * hd;
    for (int g = 0; g < hd; g += 32) {  // 32 dims of both rows -> two vectors of 16 dim pairs
      const __m512i a = ja < jt ? _mm512_loadu_si512(ra + 2 * g) : _mm512_setzero_si512();
      const __m512i b = jb < jt ? _mm512_loadu_si512(rb_ + 2 * g) : _mm512_setzero_si512();
      _mm512_store_si512(h + 2 * g, _mm512_permutex2var_epi16(a, w_lo, b));
      _mm512_store_si512(h + 2 * g + 32, _mm512_permutex2var_epi16(a, w_hi, b));
    }
  }
}

struct ItemDims {
  int hd = 0, R = 0, T = 0, nks = 0;  // head dim, query rows, keys per tile, 32-dim steps (hd / 32)
  bool lo = true;                     // Q and P as bf16 hi + lo (two products) instead of hi alone
};

// S^T for tp keys (a multiple of 16) of one head: st [tp][R] float32. K rows at kb with a row stride of
// ks_bytes.
AMX_FN void scores(const ItemDims& d, const uint16_t* kb, int64_t ks_bytes, const uint16_t* qb, float* st, int64_t tp) {
  const int qrow = 4 * d.R;                 // bytes per row of the Q^T tile
  const size_t q_tile = 16 * 2 * d.R;       // bf16 per Q^T tile
  const int64_t kse = ks_bytes / 2;         // K row stride in bf16
  for (int64_t b = 0; b < tp; b += 16) {
    _tile_zero(kTS);
    for (int ks = 0; ks < d.nks; ++ks) {
      const uint16_t* qhi = qb + (2 * ks) * q_tile;
      _tile_loadd(kTK, kb + b * kse + 32 * ks, ks_bytes);
      _tile_loadd(kTQ, qhi, qrow);
      _tile_dpbf16ps(kTS, kTK, kTQ);
      if (d.lo) {
        _tile_loadd(kTQ, qhi + q_tile, qrow);
        _tile_dpbf16ps(kTS, kTK, kTQ);
      }
    }
    _tile_stored(kTS, st + b * d.R, 4 * d.R);
  }
}

// O [R][hd] += P [R][tp] · V [tp][hd] (tp a multiple of 32; P rows strided by T).
AMX_FN void pv(const ItemDims& d, const uint16_t* ph, const uint16_t* pl, const uint16_t* vb, float* o, int64_t tp) {
  for (int b = 0; b < d.hd; b += 16) {
    _tile_loadd(kTO, o + b, 4 * d.hd);
    for (int64_t c = 0; c < tp; c += 32) {
      const size_t voff = static_cast<size_t>(c / 2) * 2 * d.hd + 2 * b;  // key pair c/2, dim b
      _tile_loadd(kTP, ph + c, 2 * d.T);
      _tile_loadd(kTV, vb + voff, 4 * d.hd);
      _tile_dpbf16ps(kTO, kTP, kTV);
      if (d.lo) {
        _tile_loadd(kTP2, pl + c, 2 * d.T);
        _tile_dpbf16ps(kTO, kTP2, kTV);
      }
    }
    _tile_stored(kTO, o + b, 4 * d.hd);
  }
}

// Row r of S from S^T (stride R) for keys [0, tp), masked: keys >= jt (padding) and, causally, keys with
// j0 + j > lim. Then the online softmax step of the row: m raised past the slack (O row and l rescaled),
// P = e^(s - m) in bf16 hi/lo. Returns whether a finite max was raised.
AMX_FN bool softmax_row(const ItemDims& d, const float* st, int r, int64_t tp, int64_t jt, int64_t j0, float lim,
                        float slack, float* m, float* l, float* o_row, uint16_t* ph, uint16_t* pl) {
  constexpr float kInf = std::numeric_limits<float>::infinity();
  const __m512i iota = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
  const __m512i idx0 = _mm512_add_epi32(_mm512_mullo_epi32(iota, _mm512_set1_epi32(d.R)), _mm512_set1_epi32(r));
  const __m512 neg_inf = _mm512_set1_ps(-kInf);
  alignas(64) float s[256];
  __m512 mt = neg_inf;
  for (int64_t b = 0; b < tp; b += 16) {
    __m512 v = _mm512_i32gather_ps(idx0, st + b * d.R, 4);
    const __m512 key = _mm512_add_ps(_mm512_set1_ps(static_cast<float>(j0 + b)), _mm512_cvtepi32_ps(iota));
    __mmask16 hide = _mm512_cmp_ps_mask(_mm512_cvtepi32_ps(iota), _mm512_set1_ps(static_cast<float>(jt - b)), _CMP_GE_OQ);
    hide |= _mm512_cmp_ps_mask(key, _mm512_set1_ps(lim), _CMP_GT_OQ);
    v = _mm512_mask_mov_ps(v, hide, neg_inf);
    _mm512_store_ps(s + b, v);
    mt = _mm512_max_ps(mt, v);
  }
  const float tmax = _mm512_reduce_max_ps(mt);
  bool raised = false;
  if (tmax > *m + slack) {
    const float m_old = *m;
    raised = m_old > -kInf;
    const float a = raised ? std::exp(m_old - tmax) : 0.f;
    *m = tmax;
    *l *= a;
    const __m512 va = _mm512_set1_ps(a);
    for (int c = 0; c < d.hd; c += 16) _mm512_storeu_ps(o_row + c, _mm512_mul_ps(_mm512_loadu_ps(o_row + c), va));
  }
  const __m512 msub = _mm512_set1_ps(*m == -kInf ? 0.f : *m);
  __m512 sum = _mm512_setzero_ps();
  for (int64_t b = 0; b < tp; b += 16) {
    const __m512 p = exp512(_mm512_sub_ps(_mm512_load_ps(s + b), msub));
    sum = _mm512_add_ps(sum, p);
    split_store(p, ph + b, pl + b, d.lo);
  }
  *l += _mm512_reduce_add_ps(sum);
  return raised;
}

// q · a bf16 K row (the shared-max probe: a few rows per item).
AMX_FN float dot_bf16(const float* q, const uint8_t* row, int hd) {
  __m512 acc = _mm512_setzero_ps();
  for (int i = 0; i < hd; i += 16)
    acc = _mm512_fmadd_ps(_mm512_loadu_ps(q + i), from_bf16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + 2 * i))), acc);
  return _mm512_reduce_add_ps(acc);
}

AMX_FN void run_item(const AttnItem& it, AttentionIoStats& stats) {
  const AttentionShape& s = *it.shape;
  const int group = s.n_head / s.n_head_kv;
  ItemDims d;
  d.hd = s.head_dim;
  d.R = static_cast<int>(it.q_count) * group;
  d.nks = d.hd / 32;
  d.lo = it.amx == 2;
  // Keys per tile: a V tile in pair layout and a tail K tile (bf16) of 16 KiB each at head_dim 64.
  d.T = std::clamp(8192 / d.hd / 32 * 32, 32, 128);  // whole 32-key chunks (the K of a P·V tile product)
  const int nh = it.kv_heads, R = d.R, hd = d.hd, T = d.T;

  // Scratch: qb [nh][nks][hi, lo][16][R][2] bf16 | kb [T][hd] | vb [T/2][hd][2] | st [T][R] f32 |
  // ph pl [R][T] bf16 | o [nh][R][hd] f32 | m l [nh][R].
  auto up = [](size_t n) { return (n + 63) & ~size_t{63}; };
  const size_t qb_b = up(static_cast<size_t>(nh) * d.nks * 2 * 16 * 2 * R * 2), kv_b = up(size_t(T) * hd * 2),
               st_b = up(size_t(T) * R * 4), p_b = up(size_t(R) * T * 2), o_b = up(size_t(nh) * R * hd * 4),
               ml_b = up(size_t(nh) * R * 4);
  static thread_local Scratch scratch;
  uint8_t* base = scratch.get(qb_b + 2 * kv_b + st_b + 2 * p_b + o_b + 2 * ml_b);
  auto take = [&base](size_t n) {
    uint8_t* p = base;
    base += n;
    return p;
  };
  auto* qb = reinterpret_cast<uint16_t*>(take(qb_b));
  auto* kb = reinterpret_cast<uint16_t*>(take(kv_b));
  auto* vb = reinterpret_cast<uint16_t*>(take(kv_b));
  auto* st = reinterpret_cast<float*>(take(st_b));
  auto* ph = reinterpret_cast<uint16_t*>(take(p_b));
  auto* pl = reinterpret_cast<uint16_t*>(take(p_b));
  auto* o_all = reinterpret_cast<float*>(take(o_b));
  auto* m_all = reinterpret_cast<float*>(take(ml_b));
  auto* l_all = reinterpret_cast<float*>(take(ml_b));

  // Q^T tiles: row p of step ks holds (q[r][32ks + 2p], q[r][32ks + 2p + 1]) for every row r, scaled.
  const size_t q_tile = size_t(16) * 2 * R;
  alignas(64) float qs[kMaxHeadDim];
  for (int x = 0; x < nh; ++x)
    for (int r = 0; r < R; ++r) {
      const int64_t qi = it.q_begin + r / group;
      const int h = (it.kv_head + x) * group + r % group;
      const float* q = it.q + (qi * s.n_head + h) * hd;
      for (int c = 0; c < hd; c += 16)
        _mm512_store_ps(qs + c, _mm512_mul_ps(_mm512_loadu_ps(q + c), _mm512_set1_ps(s.scale)));
      for (int c = 0; c < hd; ++c) {
        const uint16_t h16 = f32_to_bf16(qs[c]);  // rounded to nearest even, as VCVTNEPS2BF16
        const int ks = c / 32, p = (c % 32) / 2, e = c % 2;
        uint16_t* t = qb + (static_cast<size_t>(x) * d.nks + ks) * 2 * q_tile;
        t[p * 2 * R + 2 * r + e] = h16;
        t[q_tile + p * 2 * R + 2 * r + e] = f32_to_bf16(qs[c] - bf16_to_f32(h16));
      }
    }
  stats.q_bytes += int64_t{nh} * R * hd * 4;
  std::memset(o_all, 0, o_b);
  constexpr float kInf = std::numeric_limits<float>::infinity();
  for (int i = 0; i < nh * R; ++i) {
    m_all[i] = -kInf;
    l_all[i] = 0;
  }

  const size_t rb = 2 * static_cast<size_t>(hd);  // bytes of a bf16 K or V row
  auto k_row = [&](int x, int64_t j) {
    return static_cast<const uint8_t*>(it.k->data) + (it.kv_head + x) * it.k->head_stride + j * it.k->pos_stride;
  };
  auto v_row = [&](int x, int64_t j) {
    return static_cast<const uint8_t*>(it.v->data) + (it.kv_head + x) * it.v->head_stride + j * it.v->pos_stride;
  };

  // Shared max estimate (FlashDecoding++), as attention_simd.cpp: each row's real scores against key 0
  // and against its own last key, in float32.
  if (it.seed_max && it.n_kv > 0) {
    for (int x = 0; x < nh; ++x)
      for (int r = 0; r < R; ++r) {
        const int64_t qi = it.q_begin + r / group;
        const int h = (it.kv_head + x) * group + r % group;
        const float* q = it.q + (qi * s.n_head + h) * hd;
        const int64_t last = s.causal ? it.q_pos0 + qi : it.n_kv - 1;
        const float s0 = dot_bf16(q, k_row(x, 0), hd) * s.scale;
        const float s1 = dot_bf16(q, k_row(x, last), hd) * s.scale;
        m_all[x * R + r] = std::max(s0, s1);
      }
    stats.k_bytes += static_cast<int64_t>(nh) * (it.q_count + 1) * static_cast<int64_t>(rb);
  }

  int64_t j_end = it.kv_end;
  if (s.causal) j_end = std::min(j_end, it.q_pos0 + it.q_begin + it.q_count);
  const int64_t min_lim = s.causal ? it.q_pos0 + it.q_begin : std::numeric_limits<int64_t>::max();
  // Prefetch: the rows one tile past each row of the tile at hand are asked for as V is interleaved
  // (spread out, so that the requests do not queue up at once); the first tile's rows are asked for here.
  // (One tile ahead measured ~10% faster than two at 4096 keys from DRAM, 2 threads.)
  const int64_t ahead = T;
  for (int x = 0; x < nh; ++x) {
    const int64_t n0 = std::min<int64_t>(j_end - it.kv_begin, ahead);
    if (n0 > 0) {
      prefetch_rows(k_row(x, it.kv_begin), n0, it.k->pos_stride, rb);
      prefetch_rows(v_row(x, it.kv_begin), n0, it.v->pos_stride, rb);
    }
  }

  TileConfig cfg;
  auto shape = [&cfg](int t, int rows, int colsb) {
    cfg.rows[t] = static_cast<uint8_t>(rows);
    cfg.colsb[t] = static_cast<uint16_t>(colsb);
  };
  shape(kTS, 16, 4 * R);
  shape(kTK, 16, 64);
  shape(kTQ, 16, 4 * R);
  shape(kTO, R, 64);
  shape(kTP, R, 64);
  shape(kTV, 16, 64);
  shape(kTP2, R, 64);
  _tile_loadconfig(&cfg);

  for (int64_t j0 = it.kv_begin; j0 < j_end; j0 += T) {
    const int64_t jt = std::min<int64_t>(T, j_end - j0);
    const int64_t tp = (jt + 31) & ~int64_t{31};
    const int64_t pf_n = std::clamp<int64_t>(j_end - j0 - ahead, 0, jt);  // rows of this tile with a row to ask for
    for (int x = 0; x < nh; ++x) {
      // K rows are the A operand as stored (whole 32-key tiles), a tail tile is copied and zero-padded.
      const uint16_t* ka = reinterpret_cast<const uint16_t*>(k_row(x, j0));
      int64_t ka_stride = it.k->pos_stride;
      if (jt < tp) {
        copy_k_tail(k_row(x, j0), it.k->pos_stride, jt, tp, hd, kb);
        ka = kb;
        ka_stride = static_cast<int64_t>(rb);
      }
      scores(d, ka, ka_stride, qb + static_cast<size_t>(x) * d.nks * 2 * q_tile, st, tp);
      float* o = o_all + static_cast<size_t>(x) * R * hd;
      const bool masked = j0 + tp - 1 > min_lim;
      for (int r = 0; r < R; ++r) {
        const float lim = masked && s.causal ? static_cast<float>(it.q_pos0 + it.q_begin + r / group) : kInf;
        stats.rescales += softmax_row(d, st, r, tp, jt, j0, lim, it.max_slack, m_all + x * R + r, l_all + x * R + r,
                                      o + r * hd, ph + static_cast<size_t>(r) * T, pl + static_cast<size_t>(r) * T);
      }
      interleave_v(v_row(x, j0), it.v->pos_stride, jt, tp, hd, vb, ahead, pf_n, k_row(x, j0), it.k->pos_stride);
      pv(d, ph, pl, vb, o, tp);
      stats.k_bytes += jt * static_cast<int64_t>(rb);
      stats.v_bytes += jt * static_cast<int64_t>(rb);
      ++stats.kv_tiles;
    }
  }
  _tile_release();

  for (int x = 0; x < nh; ++x)
    for (int r = 0; r < R; ++r) {
      const float* o = o_all + (static_cast<size_t>(x) * R + r) * hd;
      const float l = l_all[x * R + r];
      if (it.out) {
        const int64_t qi = it.q_begin + r / group;
        const int h = (it.kv_head + x) * group + r % group;
        float* dst = it.out + (qi * s.n_head + h) * hd;
        const float inv = l > 0 ? 1.f / l : 0.f;
        for (int c = 0; c < hd; ++c) dst[c] = o[c] * inv;
      } else {
        float* p = it.partial + (static_cast<size_t>(x) * R + r) * (hd + 2);
        std::memcpy(p, o, hd * sizeof(float));
        p[hd] = m_all[x * R + r];
        p[hd + 1] = l;
      }
    }
  (it.out ? stats.o_bytes : stats.partial_bytes) += int64_t{nh} * R * (hd + (it.out ? 0 : 2)) * 4;
  ++stats.items;
  ++stats.amx_items;
}

}  // namespace

bool amx_usable() {
  static const bool ok = detect_amx();
  return ok;
}

bool run_attention_item_amx(const AttnItem& it, AttentionIoStats& stats) {
  if (it.amx == 0 || !it.k || !it.v || it.k->decode || it.v->decode) return false;
  const AttentionShape& s = *it.shape;
  const int64_t rows = it.q_count * (s.n_head / s.n_head_kv);
  if (rows < 1 || rows > kMaxRows || s.head_dim % 32 != 0 || s.head_dim > kMaxHeadDim) return false;
  for (const KvView* kv : {it.k, it.v})
    if (kv->type != DType::BF16 || kv->pos_stride < 2 * static_cast<int64_t>(s.head_dim)) return false;
  if (!amx_usable()) return false;
  run_item(it, stats);
  return true;
}

#else  // not x86-64 with GCC/Clang

bool amx_usable() { return false; }
bool run_attention_item_amx(const AttnItem&, AttentionIoStats&) { return false; }

#endif

}  // namespace strata::kernels::detail
