#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.h"
#include "kernels/fused_ops.h"
#include "kernels/ref/ops_ref.h"

namespace strata::kernels::ref {

void quantize_block(const float* v, ActFormat f, QAct& o) {
  float amax = 0.0f;
  for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(v[i]));
  const float d = amax / 127.0f, id = amax > 0.0f ? 127.0f / amax : 0.0f;
  int32_t sum[2] = {0, 0};
  for (int i = 0; i < 32; ++i) {
    const int q = static_cast<int>(std::nearbyint(v[i] * id));
    sum[i / 16] += q;
    o.q[i] = f.u8_offset ? static_cast<int8_t>(static_cast<uint8_t>(q + 128)) : static_cast<int8_t>(q);
  }
  o.d = d;
  const float ds = d * f.sum_scale;
  o.s16[0] = ds * static_cast<float>(sum[0]);
  o.s16[1] = ds * static_cast<float>(sum[1]);
  o.s = ds * static_cast<float>(sum[0] + sum[1]);
}

namespace {
void quantize_rows(const float* v, int64_t n_rows, int64_t n, std::span<const ActSlot> slots) {
  STRATA_ASSERT(slots.empty() || n % 32 == 0, "fused quantize: the row length must be a multiple of 32");
  for (const ActSlot& s : slots)
    for (int64_t b = 0; b < n_rows * n / 32; ++b) quantize_block(v + b * 32, s.fmt, s.q[b]);
}
}  // namespace

void rmsnorm_quant(const float* x, const float* w, float* y, int64_t n_rows, int64_t n, float eps,
                   std::span<const ActSlot> slots) {
  std::vector<float> v(static_cast<size_t>(n_rows * n));
  rmsnorm(x, w, v.data(), n_rows, n, eps);
  quantize_rows(v.data(), n_rows, n, slots);
  if (y) std::copy(v.begin(), v.end(), y);
}

void swiglu_quant(const float* gate, const float* up, float* out, int64_t n_rows, int64_t n,
                  std::span<const ActSlot> slots) {
  std::vector<float> v(static_cast<size_t>(n_rows * n));
  swiglu(gate, up, v.data(), n_rows * n);
  quantize_rows(v.data(), n_rows, n, slots);
  if (out) std::copy(v.begin(), v.end(), out);
}

}  // namespace strata::kernels::ref
