#include "kernels/ref/ops_ref.h"

#include <cmath>

#include "core/error.h"

namespace strata::kernels::ref {

void rope_inv_freq(int n_rot, double base, double freq_scale, const float* freq_factors, float* inv_freq) {
  for (int i = 0; i < n_rot / 2; ++i) {
    const double f = freq_scale * std::pow(base, -2.0 * i / n_rot);
    inv_freq[i] = static_cast<float>(freq_factors ? f / freq_factors[i] : f);
  }
}

void rmsnorm(const float* x, const float* w, float* y, int64_t n_rows, int64_t n, float eps) {
  for (int64_t r = 0; r < n_rows; ++r) {
    const float* xr = x + r * n;
    float* yr = y + r * n;
    double ss = 0;
    for (int64_t i = 0; i < n; ++i) ss += static_cast<double>(xr[i]) * xr[i];
    const double scale = 1.0 / std::sqrt(ss / static_cast<double>(n) + eps);
    for (int64_t i = 0; i < n; ++i) yr[i] = static_cast<float>(xr[i] * scale * w[i]);
  }
}

void rope(float* x, int64_t n_tok, int n_head, int head_dim, int n_rot, int64_t pos0, const float* inv_freq,
          RopeMode mode) {
  for (int64_t t = 0; t < n_tok; ++t) {
    const double pos = static_cast<double>(pos0 + t);
    for (int h = 0; h < n_head; ++h) {
      float* v = x + (t * n_head + h) * head_dim;
      for (int i = 0; i < n_rot / 2; ++i) {
        const double theta = pos * inv_freq[i];
        const double c = std::cos(theta), s = std::sin(theta);
        // kNormal rotates (v[2i], v[2i+1]); kNeox rotates (v[i], v[i + n_rot/2]).
        const int a = mode == RopeMode::kNormal ? 2 * i : i;
        const int b = mode == RopeMode::kNormal ? 2 * i + 1 : i + n_rot / 2;
        const double x0 = v[a], x1 = v[b];
        v[a] = static_cast<float>(x0 * c - x1 * s);
        v[b] = static_cast<float>(x0 * s + x1 * c);
      }
    }
  }
}

void swiglu(const float* gate, const float* up, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const double g = gate[i];
    out[i] = static_cast<float>(g / (1.0 + std::exp(-g)) * up[i]);
  }
}

void add(const float* a, const float* b, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = a[i] + b[i];
}

void add_bias(float* out, const float* bias, int64_t n_rows, int64_t n) {
  for (int64_t r = 0; r < n_rows; ++r)
    for (int64_t i = 0; i < n; ++i) out[r * n + i] += bias[i];
}

void embedding(DType type, const void* table, int64_t n_rows, int64_t n, const int32_t* ids, int64_t n_ids,
               float* out) {
  const size_t rb = row_bytes(type, n);
  for (int64_t t = 0; t < n_ids; ++t) {
    if (ids[t] < 0 || ids[t] >= n_rows) fail("token id {} is out of range: the vocabulary has {} tokens", ids[t], n_rows);
    dequantize_row(type, static_cast<const uint8_t*>(table) + static_cast<size_t>(ids[t]) * rb, out + t * n, n);
  }
}

}  // namespace strata::kernels::ref
