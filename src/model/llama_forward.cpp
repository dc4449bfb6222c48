#include "model/llama_forward.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "core/error.h"
#include "kernels/attention.h"
#include "kernels/fused_ops.h"
#include "kernels/ops.h"

namespace strata::model {

LlamaForward::LlamaForward(const Model& model, kv::KvCache& kv, ThreadPool& pool, int64_t n_batch)
    : LlamaForward(model, pool, n_batch) {
  check_cache(kv);
  kv_ = &kv;
}

void LlamaForward::check_cache(const kv::KvCache& kv) const {
  const HParams& hp = m_.hparams();
  const kv::KvCacheConfig& c = kv.config();
  STRATA_ASSERT(c.n_layer == hp.n_layer && c.n_head_kv == hp.n_head_kv && c.head_dim_k == hp.head_dim &&
                    c.head_dim_v == hp.head_dim_v,
                "KV cache shape does not match the model");
}

LlamaForward::LlamaForward(const Model& model, ThreadPool& pool, int64_t n_batch)
    : m_(model), kv_(nullptr), pool_(pool), n_batch_(n_batch < 1 ? 1 : n_batch) {
  const HParams& hp = m_.hparams();
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
  qact_.resize(static_cast<size_t>(kernels::kMaxActFormats) * sz(std::max(hp.n_embd, hp.n_ff) / 32));
  toks_.resize(static_cast<size_t>(n_batch_));
  if (const char* e = std::getenv("STRATA_NO_FUSE"); e && *e && *e != '0') fused_ = false;
  if (SparseFfn::needed(m_)) sparse_ffn_ = std::make_unique<SparseFfn>(m_, pool_, n_batch_);
}

template <class Fn>
void LlamaForward::for_rows(int64_t n, Fn&& fn) {
  if (n < 8 || pool_.size() == 1) return fn(int64_t{0}, n);  // a decode step: not worth a hand-off
  pool_.run([&](int worker) {
    int64_t b, e;
    split_range(n, pool_.size(), worker, b, e);
    if (b < e) fn(b, e);
  });
}

int LlamaForward::act_slots(std::span<const kernels::Weight* const> ws, int64_t n, int64_t cols,
                            kernels::ActSlot* slots, bool& f32) {
  f32 = true;
  if (!fused_ || cols % 32 != 0) return 0;
  const kernels::ActNeeds need = kernels::act_needs(ws);
  f32 = need.f32;
  const size_t per = static_cast<size_t>(n * cols / 32);
  for (int i = 0; i < need.n_fmt; ++i) slots[i] = kernels::ActSlot{need.fmt[i], qact_.data() + i * per};
  return need.n_fmt;
}

void LlamaForward::norm_matmul(const float* x, const std::vector<float>& norm_w,
                               std::span<const kernels::Weight* const> ws, int64_t n, std::span<float* const> ys) {
  const HParams& hp = m_.hparams();
  const int64_t c = hp.n_embd;
  kernels::ActSlot slots[kernels::kMaxActFormats];
  bool f32;
  const int ns = act_slots(ws, n, c, slots, f32);
  if (ns == 0) {
    kernels::rmsnorm(x, norm_w.data(), xb_.data(), n, c, hp.rms_eps);
    return kernels::matmul_multi(ws, xb_.data(), n, ys, pool_);
  }
  // One pass: the normed rows quantized for every format the weights want (float rows only if needed).
  float* y = f32 ? xb_.data() : nullptr;
  for_rows(n, [&](int64_t r0, int64_t r1) {
    kernels::ActSlot part[kernels::kMaxActFormats];
    for (int i = 0; i < ns; ++i) part[i] = kernels::ActSlot{slots[i].fmt, slots[i].q + r0 * (c / 32)};
    kernels::rmsnorm_quant(x + r0 * c, norm_w.data(), y ? y + r0 * c : nullptr, r1 - r0, c, hp.rms_eps,
                           std::span<const kernels::ActSlot>(part, static_cast<size_t>(ns)));
  });
  kernels::matmul_multi(ws, kernels::Acts{y, std::span<const kernels::ActSlot>(slots, static_cast<size_t>(ns))}, n,
                        ys, pool_);
}

void LlamaForward::eval(std::span<const int32_t> tokens, float* logits, bool all_logits) {
  const int64_t n = static_cast<int64_t>(tokens.size());
  if (n == 0) return;
  STRATA_ASSERT(kv_ != nullptr, "eval() on a forward made for eval_multi() only");
  const int64_t need = kv_->n_used() + n;
  if (need > kv_->n_ctx())
    fail("the context is full: {} tokens needed but --ctx is {}: raise --ctx to at least {}", need, kv_->n_ctx(), need);
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
  const SeqStep one{kv_, std::span<const int32_t>(tokens, static_cast<size_t>(n)), nullptr};
  run_rows(std::span<const SeqStep>(&one, 1), tokens, n);
  if (!logits) return;

  // Output head: all rows, or only the last one.
  const HParams& hp = m_.hparams();
  const Weights& w = m_.weights();
  const int64_t first = all_logits ? 0 : n - 1;
  const int64_t rows = n - first;
  const kernels::Weight* head[] = {&w.output.kw};
  float* const head_out[] = {logits};
  norm_matmul(x_.data() + first * hp.n_embd, w.output_norm, head, rows, head_out);
}

void LlamaForward::eval_multi(std::span<const SeqStep> seqs) {
  int64_t n = 0;
  for (const SeqStep& s : seqs) {
    STRATA_ASSERT(s.kv != nullptr && !s.tokens.empty(), "eval_multi: a sequence without a cache or tokens");
    check_cache(*s.kv);
    const int64_t need = s.kv->n_used() + static_cast<int64_t>(s.tokens.size());
    if (need > s.kv->n_ctx())
      fail("the context is full: {} tokens needed but the sequence's context is {}: raise --ctx to at least {}",
           need, s.kv->n_ctx(), need);
    n += static_cast<int64_t>(s.tokens.size());
  }
  if (n == 0) return;
  if (n > n_batch_) fail("a step of {} tokens is larger than the batch size {}: raise --batch-size", n, n_batch_);
  int64_t r = 0;
  for (const SeqStep& s : seqs) {
    std::copy(s.tokens.begin(), s.tokens.end(), toks_.begin() + r);
    r += static_cast<int64_t>(s.tokens.size());
  }
  run_rows(seqs, toks_.data(), n);

  // Output head over the last row of each sequence that wants logits, in one matmul.
  const HParams& hp = m_.hparams();
  const Weights& w = m_.weights();
  int64_t n_out = 0;
  r = 0;
  for (const SeqStep& s : seqs) {
    r += static_cast<int64_t>(s.tokens.size());
    if (!s.logits) continue;
    kernels::rmsnorm(x_.data() + (r - 1) * hp.n_embd, w.output_norm.data(), xb_.data() + n_out * hp.n_embd, 1,
                     hp.n_embd, hp.rms_eps);
    ++n_out;
  }
  if (n_out == 0) return;
  out_.resize(static_cast<size_t>(n_out * hp.n_vocab));
  kernels::matmul(w.output.kw, xb_.data(), n_out, out_.data(), pool_);
  int64_t o = 0;
  for (const SeqStep& s : seqs) {
    if (!s.logits) continue;
    std::copy_n(out_.data() + o * hp.n_vocab, hp.n_vocab, s.logits);
    ++o;
  }
}

void LlamaForward::run_rows(std::span<const SeqStep> seqs, const int32_t* tokens, int64_t n) {
  const HParams& hp = m_.hparams();
  const Weights& w = m_.weights();
  pos0_.resize(seqs.size());
  for (size_t i = 0; i < seqs.size(); ++i) {
    pos0_[i] = seqs[i].kv->n_used();
    seqs[i].kv->reserve(pos0_[i] + static_cast<int64_t>(seqs[i].tokens.size()));
  }

  // x = embeddings of the tokens
  m_.embed(tokens, n, x_.data());  // storage hook: gathers the rows from the file when the embeddings stream

  kernels::AttentionShape shape;
  shape.n_head = static_cast<int32_t>(hp.n_head);
  shape.n_head_kv = static_cast<int32_t>(hp.n_head_kv);
  shape.head_dim = static_cast<int32_t>(hp.head_dim);
  shape.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(hp.head_dim)));
  shape.causal = true;
  STRATA_ASSERT(hp.head_dim == hp.head_dim_v, "attention with different K and V head sizes");

  for (int64_t l = 0; l < hp.n_layer; ++l) {
    const LayerWeights& lw = w.layers[static_cast<size_t>(l)];
    // Attention block: q, k, v projections of the normed stream (all sequences' rows together).
    // One parallel section for the three (the activations are quantized once, one hand-off to the workers),
    // on the normed rows quantized in the norm's pass (fused).
    const kernels::Weight* qkv[] = {&lw.wq.kw, &lw.wk.kw, &lw.wv.kw};
    float* const qkv_out[] = {q_.data(), k_.data(), v_.data()};
    norm_matmul(x_.data(), lw.attn_norm, qkv, n, qkv_out);
    if (!lw.bq.empty()) kernels::add_bias(q_.data(), lw.bq.data(), n, hp.q_dim());
    if (!lw.bk.empty()) kernels::add_bias(k_.data(), lw.bk.data(), n, hp.k_dim());
    if (!lw.bv.empty()) kernels::add_bias(v_.data(), lw.bv.data(), n, hp.v_dim());
    // Per sequence: rotate by its positions, store in its cache, attend over it.
    int64_t r0 = 0;
    for (size_t i = 0; i < seqs.size(); ++i) {
      kv::KvCache& kv = *seqs[i].kv;
      const int64_t ns = static_cast<int64_t>(seqs[i].tokens.size());
      const int64_t pos0 = pos0_[i];
      float* q = q_.data() + r0 * hp.q_dim();
      float* k = k_.data() + r0 * hp.k_dim();
      // The rope position is the cache slot plus the tokens a KV budget evicted (0 without a budget).
      const int64_t rope_pos0 = pos0 + kv.pos_offset();
      kernels::rope(q, ns, static_cast<int>(hp.n_head), static_cast<int>(hp.head_dim), static_cast<int>(hp.n_rot),
                    rope_pos0, inv_freq_.data(), hp.rope_mode);
      if (fused_) {  // the keys rotated on their way into the cache (k_ is not written back)
        const kv::RopeParams rp{static_cast<int32_t>(hp.n_rot), inv_freq_.data(), hp.rope_mode};
        kv.store(l, pos0, ns, k, v_.data() + r0 * hp.v_dim(), &rp, rope_pos0);
      } else {
        kernels::rope(k, ns, static_cast<int>(hp.n_head_kv), static_cast<int>(hp.head_dim),
                      static_cast<int>(hp.n_rot), rope_pos0, inv_freq_.data(), hp.rope_mode);
        kv.store(l, pos0, ns, k, v_.data() + r0 * hp.v_dim());
      }
      // KV formats with a channel transform T (kv_cache.h): attention runs in the stored domain, so the
      // query is rotated first (T q) and the output back after (T^-1 out); no-ops for other formats.
      kv.query_to_stored(l, q, ns, hp.n_head);
      kernels::attention(shape, q, ns, pos0, kv.k_view(l), kv.v_view(l), pos0 + ns, att_.data() + r0 * hp.o_dim(),
                         pool_);
      kv.output_from_stored(l, att_.data() + r0 * hp.o_dim(), ns, hp.n_head);
      r0 += ns;
    }
    if (fused_ && lw.bo.empty()) {  // x += wo · att in the matmul's store
      // (with an output bias the separate passes keep x + (wo · att + bo), the order of the reference)
      kernels::matmul(lw.wo.kw, kernels::Acts{att_.data(), {}}, n, x_.data(), pool_, /*accumulate=*/true);
    } else {
      kernels::matmul(lw.wo.kw, att_.data(), n, proj_.data(), pool_);
      if (!lw.bo.empty()) kernels::add_bias(proj_.data(), lw.bo.data(), n, hp.n_embd);
      kernels::add(x_.data(), proj_.data(), x_.data(), n * hp.n_embd);
    }

    if (sparse_ffn_) sparse_ffn_->run(lw, l, x_.data(), n);
    else ffn_block(lw, l, n);
  }
  for (size_t i = 0; i < seqs.size(); ++i) seqs[i].kv->set_used(pos0_[i] + static_cast<int64_t>(seqs[i].tokens.size()));
}

// Feed-forward block (SwiGLU) of layer l over the n rows of the residual stream x_.
void LlamaForward::ffn_block(const LayerWeights& lw, int64_t l, int64_t n) {
  (void)l;
  const HParams& hp = m_.hparams();
  const kernels::Weight* gate_up[] = {&lw.w_gate.kw, &lw.w_up.kw};
  float* const gate_up_out[] = {gate_.data(), up_.data()};
  norm_matmul(x_.data(), lw.ffn_norm, gate_up, n, gate_up_out);
  const kernels::Weight* down[] = {&lw.w_down.kw};
  kernels::ActSlot slots[kernels::kMaxActFormats];
  bool f32;
  const int ns = act_slots(down, n, hp.n_ff, slots, f32);
  if (ns == 0) {
    kernels::swiglu(gate_.data(), up_.data(), gate_.data(), n * hp.n_ff);
  } else {  // silu(gate) * up quantized for the down projection in the same pass
    const int64_t c = hp.n_ff;
    for_rows(n, [&](int64_t r0, int64_t r1) {
      kernels::ActSlot part[kernels::kMaxActFormats];
      for (int i = 0; i < ns; ++i) part[i] = kernels::ActSlot{slots[i].fmt, slots[i].q + r0 * (c / 32)};
      kernels::swiglu_quant(gate_.data() + r0 * c, up_.data() + r0 * c, f32 ? gate_.data() + r0 * c : nullptr,
                            r1 - r0, c, std::span<const kernels::ActSlot>(part, static_cast<size_t>(ns)));
    });
  }
  const kernels::Acts down_in{ns == 0 || f32 ? gate_.data() : nullptr,
                              std::span<const kernels::ActSlot>(slots, static_cast<size_t>(ns))};
  if (fused_) {  // x += down · silu(gate) * up in the matmul's store
    kernels::matmul(lw.w_down.kw, down_in, n, x_.data(), pool_, /*accumulate=*/true);
  } else {
    kernels::matmul(lw.w_down.kw, gate_.data(), n, proj_.data(), pool_);
    kernels::add(x_.data(), proj_.data(), x_.data(), n * hp.n_embd);
  }
}

}  // namespace strata::model
