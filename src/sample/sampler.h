// The sampler chain: penalties -> top-k -> top-p -> min-p -> temperature -> draw (or greedy).
// Deterministic for a given seed (independent of thread count: sampling is single-threaded).
#pragma once
#include <cstdint>
#include <deque>
#include <random>
#include <span>
#include <vector>

namespace strata {

struct SamplerParams {
  float temperature = 0.8f;      // <= 0: greedy (argmax, lowest id on ties)
  int32_t top_k = 40;            // <= 0: off
  float top_p = 0.95f;           // >= 1: off
  float min_p = 0.05f;           // <= 0: off
  float repeat_penalty = 1.0f;   // 1: off (llama.cpp semantics: logit>0 divided, <0 multiplied)
  int32_t repeat_last_n = 64;    // window of recent tokens the penalties look at
  float presence_penalty = 0.0f;
  float frequency_penalty = 0.0f;
  uint64_t seed = 0xFFFFFFFFu;   // 0xFFFFFFFF: a random seed (reported by seed())
};

struct TokenProb {
  int32_t id;
  float logit;  // after penalties/temperature
  float p;      // probability after the chain
};

class Sampler {
 public:
  Sampler(const SamplerParams& params, int32_t n_vocab);
  // Picks the next token from raw logits (n_vocab values). Does not modify the input.
  int32_t sample(std::span<const float> logits);
  // Records a token (prompt or generated) for the penalties.
  void accept(int32_t id);
  void reset();
  uint64_t seed() const { return seed_; }
  // Candidates that survived the chain at the last sample() call, most likely first (for logprobs).
  const std::vector<TokenProb>& last_candidates() const { return cands_; }
  const SamplerParams& params() const { return p_; }

  // The n most likely tokens of raw logits with their softmax probabilities over the whole vocabulary
  // (temperature 1, no penalties), most likely first, lowest id first on ties: for logprobs reports.
  static std::vector<TokenProb> top_n(std::span<const float> logits, int32_t n);

 private:
  void apply_penalties(std::span<const float> logits);  // work_ = logits with the penalties applied
  int32_t sample_greedy();
  int32_t sample_dist();

  SamplerParams p_;
  int32_t n_vocab_;
  uint64_t seed_;
  std::mt19937_64 rng_;
  std::deque<int32_t> recent_;
  std::vector<TokenProb> cands_;
  std::vector<float> work_;            // (n_vocab) penalised logits of the current sample() call
  std::vector<int32_t> window_;        // scratch: sorted copy of recent_ for counting
  std::vector<double> weights_;        // scratch: unnormalised probabilities of cands_
};

}  // namespace strata
