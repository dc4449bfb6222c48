// The int8 panel kernel, per target: one tile of R weight rows (int8_panel.h) times T tokens of QAct
// activations, for GEMV (T = 1) and GEMM (T up to 8). A weight type is a value kind (how the quants of a
// group unpack into u8 vectors) and a scale kind (how the integer group sums become floats).
//
// Per scale group (32 or 16 columns) and token: isum (int32, one lane per row) = sum q * xq, then
//   acc += scale * (isum * dx) + bias * sx
// with scale/bias per row from the meta section (e.g. Q4_0: scale = d, bias = -8d; Q4_K: d*sc, -dmin*m)
// and dx, sx = dx * sum(xq) from the activation block.
#if defined(STRATA_KERNELS_GEMM_INT8_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef STRATA_KERNELS_GEMM_INT8_INL_H_
#undef STRATA_KERNELS_GEMM_INT8_INL_H_
#else
#define STRATA_KERNELS_GEMM_INT8_INL_H_
#endif

#include <algorithm>

#include "core/error.h"
#include "kernels/int8_dot-inl.h"
#include "kernels/matmul_internal.h"

HWY_BEFORE_NAMESPACE();
namespace strata::kernels::i8::HWY_NAMESPACE {

#if HWY_TARGET != HWY_SCALAR

// Tokens per GEMM tile: the accumulators of T tokens stay in registers (16 on AVX2/SSE4, 32 on AVX-512).
#if HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
constexpr size_t kMaxTokTile = 8;
#else
constexpr size_t kMaxTokTile = 4;
#endif

// ---- Value kinds: the u8 quants of chunk pair p (chunks 2p, 2p+1) of a group at gv. ----

HWY_INLINE void Nibbles(const uint8_t* p, VU8& lo, VU8& hi) {
  const DU8 du8;
  const auto m = hn::Set(du8, 0x0F);
  const auto v = hn::Load(du8, p);
  lo = hn::And(v, m);
  hi = hn::And(hn::ShiftRight<4>(v), m);
}

// Moves bit (or bit pair) `bit` of every byte of h to bit `to` (via 16-bit shifts: the mask drops what
// crosses a byte boundary).
template <int bit, int to, int mask>
HWY_INLINE VU8 MoveBits(VU8 h) {
  const DU16 du16;
  const auto h16 = hn::BitCast(du16, h);
  hn::Vec<DU16> s;
  if constexpr (bit < to) {
    s = hn::ShiftLeft<to - bit>(h16);
  } else if constexpr (bit > to) {
    s = hn::ShiftRight<bit - to>(h16);
  } else {
    s = h16;
  }
  return hn::And(hn::BitCast(DU8(), s), hn::Set(DU8(), static_cast<uint8_t>(mask)));
}

// 4-bit quants (Q4_0, Q4_1, Q4_K): 4 nibble vectors per 32-column group.
struct KindNib4 {
  static constexpr int kGroup = 32, kPairs = 4, kFlushChunks = 8;  // 8 * 2*15*127 < 2^15
  static constexpr bool kSigned = false, kActU8 = false;
  static constexpr bool kNib4 = true;  // GroupDot's VNNI GEMV path reads the high nibbles in place
  static constexpr size_t kGroupBytes = 16 * kR;
  template <int p>
  static HWY_INLINE void Pair(const uint8_t* gv, VU8& lo, VU8& hi) {
    Nibbles(gv + p * 4 * kR, lo, hi);
  }
};

// 5-bit quants (Q5_0, Q5_K): nibbles plus one vector of fifth bits (bit c: chunk c).
struct KindNib5 {
  static constexpr int kGroup = 32, kPairs = 4, kFlushChunks = 4;  // 4 * 2*31*127 < 2^15
  static constexpr bool kSigned = false, kActU8 = false;
  static constexpr bool kNib4 = false;
  static constexpr size_t kGroupBytes = 20 * kR;
  template <int p>
  static HWY_INLINE void Pair(const uint8_t* gv, VU8& lo, VU8& hi) {
    Nibbles(gv + p * 4 * kR, lo, hi);
    const auto h = hn::Load(DU8(), gv + 16 * kR);
    lo = hn::Or(lo, MoveBits<2 * p, 4, 0x10>(h));
    hi = hn::Or(hi, MoveBits<2 * p + 1, 4, 0x10>(h));
  }
};

// 6-bit quants (Q6_K), 16-column groups: 2 nibble vectors plus one vector of high bit pairs.
struct KindNib6 {
  static constexpr int kGroup = 16, kPairs = 2, kFlushChunks = 2;  // 2 * 2*63*127 < 2^15
  static constexpr bool kSigned = false, kActU8 = false;
  static constexpr bool kNib4 = false;
  static constexpr size_t kGroupBytes = 12 * kR;
  template <int p>
  static HWY_INLINE void Pair(const uint8_t* gv, VU8& lo, VU8& hi) {
    Nibbles(gv + p * 4 * kR, lo, hi);
    const auto h = hn::Load(DU8(), gv + 8 * kR);
    lo = hn::Or(lo, MoveBits<4 * p, 4, 0x30>(h));
    hi = hn::Or(hi, MoveBits<4 * p + 2, 4, 0x30>(h));
  }
};

// 8-bit signed quants (Q8_0): one vector per chunk. u8 x i8 dot instructions need one unsigned operand:
// with VNNI the activations come offset to unsigned (QAct::q holds q + 128, kActU8) and the weights are
// the signed operand, sum (q+128) w = sum q w + 128 sum w, the weight sums taken by one more vpdpbusd per
// chunk (against ones) that every token of the tile shares. Without VNNI maddubs would saturate 255*127
// pairs, so the sign of w moves to the activations instead (ApplySign: two more ops per chunk and token).
struct KindQ8 {
  static constexpr int kGroup = 32, kPairs = 4, kFlushChunks = 1;  // |w| <= 128: 2*128*127 < 2^15
  static constexpr bool kSigned = true, kActU8 = STRATA_VNNI;
  static constexpr bool kNib4 = false;
  static constexpr size_t kGroupBytes = 32 * kR;
  template <int p>
  static HWY_INLINE void Pair(const uint8_t* gv, VU8& lo, VU8& hi) {
    lo = hn::Load(DU8(), gv + 2 * p * 4 * kR);
    hi = hn::Load(DU8(), gv + (2 * p + 1) * 4 * kR);
  }
};

// isum[t] = the int32 dot of the group's quants (all R rows) with token t's activations xq[t][0..kGroup).
template <class Kind, size_t T>
HWY_INLINE void GroupDot(const uint8_t* gv, const int8_t* const* xq, VI32* isum) {
#if STRATA_VNNI
  if constexpr (Kind::kNib4 && T <= 2) {
    // 4-bit quants, GEMV: the high nibbles stay in place (16 q, masked, not shifted) and get a chain of
    // their own, shifted down once per group: 2 ops per vector instead of 3. vpdpbusd does not saturate
    // (4 * 240 * 128 per lane and vector), and the high sum is a multiple of 16, so the shift is exact.
    // Two chains per token of 4 vpdpbusd each: they restart every group, so out-of-order execution overlaps
    // them across groups.
    const DU8 du8;
    const VU8 m = hn::Set(du8, 0x0F);
    VI32 lo[T], hi[T];
    for (size_t t = 0; t < T; ++t) lo[t] = hi[t] = hn::Zero(DI32());
    Unroll<Kind::kPairs>([&](auto pc) HWY_ATTR {
      constexpr int p = decltype(pc)::value;
      const VU8 v = hn::Load(du8, gv + p * 4 * kR);
      const VU8 l = hn::And(v, m), h = hn::AndNot(m, v);
      for (size_t t = 0; t < T; ++t) {
        lo[t] = DotQuads(lo[t], l, BroadcastQuad(xq[t] + 8 * p));
        hi[t] = DotQuads(hi[t], h, BroadcastQuad(xq[t] + 8 * p + 4));
      }
    });
    for (size_t t = 0; t < T; ++t) isum[t] = hn::Add(lo[t], hn::ShiftRight<4>(hi[t]));
    return;
  }
  // vpdpbusd has a latency of 5 cycles: with few tokens, split each sum into independent chains.
  constexpr size_t kChains = T == 1 ? 4 : T == 2 ? 2 : 1;
  VI32 part[T][kChains];
  for (size_t t = 0; t < T; ++t)
    for (size_t c = 0; c < kChains; ++c) part[t][c] = hn::Zero(DI32());
  // kActU8: the weight sums (two chains), subtracted 128 times from every token's sum at the end.
  VI32 wsum[2] = {hn::Zero(DI32()), hn::Zero(DI32())};
  Unroll<Kind::kPairs>([&](auto pc) HWY_ATTR {
    constexpr int p = decltype(pc)::value;
    constexpr size_t c0 = (2 * p) % kChains, c1 = (2 * p + 1) % kChains;
    VU8 lo, hi;
    Kind::template Pair<p>(gv, lo, hi);
    if constexpr (Kind::kActU8) {
      const VU8 ones = hn::Set(DU8(), 1);
      wsum[0] = DotQuads(wsum[0], ones, hn::BitCast(DI8(), lo));
      wsum[1] = DotQuads(wsum[1], ones, hn::BitCast(DI8(), hi));
    }
    for (size_t t = 0; t < T; ++t) {
      const VI8 x0 = BroadcastQuad(xq[t] + 8 * p), x1 = BroadcastQuad(xq[t] + 8 * p + 4);
      if constexpr (Kind::kActU8) {
        part[t][c0] = DotQuads(part[t][c0], hn::BitCast(DU8(), x0), hn::BitCast(DI8(), lo));
        part[t][c1] = DotQuads(part[t][c1], hn::BitCast(DU8(), x1), hn::BitCast(DI8(), hi));
      } else if constexpr (Kind::kSigned) {
        VU8 a;
        VI8 b;
        ApplySign(hn::BitCast(DI8(), lo), x0, a, b);
        part[t][c0] = DotQuads(part[t][c0], a, b);
        ApplySign(hn::BitCast(DI8(), hi), x1, a, b);
        part[t][c1] = DotQuads(part[t][c1], a, b);
      } else {
        part[t][c0] = DotQuads(part[t][c0], lo, x0);
        part[t][c1] = DotQuads(part[t][c1], hi, x1);
      }
    }
  });
  for (size_t t = 0; t < T; ++t) {
    isum[t] = part[t][0];
    for (size_t c = 1; c < kChains; ++c) isum[t] = hn::Add(isum[t], part[t][c]);
  }
  if constexpr (Kind::kActU8) {
    const VI32 corr = hn::ShiftLeft<7>(hn::Add(wsum[0], wsum[1]));
    for (size_t t = 0; t < T; ++t) isum[t] = hn::Sub(isum[t], corr);
  }
#else
  for (size_t t = 0; t < T; ++t) isum[t] = hn::Zero(DI32());
  VI16 acc16[T];
  Unroll<Kind::kPairs>([&](auto pc) HWY_ATTR {
    constexpr int p = decltype(pc)::value;
    VU8 lo, hi;
    Kind::template Pair<p>(gv, lo, hi);
    for (size_t t = 0; t < T; ++t) {
      const VI8 x0 = BroadcastQuad(xq[t] + 8 * p), x1 = BroadcastQuad(xq[t] + 8 * p + 4);
      if constexpr (Kind::kSigned) {
        VU8 a;
        VI8 b;
        ApplySign(hn::BitCast(DI8(), lo), x0, a, b);
        const VI32 s0 = SumPairs(MulAddPairs(a, b));
        ApplySign(hn::BitCast(DI8(), hi), x1, a, b);
        isum[t] = hn::Add(isum[t], hn::Add(s0, SumPairs(MulAddPairs(a, b))));
      } else {
        static_assert(Kind::kFlushChunks >= 2 && Kind::kFlushChunks % 2 == 0);
        constexpr int kPairsPerFlush = Kind::kFlushChunks / 2;
        const VI16 prod = hn::Add(MulAddPairs(lo, x0), MulAddPairs(hi, x1));
        if constexpr (p % kPairsPerFlush == 0) {
          acc16[t] = prod;
        } else {
          acc16[t] = hn::Add(acc16[t], prod);
        }
        if constexpr (p % kPairsPerFlush == kPairsPerFlush - 1) isum[t] = hn::Add(isum[t], SumPairs(acc16[t]));
      }
    }
  });
#endif
}

// ---- Scale kinds: per superblock state from the meta section, per group finish. ----

// The activation sum a group's bias multiplies: the whole block or one of its 16-column halves.
template <int kGroup>
HWY_INLINE float GroupSum(const QAct* a, int half) {
  if constexpr (kGroup == 32) {
    return a->s;
  } else {
    return a->s16[half];
  }
}

// Q4_0, Q5_0, Q8_0: w = d * (q + kOffset). Meta per row: fp16 d. The activation sums come multiplied
// by kOffset.
template <int kOffset>
struct ScaleD {
  static constexpr int kSumScale = kOffset, kMetaBytes = 2;
  struct SB {
    VF d;
  };
  static HWY_INLINE SB Load(const uint8_t* meta) { return {LoadHalves(meta)}; }
  template <int kGroup, size_t T>
  static HWY_INLINE void Finish(const SB& sb, const uint8_t*, int, const VI32* isum, const QAct* const* ab,
                                int half, VF* acc, VF*) {
    const DF df;
    for (size_t t = 0; t < T; ++t) {
      const VF f = hn::ConvertTo(df, isum[t]);
      VF v;
      if constexpr (kOffset == 0) {
        v = hn::Mul(f, hn::Set(df, ab[t]->d));
      } else {
        v = hn::MulAdd(f, hn::Set(df, ab[t]->d), hn::Set(df, GroupSum<kGroup>(ab[t], half)));
      }
      acc[t] = hn::MulAdd(sb.d, v, acc[t]);
    }
  }
  template <size_t T>
  static HWY_INLINE void End(const SB&, const VF*, VF*) {}
};

// Q4_1: w = d * q + m. Meta per row: fp16 d, fp16 m.
struct ScaleDM {
  static constexpr int kSumScale = 1, kMetaBytes = 4;
  struct SB {
    VF d, m;
  };
  static HWY_INLINE SB Load(const uint8_t* meta) { return {LoadHalves(meta), LoadHalves(meta + 2 * kR)}; }
  template <int kGroup, size_t T>
  static HWY_INLINE void Finish(const SB& sb, const uint8_t*, int, const VI32* isum, const QAct* const* ab,
                                int half, VF* acc, VF*) {
    const DF df;
    for (size_t t = 0; t < T; ++t) {
      acc[t] = hn::MulAdd(sb.d, hn::Mul(hn::ConvertTo(df, isum[t]), hn::Set(df, ab[t]->d)), acc[t]);
      acc[t] = hn::MulAdd(sb.m, hn::Set(df, GroupSum<kGroup>(ab[t], half)), acc[t]);
    }
  }
  template <size_t T>
  static HWY_INLINE void End(const SB&, const VF*, VF*) {}
};

// Q4_K, Q5_K: w = d * sc[g] * q - dmin * m[g]. Meta per row: fp16 d, dmin; u8 sc[8]; u8 m[8].
// GEMV (T <= 2): the superblock's sums sum_g sc[g] * isum_g * dx_g and sum_g m[g] * sx_g go to
// sub[2t], sub[2t + 1], multiplied by d and dmin once per superblock (End): 2 multiplies per group fewer.
struct ScaleKMin {
  static constexpr int kSumScale = 1, kMetaBytes = 20;
  struct SB {
    VF d, dmin;
  };
  static HWY_INLINE SB Load(const uint8_t* meta) { return {LoadHalves(meta), LoadHalves(meta + 2 * kR)}; }
  template <int kGroup, size_t T>
  static HWY_INLINE void Finish(const SB& sb, const uint8_t* meta, int g, const VI32* isum, const QAct* const* ab,
                                int half, VF* acc, VF* sub) {
    const DF df;
    if constexpr (T <= 2) {
      const VF sc = LoadU8AsFloat(meta + 4 * kR + g * kR), mn = LoadU8AsFloat(meta + 12 * kR + g * kR);
      for (size_t t = 0; t < T; ++t) {
        sub[2 * t] = hn::MulAdd(sc, hn::Mul(hn::ConvertTo(df, isum[t]), hn::Set(df, ab[t]->d)), sub[2 * t]);
        sub[2 * t + 1] = hn::MulAdd(mn, hn::Set(df, GroupSum<kGroup>(ab[t], half)), sub[2 * t + 1]);
      }
    } else {
      const VF scale = hn::Mul(sb.d, LoadU8AsFloat(meta + 4 * kR + g * kR));
      const VF mn = hn::Mul(sb.dmin, LoadU8AsFloat(meta + 12 * kR + g * kR));
      for (size_t t = 0; t < T; ++t) {
        acc[t] = hn::MulAdd(scale, hn::Mul(hn::ConvertTo(df, isum[t]), hn::Set(df, ab[t]->d)), acc[t]);
        acc[t] = hn::NegMulAdd(mn, hn::Set(df, GroupSum<kGroup>(ab[t], half)), acc[t]);
      }
    }
  }
  template <size_t T>
  static HWY_INLINE void End(const SB& sb, const VF* sub, VF* acc) {
    if constexpr (T <= 2) {
      for (size_t t = 0; t < T; ++t) {
        acc[t] = hn::MulAdd(sb.d, sub[2 * t], acc[t]);
        acc[t] = hn::NegMulAdd(sb.dmin, sub[2 * t + 1], acc[t]);
      }
    }
  }
};

// Q6_K: w = d * sc[g] * (q - 32), 16-column groups. Meta per row: fp16 d; i8 sc[16]. The activation
// sums come multiplied by -32.
struct ScaleK6 {
  static constexpr int kSumScale = -32, kMetaBytes = 18;
  struct SB {
    VF d;
  };
  static HWY_INLINE SB Load(const uint8_t* meta) { return {LoadHalves(meta)}; }
  template <int kGroup, size_t T>
  static HWY_INLINE void Finish(const SB& sb, const uint8_t* meta, int g, const VI32* isum, const QAct* const* ab,
                                int half, VF* acc, VF* sub) {
    const DF df;
    // GEMV (T <= 2): sum_g sc[g] * v_g in sub[2t], times d once per superblock (End).
    const VF sc = LoadI8AsFloat(meta + 2 * kR + g * kR);
    const VF scale = T <= 2 ? sc : hn::Mul(sb.d, sc);
    for (size_t t = 0; t < T; ++t) {
      const VF v = hn::MulAdd(hn::ConvertTo(df, isum[t]), hn::Set(df, ab[t]->d),
                              hn::Set(df, GroupSum<kGroup>(ab[t], half)));
      if constexpr (T <= 2) {
        sub[2 * t] = hn::MulAdd(scale, v, sub[2 * t]);
      } else {
        acc[t] = hn::MulAdd(scale, v, acc[t]);
      }
    }
  }
  template <size_t T>
  static HWY_INLINE void End(const SB& sb, const VF* sub, VF* acc) {
    if constexpr (T <= 2) {
      for (size_t t = 0; t < T; ++t) acc[t] = hn::MulAdd(sb.d, sub[2 * t], acc[t]);
    }
  }
};

// ---- The tile kernel and the loop over tiles and tokens. ----

// GEMV streams the panel from DRAM: prefetching this far ahead (into L2) keeps more cache misses in flight
// than the out-of-order window alone, as a single core's bandwidth is bounded by its misses in flight.
// Measured on the dev VM (Sapphire Rapids, Q4_0 2048x5632, 1 thread): no prefetch 63% of a plain read,
// 2 KiB 82%, 4 KiB 86-90%, 8-16 KiB no better; the non-temporal hint is worse (50%).
#ifndef STRATA_GEMV_PREFETCH
#define STRATA_GEMV_PREFETCH 4096
#endif
constexpr size_t kPrefetchBytes = STRATA_GEMV_PREFETCH;
#ifndef STRATA_GEMV_PREFETCH_LOCALITY
#define STRATA_GEMV_PREFETCH_LOCALITY 2  // __builtin_prefetch locality: 2 = prefetcht1 (L2) on x86
#endif
HWY_INLINE void PrefetchStream(const void* p) { __builtin_prefetch(p, 0, STRATA_GEMV_PREFETCH_LOCALITY); }
// One value prefetch per this many bytes (64: every line; 128 leaves the second line of each 128-byte
// pair to the L2's adjacent-line prefetcher: half the prefetch instructions and fill buffers). For A/B
// runs: -DCMAKE_CXX_FLAGS=-DSTRATA_GEMV_PREFETCH_STRIDE=128.
#ifndef STRATA_GEMV_PREFETCH_STRIDE
#define STRATA_GEMV_PREFETCH_STRIDE 64
#endif
constexpr size_t kPrefetchStride = STRATA_GEMV_PREFETCH_STRIDE;

// out[t * kR + r] = dot(row r of the tile, activations of token t), t < T.
template <class Kind, class Scale, int kSB, size_t T>
HWY_NOINLINE void TileKernel(const uint8_t* HWY_RESTRICT meta, const uint8_t* HWY_RESTRICT vals, int64_t n_sb,
                             size_t /*meta_stride: Scale::kMetaBytes * kR*/, const QAct* const* act,
                             float* HWY_RESTRICT out) {
  constexpr int kGroups = kSB / Kind::kGroup;
  constexpr size_t kMetaStride = Scale::kMetaBytes * kR, kValStride = kGroups * Kind::kGroupBytes;
  constexpr bool kPrefetch = T <= 2 && kPrefetchBytes > 0;
  // GEMV: superblocks in steps of kU, so that a step's meta covers at least one 64-byte line (one meta
  // prefetch per line, not per superblock: Q4_0's meta is 32 bytes per superblock on AVX-512) and the
  // loop overhead of the 32-column types is shared; the last n_sb % kU superblocks run one at a time.
  constexpr int64_t kU = kPrefetch && kMetaStride < 64 ? static_cast<int64_t>(64 / kMetaStride) : 1;
  const DF df;
  VF acc[T];
  for (size_t t = 0; t < T; ++t) acc[t] = hn::Zero(df);
  auto superblock = [&](int64_t s) HWY_ATTR {
    const uint8_t* ms = meta + s * kMetaStride;
    const auto sb = Scale::Load(ms);
    const uint8_t* vs = vals + s * kValStride;
    VF sub[2 * T];  // per-superblock partial sums (Scale::End), T <= 2
    for (size_t i = 0; i < 2 * T; ++i) sub[i] = hn::Zero(df);
    for (int g = 0; g < kGroups; ++g) {
      if constexpr (kPrefetch) {
        for (size_t i = 0; i < Kind::kGroupBytes; i += kPrefetchStride)
          PrefetchStream(vs + g * Kind::kGroupBytes + i + kPrefetchBytes);
      }
      // Column s * kSB + g * kGroup: activation block and offset in it, without 64-bit divisions.
      const int64_t blk = s * (kSB / 32) + (g * Kind::kGroup) / 32;
      const int off = (g * Kind::kGroup) % 32, half = off / 16;
      const QAct* ab[T];
      const int8_t* xq[T];
      for (size_t t = 0; t < T; ++t) {
        ab[t] = act[t] + blk;
        xq[t] = ab[t]->q + off;
      }
      VI32 isum[T];
      GroupDot<Kind, T>(vs + g * Kind::kGroupBytes, xq, isum);
      Scale::template Finish<Kind::kGroup, T>(sb, ms, g, isum, ab, half, acc, sub);
    }
    Scale::template End<T>(sb, sub, acc);
  };
  // The meta of the superblock the values prefetch reaches.
  constexpr size_t kAheadMeta = std::max<size_t>(1, kPrefetchBytes / kValStride) * kMetaStride;
  int64_t s = 0;
  for (; s + kU <= n_sb; s += kU) {
    if constexpr (kPrefetch) {
      for (size_t i = 0; i < kU * kMetaStride; i += 64) PrefetchStream(meta + s * kMetaStride + kAheadMeta + i);
    }
    Unroll<static_cast<int>(kU)>([&](auto u) HWY_ATTR { superblock(s + decltype(u)::value); });
  }
  for (; s < n_sb; ++s) superblock(s);
  for (size_t t = 0; t < T; ++t) hn::Store(acc[t], df, out + t * kR);
}

template <class Kind, class Scale, int kSB>
void RunTiles(const detail::Int8Args& a, int64_t tile_begin, int64_t tile_end, uint8_t* scratch) {
  STRATA_ASSERT(a.fmt->act_sum_scale == Scale::kSumScale && a.fmt->sb == kSB && a.R == static_cast<int>(kR) &&
                    a.fmt->val_bytes * kR == kSB / Kind::kGroup * Kind::kGroupBytes &&
                    a.fmt->meta_bytes == Scale::kMetaBytes,
                "int8 kernel: the registry row does not match the kernel");
  const int64_t nb32 = a.cols / 32, n_sb = a.cols / kSB;
  const size_t meta_stride = static_cast<size_t>(a.fmt->meta_bytes) * kR;
  HWY_ALIGN float out[kMaxTokTile * kR];
  // Token blocks whose activations (48 bytes per 32 columns) fit in about 1 MiB of L2; each weight tile
  // is read from memory once per block.
  const int64_t act_row_bytes = nb32 * static_cast<int64_t>(sizeof(QAct));
  const int64_t tb = std::max<int64_t>(kMaxTokTile, ((1 << 20) / act_row_bytes) / kMaxTokTile * kMaxTokTile);
  for (int64_t t0 = 0; t0 < a.n_tok; t0 += tb) {
    const int64_t t1 = std::min(a.n_tok, t0 + tb);
    for (int64_t tile = tile_begin; tile < tile_end; ++tile) {
      const int64_t row0 = tile * static_cast<int64_t>(kR);
      const int n_valid = static_cast<int>(std::min<int64_t>(kR, a.rows - row0));
      const uint8_t* tp;
      if (a.panel) {
        tp = a.panel + tile * a.tile_bytes;
      } else {
        pack_panel_tile(*a.fmt, kR, a.data + row0 * a.row_stride, a.row_stride, n_valid, a.cols, scratch);
        tp = scratch;
      }
      const uint8_t* vals = tp + a.meta_bytes;
      for (int64_t t = t0; t < t1;) {
        const int64_t left = t1 - t;
        const QAct* act[kMaxTokTile];
        size_t n;
        auto run = [&](auto tc) HWY_ATTR {
          constexpr size_t kT = decltype(tc)::value;
          for (size_t i = 0; i < kT; ++i) act[i] = a.act + (t + i) * nb32;
          TileKernel<Kind, Scale, kSB, kT>(tp, vals, n_sb, meta_stride, act, out);
          n = kT;
        };
        if (left >= static_cast<int64_t>(kMaxTokTile)) {
          run(std::integral_constant<size_t, kMaxTokTile>{});
        } else if (kMaxTokTile > 4 && left >= 4) {
          run(std::integral_constant<size_t, 4>{});
        } else if (left >= 2) {
          run(std::integral_constant<size_t, 2>{});
        } else {
          run(std::integral_constant<size_t, 1>{});
        }
        for (size_t i = 0; i < n; ++i) {
          float* yt = a.y + (t + static_cast<int64_t>(i)) * a.rows + row0;
          if (a.accumulate) {  // the residual stream: y += W·x in the store (no second pass)
            for (int r = 0; r < n_valid; ++r) yt[r] += out[i * kR + r];
          } else {
            std::copy(out + i * kR, out + i * kR + n_valid, yt);
          }
        }
        t += static_cast<int64_t>(n);
      }
    }
  }
}

#endif  // HWY_TARGET != HWY_SCALAR

}  // namespace strata::kernels::i8::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // include guard
