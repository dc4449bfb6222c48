// The int8 panel: the layout quantized weights are repacked into for the int8 GEMV/GEMM kernels
// (gemm_int8_*.cpp). Repacking happens once at load (prepare_weight) or, for a weight that was not
// prepared, tile by tile into a scratch buffer. The file format never changes.
//
// Rows are grouped in tiles of R rows, R = the number of int32 lanes of the SIMD target (4 on SSE4/NEON,
// 8 on AVX2, 16 on AVX-512). A tile holds all `cols` columns of its R rows (the last tile is padded with
// zero rows) in two sections, each starting 64-byte aligned:
//   meta   per superblock: the scales of the R rows (fp16 d, dmin; u8/i8 sub-block scales and mins)
//   values per superblock: the quants, as vectors of R*4 bytes. Byte r*4 + j of the vector of "chunk" c
//          belongs to row r, column 4c + j, so one int32 lane holds 4 consecutive columns of one row and a
//          u8 x i8 dot with 4 broadcast activation bytes (maddubs / vpdpbusd) gives R row sums at once.
//          4-bit quants pack chunk 2p in the low and 2p+1 in the high nibbles of vector p of a group;
//          5th bits (Q5) sit in one extra vector per 32-column group (bit c of a byte: chunk c), the two
//          high bits of Q6_K in one extra vector per 16-column group (bits 2c, 2c+1: chunk c).
// Quants are stored unsigned as in the file (Q4: 0..15, Q5: 0..31, Q6: 0..63) with the offset folded
// into the bias term (Q4_0: -8*d, Q5_0: -16*d, Q6_K: -32*d*sc); Q8_0 stays signed.
// Sizes per row and superblock equal the file's, except Q4_K/Q5_K: +4 bytes per 256 columns (the 6-bit
// scales are stored as bytes), i.e. +2.8% and +2.3%.
#pragma once
#include <cstddef>
#include <cstdint>

#include "tensor/dtype.h"

namespace strata::kernels {

// One row of the family registry: a weight type with an int8 panel kernel.
struct PanelFormat {
  DType type;
  int sb;          // columns per superblock (the unit of the meta section): 32 or 256
  int group;       // columns per scale group: 32, or 16 for Q6_K
  int meta_bytes;  // per row and superblock
  int val_bytes;   // per row and superblock
  int act_sum_scale;  // the activation sums (QAct::s, s16) are multiplied by it: the quant offset, or 1
};

// The panel format of a type, or nullptr when the type has no int8 panel kernel.
const PanelFormat* panel_format(DType t);

// Byte sizes of one tile of R rows over `cols` columns (cols a multiple of the superblock).
size_t panel_meta_bytes(const PanelFormat& f, int R, int64_t cols);  // rounded up to 64
size_t panel_tile_bytes(const PanelFormat& f, int R, int64_t cols);   // meta + values, rounded up to 64

// Packs rows [0, n_rows) of a tile (n_rows <= R; rows n_rows..R-1 become zeros) from the file layout:
// row i starts at src + i * row_stride. dst must hold panel_tile_bytes(f, R, cols) bytes.
void pack_panel_tile(const PanelFormat& f, int R, const void* src, size_t row_stride, int n_rows, int64_t cols,
                     uint8_t* dst);

}  // namespace strata::kernels
