// The scalar reference matmul (the specification the SIMD kernels are tested against): every row is
// dequantized with the tensor layer's reference, then dotted with each token in double precision.
#include <vector>

#include "core/error.h"
#include "kernels/matmul.h"

namespace strata::kernels::ref {

void matmul(const Weight& w, const float* x, int64_t n_tok, float* y) {
  STRATA_ASSERT(w.rows >= 0 && w.cols >= 0 && n_tok >= 0, "ref::matmul: negative shape");
  require_supported(w.type, "matmul");
  const size_t row_stride = row_bytes(w.type, w.cols);
  std::vector<float> row(static_cast<size_t>(w.cols));
  for (int64_t r = 0; r < w.rows; ++r) {
    dequantize_row(w.type, static_cast<const uint8_t*>(w.data) + r * row_stride, row.data(), w.cols);
    for (int64_t t = 0; t < n_tok; ++t) {
      const float* xt = x + t * w.cols;
      double s = 0.0;
      for (int64_t c = 0; c < w.cols; ++c) s += static_cast<double>(row[c]) * static_cast<double>(xt[c]);
      y[t * w.rows + r] = static_cast<float>(s);
    }
  }
}

}  // namespace strata::kernels::ref
