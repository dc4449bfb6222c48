// Internal interface between matmul.cpp (validation, repacking, threading) and the per-target kernels
// (gemm_int8_*.cpp, gemm_float.cpp). Each entry point runs the SIMD target Highway chose for this CPU.
#pragma once
#include <cstddef>
#include <cstdint>

#include "kernels/int8_panel.h"
#include "kernels/quantize_act.h"
#include "tensor/dtype.h"

namespace strata::kernels::detail {

// One int8-panel matmul, shared by all workers.
struct Int8Args {
  const PanelFormat* fmt = nullptr;
  int R = 0;                        // rows per tile (int8_tile_rows() when packed)
  const uint8_t* panel = nullptr;   // n_tiles * tile_bytes packed tiles, or null: pack into scratch per tile
  size_t tile_bytes = 0, meta_bytes = 0;
  const uint8_t* data = nullptr;    // the weight in the file layout
  size_t row_stride = 0;            // bytes per row in the file layout
  int64_t rows = 0, cols = 0, n_tok = 0;
  const QAct* act = nullptr;        // [n_tok][cols / 32]
  float* y = nullptr;               // [n_tok][rows]
  bool accumulate = false;          // y += the product (else y =)
};

// Rows per int8 tile on the current target; 0 when the target has no int8 kernels (the scalar fallback
// then runs the dequantize path).
int int8_tile_rows();
// Whether the current target's kernel for an int8-panel type wants its activations quantized with
// u8_offset (quantize_act.h): Q8_0 on AVX3_DL.
bool int8_act_u8(DType t);
// Computes y for the row tiles [tile_begin, tile_end). scratch: panel_tile_bytes() bytes, 64-aligned,
// used when a.panel is null.
void int8_matmul_tiles(const Int8Args& a, int64_t tile_begin, int64_t tile_end, uint8_t* scratch);

// One float (or dequantize-path) matmul, shared by all workers.
struct FloatArgs {
  DType type = DType::F32;
  const uint8_t* data = nullptr;
  size_t row_stride = 0;
  int64_t rows = 0, cols = 0, n_tok = 0;
  const float* x = nullptr;  // [n_tok][cols]
  float* y = nullptr;        // [n_tok][rows]
  bool accumulate = false;   // y += the product (else y =)
};

// Rows per float tile on the current target (work is split across threads in multiples of it).
int float_tile_rows();
// F32/F16/BF16 weights: computes y for rows [row_begin, row_end).
void float_matmul_rows(const FloatArgs& a, int64_t row_begin, int64_t row_end);
// Any supported type: dequantizes each row into `scratch` (cols floats) with the scalar reference, then
// takes its float dot with every token.
void dequant_matmul_rows(const FloatArgs& a, int64_t row_begin, int64_t row_end, float* scratch);

}  // namespace strata::kernels::detail
