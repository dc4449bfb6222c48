// pack_panel_tile_simd (pack_panel_simd.h), one Highway variant per SIMD target. The panel layout is in
// int8_panel.h; the scalar packer it must match byte for byte is in repack_int8.cpp.
#include "kernels/simd_config.h"  // first: the target list

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/pack_panel_simd.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include <cstddef>
#include <cstring>

#include "kernels/pack_panel_simd.h"
#include "tensor/dtype.h"

HWY_BEFORE_NAMESPACE();
namespace strata::kernels::pk::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

#if HWY_TARGET != HWY_SCALAR

using DU = hn::ScalableTag<uint32_t>;
using DI = hn::RebindToSigned<DU>;
using VU = hn::Vec<DU>;
using VI = hn::Vec<DI>;

// Lane r: the 4 bytes at p + offsets[r] (offsets[r] = r * row_stride: the same place in row r).
HWY_INLINE VU Gather(const uint8_t* p, VI offsets) {
  return hn::GatherOffset(DU(), reinterpret_cast<const uint32_t*>(p), offsets);
}

HWY_INLINE void StoreWords(VU v, uint8_t* dst) { hn::StoreU(v, DU(), reinterpret_cast<uint32_t*>(dst)); }

// The low 16 bits of every lane: R fp16 values, 2R bytes.
HWY_INLINE void StoreHalves(VU v, uint8_t* dst) {
  const hn::Rebind<uint16_t, DU> d16;
  hn::StoreU(hn::TruncateTo(d16, v), d16, reinterpret_cast<uint16_t*>(dst));
}

// The low byte of every lane (masked, so saturating DemoteTo is exact). Not TruncateTo: Highway 1.0.3's
// u32->u8 TruncateTo on AVX3_DL permutes 32-bit lanes where it means bytes (wrong bytes; the test caught it).
HWY_INLINE void StoreLowBytes(VU v, uint8_t* dst) {
  const hn::Rebind<uint8_t, DI> d8;
  const VI low = hn::BitCast(DI(), hn::And(v, hn::Set(DU(), 0xFFu)));
  hn::StoreU(hn::DemoteTo(d8, low), d8, dst);
}

// Byte k of every lane, k = 0..3, to dst + k * R: four rows of R bytes of the meta section.
HWY_INLINE void StoreBytes4(VU v, size_t R, uint8_t* dst) {
  StoreLowBytes(v, dst);
  StoreLowBytes(hn::ShiftRight<8>(v), dst + R);
  StoreLowBytes(hn::ShiftRight<16>(v), dst + 2 * R);
  StoreLowBytes(hn::ShiftRight<24>(v), dst + 3 * R);
}

// Two words of 4-bit quants (a: columns j, b: columns j + 4 of a chunk pair, as in the file) into the
// panel's byte pairing: low nibbles of a in the low, low nibbles of b in the high nibble (lo), or the high
// nibbles likewise (hi). Matches place_values' (q[8p + j] & 0xF) | (q[8p + 4 + j] << 4).
HWY_INLINE VU PairLow(VU a, VU b, VU m4) { return hn::Or(hn::And(a, m4), hn::ShiftLeft<4>(hn::And(b, m4))); }
HWY_INLINE VU PairHigh(VU a, VU b, VU m4) { return hn::Or(hn::And(hn::ShiftRight<4>(a), m4), hn::AndNot(m4, b)); }

// The 16 bytes of a legacy 4-bit block's qs (qs[j]: column j low, column j + 16 high) as the panel's 4
// value vectors of a 32-column group (Q4_0, Q4_1, Q5_0's nibbles).
HWY_INLINE void PackNibbles16(const uint8_t* qs, VI offs, size_t vec, uint8_t* v) {
  const VU m4 = hn::Set(DU(), 0x0F0F0F0Fu);
  const VU a0 = Gather(qs, offs), a1 = Gather(qs + 4, offs), a2 = Gather(qs + 8, offs), a3 = Gather(qs + 12, offs);
  StoreWords(PairLow(a0, a1, m4), v);
  StoreWords(PairLow(a2, a3, m4), v + vec);
  StoreWords(PairHigh(a0, a1, m4), v + 2 * vec);
  StoreWords(PairHigh(a2, a3, m4), v + 3 * vec);
}

// The 32 bytes of a K-quant's 64-column chunk (q[l]: column l low, column 32 + l high) as the panel's two
// groups: lo gets the 4 nibble vectors of columns 0-31, hi those of columns 32-63 (Q4_K, Q5_K).
HWY_INLINE void PackNibbles32(const uint8_t* q, VI offs, size_t vec, uint8_t* lo, uint8_t* hi) {
  const VU m4 = hn::Set(DU(), 0x0F0F0F0Fu);
  VU w[8];
  for (int k = 0; k < 8; ++k) w[k] = Gather(q + 4 * k, offs);
  for (int p = 0; p < 4; ++p) {
    StoreWords(PairLow(w[2 * p], w[2 * p + 1], m4), lo + p * vec);
    StoreWords(PairHigh(w[2 * p], w[2 * p + 1], m4), hi + p * vec);
  }
}

// The meta section of a Q4_K/Q5_K superblock (the same fields at the same offsets): d, dmin, then the 8
// six-bit scales and 8 mins as bytes (ggml's get_scale_min_k4 on 32-bit lanes).
HWY_INLINE void PackKMeta(const uint8_t* b, VI offs, size_t R, uint8_t* m) {
  const DU du;
  const VU m4 = hn::Set(du, 0x0F0F0F0Fu), m6 = hn::Set(du, 0x3F3F3F3Fu), m30 = hn::Set(du, 0x30303030u);
  const VU h = Gather(b, offs);
  StoreHalves(h, m);
  StoreHalves(hn::ShiftRight<16>(h), m + 2 * R);
  const VU s0 = Gather(b + 4, offs), s1 = Gather(b + 8, offs), s2 = Gather(b + 12, offs);
  // Sub-blocks 0-3: the low 6 bits of scales[0..3] (scale) and scales[4..7] (min). Sub-blocks 4-7: the
  // nibbles of scales[8..11] with the top 2 bits of scales[0..3] / scales[4..7] as bits 4-5.
  StoreBytes4(hn::And(s0, m6), R, m + 4 * R);
  StoreBytes4(hn::Or(hn::And(s2, m4), hn::And(hn::ShiftRight<2>(s0), m30)), R, m + 8 * R);
  StoreBytes4(hn::And(s1, m6), R, m + 12 * R);
  StoreBytes4(hn::Or(hn::And(hn::ShiftRight<4>(s2), m4), hn::And(hn::ShiftRight<2>(s1), m30)), R, m + 16 * R);
}

// Q4_0 (d, qs[16]) and Q4_1 (d, m, qs[16]): one 32-column group; qs[j] holds column j (low nibble) and
// column j + 16 (high nibble).
template <bool kHasMin>
void PackQ4Legacy(const uint8_t* src, VI offs, size_t R, int64_t n_sb, size_t meta_sb, size_t val_sb,
                  uint8_t* meta, uint8_t* vals) {
  constexpr size_t kBlock = kHasMin ? sizeof(block_q4_1) : sizeof(block_q4_0);
  constexpr size_t kQs = kHasMin ? 4 : 2;
  const size_t vec = 4 * R;
  for (int64_t s = 0; s < n_sb; ++s) {
    const uint8_t* b = src + s * kBlock;
    const VU h = Gather(b, offs);
    StoreHalves(h, meta + s * meta_sb);
    if constexpr (kHasMin) StoreHalves(hn::ShiftRight<16>(h), meta + s * meta_sb + 2 * R);
    PackNibbles16(b + kQs, offs, vec, vals + s * val_sb);
  }
}

// Q8_0 (d, qs[32]): the 8 chunks of 4 columns are the 8 words of qs.
void PackQ8_0(const uint8_t* src, VI offs, size_t R, int64_t n_sb, size_t meta_sb, size_t val_sb, uint8_t* meta,
              uint8_t* vals) {
  const size_t vec = 4 * R;
  for (int64_t s = 0; s < n_sb; ++s) {
    const uint8_t* b = src + s * sizeof(block_q8_0);
    StoreHalves(Gather(b, offs), meta + s * meta_sb);
    uint8_t* v = vals + s * val_sb;
    for (int c = 0; c < 8; ++c) StoreWords(Gather(b + 2 + 4 * c, offs), v + c * vec);
  }
}

// Q4_K (d, dmin, scales[12], qs[128]): meta = d, dmin, then the 8 six-bit scales and 8 mins as bytes
// (ggml's get_scale_min_k4 on 32-bit lanes); qs[32c + l] holds column 64c + l (low nibble) and
// 64c + 32 + l (high nibble).
void PackQ4_K(const uint8_t* src, VI offs, size_t R, int64_t n_sb, size_t meta_sb, size_t val_sb, uint8_t* meta,
              uint8_t* vals) {
  const size_t vec = 4 * R;
  for (int64_t s = 0; s < n_sb; ++s) {
    const uint8_t* b = src + s * sizeof(block_q4_K);
    PackKMeta(b, offs, R, meta + s * meta_sb);
    uint8_t* v = vals + s * val_sb;
    for (int c = 0; c < 4; ++c) {  // group 2c: the low nibbles; group 2c + 1: the high nibbles
      uint8_t* lo = v + (2 * c) * 4 * vec;
      PackNibbles32(b + 16 + 32 * c, offs, vec, lo, lo + 4 * vec);
    }
  }
}

// Bits j, j+4, ..., j+28 of every lane (the high bits of columns j, j+4, ... of a Q5_0 block's qh) as
// bits 0-7: ggml's 5th bits of the 8 chunks' column j, as the panel's high-bit byte wants them.
HWY_INLINE VU Every4thBit(VU x) {
  const DU du;
  x = hn::And(x, hn::Set(du, 0x11111111u));
  x = hn::And(hn::Or(x, hn::ShiftRight<3>(x)), hn::Set(du, 0x03030303u));
  x = hn::And(hn::Or(x, hn::ShiftRight<6>(x)), hn::Set(du, 0x000F000Fu));
  return hn::And(hn::Or(x, hn::ShiftRight<12>(x)), hn::Set(du, 0xFFu));
}

// Q5_0 (d, qh[4], qs[16]): the nibbles as Q4_0; the high-bit vector's byte j of row r has bit c = the 5th
// bit of column 4c + j, i.e. bit 4c + j of qh.
void PackQ5_0(const uint8_t* src, VI offs, size_t R, int64_t n_sb, size_t meta_sb, size_t val_sb, uint8_t* meta,
              uint8_t* vals) {
  const size_t vec = 4 * R;
  for (int64_t s = 0; s < n_sb; ++s) {
    const uint8_t* b = src + s * sizeof(block_q5_0);
    const VU h = Gather(b, offs);  // d, qh[0..1]
    StoreHalves(h, meta + s * meta_sb);
    const VU qh = Gather(b + 2, offs);
    uint8_t* v = vals + s * val_sb;
    PackNibbles16(b + 6, offs, vec, v);
    const VU hb = hn::Or(hn::Or(Every4thBit(qh), hn::ShiftLeft<8>(Every4thBit(hn::ShiftRight<1>(qh)))),
                         hn::Or(hn::ShiftLeft<16>(Every4thBit(hn::ShiftRight<2>(qh))),
                                hn::ShiftLeft<24>(Every4thBit(hn::ShiftRight<3>(qh)))));
    StoreWords(hb, v + 4 * vec);
  }
}

// Q5_K (d, dmin, scales[12], qh[32], qs[128]): meta and nibbles as Q4_K (groups of 5 vectors instead of
// 4); column 64c + l has its 5th bit in bit 2c of qh[l] (+32: bit 2c + 1). The high-bit byte j of a group
// has bit k = column 4k + j of the group: bit b of qh[4k + j], byte j of qh's word k.
void PackQ5_K(const uint8_t* src, VI offs, size_t R, int64_t n_sb, size_t meta_sb, size_t val_sb, uint8_t* meta,
              uint8_t* vals) {
  const DU du;
  const VU one = hn::Set(du, 0x01010101u);
  const size_t vec = 4 * R;
  for (int64_t s = 0; s < n_sb; ++s) {
    const uint8_t* b = src + s * sizeof(block_q5_K);
    PackKMeta(b, offs, R, meta + s * meta_sb);
    VU qh[8];
    for (int k = 0; k < 8; ++k) qh[k] = Gather(b + 16 + 4 * k, offs);
    uint8_t* v = vals + s * val_sb;
    for (int c = 0; c < 4; ++c) {
      uint8_t* lo = v + (2 * c) * 5 * vec;  // group 2c: the low nibbles, 5th bits from bit 2c
      uint8_t* hi = lo + 5 * vec;           // group 2c + 1: the high nibbles, bit 2c + 1
      PackNibbles32(b + 48 + 32 * c, offs, vec, lo, hi);
      VU hb_lo = hn::Zero(du), hb_hi = hn::Zero(du);
      for (int k = 0; k < 8; ++k) {
        const VU x = hn::Shr(qh[k], hn::Set(du, static_cast<uint32_t>(2 * c)));
        hb_lo = hn::Or(hb_lo, hn::Shl(hn::And(x, one), hn::Set(du, static_cast<uint32_t>(k))));
        hb_hi = hn::Or(hb_hi, hn::Shl(hn::And(hn::ShiftRight<1>(x), one), hn::Set(du, static_cast<uint32_t>(k))));
      }
      StoreWords(hb_lo, lo + 4 * vec);
      StoreWords(hb_hi, hi + 4 * vec);
    }
  }
}

// Q6_K (ql[128], qh[64], scales[16], d): meta = d, then the 16 int8 scales as bytes. Values in groups of
// 16 columns, 3 vectors each: two nibble pairs and the high 2 bits of the 4 chunks (bits 2c, 2c+1). In
// each 128-column half, column 32Q + l (Q = 0..3) has its low 4 bits in ql[l + 32 (Q & 1)] (low nibble for
// Q < 2, high for Q >= 2) and its high 2 bits in bits 2Q, 2Q+1 of qh[l].
void PackQ6_K(const uint8_t* src, VI offs, size_t R, int64_t n_sb, size_t meta_sb, size_t val_sb, uint8_t* meta,
              uint8_t* vals) {
  const DU du;
  const VU m4 = hn::Set(du, 0x0F0F0F0Fu), three = hn::Set(du, 0x03030303u);
  const size_t vec = 4 * R;
  for (int64_t s = 0; s < n_sb; ++s) {
    const uint8_t* b = src + s * sizeof(block_q6_K);
    uint8_t* m = meta + s * meta_sb;
    // d is the block's last 2 bytes: gathered with the 2 before it (a 4-byte read inside the block).
    StoreHalves(hn::ShiftRight<16>(Gather(b + offsetof(block_q6_K, d) - 2, offs)), m);
    for (int k = 0; k < 4; ++k) StoreBytes4(Gather(b + offsetof(block_q6_K, scales) + 4 * k, offs), R, m + 2 * R + 4 * k * R);
    uint8_t* v = vals + s * val_sb;
    for (int half = 0; half < 2; ++half) {
      const uint8_t* ql = b + 64 * half;
      const uint8_t* qhp = b + offsetof(block_q6_K, qh) + 32 * half;
      VU qh[8];
      for (int k = 0; k < 8; ++k) qh[k] = Gather(qhp + 4 * k, offs);
      for (int g = 0; g < 8; ++g) {  // 16-column groups of this half: columns 16g .. 16g + 15
        const int Q = g / 2, L = 16 * (g % 2);  // quarter, and the group's first l in it
        const uint8_t* lb = ql + 32 * (Q & 1) + L;
        uint8_t* base = v + (8 * half + g) * 3 * vec;
        for (int p = 0; p < 2; ++p) {
          const VU a = Gather(lb + 8 * p, offs), c = Gather(lb + 8 * p + 4, offs);
          StoreWords(Q < 2 ? PairLow(a, c, m4) : PairHigh(a, c, m4), base + p * vec);
        }
        VU hb = hn::Zero(du);
        for (int c = 0; c < 4; ++c) {
          const VU x = hn::And(hn::Shr(qh[L / 4 + c], hn::Set(du, static_cast<uint32_t>(2 * Q))), three);
          hb = hn::Or(hb, hn::Shl(x, hn::Set(du, static_cast<uint32_t>(2 * c))));
        }
        StoreWords(hb, base + 2 * vec);
      }
    }
  }
}

#endif  // HWY_TARGET != HWY_SCALAR

bool PackTile(const PanelFormat& f, int R, const uint8_t* src, size_t row_stride, int n_rows, int64_t cols,
              uint8_t* dst) {
#if HWY_TARGET == HWY_SCALAR
  (void)f, (void)R, (void)src, (void)row_stride, (void)n_rows, (void)cols, (void)dst;
  return false;
#else
  const DU du;
  const size_t N = hn::Lanes(du);
  if (n_rows != R || static_cast<size_t>(R) != N) return false;
  // Byte offsets of the rows as int32 lanes (a tile spans R rows: well inside int32).
  if (row_stride * N > size_t{1} << 30) return false;
  const VI offs = hn::Mul(hn::Iota(DI(), 0), hn::Set(DI(), static_cast<int32_t>(row_stride)));
  const int64_t n_sb = cols / f.sb;
  const size_t meta_sb = static_cast<size_t>(f.meta_bytes) * N, val_sb = static_cast<size_t>(f.val_bytes) * N;
  const size_t meta_used = static_cast<size_t>(n_sb) * meta_sb, val_used = static_cast<size_t>(n_sb) * val_sb;
  const size_t meta_total = panel_meta_bytes(f, R, cols), tile_total = panel_tile_bytes(f, R, cols);
  uint8_t* vals = dst + meta_total;
  switch (f.type) {
    case DType::Q4_0: PackQ4Legacy<false>(src, offs, N, n_sb, meta_sb, val_sb, dst, vals); break;
    case DType::Q4_1: PackQ4Legacy<true>(src, offs, N, n_sb, meta_sb, val_sb, dst, vals); break;
    case DType::Q8_0: PackQ8_0(src, offs, N, n_sb, meta_sb, val_sb, dst, vals); break;
    case DType::Q4_K: PackQ4_K(src, offs, N, n_sb, meta_sb, val_sb, dst, vals); break;
    case DType::Q5_0: PackQ5_0(src, offs, N, n_sb, meta_sb, val_sb, dst, vals); break;
    case DType::Q5_K: PackQ5_K(src, offs, N, n_sb, meta_sb, val_sb, dst, vals); break;
    case DType::Q6_K: PackQ6_K(src, offs, N, n_sb, meta_sb, val_sb, dst, vals); break;
    default: return false;
  }
  // The 64-byte padding after each section, zero as the scalar packer leaves it.
  std::memset(dst + meta_used, 0, meta_total - meta_used);
  std::memset(vals + val_used, 0, tile_total - meta_total - val_used);
  return true;
#endif
}

}  // namespace strata::kernels::pk::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace strata::kernels {
namespace pk {
HWY_EXPORT(PackTile);
}  // namespace pk

bool pack_panel_tile_simd(const PanelFormat& f, int R, const void* src, size_t row_stride, int n_rows,
                          int64_t cols, uint8_t* dst) {
  if (R <= 0 || n_rows != R || cols <= 0 || cols % f.sb != 0) return false;
  return HWY_DYNAMIC_DISPATCH(pk::PackTile)(f, R, static_cast<const uint8_t*>(src), row_stride, n_rows, cols, dst);
}

}  // namespace strata::kernels
#endif  // HWY_ONCE
