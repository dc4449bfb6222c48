// The runtime forward pass of the Llama family: a batch of tokens through all layers at once, with the KV
// cache, threads over matrix rows (kernels::matmul) and attention heads (kernels::attention).
// It computes the same function as ReferenceForward (tested), only faster.
#pragma once
#include <cstdint>
#include <span>
#include <vector>

#include "core/thread_pool.h"
#include "kernels/matmul.h"
#include "kv/kv_cache.h"
#include "model/model.h"
#include "model/sparse_ffn.h"

namespace strata::model {

// One sequence's part of a multi-sequence step (eval_multi): its own cache and the tokens to append to it.
struct SeqStep {
  kv::KvCache* kv = nullptr;         // the sequence's cache; tokens go at positions kv->n_used(), ...
  std::span<const int32_t> tokens;   // at least one
  float* logits = nullptr;           // n_vocab next-token logits of the last token, or null (no output)
};

class LlamaForward {
 public:
  // n_batch: the most tokens processed in one step (longer inputs are split); sizes the scratch buffers.
  LlamaForward(const Model& model, kv::KvCache& kv, ThreadPool& pool, int64_t n_batch = 512);
  // Without a cache of its own: only eval_multi() may be called (the server's scheduler).
  LlamaForward(const Model& model, ThreadPool& pool, int64_t n_batch = 512);

  // Runs `tokens` at positions kv.n_used(), kv.n_used() + 1, ... and appends their keys and values to the
  // cache. Writes to `logits` the next-token logits of the last token (n_vocab values), or with all_logits
  // those of every token ([tokens.size()][n_vocab]). logits may be null (prefill without output).
  // Throws strata::Error when the tokens do not fit in the context.
  void eval(std::span<const int32_t> tokens, float* logits, bool all_logits = false);

  // Several sequences in one step: the rows of all of them go through each weight matrix together (one pass
  // over the weights serves every sequence); rope, the cache update and attention run per sequence. Gives
  // each sequence the logits it would get from eval() alone. The total number of tokens must be at most
  // n_batch(); every cache must match the model's shape. Throws strata::Error when a sequence does not fit
  // in its context or the step is too large.
  void eval_multi(std::span<const SeqStep> seqs);

  int64_t n_batch() const { return n_batch_; }

  // The fused passes (on by default; the environment variable STRATA_NO_FUSE=1 turns them off, for A/B
  // measurements): rmsnorm + quantize and SwiGLU + quantize in one pass each, the wo and down products
  // added to the residual stream in the matmul's store, the keys rotated on their way into the cache.
  // Off: the separate passes. Both compute the same function (tested).
  void set_fused(bool on) { fused_ = on; }
  bool fused() const { return fused_; }

 private:
  void eval_batch(const int32_t* tokens, int64_t n, float* logits, bool all_logits);
  // The forward pass over the rows of several sequences (tokens: all of them, sequence after sequence).
  void run_rows(std::span<const SeqStep> seqs, const int32_t* tokens, int64_t n);
  void ffn_block(const LayerWeights& lw, int64_t l, int64_t n);
  void check_cache(const kv::KvCache& kv) const;
  // Fused path helpers: slots in qact_ for the activation formats of ws over n rows of `cols` values
  // (returns how many; f32: some weight also needs the float rows). 0 when unfused or cols % 32 != 0.
  int act_slots(std::span<const kernels::Weight* const> ws, int64_t n, int64_t cols, kernels::ActSlot* slots,
                bool& f32);
  // rmsnorm(x) with weight norm_w, times each of ws into ys (n rows): fused when possible.
  void norm_matmul(const float* x, const std::vector<float>& norm_w, std::span<const kernels::Weight* const> ws,
                   int64_t n, std::span<float* const> ys);
  // Runs fn(row_begin, row_end) over [0, n), split over the pool's workers when n is large enough.
  template <class Fn>
  void for_rows(int64_t n, Fn&& fn);

  const Model& m_;
  kv::KvCache* kv_;  // eval()'s cache; null for a forward made for eval_multi() only
  ThreadPool& pool_;
  int64_t n_batch_;
  std::vector<float> inv_freq_;  // (n_rot / 2) rope frequencies
  // Scratch for n_batch tokens (rows of the given widths).
  std::vector<float> x_;      // (n_batch, n_embd) residual stream
  std::vector<float> xb_;     // (n_batch, n_embd) normed
  std::vector<float> q_;      // (n_batch, n_head * head_dim)
  std::vector<float> k_;      // (n_batch, n_head_kv * head_dim)
  std::vector<float> v_;      // (n_batch, n_head_kv * head_dim_v)
  std::vector<float> att_;    // (n_batch, n_head * head_dim_v)
  std::vector<float> proj_;   // (n_batch, n_embd)
  std::vector<float> gate_;   // (n_batch, n_ff)
  std::vector<float> up_;     // (n_batch, n_ff)
  std::vector<kernels::QAct> qact_;  // (kMaxActFormats, n_batch, max(n_embd, n_ff) / 32) fused quantized rows
  bool fused_ = true;
  std::vector<int32_t> toks_;  // (n_batch) eval_multi's tokens, gathered
  std::vector<int64_t> pos0_;  // (sequences) first position of each sequence in the current step
  std::vector<float> out_;     // (sequences with logits, n_vocab) eval_multi's logits before scattering
  std::unique_ptr<SparseFfn> sparse_ffn_;  // ReLU, bundled or thresholded FFNs (SparseFfn::needed), else null
};

}  // namespace strata::model
