// The reference forward pass: plain scalar float32 code, one token at a time, that a newcomer can read top
// to bottom (in the spirit of llama2.c's run.c). It is the specification the fast runtime path
// (model/llama_forward.h) is tested against, and deliberately shares no code with it.
#pragma once
#include <cstdint>
#include <span>
#include <vector>

#include "model/model.h"

namespace strata::model {

class ReferenceForward {
 public:
  // n_ctx: the most positions this pass will see (its KV cache is allocated for them up front).
  ReferenceForward(const Model& model, int64_t n_ctx);

  // Runs `token` at position `pos` through the model and returns the logits of the next token (n_vocab).
  // Positions must be fed in order 0, 1, 2, ... (going back to an earlier pos overwrites from there).
  std::span<const float> forward(int32_t token, int64_t pos);

 private:
  const Model& m_;
  int64_t n_ctx_;
  // Activations of the current token.
  std::vector<float> x_;       // (n_embd) the residual stream
  std::vector<float> xb_;      // (n_embd) x after a norm
  std::vector<float> q_;       // (n_head * head_dim)
  std::vector<float> k_;       // (n_head_kv * head_dim)
  std::vector<float> v_;       // (n_head_kv * head_dim_v)
  std::vector<float> att_out_; // (n_head * head_dim_v)
  std::vector<float> proj_;    // (n_embd) attention or FFN output before the residual add
  std::vector<float> gate_;    // (n_ff)
  std::vector<float> up_;      // (n_ff)
  std::vector<float> scores_;  // (n_ctx) attention scores of one head
  std::vector<float> row_;     // (max cols) one dequantized weight row
  std::vector<float> logits_;  // (n_vocab)
  // KV cache, float32: key_cache_[layer] is (n_ctx, n_head_kv * head_dim), value_cache_ the same with head_dim_v.
  std::vector<std::vector<float>> key_cache_, value_cache_;
};

}  // namespace strata::model
