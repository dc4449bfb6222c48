#include "model/llama_forward.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "kernels/attention.h"
#include "kernels/ops.h"

namespace strata::model {

LlamaForward::LlamaForward(const Model& model, kv::KvCache& kv, ThreadPool& pool, int64_t n_batch)
    : m_(model), kv_(kv), pool_(pool), n_batch_(n_batch < 1 ? 1 : n_batch) {
  const HParams& hp = m_.hparams();
  const kv::KvCacheConfig& c = kv_.config();
  STRATA_ASSERT(c.n_layer == hp.n_layer && c.n_head_kv == hp.n_head_kv && c.head_dim_k == hp.head_dim &&
                    c.head_dim_v == hp.head_dim_v,
                "KV cache shape does not match the model");
  inv_freq_.resize(static_cast<size_t>(hp.n_rot / 2));
  const auto& ff = m_.weights().rope_freq_factors;
  kernels::rope_inv_freq(static_cast<int>(hp.n_rot), hp.rope_freq_base, hp.rope_freq_scale,
                         ff.empty() ? nullptr : ff.data(), inv_freq_.data());
  const auto sz = [&](int64_t w) { return static_cast<size_t>(n_batch_ * w); };
  x_.resize(sz(hp.n_embd));
  xb_.resize(sz(hp.n_embd));
  q_.resize(sz(hp.q_dim()));
  k_.resize(sz(hp.k_dim()));
  v_.resize(sz(hp.v_dim()));
  att_.resize(sz(hp.o_dim()));
  proj_.resize(sz(hp.n_embd));
  gate_.resize(sz(hp.n_ff));
  up_.resize(sz(hp.n_ff));
}

void LlamaForward::eval(std::span<const int32_t> tokens, float* logits, bool all_logits) {
  const int64_t n = static_cast<int64_t>(tokens.size());
  if (n == 0) return;
  const int64_t need = kv_.n_used() + n;
  if (need > kv_.n_ctx())
    fail("the context is full: {} tokens needed but --ctx is {}: raise --ctx to at least {}", need, kv_.n_ctx(), need);
  const int64_t n_vocab = m_.hparams().n_vocab;
  for (int64_t b = 0; b < n; b += n_batch_) {
    const int64_t nb = std::min(n_batch_, n - b);
    const bool last = b + nb == n;
    float* out = nullptr;
    if (logits && all_logits) out = logits + b * n_vocab;
    else if (logits && last) out = logits;
    eval_batch(tokens.data() + b, nb, out, all_logits);
  }
}

void LlamaForward::eval_batch(const int32_t* tokens, int64_t n, float* logits, bool all_logits) {
  const HParams& hp = m_.hparams();
  const Weights& w = m_.weights();
  const int64_t pos0 = kv_.n_used();
  kv_.reserve(pos0 + n);

  // x = embeddings of the tokens
  kernels::embedding(w.tok_embd.type, w.tok_embd.data, hp.n_vocab, hp.n_embd, tokens, n, x_.data());

  kernels::AttentionShape shape;
  shape.n_head = static_cast<int32_t>(hp.n_head);
  shape.n_head_kv = static_cast<int32_t>(hp.n_head_kv);
  shape.head_dim = static_cast<int32_t>(hp.head_dim);
  shape.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(hp.head_dim)));
  shape.causal = true;
  STRATA_ASSERT(hp.head_dim == hp.head_dim_v, "attention with different K and V head sizes");

  for (int64_t l = 0; l < hp.n_layer; ++l) {
    const LayerWeights& lw = w.layers[static_cast<size_t>(l)];
    // Attention block: q, k, v projections of the normed stream, rotated by position.
    kernels::rmsnorm(x_.data(), lw.attn_norm.data(), xb_.data(), n, hp.n_embd, hp.rms_eps);
    kernels::matmul(lw.wq.kw, xb_.data(), n, q_.data(), pool_);
    kernels::matmul(lw.wk.kw, xb_.data(), n, k_.data(), pool_);
    kernels::matmul(lw.wv.kw, xb_.data(), n, v_.data(), pool_);
    if (!lw.bq.empty()) kernels::add_bias(q_.data(), lw.bq.data(), n, hp.q_dim());
    if (!lw.bk.empty()) kernels::add_bias(k_.data(), lw.bk.data(), n, hp.k_dim());
    if (!lw.bv.empty()) kernels::add_bias(v_.data(), lw.bv.data(), n, hp.v_dim());
    kernels::rope(q_.data(), n, static_cast<int>(hp.n_head), static_cast<int>(hp.head_dim),
                  static_cast<int>(hp.n_rot), pos0, inv_freq_.data(), hp.rope_mode);
    kernels::rope(k_.data(), n, static_cast<int>(hp.n_head_kv), static_cast<int>(hp.head_dim),
                  static_cast<int>(hp.n_rot), pos0, inv_freq_.data(), hp.rope_mode);
    kv_.store(l, pos0, n, k_.data(), v_.data());
    kernels::attention(shape, q_.data(), n, pos0, kv_.k_view(l), kv_.v_view(l), pos0 + n, att_.data(), pool_);
    kernels::matmul(lw.wo.kw, att_.data(), n, proj_.data(), pool_);
    if (!lw.bo.empty()) kernels::add_bias(proj_.data(), lw.bo.data(), n, hp.n_embd);
    kernels::add(x_.data(), proj_.data(), x_.data(), n * hp.n_embd);

    // Feed-forward block (SwiGLU).
    kernels::rmsnorm(x_.data(), lw.ffn_norm.data(), xb_.data(), n, hp.n_embd, hp.rms_eps);
    kernels::matmul(lw.w_gate.kw, xb_.data(), n, gate_.data(), pool_);
    kernels::matmul(lw.w_up.kw, xb_.data(), n, up_.data(), pool_);
    kernels::swiglu(gate_.data(), up_.data(), gate_.data(), n * hp.n_ff);
    kernels::matmul(lw.w_down.kw, gate_.data(), n, proj_.data(), pool_);
    kernels::add(x_.data(), proj_.data(), x_.data(), n * hp.n_embd);
  }
  kv_.set_used(pos0 + n);
  if (!logits) return;

  // Output head: all rows, or only the last one.
  const int64_t first = all_logits ? 0 : n - 1;
  const int64_t rows = n - first;
  kernels::rmsnorm(x_.data() + first * hp.n_embd, w.output_norm.data(), xb_.data(), rows, hp.n_embd, hp.rms_eps);
  kernels::matmul(w.output.kw, xb_.data(), rows, logits, pool_);
}

}  // namespace strata::model
