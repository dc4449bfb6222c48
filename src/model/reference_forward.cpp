// The reference forward pass of the Llama family (llama, mistral, qwen2). Read this file top to bottom:
//
//   x = embedding[token]
//   for each layer:
//     h = rmsnorm(x) * attn_norm
//     q, k, v = Wq h (+ bq), Wk h (+ bk), Wv h (+ bv)
//     rotate q and k by the position (RoPE); append k, v to the cache
//     each query head attends over all cached positions of its KV head (grouped-query attention)
//     x += Wo · attention (+ bo)
//     h = rmsnorm(x) * ffn_norm
//     x += W_down (silu(W_gate h) * (W_up h))          (SwiGLU feed-forward)
//   logits = W_out rmsnorm(x) * output_norm
//
// Weights may be of any supported type: each row is dequantized to float32 with the tensor reference
// (tensor/dtype.h) just before it is used, so this pass works on every file the runtime can load.
// Dot products accumulate in double, so the result is as close to exact as float32 weights allow.
#include "model/reference_forward.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace strata::model {

namespace {

// out (rows) = W (rows, cols) · in (cols), dequantizing W one row at a time.
void matmul(const Matrix& w, const float* in, float* out, std::vector<float>& row) {
  row.resize(static_cast<size_t>(w.cols));
  for (int64_t r = 0; r < w.rows; ++r) {
    dequantize_row(w.type, w.row(r), row.data(), w.cols);
    double sum = 0;
    for (int64_t c = 0; c < w.cols; ++c) sum += static_cast<double>(row[c]) * in[c];
    out[r] = static_cast<float>(sum);
  }
}

// out = x / sqrt(mean(x²) + eps) * weight
void rmsnorm(const float* x, const std::vector<float>& weight, float eps, float* out) {
  const size_t n = weight.size();
  double ss = 0;
  for (size_t i = 0; i < n; ++i) ss += static_cast<double>(x[i]) * x[i];
  const double scale = 1.0 / std::sqrt(ss / static_cast<double>(n) + eps);
  for (size_t i = 0; i < n; ++i) out[i] = static_cast<float>(x[i] * scale * weight[i]);
}

void add_bias(float* x, const std::vector<float>& bias) {
  for (size_t i = 0; i < bias.size(); ++i) x[i] += bias[i];  // no-op when the model has no bias
}

// Rotary position embedding of one head vector. Pair i is rotated by the angle
// pos * freq_scale * base^(-2i/n_rot) / factor[i]. Normal mode (Llama) pairs adjacent values (v[2i], v[2i+1]);
// NeoX mode (Qwen2) pairs the two halves (v[i], v[i + n_rot/2]). Values past n_rot are not rotated.
void rope(float* v, int64_t pos, const HParams& hp, const std::vector<float>& factors) {
  const int64_t half = hp.n_rot / 2;
  for (int64_t i = 0; i < half; ++i) {
    double freq = hp.rope_freq_scale * std::pow(hp.rope_freq_base, -2.0 * static_cast<double>(i) / hp.n_rot);
    if (!factors.empty()) freq /= factors[static_cast<size_t>(i)];
    const double angle = static_cast<double>(pos) * freq;
    const double c = std::cos(angle), s = std::sin(angle);
    const bool neox = hp.rope_mode == kernels::RopeMode::kNeox;
    float& a = v[neox ? i : 2 * i];
    float& b = v[neox ? i + half : 2 * i + 1];
    const double x0 = a, x1 = b;
    a = static_cast<float>(x0 * c - x1 * s);
    b = static_cast<float>(x0 * s + x1 * c);
  }
}

// In-place softmax of n scores.
void softmax(float* x, int64_t n) {
  const float mx = *std::max_element(x, x + n);
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += std::exp(static_cast<double>(x[i]) - mx);
  for (int64_t i = 0; i < n; ++i) x[i] = static_cast<float>(std::exp(static_cast<double>(x[i]) - mx) / sum);
}

}  // namespace

ReferenceForward::ReferenceForward(const Model& model, int64_t n_ctx) : m_(model), n_ctx_(n_ctx) {
  const HParams& hp = m_.hparams();
  const auto n = [](int64_t v) { return static_cast<size_t>(v); };
  x_.resize(n(hp.n_embd));
  xb_.resize(n(hp.n_embd));
  q_.resize(n(hp.q_dim()));
  k_.resize(n(hp.k_dim()));
  v_.resize(n(hp.v_dim()));
  att_out_.resize(n(hp.o_dim()));
  proj_.resize(n(hp.n_embd));
  gate_.resize(n(hp.n_ff));
  up_.resize(n(hp.n_ff));
  scores_.resize(n(n_ctx));
  logits_.resize(n(hp.n_vocab));
  key_cache_.assign(n(hp.n_layer), std::vector<float>(n(n_ctx * hp.k_dim())));
  value_cache_.assign(n(hp.n_layer), std::vector<float>(n(n_ctx * hp.v_dim())));
}

std::span<const float> ReferenceForward::forward(int32_t token, int64_t pos) {
  const HParams& hp = m_.hparams();
  const Weights& w = m_.weights();
  if (pos < 0 || pos >= n_ctx_) fail("position {} is outside the context of {} tokens", pos, n_ctx_);
  if (token < 0 || token >= hp.n_vocab) fail("token id {} is out of range: the vocabulary has {} tokens", token, hp.n_vocab);

  // The token's embedding starts the residual stream.
  dequantize_row(w.tok_embd.type, w.tok_embd.row(token), x_.data(), hp.n_embd);

  const int64_t group = hp.n_head / hp.n_head_kv;  // query heads per KV head
  const double scale = 1.0 / std::sqrt(static_cast<double>(hp.head_dim));
  for (int64_t l = 0; l < hp.n_layer; ++l) {
    const LayerWeights& lw = w.layers[static_cast<size_t>(l)];

    // ---- Attention ----
    rmsnorm(x_.data(), lw.attn_norm, hp.rms_eps, xb_.data());
    matmul(lw.wq, xb_.data(), q_.data(), row_);
    matmul(lw.wk, xb_.data(), k_.data(), row_);
    matmul(lw.wv, xb_.data(), v_.data(), row_);
    add_bias(q_.data(), lw.bq);
    add_bias(k_.data(), lw.bk);
    add_bias(v_.data(), lw.bv);
    for (int64_t h = 0; h < hp.n_head; ++h) rope(q_.data() + h * hp.head_dim, pos, hp, w.rope_freq_factors);
    for (int64_t h = 0; h < hp.n_head_kv; ++h) rope(k_.data() + h * hp.head_dim, pos, hp, w.rope_freq_factors);

    // Remember this position's keys and values.
    float* kc = key_cache_[static_cast<size_t>(l)].data();
    float* vc = value_cache_[static_cast<size_t>(l)].data();
    std::copy(k_.begin(), k_.end(), kc + pos * hp.k_dim());
    std::copy(v_.begin(), v_.end(), vc + pos * hp.v_dim());

    for (int64_t h = 0; h < hp.n_head; ++h) {
      const int64_t kvh = h / group;  // the KV head this query head shares
      const float* q = q_.data() + h * hp.head_dim;
      // Score of every position so far: q · k / sqrt(head_dim), then softmax.
      for (int64_t t = 0; t <= pos; ++t) {
        const float* k = kc + t * hp.k_dim() + kvh * hp.head_dim;
        double dot = 0;
        for (int64_t i = 0; i < hp.head_dim; ++i) dot += static_cast<double>(q[i]) * k[i];
        scores_[static_cast<size_t>(t)] = static_cast<float>(dot * scale);
      }
      softmax(scores_.data(), pos + 1);
      // Output of the head: the values weighted by the scores.
      float* out = att_out_.data() + h * hp.head_dim_v;
      for (int64_t i = 0; i < hp.head_dim_v; ++i) {
        double acc = 0;
        for (int64_t t = 0; t <= pos; ++t)
          acc += static_cast<double>(scores_[static_cast<size_t>(t)]) * vc[t * hp.v_dim() + kvh * hp.head_dim_v + i];
        out[i] = static_cast<float>(acc);
      }
    }
    matmul(lw.wo, att_out_.data(), proj_.data(), row_);
    add_bias(proj_.data(), lw.bo);
    for (int64_t i = 0; i < hp.n_embd; ++i) x_[i] += proj_[i];

    // ---- Feed-forward (SwiGLU) ----
    rmsnorm(x_.data(), lw.ffn_norm, hp.rms_eps, xb_.data());
    matmul(lw.w_gate, xb_.data(), gate_.data(), row_);
    matmul(lw.w_up, xb_.data(), up_.data(), row_);
    for (int64_t i = 0; i < hp.n_ff; ++i) {
      const double g = gate_[i];
      gate_[i] = static_cast<float>(g / (1.0 + std::exp(-g)) * up_[i]);  // silu(gate) * up
    }
    matmul(lw.w_down, gate_.data(), proj_.data(), row_);
    for (int64_t i = 0; i < hp.n_embd; ++i) x_[i] += proj_[i];
  }

  // ---- Output head ----
  rmsnorm(x_.data(), w.output_norm, hp.rms_eps, xb_.data());
  matmul(w.output, xb_.data(), logits_.data(), row_);
  return logits_;
}

}  // namespace strata::model
