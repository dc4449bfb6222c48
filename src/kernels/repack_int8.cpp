// Repacking quantized rows from the file layout (ggml blocks) into int8 panels (int8_panel.h).
// Plain C++: it runs once per weight at load, or per tile for weights that were not prepared.
#include <algorithm>
#include <cstring>

#include "core/error.h"
#include "kernels/int8_panel.h"
#include "kernels/matmul_registry.h"
#include "kernels/pack_panel_simd.h"

namespace strata::kernels {

namespace {

constexpr PanelFormat kFormats[] = {
#define STRATA_X(T, SB, G, META, VAL, SUM) {DType::T, SB, G, META, VAL, SUM},
    STRATA_INT8_PANEL_KERNELS(STRATA_X)
#undef STRATA_X
};

size_t round64(size_t n) { return (n + 63) & ~size_t{63}; }

// One superblock of one row, decoded: quants (unsigned as stored, Q8_0 as int8 bits), the fp16 fields
// (d, then dmin or m) and the byte fields (sub-block scales, then mins).
struct Decoded {
  uint8_t q[QK_K];
  uint16_t h[2];
  uint8_t b[16];
};

// ggml's get_scale_min_k4: the 6-bit scale and min of sub-block j of a Q4_K/Q5_K superblock.
void scale_min_k4(int j, const uint8_t* s, uint8_t& sc, uint8_t& m) {
  if (j < 4) {
    sc = s[j] & 63;
    m = s[j + 4] & 63;
  } else {
    sc = (s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4);
    m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
  }
}

void decode_nibbles32(const uint8_t* qs, uint8_t* q) {
  for (int j = 0; j < 16; ++j) {
    q[j] = qs[j] & 0xF;
    q[j + 16] = qs[j] >> 4;
  }
}

template <DType t>
void decode(const uint8_t* blk, Decoded& d) {
  switch (t) {
    case DType::Q4_0: {
      const auto* b = reinterpret_cast<const block_q4_0*>(blk);
      d.h[0] = b->d;
      decode_nibbles32(b->qs, d.q);
      return;
    }
    case DType::Q4_1: {
      const auto* b = reinterpret_cast<const block_q4_1*>(blk);
      d.h[0] = b->d;
      d.h[1] = b->m;
      decode_nibbles32(b->qs, d.q);
      return;
    }
    case DType::Q5_0: {
      const auto* b = reinterpret_cast<const block_q5_0*>(blk);
      d.h[0] = b->d;
      uint32_t qh;
      std::memcpy(&qh, b->qh, 4);
      decode_nibbles32(b->qs, d.q);
      for (int j = 0; j < 32; ++j) d.q[j] |= ((qh >> j) & 1) << 4;
      return;
    }
    case DType::Q8_0: {
      const auto* b = reinterpret_cast<const block_q8_0*>(blk);
      d.h[0] = b->d;
      std::memcpy(d.q, b->qs, 32);
      return;
    }
    case DType::Q4_K:
    case DType::Q5_K: {
      const bool q5 = t == DType::Q5_K;
      const uint8_t* scales;
      const uint8_t* qs;
      const uint8_t* qh = nullptr;
      if (q5) {
        const auto* b = reinterpret_cast<const block_q5_K*>(blk);
        d.h[0] = b->d;
        d.h[1] = b->dmin;
        scales = b->scales;
        qs = b->qs;
        qh = b->qh;
      } else {
        const auto* b = reinterpret_cast<const block_q4_K*>(blk);
        d.h[0] = b->d;
        d.h[1] = b->dmin;
        scales = b->scales;
        qs = b->qs;
      }
      for (int j = 0; j < 8; ++j) scale_min_k4(j, scales, d.b[j], d.b[8 + j]);
      for (int c = 0; c < 4; ++c) {  // 64 columns per 32 bytes: low nibbles first, then high nibbles
        for (int l = 0; l < 32; ++l) {
          uint8_t lo = qs[32 * c + l] & 0xF, hi = qs[32 * c + l] >> 4;
          if (q5) {
            lo |= ((qh[l] >> (2 * c)) & 1) << 4;
            hi |= ((qh[l] >> (2 * c + 1)) & 1) << 4;
          }
          d.q[64 * c + l] = lo;
          d.q[64 * c + 32 + l] = hi;
        }
      }
      return;
    }
    case DType::Q6_K: {
      const auto* b = reinterpret_cast<const block_q6_K*>(blk);
      d.h[0] = b->d;
      std::memcpy(d.b, b->scales, 16);
      for (int half = 0; half < 2; ++half) {
        const uint8_t* ql = b->ql + 64 * half;
        const uint8_t* qh = b->qh + 32 * half;
        uint8_t* q = d.q + 128 * half;
        for (int l = 0; l < 32; ++l) {
          q[l] = (ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4);
          q[l + 32] = (ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4);
          q[l + 64] = (ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4);
          q[l + 96] = (ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4);
        }
      }
      return;
    }
    default:
      STRATA_ASSERT(false, "pack_panel_tile: type without an int8 panel format");
  }
}

constexpr int n_half_fields(DType t) {
  switch (t) {
    case DType::Q4_1: case DType::Q4_K: case DType::Q5_K: return 2;
    default: return 1;
  }
}

// Writes the values of one decoded superblock of row r into the superblock's value section v.
template <DType t>
void place_values(const Decoded& d, int R, int r, int sb, uint8_t* v) {
  const size_t vec = static_cast<size_t>(R) * 4;  // bytes per chunk vector
  switch (t) {
    case DType::Q8_0:
      for (int c = 0; c < 8; ++c)
        for (int j = 0; j < 4; ++j) v[c * vec + 4 * r + j] = d.q[4 * c + j];
      return;
    case DType::Q6_K:
      for (int g = 0; g < sb / 16; ++g) {
        uint8_t* base = v + g * 3 * vec;
        const uint8_t* q = d.q + 16 * g;
        for (int j = 0; j < 4; ++j) {
          for (int p = 0; p < 2; ++p)
            base[p * vec + 4 * r + j] = (q[8 * p + j] & 0xF) | ((q[8 * p + 4 + j] & 0xF) << 4);
          uint8_t hb = 0;
          for (int c = 0; c < 4; ++c) hb |= ((q[4 * c + j] >> 4) & 3) << (2 * c);
          base[2 * vec + 4 * r + j] = hb;
        }
      }
      return;
    default: {  // 4- and 5-bit quants in groups of 32
      const bool q5 = t == DType::Q5_0 || t == DType::Q5_K;
      const size_t group_bytes = (q5 ? 5 : 4) * vec;
      for (int g = 0; g < sb / 32; ++g) {
        uint8_t* base = v + g * group_bytes;
        const uint8_t* q = d.q + 32 * g;
        for (int j = 0; j < 4; ++j) {
          for (int p = 0; p < 4; ++p)
            base[p * vec + 4 * r + j] = (q[8 * p + j] & 0xF) | ((q[8 * p + 4 + j] & 0xF) << 4);
          if (q5) {
            uint8_t hb = 0;
            for (int c = 0; c < 8; ++c) hb |= ((q[4 * c + j] >> 4) & 1) << c;
            base[4 * vec + 4 * r + j] = hb;
          }
        }
      }
      return;
    }
  }
}

}  // namespace

const PanelFormat* panel_format(DType t) {
  for (const auto& f : kFormats)
    if (f.type == t) return &f;
  return nullptr;
}

size_t panel_meta_bytes(const PanelFormat& f, int R, int64_t cols) {
  return round64(static_cast<size_t>(cols / f.sb) * f.meta_bytes * R);
}

size_t panel_tile_bytes(const PanelFormat& f, int R, int64_t cols) {
  return panel_meta_bytes(f, R, cols) + round64(static_cast<size_t>(cols / f.sb) * f.val_bytes * R);
}

namespace {

template <DType t>
void pack_tile(const PanelFormat& f, int R, const void* src, size_t row_stride, int n_rows, int64_t cols,
               uint8_t* dst) {
  const int64_t n_sb = cols / f.sb;
  const size_t meta_bytes = panel_meta_bytes(f, R, cols);
  constexpr int n_h = n_half_fields(t);
  const int n_b = (f.meta_bytes - 2 * n_h);
  const size_t block_bytes = traits(t).type_size;
  Decoded d{};
  for (int r = 0; r < n_rows; ++r) {
    const auto* row = static_cast<const uint8_t*>(src) + r * row_stride;
    for (int64_t s = 0; s < n_sb; ++s) {
      decode<t>(row + s * block_bytes, d);
      uint8_t* meta = dst + s * f.meta_bytes * R;
      for (int i = 0; i < n_h; ++i) std::memcpy(meta + i * 2 * R + 2 * r, &d.h[i], 2);
      for (int i = 0; i < n_b; ++i) meta[n_h * 2 * R + i * R + r] = d.b[i];
      place_values<t>(d, R, r, f.sb, dst + meta_bytes + s * f.val_bytes * R);
    }
  }
}

}  // namespace

void pack_panel_tile(const PanelFormat& f, int R, const void* src, size_t row_stride, int n_rows, int64_t cols,
                     uint8_t* dst) {
  STRATA_ASSERT(cols % f.sb == 0 && n_rows <= R && R > 0, "pack_panel_tile: bad shape");
  // Full tiles of the common types: SIMD gathers, the same bytes (streamed weights pack every tile per call).
  if (pack_panel_tile_simd(f, R, src, row_stride, n_rows, cols, dst)) return;
  pack_panel_tile_scalar(f, R, src, row_stride, n_rows, cols, dst);
}

void pack_panel_tile_scalar(const PanelFormat& f, int R, const void* src, size_t row_stride, int n_rows,
                            int64_t cols, uint8_t* dst) {
  STRATA_ASSERT(cols % f.sb == 0 && n_rows <= R && R > 0, "pack_panel_tile: bad shape");
  std::memset(dst, 0, panel_tile_bytes(f, R, cols));
  switch (f.type) {
#define STRATA_X(T, SB, G, META, VAL, SUM) \
  case DType::T: return pack_tile<DType::T>(f, R, src, row_stride, n_rows, cols, dst);
    STRATA_INT8_PANEL_KERNELS(STRATA_X)
#undef STRATA_X
    default: STRATA_ASSERT(false, "pack_panel_tile: type without an int8 panel format");
  }
}

}  // namespace strata::kernels
