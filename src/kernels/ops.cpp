// Fast versions of the per-row operations. RMSNorm and SwiGLU use Highway with dynamic dispatch (the widest
// instruction set of this CPU, chosen once at first call); the rest are plain loops the compiler vectorizes.
// The same target list as the matmul kernels (simd_config.h), so that the fused rmsnorm/SwiGLU + quantize
// passes (fused_ops.cpp) run the same arithmetic as these on every target.
#include "kernels/simd_config.h"  // first: the target list

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/ops.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>
#include <hwy/contrib/math/math-inl.h>

#include "kernels/rms_scale-inl.h"

#include <cmath>
#include <cstdint>
#include <vector>

HWY_BEFORE_NAMESPACE();
namespace strata::kernels::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

void RmsnormRows(const float* x, const float* w, float* y, int64_t n_rows, int64_t n, float eps) {
  const hn::ScalableTag<float> d;
  const int64_t L = static_cast<int64_t>(hn::Lanes(d));
  for (int64_t r = 0; r < n_rows; ++r) {
    const float* xr = x + r * n;
    float* yr = y + r * n;
    const float scale = kernels::HWY_NAMESPACE::RmsScale(xr, n, eps);
    const auto vs = hn::Set(d, scale);
    int64_t i = 0;
    for (; i + L <= n; i += L)
      hn::StoreU(hn::Mul(hn::Mul(hn::LoadU(d, xr + i), vs), hn::LoadU(d, w + i)), d, yr + i);
    for (; i < n; ++i) yr[i] = xr[i] * scale * w[i];
  }
}

void Swiglu(const float* gate, const float* up, float* out, int64_t n) {
  const hn::ScalableTag<float> d;
  const int64_t L = static_cast<int64_t>(hn::Lanes(d));
  const auto one = hn::Set(d, 1.0f), lim = hn::Set(d, 88.0f);  // exp(88) is finite in float
  int64_t i = 0;
  for (; i + L <= n; i += L) {
    const auto g = hn::LoadU(d, gate + i);
    const auto e = hn::Exp(d, hn::Min(hn::Neg(g), lim));
    hn::StoreU(hn::Mul(hn::Div(g, hn::Add(one, e)), hn::LoadU(d, up + i)), d, out + i);
  }
  for (; i < n; ++i) out[i] = gate[i] / (1.0f + std::exp(std::fmin(-gate[i], 88.0f))) * up[i];
}

}  // namespace strata::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include "core/error.h"
#include "kernels/ops.h"

namespace strata::kernels {

HWY_EXPORT(RmsnormRows);
HWY_EXPORT(Swiglu);

void rmsnorm(const float* x, const float* w, float* y, int64_t n_rows, int64_t n, float eps) {
  HWY_DYNAMIC_DISPATCH(RmsnormRows)(x, w, y, n_rows, n, eps);
}

void swiglu(const float* gate, const float* up, float* out, int64_t n) {
  HWY_DYNAMIC_DISPATCH(Swiglu)(gate, up, out, n);
}

void rope_inv_freq(int n_rot, double base, double freq_scale, const float* freq_factors, float* inv_freq) {
  for (int i = 0; i < n_rot / 2; ++i) {
    const double f = freq_scale * std::pow(base, -2.0 * i / n_rot);
    inv_freq[i] = static_cast<float>(freq_factors ? f / freq_factors[i] : f);
  }
}

void rope_cos_sin(int64_t pos, int n_rot, const float* inv_freq, float* cs) {
  const double p = static_cast<double>(pos);
  for (int i = 0; i < n_rot / 2; ++i) {
    const double theta = p * inv_freq[i];
    cs[2 * i] = static_cast<float>(std::cos(theta));
    cs[2 * i + 1] = static_cast<float>(std::sin(theta));
  }
}

void rope_head(const float* x, float* y, int head_dim, int n_rot, const float* cs, RopeMode mode) {
  const int half = n_rot / 2;
  if (y != x)
    for (int i = n_rot; i < head_dim; ++i) y[i] = x[i];
  if (mode == RopeMode::kNormal) {
    for (int i = 0; i < half; ++i) {
      const float x0 = x[2 * i], x1 = x[2 * i + 1], c = cs[2 * i], s = cs[2 * i + 1];
      y[2 * i] = x0 * c - x1 * s;
      y[2 * i + 1] = x0 * s + x1 * c;
    }
  } else {
    for (int i = 0; i < half; ++i) {
      const float x0 = x[i], x1 = x[i + half], c = cs[2 * i], s = cs[2 * i + 1];
      y[i] = x0 * c - x1 * s;
      y[i + half] = x0 * s + x1 * c;
    }
  }
}

void rope(float* x, int64_t n_tok, int n_head, int head_dim, int n_rot, int64_t pos0, const float* inv_freq,
          RopeMode mode) {
  thread_local std::vector<float> cs;  // cos, sin of each pair's angle at this position
  cs.resize(static_cast<size_t>(n_rot));
  for (int64_t t = 0; t < n_tok; ++t) {
    rope_cos_sin(pos0 + t, n_rot, inv_freq, cs.data());
    for (int h = 0; h < n_head; ++h) {
      float* v = x + (t * n_head + h) * head_dim;
      rope_head(v, v, head_dim, n_rot, cs.data(), mode);
    }
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
    if (ids[t] < 0 || ids[t] >= n_rows)
      fail("token id {} is out of range: the vocabulary has {} tokens", ids[t], n_rows);
    dequantize_row(type, static_cast<const uint8_t*>(table) + static_cast<size_t>(ids[t]) * rb, out + t * n, n);
  }
}

}  // namespace strata::kernels
#endif  // HWY_ONCE
