// Per-target KV row loaders: one struct per storage format turns a row of head_dim values into float32.
// This is where a KV format plugs into attention: add a struct with Load() and a case in
// LoadKvTile(). The tile loop calls the loader once per row of a tile, so dequantization is fused
// into the tile loop and no full-cache copy is ever made.
// (Highway per-target header: included once per target by attention_simd.cpp.)
#if defined(STRATA_KERNELS_ATTENTION_KV_ROWS_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef STRATA_KERNELS_ATTENTION_KV_ROWS_INL_H_
#undef STRATA_KERNELS_ATTENTION_KV_ROWS_INL_H_
#else
#define STRATA_KERNELS_ATTENTION_KV_ROWS_INL_H_
#endif

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "core/error.h"
#include "core/fp16.h"
#include "hwy/cache_control.h"
#include "hwy/highway.h"
#include "kernels/attention.h"
#include "tensor/dtype.h"

HWY_BEFORE_NAMESPACE();
namespace strata::kernels::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// float32 rows: copied (used only when the row stride is not a whole number of floats).
struct KvRowF32 {
  static constexpr size_t RowBytes(int32_t n) { return 4 * static_cast<size_t>(n); }
  template <class D>
  static HWY_INLINE void Load(D d, const uint8_t* HWY_RESTRICT src, float* HWY_RESTRICT dst, int32_t n) {
    std::memcpy(dst, src, RowBytes(n));
    (void)d;
  }
};

// IEEE half rows (F16C on x86).
struct KvRowF16 {
  static constexpr size_t RowBytes(int32_t n) { return 2 * static_cast<size_t>(n); }
  template <class D>
  static HWY_INLINE void Load(D d, const uint8_t* HWY_RESTRICT src, float* HWY_RESTRICT dst, int32_t n) {
    const hn::Rebind<hwy::float16_t, D> dh;
    const auto* h = reinterpret_cast<const hwy::float16_t*>(src);
    const int32_t N = static_cast<int32_t>(hn::Lanes(d));
    int32_t i = 0;
    for (; i + 4 * N <= n; i += 4 * N) {  // a whole contiguous tile is one long row: unrolled
      const auto a = hn::PromoteTo(d, hn::LoadU(dh, h + i));
      const auto b = hn::PromoteTo(d, hn::LoadU(dh, h + i + N));
      const auto c = hn::PromoteTo(d, hn::LoadU(dh, h + i + 2 * N));
      const auto e = hn::PromoteTo(d, hn::LoadU(dh, h + i + 3 * N));
      hn::StoreU(a, d, dst + i);
      hn::StoreU(b, d, dst + i + N);
      hn::StoreU(c, d, dst + i + 2 * N);
      hn::StoreU(e, d, dst + i + 3 * N);
    }
    for (; i + N <= n; i += N) hn::StoreU(hn::PromoteTo(d, hn::LoadU(dh, h + i)), d, dst + i);
    for (; i < n; ++i) {
      uint16_t bits;
      std::memcpy(&bits, src + 2 * i, 2);
      dst[i] = fp16_to_f32(bits);
    }
  }
};

// bfloat16 rows: the upper half of a float32, widened by a shift.
struct KvRowBF16 {
  static constexpr size_t RowBytes(int32_t n) { return 2 * static_cast<size_t>(n); }
  template <class D>
  static HWY_INLINE void Load(D d, const uint8_t* HWY_RESTRICT src, float* HWY_RESTRICT dst, int32_t n) {
    const hn::Rebind<uint32_t, D> du32;
    const hn::Rebind<uint16_t, D> du16;
    const auto* h = reinterpret_cast<const uint16_t*>(src);
    const int32_t N = static_cast<int32_t>(hn::Lanes(d));
    int32_t i = 0;
    for (; i + N <= n; i += N)
      hn::StoreU(hn::BitCast(d, hn::ShiftLeft<16>(hn::PromoteTo(du32, hn::LoadU(du16, h + i)))), d, dst + i);
    for (; i < n; ++i) {
      uint16_t bits;
      std::memcpy(&bits, src + 2 * i, 2);
      dst[i] = bf16_to_f32(bits);
    }
  }
};

// A block's fp16 scale as float32 with the CPU's conversion instruction (F16C), not the bit-twiddling
// of fp16_to_f32 (same value: both are exact).
template <class D>
HWY_INLINE float LoadScaleF16(D, const void* p) {
  const hn::CappedTag<float, 1> d1;
  const hn::Rebind<hwy::float16_t, decltype(d1)> dh1;
  return hn::GetLane(hn::PromoteTo(d1, hn::LoadU(dh1, static_cast<const hwy::float16_t*>(p))));
}

// q8_0 rows: blocks of an fp16 scale and 32 int8 (n is a multiple of 32).
struct KvRowQ8_0 {
  static constexpr size_t RowBytes(int32_t n) { return sizeof(block_q8_0) * static_cast<size_t>(n / QK8_0); }
  template <class D>
  static HWY_INLINE void Load(D d, const uint8_t* HWY_RESTRICT src, float* HWY_RESTRICT dst, int32_t n) {
    const hn::Rebind<int32_t, D> di;
    const hn::Rebind<int8_t, D> d8;
    constexpr int32_t kN = static_cast<int32_t>(hn::MaxLanes(D()));
    const int32_t N = static_cast<int32_t>(hn::Lanes(d));
    for (int32_t b = 0; b < n / QK8_0; ++b) {
      const auto* blk = reinterpret_cast<const block_q8_0*>(src + b * sizeof(block_q8_0));
      const float scale = LoadScaleF16(d, &blk->d);
      float* o = dst + b * QK8_0;
      if constexpr (kN <= QK8_0) {
        const auto vs = hn::Set(d, scale);
        for (int32_t i = 0; i < QK8_0; i += N)
          hn::StoreU(hn::Mul(hn::ConvertTo(d, hn::PromoteTo(di, hn::LoadU(d8, blk->qs + i))), vs), d, o + i);
      } else {
        for (int32_t i = 0; i < QK8_0; ++i) o[i] = scale * static_cast<float>(blk->qs[i]);
      }
    }
  }
};

// q4_0 rows: blocks of an fp16 scale and 32 4-bit values (low nibbles: elements 0..15, high: 16..31),
// value = (q - 8) * scale (n is a multiple of 32): N bytes give N low and N high nibbles, promoted to
// int32 and converted (exact: the same floats as the scalar reference).
struct KvRowQ4_0 {
  static constexpr size_t RowBytes(int32_t n) { return sizeof(block_q4_0) * static_cast<size_t>(n / QK4_0); }
  template <class D>
  static HWY_INLINE void Load(D d, const uint8_t* HWY_RESTRICT src, float* HWY_RESTRICT dst, int32_t n) {
    const hn::Rebind<int32_t, D> di;
    const hn::Rebind<uint8_t, D> du8;
    constexpr int32_t kN = static_cast<int32_t>(hn::MaxLanes(D()));
    const int32_t N = static_cast<int32_t>(hn::Lanes(d));
    constexpr int32_t kHalf = QK4_0 / 2;
    for (int32_t b = 0; b < n / QK4_0; ++b) {
      const auto* blk = reinterpret_cast<const block_q4_0*>(src + b * sizeof(block_q4_0));
      const float scale = LoadScaleF16(d, &blk->d);
      float* o = dst + b * QK4_0;
      if constexpr (kN <= kHalf) {
        const auto vs = hn::Set(d, scale);
        const auto v8 = hn::Set(d, 8.f);
        const auto mask = hn::Set(du8, uint8_t{0x0F});
        for (int32_t i = 0; i < kHalf; i += N) {
          const auto q = hn::LoadU(du8, blk->qs + i);
          const auto lo = hn::ConvertTo(d, hn::PromoteTo(di, hn::And(q, mask)));
          const auto hi = hn::ConvertTo(d, hn::PromoteTo(di, hn::ShiftRight<4>(q)));
          hn::StoreU(hn::Mul(hn::Sub(lo, v8), vs), d, o + i);
          hn::StoreU(hn::Mul(hn::Sub(hi, v8), vs), d, o + kHalf + i);
        }
      } else {
        for (int32_t i = 0; i < kHalf; ++i) {
          o[i] = scale * static_cast<float>((blk->qs[i] & 0x0F) - 8);
          o[i + kHalf] = scale * static_cast<float>((blk->qs[i] >> 4) - 8);
        }
      }
    }
  }
};

// Prefetch into L2, not L1: the tile being computed and its scratch already fill most of the L1.
HWY_INLINE void PrefetchL2(const void* p) {
#if HWY_ARCH_X86
  _mm_prefetch(static_cast<const char*>(p), _MM_HINT_T1);
#else
  hwy::Prefetch(static_cast<const uint8_t*>(p));
#endif
}

// Converts `rows` rows; while doing so asks for the `ahead` rows that start `skip` rows after them, spread
// over the loop so that the requests do not queue up at once.
template <class Row, class D>
HWY_INLINE void LoadRows(D d, const uint8_t* src, int64_t pos_stride, int64_t rows, int32_t n, float* dst,
                         int64_t ld, int64_t ahead, int64_t skip) {
  const size_t rb = Row::RowBytes(n);
  const int64_t per = rows > 0 ? (ahead + rows - 1) / rows : 0;  // rows asked for per converted row
  const uint8_t* next = src + (rows + skip) * pos_stride;
  for (int64_t j = 0; j < rows; ++j) {
    for (int64_t a = j * per; a < std::min(ahead, (j + 1) * per); ++a)
      for (size_t off = 0; off < rb; off += 64) PrefetchL2(next + a * pos_stride + off);
    Row::Load(d, src + j * pos_stride, dst + j * ld, n);
  }
}

// Rows stored one after another (pos_stride == row bytes: kv::KvCache keeps each KV head's positions
// contiguous) are one long row of rows·n values: converted as such into dst [rows][n], in chunks of
// ~512 bytes, each followed by a request for as many bytes `skip` rows past the tile (the `ahead` rows).
// No per-row loop: the row loaders' inner loops run long and unrolled.
template <class Row, class D>
HWY_INLINE void LoadFlat(D d, const uint8_t* src, int64_t rows, int32_t n, float* dst, int64_t ahead, int64_t skip) {
  const size_t rb = Row::RowBytes(n);
  const int64_t chunk = std::max<int64_t>(1, static_cast<int64_t>(512 / rb));  // rows per chunk
  const uint8_t* next = src + (rows + skip) * static_cast<int64_t>(rb);
  const uint8_t* next_end = next + ahead * static_cast<int64_t>(rb);
  for (int64_t j = 0; j < rows; j += chunk) {
    const int64_t c = std::min(chunk, rows - j);
    const uint8_t* pf_end = std::min(next_end, next + c * static_cast<int64_t>(rb));
    for (; next < pf_end; next += 64) PrefetchL2(next);
    Row::Load(d, src + j * static_cast<int64_t>(rb), dst + j * n, static_cast<int32_t>(c * n));
  }
}

HWY_INLINE size_t KvRowBytesNative(DType t, int32_t n) {
  switch (t) {
    case DType::F32: return KvRowF32::RowBytes(n);
    case DType::F16: return KvRowF16::RowBytes(n);
    case DType::BF16: return KvRowBF16::RowBytes(n);
    case DType::Q8_0: return KvRowQ8_0::RowBytes(n);
    case DType::Q4_0: return KvRowQ4_0::RowBytes(n);
    default: return 0;
  }
}

// Asks for rows p0 .. p1-1 of KV head `head` (natively read views only; a decoded view's owner knows
// its layout, the kernel does not).
HWY_INLINE void PrefetchKvRows(const KvView& kv, int32_t head, int64_t p0, int64_t p1, int32_t n) {
  if (kv.decode) return;
  const uint8_t* src = static_cast<const uint8_t*>(kv.data) + head * kv.head_stride;
  const size_t rb = KvRowBytesNative(kv.type, n);
  for (int64_t p = p0; p < p1; ++p)
    for (size_t off = 0; off < rb; off += 64) PrefetchL2(src + p * kv.pos_stride + off);
}

// The rows at src in the format Row into buf: as one long row when they are contiguous (ld = n), else row
// by row (ld = n rounded up to 16). Adds the bytes read to `bytes`.
template <class Row, class D>
HWY_INLINE const float* LoadNativeTile(D d, const KvView& kv, const uint8_t* src, int64_t rows, int32_t n,
                                       float* HWY_RESTRICT buf, int64_t& ld, int64_t& bytes, int64_t ahead,
                                       int64_t skip) {
  const int64_t rb = static_cast<int64_t>(Row::RowBytes(n));
  bytes += rows * rb;
  if (kv.pos_stride == rb) {
    LoadFlat<Row>(d, src, rows, n, buf, ahead, skip);
    ld = n;
  } else {
    ld = (n + 15) & ~int64_t{15};
    LoadRows<Row>(d, src, kv.pos_stride, rows, n, buf, ld, ahead, skip);
  }
  return buf;
}

// Rows j0 .. j0+rows-1 of KV head `head` as float32 [rows][ld]: a pointer into the cache itself for f32
// (no copy), else `buf` filled by the format's loader (ld = head_dim for rows stored contiguously, else
// head_dim rounded up to 16). Returns the rows and sets ld; `bytes` gets the bytes read from the cache. The
// `ahead` rows that start `skip` rows after them are prefetched.
template <class D>
HWY_INLINE const float* LoadKvTile(D d, const KvView& kv, int32_t head, int64_t j0, int64_t rows, int32_t n,
                                   float* HWY_RESTRICT buf, int64_t& ld, int64_t& bytes, int64_t ahead = 0,
                                   int64_t skip = 0) {
  const int64_t ldb = (n + 15) & ~int64_t{15};
  if (kv.decode) {  // a format decoded by its owner (kv/): one indirect call for the whole tile
    kv.decode(kv.decode_ctx, head, j0, j0 + rows, n, buf, ldb);
    bytes += static_cast<int64_t>(kv.decode_bytes_per_row * static_cast<double>(rows) + 0.5);
    ld = ldb;
    (void)d;
    (void)ahead;
    (void)skip;
    return buf;
  }
  const uint8_t* src = static_cast<const uint8_t*>(kv.data) + head * kv.head_stride + j0 * kv.pos_stride;
  switch (kv.type) {
    case DType::F32:
      bytes += rows * static_cast<int64_t>(KvRowF32::RowBytes(n));
      if (kv.pos_stride % 4 == 0 && reinterpret_cast<uintptr_t>(src) % 4 == 0) {
        PrefetchKvRows(kv, head, j0 + rows + skip, j0 + rows + skip + ahead, n);
        ld = kv.pos_stride / 4;
        return reinterpret_cast<const float*>(src);
      }
      LoadRows<KvRowF32>(d, src, kv.pos_stride, rows, n, buf, ldb, ahead, skip);
      break;
    case DType::F16: return LoadNativeTile<KvRowF16>(d, kv, src, rows, n, buf, ld, bytes, ahead, skip);
    case DType::BF16: return LoadNativeTile<KvRowBF16>(d, kv, src, rows, n, buf, ld, bytes, ahead, skip);
    case DType::Q8_0: return LoadNativeTile<KvRowQ8_0>(d, kv, src, rows, n, buf, ld, bytes, ahead, skip);
    case DType::Q4_0: return LoadNativeTile<KvRowQ4_0>(d, kv, src, rows, n, buf, ld, bytes, ahead, skip);
    default:
      fail("attention: KV cache type {} is not supported (supported: f32, f16, bf16, q8_0, q4_0)", dtype_name(kv.type));
  }
  ld = ldb;
  return buf;
}

// Bytes of one row of n values in the view's format.
HWY_INLINE size_t KvRowBytes(const KvView& kv, int32_t n) {
  if (kv.decode) return static_cast<size_t>(kv.decode_bytes_per_row + 0.5);
  return KvRowBytesNative(kv.type, n);
}

}  // namespace strata::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // include guard (per target)
