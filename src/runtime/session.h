// A session: one model, one sequence, its KV cache, a thread pool and the runtime forward pass.
// It remembers which tokens are in the cache so that a new prompt that shares a prefix with them (the next
// turn of a chat) feeds only the tokens that differ.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "core/thread_pool.h"
#include "kv/kv_cache.h"
#include "model/llama_forward.h"
#include "model/model.h"
#include "tensor/dtype.h"

namespace strata::runtime {

struct SessionConfig {
  int64_t n_ctx = 0;          // positions; 0: the model's training context (context_length)
  int n_threads = 0;          // 0: one per hardware thread
  DType type_k = DType::F16;  // KV cache types (ggml types: f32, f16, bf16, q8_0, q4_0, q4_1)
  DType type_v = DType::F16;
  // Any registered KV format (kv/kv_format.h: bfp4r, q4h, gear2, ...); when set, overrides type_k/type_v.
  std::optional<kv::KvFormat> format_k, format_v;
  int32_t kv_window = 0;                            // recent positions kept in f16 (--kv-window)
  std::optional<kv::KvCalibration> kv_calibration;  // channel permutations for bfp4r/bfp8r (identity if none)
  // --kv-budget / --kv-policy: at most max_tokens cached slots; older ones are evicted (sinks and the recent
  // window kept) or merged. evict_batch 0: max_tokens / 8 (an update re-encodes the cache, so not per token).
  kv::KvBudget kv_budget;
  int64_t n_batch = 512;      // most tokens per forward step
};

// Threads to use by default: the hardware threads (at least 1).
int default_threads();

// The KV cache configuration a session of `model` with `cfg` uses (shape from the model, context and
// formats from cfg). Also used by the server for its per-sequence caches.
kv::KvCacheConfig kv_config(const model::Model& model, const SessionConfig& cfg);

class Session {
 public:
  Session(const model::Model& model, const SessionConfig& cfg);

  // Makes the cached sequence equal to `tokens`: keeps the longest common prefix with what is cached and
  // feeds the rest. Returns the logits after the last token (n_vocab values, valid until the next call).
  // Throws strata::Error when tokens is empty or longer than the context.
  std::span<const float> set_tokens(std::span<const int32_t> tokens);
  // Appends tokens after the cached ones; returns the logits after the last one.
  std::span<const float> append(std::span<const int32_t> tokens);
  // Appends tokens and writes the logits after each of them to out ([tokens.size()][n_vocab]).
  void append_all_logits(std::span<const int32_t> tokens, std::vector<float>& out);
  // Keeps the first n cached tokens.
  void rewind(int64_t n);

  // All tokens of the sequence (with a KV budget, more than the cache holds: see kv_slots()).
  const std::vector<int32_t>& tokens() const { return tokens_; }
  // With a KV budget: the metadata of each cached slot (its position, score, merged count).
  const std::vector<kv::KvSlotMeta>& kv_slots() const { return slots_; }
  int64_t n_evictions() const { return n_evictions_; }
  int64_t n_past() const { return static_cast<int64_t>(tokens_.size()); }
  int64_t n_ctx() const { return kv_.n_ctx(); }  // positions (with a budget the cache holds fewer slots)
  int64_t n_vocab() const { return model_.hparams().n_vocab; }
  const model::Model& model() const { return model_; }
  const kv::KvCache& kv() const { return kv_; }
  int n_threads() const { return pool_.size(); }

 private:
  // Feeds tokens (in pieces that fit the budget), writing the logits of the last one or of all of them.
  void feed(std::span<const int32_t> tokens, float* logits, bool all_logits);
  // Evicts/merges per the budget so that n_incoming more tokens fit.
  void make_room(int64_t n_incoming);
  // Clears the cache and the tokens.
  void reset();

  const model::Model& model_;
  ThreadPool pool_;
  kv::KvCache kv_;
  model::LlamaForward fwd_;
  std::vector<int32_t> tokens_;  // the tokens whose keys and values are cached, in order
  std::vector<float> logits_;    // (n_vocab)
  kv::KvBudget budget_;
  std::vector<kv::KvSlotMeta> slots_;  // with a budget: one per cached slot
  int64_t n_evictions_ = 0;            // budget updates applied since the last reset

};

}  // namespace strata::runtime
