// Float matmul kernels, one Highway variant per target:
//  - F32 / F16 / BF16 weights times f32 activations: tiles of RT rows x TT tokens, each a set of RT*TT
//    SIMD dot products reduced at the end (weights widened to f32 once per tile step, reused by TT tokens);
//  - the dequantize path for every other type: RT rows dequantized into a buffer, then the same f32 tile.
#include "kernels/simd_config.h"  // first: the target list

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/gemm_float.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include <algorithm>
#include <cstring>

#include "core/error.h"
#include "core/fp16.h"
#include "kernels/matmul_internal.h"

HWY_BEFORE_NAMESPACE();
namespace strata::kernels::fl::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using DF = hn::ScalableTag<float>;
using VF = hn::Vec<DF>;

// Tile shape: RT*TT accumulators + TT activation vectors + 1 weight vector must fit in the registers.
#if HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL || HWY_TARGET == HWY_NEON
constexpr size_t kRowTile = 4, kTokTile = 6;  // 32 vector registers
#else
constexpr size_t kRowTile = 4, kTokTile = 3;  // 16 vector registers
#endif

// Weight element types: N weights widened to f32, and one weight for the scalar tail.
HWY_INLINE VF LoadW(DF df, const float* p) { return hn::LoadU(df, p); }
HWY_INLINE VF LoadW(DF df, const hwy::float16_t* p) {
  return hn::PromoteTo(df, hn::LoadU(hn::Rebind<hwy::float16_t, DF>(), p));
}
HWY_INLINE VF LoadW(DF df, const hwy::bfloat16_t* p) {
  return hn::PromoteTo(df, hn::LoadU(hn::Rebind<hwy::bfloat16_t, DF>(), p));
}
HWY_INLINE float OneW(const float* p) { return *p; }
HWY_INLINE uint16_t Bits16(const void* p) {
  uint16_t b;
  std::memcpy(&b, p, 2);
  return b;
}
HWY_INLINE float OneW(const hwy::float16_t* p) { return fp16_to_f32(Bits16(p)); }
HWY_INLINE float OneW(const hwy::bfloat16_t* p) { return bf16_to_f32(Bits16(p)); }

// GEMV prefetch distance in weight elements: STRATA_FLOAT_GEMV_PREFETCH bytes ahead in each row.
#ifndef STRATA_FLOAT_GEMV_PREFETCH
#define STRATA_FLOAT_GEMV_PREFETCH 1024
#endif
template <class WT>
constexpr int64_t kPrefetchElems = STRATA_FLOAT_GEMV_PREFETCH / static_cast<int64_t>(sizeof(WT));

// out[t * RT + r] = dot(w[r][0..K), x[t][0..K)).
template <class WT, size_t RT, size_t TT>
HWY_NOINLINE void FloatTile(const WT* const* HWY_RESTRICT w, const float* const* HWY_RESTRICT x, int64_t K,
                            float* HWY_RESTRICT out) {
  const DF df;
  constexpr int64_t N = static_cast<int64_t>(hn::MaxLanes(df));
  VF acc[RT][TT];
  for (size_t r = 0; r < RT; ++r)
    for (size_t t = 0; t < TT; ++t) acc[r][t] = hn::Zero(df);
  int64_t k = 0;
  for (; k + N <= K; k += N) {
    VF xv[TT];
    for (size_t t = 0; t < TT; ++t) xv[t] = hn::LoadU(df, x[t] + k);
    if constexpr (TT == 1) {
      // GEMV streams the rows from DRAM: ask for them ahead (as the int8 kernels do), so more misses are in
      // flight than the out-of-order window alone keeps. Past a row's end this is the next row: also read.
      for (size_t r = 0; r < RT; ++r) __builtin_prefetch(w[r] + k + kPrefetchElems<WT>, 0, 3);
    }
    for (size_t r = 0; r < RT; ++r) {
      const VF wv = LoadW(df, w[r] + k);
      for (size_t t = 0; t < TT; ++t) acc[r][t] = hn::MulAdd(wv, xv[t], acc[r][t]);
    }
  }
  for (size_t r = 0; r < RT; ++r) {
    for (size_t t = 0; t < TT; ++t) {
      float s = hn::GetLane(hn::SumOfLanes(df, acc[r][t]));
      for (int64_t kk = k; kk < K; ++kk) s += OneW(w[r] + kk) * x[t][kk];
      out[t * RT + r] = s;
    }
  }
}

// Stores one result: y = v, or y += v with accumulate (the residual stream).
HWY_INLINE void Put(const detail::FloatArgs& a, int64_t i, float v) { a.y[i] = a.accumulate ? a.y[i] + v : v; }

// y[t][row0 + r] for r < n_rows (<= kRowTile), all tokens, from row pointers w[0..n_rows).
template <class WT>
void RowTileAllTokens(const WT* const* w, int n_rows, const detail::FloatArgs& a, int64_t t0, int64_t t1,
                      int64_t row0) {
  HWY_ALIGN float out[kRowTile * kTokTile];
  const float* xs[kTokTile];
  for (int64_t t = t0; t < t1;) {
    const size_t tt = (t1 - t >= static_cast<int64_t>(kTokTile)) ? kTokTile : 1;
    for (size_t i = 0; i < tt; ++i) xs[i] = a.x + (t + static_cast<int64_t>(i)) * a.cols;
    size_t rt = kRowTile;
    if (n_rows == static_cast<int>(kRowTile)) {
      if (tt == kTokTile) {
        FloatTile<WT, kRowTile, kTokTile>(w, xs, a.cols, out);
      } else {
        FloatTile<WT, kRowTile, 1>(w, xs, a.cols, out);
      }
    } else {  // the last rows of the matrix, one at a time
      rt = 1;
      for (int r = 0; r < n_rows; ++r) {
        float o[kTokTile];
        if (tt == kTokTile) {
          FloatTile<WT, 1, kTokTile>(w + r, xs, a.cols, o);
        } else {
          FloatTile<WT, 1, 1>(w + r, xs, a.cols, o);
        }
        for (size_t i = 0; i < tt; ++i) Put(a, (t + static_cast<int64_t>(i)) * a.rows + row0 + r, o[i]);
      }
    }
    if (rt == kRowTile)
      for (size_t i = 0; i < tt; ++i)
        for (int r = 0; r < n_rows; ++r) Put(a, (t + static_cast<int64_t>(i)) * a.rows + row0 + r, out[i * rt + r]);
    t += static_cast<int64_t>(tt);
  }
}

// GEMV (fewer tokens than a token tile): each row tile streams its rows once, for all tokens.
template <class WT>
void FloatRowsGemv(const detail::FloatArgs& a, int64_t row_begin, int64_t row_end) {
  for (int64_t r0 = row_begin; r0 < row_end; r0 += kRowTile) {
    const int n = static_cast<int>(std::min<int64_t>(kRowTile, row_end - r0));
    const WT* w[kRowTile];
    for (int r = 0; r < n; ++r) w[r] = reinterpret_cast<const WT*>(a.data + (r0 + r) * a.row_stride);
    RowTileAllTokens<WT>(w, n, a, 0, a.n_tok, r0);
  }
}

// GEMM, blocked for the caches: columns in blocks of kColBlock; for each, rows in blocks whose weights fit
// in about 1 MiB of L2; inside, a token tile (kTokTile x kColBlock floats) meets every row tile of the
// block. Partial sums of column blocks accumulate in y. Measured (F16 2048x2048x128, 1 thread, AVX3_DL):
// 256 columns 38 GFLOP/s, 512: 63, 1024: 83-97, 2048: 89-94 (the horizontal sums at the end of each dot
// and the partial-sum updates amortize over the block); unblocked over tokens only: 41-59.
#ifndef STRATA_GEMM_COL_BLOCK
#define STRATA_GEMM_COL_BLOCK 2048
#endif
#ifndef STRATA_GEMM_ROW_BLOCK_BYTES
#define STRATA_GEMM_ROW_BLOCK_BYTES (1 << 20)
#endif
constexpr int64_t kColBlock = STRATA_GEMM_COL_BLOCK;

template <class WT>
void FloatRowsGemm(const detail::FloatArgs& a, int64_t row_begin, int64_t row_end) {
  const int64_t mc = std::max<int64_t>(
      kRowTile, (STRATA_GEMM_ROW_BLOCK_BYTES / (kColBlock * static_cast<int64_t>(sizeof(WT)))) / kRowTile * kRowTile);
  HWY_ALIGN float out[kRowTile * kTokTile];
  for (int64_t k0 = 0; k0 < a.cols; k0 += kColBlock) {
    const int64_t kn = std::min(a.cols, k0 + kColBlock) - k0;
    for (int64_t m0 = row_begin; m0 < row_end; m0 += mc) {
      const int64_t m1 = std::min(row_end, m0 + mc);
      for (int64_t t = 0; t < a.n_tok;) {
        const size_t tt = (a.n_tok - t >= static_cast<int64_t>(kTokTile)) ? kTokTile : 1;
        const float* xs[kTokTile];
        for (size_t i = 0; i < tt; ++i) xs[i] = a.x + (t + static_cast<int64_t>(i)) * a.cols + k0;
        for (int64_t r0 = m0; r0 < m1; r0 += kRowTile) {
          const int n = static_cast<int>(std::min<int64_t>(kRowTile, m1 - r0));
          const WT* w[kRowTile];
          for (int r = 0; r < n; ++r) w[r] = reinterpret_cast<const WT*>(a.data + (r0 + r) * a.row_stride) + k0;
          size_t rt = kRowTile;
          if (n == static_cast<int>(kRowTile)) {
            if (tt == kTokTile) {
              FloatTile<WT, kRowTile, kTokTile>(w, xs, kn, out);
            } else {
              FloatTile<WT, kRowTile, 1>(w, xs, kn, out);
            }
          } else {
            rt = 1;
            for (int r = 0; r < n; ++r) {
              if (tt == kTokTile) {
                FloatTile<WT, 1, kTokTile>(w + r, xs, kn, out + r * kTokTile);
              } else {
                FloatTile<WT, 1, 1>(w + r, xs, kn, out + r * kTokTile);
              }
            }
          }
          for (size_t i = 0; i < tt; ++i) {
            float* yt = a.y + (t + static_cast<int64_t>(i)) * a.rows + r0;
            for (int r = 0; r < n; ++r) {
              const float v = rt == 1 ? out[r * kTokTile + i] : out[i * kRowTile + r];
              yt[r] = k0 == 0 && !a.accumulate ? v : yt[r] + v;  // column blocks (and accumulate) add up
            }
          }
        }
        t += static_cast<int64_t>(tt);
      }
    }
  }
}

template <class WT>
void FloatRows(const detail::FloatArgs& a, int64_t row_begin, int64_t row_end) {
  if (a.n_tok < static_cast<int64_t>(kTokTile)) return FloatRowsGemv<WT>(a, row_begin, row_end);
  FloatRowsGemm<WT>(a, row_begin, row_end);
}

int FloatTileRows() { return static_cast<int>(kRowTile); }

void FloatMatmulRows(const detail::FloatArgs& a, int64_t row_begin, int64_t row_end) {
  switch (a.type) {
    case DType::F32: return FloatRows<float>(a, row_begin, row_end);
    case DType::F16: return FloatRows<hwy::float16_t>(a, row_begin, row_end);
    case DType::BF16: return FloatRows<hwy::bfloat16_t>(a, row_begin, row_end);
    default: STRATA_ASSERT(false, "FloatMatmulRows: not a float type");
  }
}

// scratch: kRowTile * cols floats.
void DequantMatmulRows(const detail::FloatArgs& a, int64_t row_begin, int64_t row_end, float* scratch) {
  for (int64_t r0 = row_begin; r0 < row_end; r0 += kRowTile) {
    const int n = static_cast<int>(std::min<int64_t>(kRowTile, row_end - r0));
    const float* w[kRowTile];
    for (int r = 0; r < n; ++r) {
      float* dst = scratch + r * a.cols;
      dequantize_row(a.type, a.data + (r0 + r) * a.row_stride, dst, a.cols);
      w[r] = dst;
    }
    RowTileAllTokens<float>(w, n, a, 0, a.n_tok, r0);
  }
}

}  // namespace strata::kernels::fl::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace strata::kernels {
namespace fl {
HWY_EXPORT(FloatTileRows);
HWY_EXPORT(FloatMatmulRows);
HWY_EXPORT(DequantMatmulRows);
}  // namespace fl

namespace detail {
int float_tile_rows() { return HWY_DYNAMIC_DISPATCH(fl::FloatTileRows)(); }
void float_matmul_rows(const FloatArgs& a, int64_t row_begin, int64_t row_end) {
  HWY_DYNAMIC_DISPATCH(fl::FloatMatmulRows)(a, row_begin, row_end);
}
void dequant_matmul_rows(const FloatArgs& a, int64_t row_begin, int64_t row_end, float* scratch) {
  HWY_DYNAMIC_DISPATCH(fl::DequantMatmulRows)(a, row_begin, row_end, scratch);
}
}  // namespace detail

}  // namespace strata::kernels
#endif  // HWY_ONCE
