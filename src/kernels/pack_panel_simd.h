// SIMD packing of one int8-panel tile from the file layout (int8_panel.h), for weights that are used in
// their file layout: the streamed ones (storage/ reads them into a ring each token, so every tile is
// packed on every call) and the load-time repack.
//
// The packed bytes are exactly those of the scalar packer (pack_panel_tile_scalar, the reference), so a
// streamed matmul gives bit-identical results with a repacked one. One superblock of a full tile is R
// gathers of 4 bytes per int32 lane (lane r reads row r): the 4-column chunks of the panel are the int32
// words of the rows, so a gather is already the transposed vector; nibble re-pairing and 6-bit scale
// unpacking are 32-bit lane operations.
#pragma once
#include <cstddef>
#include <cstdint>

#include "kernels/int8_panel.h"

namespace strata::kernels {

// Packs a full tile (n_rows == R) of Q4_0, Q4_1, Q8_0 or Q4_K on the current SIMD target when R is its
// number of int32 lanes; returns false (nothing written) for any other case, which the caller packs with
// the scalar packer.
bool pack_panel_tile_simd(const PanelFormat& f, int R, const void* src, size_t row_stride, int n_rows,
                          int64_t cols, uint8_t* dst);

// The scalar packer (repack_int8.cpp): the reference the SIMD packer is tested against.
void pack_panel_tile_scalar(const PanelFormat& f, int R, const void* src, size_t row_stride, int n_rows,
                            int64_t cols, uint8_t* dst);

}  // namespace strata::kernels
