// Matrix multiplication of a weight matrix in any supported DType with float32 activations.
// This is the one entry point the model uses; which kernel runs is decided inside (dispatch.cpp).
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "core/thread_pool.h"
#include "kernels/quantize_act.h"
#include "tensor/dtype.h"

namespace strata::kernels {

// Bytes that are not in memory until a matmul needs them (storage/ streams weights over the memory budget
// from the model file): matmul calls acquire() for the file-layout bytes before computing, release() after.
class WeightSource {
 public:
  virtual ~WeightSource() = default;
  virtual const void* acquire() = 0;  // throws strata::Error when the bytes cannot be read
  virtual void release() = 0;
};

// A weight matrix: rows × cols, row-major, each row row_bytes(type, cols) bytes (ggml layout: ne[0]=cols).
// `packed` optionally holds a copy repacked at load into the layout the fast kernel prefers (`data` may
// then be null: the file-layout bytes were dropped). With `source` set, data is null and the bytes are
// acquired from it for each call.
struct Weight {
  DType type = DType::F32;
  const void* data = nullptr;
  int64_t rows = 0;
  int64_t cols = 0;
  std::shared_ptr<const void> packed;  // owned repacked copy, or null
  WeightSource* source = nullptr;      // streamed weight (not owned), or null
};

// Y[t][r] = sum_c W[r][c] * X[t][c] for t < n_tok.  X: [n_tok][cols], Y: [n_tok][rows] (float32).
void matmul(const Weight& w, const float* x, int64_t n_tok, float* y, ThreadPool& pool);

// Several weights times the same activations, ys[i] = ws[i] · x ([n_tok][ws[i]->rows] each): the q/k/v
// projections, the FFN gate and up. The same results as one matmul() per weight, in one parallel section:
// the activations are quantized once and the row tiles of all the weights are shared out together (one
// hand-off to the workers instead of one per weight). Every weight must have the same number of columns.
void matmul_multi(std::span<const Weight* const> ws, const float* x, int64_t n_tok, std::span<float* const> ys,
                  ThreadPool& pool);

// Activations of a matmul given as float rows and/or rows a fused producer already quantized
// (fused_ops.h). The int8 kernels take the slot of their activation format when there is one, else they
// quantize x; float and dequantized weights (and the scalar target) read x, which may be null only when
// act_needs() says no weight needs it.
struct Acts {
  const float* x = nullptr;     // [n_tok][cols] float32, or null
  std::span<const ActSlot> q;   // quantized rows, one slot per activation format
};

// What the weights ws need of their activations on the current target: the distinct activation formats of
// their int8 kernels (at most kMaxActFormats) and whether any of them reads the float rows.
struct ActNeeds {
  ActFormat fmt[kMaxActFormats];
  int n_fmt = 0;
  bool f32 = false;
};
ActNeeds act_needs(std::span<const Weight* const> ws);

// matmul() and matmul_multi() on given activations. With accumulate, y += W·x (the residual stream takes
// the product in the kernels' store, with no second pass); without, y = W·x.
void matmul(const Weight& w, const Acts& x, int64_t n_tok, float* y, ThreadPool& pool, bool accumulate = false);
void matmul_multi(std::span<const Weight* const> ws, const Acts& x, int64_t n_tok, std::span<float* const> ys,
                  ThreadPool& pool);

// Prepares a weight for the fast kernels (may repack; never changes the file).
Weight prepare_weight(DType type, const void* data, int64_t rows, int64_t cols);

// Bytes of the repacked copy prepare_weight made (0 when the weight is used in its file layout).
// Int8-panel types repack into a copy the size of the file's data (Q4_K/Q5_K: +2.8%/+2.3%), plus zero
// rows up to a multiple of the tile (16 rows on AVX-512); the loader may drop the file's pages after it.
size_t packed_bytes(const Weight& w);

// ---- SIMD targets (Highway dynamic dispatch; see simd_config.h) ----
// The targets the kernels were compiled for that this CPU supports, best first (Highway HWY_* bits).
// Tests run each one with hwy::SetSupportedTargetsForTest(target).
std::vector<int64_t> simd_targets();
// The target the kernels run on now, and a target's name ("AVX3_DL", "AVX2", "SSE4", "SCALAR", ...).
int64_t simd_target();
const char* simd_target_name(int64_t target);

namespace ref {
// Scalar reference: dequantize each row to float32, then a plain float dot product (double accumulate).
void matmul(const Weight& w, const float* x, int64_t n_tok, float* y);
}  // namespace ref

}  // namespace strata::kernels
