// The sampler chain, with llama.cpp's semantics (src/llama-sampling.cpp, common/sampling.cpp):
//   penalties -> top-k -> top-p -> min-p -> temperature -> seeded draw   (temperature <= 0: greedy).
//
// top-k, top-p and min-p each keep a prefix of the candidates sorted by logit, so the chain never needs
// to sort the whole vocabulary when one of them is set:
//  - top-k: a bounded heap over the vocabulary, O(n log k);
//  - min-p (p_i >= min_p * p_max, i.e. logit >= max_logit + log(min_p)) does not depend on how the
//    candidates are normalised, so without top-k it is applied first as an O(n) filter;
//  - top-p alone: the nucleus is found among the best 64, 512, ... candidates until it closes.
// Probabilities are computed in double; ties are broken by the lower token id, so results are exact and
// reproducible for a seed on every platform (the draw uses our own 53-bit uniform, not std::*_distribution).
#include "sample/sampler.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>

#include "core/error.h"

namespace strata {
namespace {

constexpr uint64_t kRandomSeed = 0xFFFFFFFFu;
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// Candidate order: higher logit first, lower id first on ties (a strict weak order; NaN never enters).
inline bool better(const TokenProb& a, const TokenProb& b) {
  return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
}

inline float no_nan(float v) { return std::isnan(v) ? kNegInf : v; }

// The k best entries of x (1 <= k <= x.size()), sorted best first, into out.
void select_top(std::span<const float> x, int64_t k, std::vector<TokenProb>& out) {
  const auto n = static_cast<int64_t>(x.size());
  out.clear();
  if (k >= n || k > 1024) {
    out.resize(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) out[i] = {static_cast<int32_t>(i), no_nan(x[i]), 0.0f};
    if (k < n) {
      std::nth_element(out.begin(), out.begin() + k, out.end(), better);
      out.resize(static_cast<size_t>(k));
    }
    std::sort(out.begin(), out.end(), better);
    return;
  }
  // Bounded heap: with `better` as the comparator the heap's front is the worst entry kept so far.
  out.reserve(static_cast<size_t>(k));
  for (int64_t i = 0; i < k; ++i) out.push_back({static_cast<int32_t>(i), no_nan(x[i]), 0.0f});
  std::make_heap(out.begin(), out.end(), better);
  for (int64_t i = k; i < n; ++i) {
    // A later id only wins with a strictly larger logit (equal logits keep the lower id).
    if (x[i] > out.front().logit) {
      std::pop_heap(out.begin(), out.end(), better);
      out.back() = {static_cast<int32_t>(i), x[i], 0.0f};
      std::push_heap(out.begin(), out.end(), better);
    }
  }
  std::sort_heap(out.begin(), out.end(), better);
}

// Sum of exp(x_i - max) over the whole vocabulary (the softmax normaliser).
double softmax_norm(std::span<const float> x, float max) {
  double z = 0;
  for (float v : x) z += std::exp(static_cast<double>(v) - max);
  return z;
}

// top-p over sorted candidates: the shortest prefix whose probability (normaliser z) reaches p, at least 1.
size_t top_p_cut(const std::vector<TokenProb>& c, double z, float max, float p) {
  double cum = 0;
  for (size_t i = 0; i < c.size(); ++i) {
    cum += std::exp(static_cast<double>(c[i].logit) - max) / z;
    if (cum >= p) return i + 1;
  }
  return c.size();
}

// min-p over sorted candidates: keep logit >= threshold, at least 1.
size_t min_p_cut(const std::vector<TokenProb>& c, float threshold) {
  size_t i = 1;
  while (i < c.size() && c[i].logit >= threshold) ++i;
  return std::min(i, c.size());
}

uint64_t random_seed() {
  std::random_device rd;
  const uint64_t t = static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  return ((static_cast<uint64_t>(rd()) << 32) | rd()) ^ (t * 0x9E3779B97F4A7C15ull);
}

}  // namespace

Sampler::Sampler(const SamplerParams& params, int32_t n_vocab) : p_(params), n_vocab_(n_vocab) {
  if (n_vocab < 1) fail("sampler: the vocabulary is empty (n_vocab {})", n_vocab);
  if (std::isnan(p_.temperature)) fail("sampler: --temp is NaN: pass a number (0 = greedy)");
  if (std::isnan(p_.top_p)) fail("sampler: --top-p is NaN: pass a number in (0, 1] (1 = off)");
  if (std::isnan(p_.min_p)) fail("sampler: --min-p is NaN: pass a number in [0, 1] (0 = off)");
  if (!(p_.repeat_penalty > 0.0f) || std::isinf(p_.repeat_penalty))
    fail("sampler: --repeat-penalty must be a positive number (1 = off), got {}", p_.repeat_penalty);
  if (!std::isfinite(p_.presence_penalty) || !std::isfinite(p_.frequency_penalty))
    fail("sampler: --presence-penalty and --frequency-penalty must be finite numbers (0 = off)");
  seed_ = p_.seed == kRandomSeed ? random_seed() : p_.seed;
  rng_.seed(seed_);
}

void Sampler::accept(int32_t id) {
  if (p_.repeat_last_n == 0) return;
  recent_.push_back(id);
  if (p_.repeat_last_n > 0 && recent_.size() > static_cast<size_t>(p_.repeat_last_n)) recent_.pop_front();
}

void Sampler::reset() {
  recent_.clear();
  cands_.clear();
  rng_.seed(seed_);
}

void Sampler::apply_penalties(std::span<const float> logits) {
  work_.resize(logits.size());
  for (size_t i = 0; i < logits.size(); ++i) work_[i] = no_nan(logits[i]);
  const bool on = p_.repeat_penalty != 1.0f || p_.presence_penalty != 0.0f || p_.frequency_penalty != 0.0f;
  if (!on || recent_.empty()) return;
  window_.assign(recent_.begin(), recent_.end());
  std::sort(window_.begin(), window_.end());
  for (size_t i = 0; i < window_.size();) {
    size_t j = i;
    while (j < window_.size() && window_[j] == window_[i]) ++j;
    const int32_t id = window_[i];
    const auto count = static_cast<float>(j - i);
    if (id >= 0 && id < n_vocab_) {
      float& l = work_[static_cast<size_t>(id)];
      // Dividing a negative logit would make the token more likely: multiply instead (llama.cpp).
      l = l <= 0.0f ? l * p_.repeat_penalty : l / p_.repeat_penalty;
      l -= count * p_.frequency_penalty + p_.presence_penalty;
    }
    i = j;
  }
}

int32_t Sampler::sample(std::span<const float> logits) {
  STRATA_ASSERT(logits.size() == static_cast<size_t>(n_vocab_), "sampler: logits size != n_vocab");
  apply_penalties(logits);
  return p_.temperature <= 0.0f ? sample_greedy() : sample_dist();
}

int32_t Sampler::sample_greedy() {
  int32_t best = 0;
  float bv = work_[0];
  for (size_t i = 1; i < work_.size(); ++i)
    if (work_[i] > bv) bv = work_[i], best = static_cast<int32_t>(i);
  cands_.assign(1, {best, bv, 1.0f});
  return best;
}

int32_t Sampler::sample_dist() {
  const std::span<const float> x(work_);
  const auto n = static_cast<int64_t>(x.size());
  const float max = *std::max_element(work_.begin(), work_.end());
  if (max == kNegInf) return sample_greedy();  // every token is masked: nothing to draw from

  const bool use_k = p_.top_k > 0 && p_.top_k < n;
  const bool use_p = p_.top_p < 1.0f;
  const bool use_min_p = p_.min_p > 0.0f;
  const float min_p_threshold = use_min_p ? max + std::log(p_.min_p) : kNegInf;

  if (use_k) {
    select_top(x, p_.top_k, cands_);
    if (use_p) {  // top-p normalises over the top-k set
      double z = 0;
      for (const auto& c : cands_) z += std::exp(static_cast<double>(c.logit) - max);
      cands_.resize(top_p_cut(cands_, z, max, p_.top_p));
    }
  } else if (use_min_p) {
    cands_.clear();
    const float keep = std::min(min_p_threshold, max);  // min_p > 1 still keeps the best token
    for (int64_t i = 0; i < n; ++i)
      if (x[i] >= keep) cands_.push_back({static_cast<int32_t>(i), x[i], 0.0f});
    std::sort(cands_.begin(), cands_.end(), better);
    if (use_p) cands_.resize(top_p_cut(cands_, softmax_norm(x, max), max, p_.top_p));
  } else if (use_p) {
    const double z = softmax_norm(x, max);
    for (int64_t k = 64;; k *= 8) {
      select_top(x, std::min(k, n), cands_);
      const size_t cut = top_p_cut(cands_, z, max, p_.top_p);
      if (cut < cands_.size() || k >= n) {
        cands_.resize(cut);
        break;
      }
    }
  } else {
    select_top(x, n, cands_);
  }
  if (use_min_p) cands_.resize(min_p_cut(cands_, min_p_threshold));

  // Temperature, softmax over the survivors, then the draw.
  weights_.resize(cands_.size());
  for (auto& c : cands_) c.logit /= p_.temperature;
  const double top = cands_[0].logit;
  double total = 0;
  for (size_t i = 0; i < cands_.size(); ++i) total += weights_[i] = std::exp(cands_[i].logit - top);
  for (size_t i = 0; i < cands_.size(); ++i) cands_[i].p = static_cast<float>(weights_[i] / total);
  if (cands_.size() == 1) return cands_[0].id;

  const double u = static_cast<double>(rng_() >> 11) * 0x1.0p-53;  // uniform in [0, 1)
  const double target = u * total;
  double cum = 0;
  for (size_t i = 0; i < cands_.size(); ++i) {
    cum += weights_[i];
    if (target < cum) return cands_[i].id;
  }
  for (size_t i = cands_.size(); i-- > 0;)  // rounding left target at the very end
    if (weights_[i] > 0) return cands_[i].id;
  return cands_[0].id;
}

std::vector<TokenProb> Sampler::top_n(std::span<const float> logits, int32_t n) {
  std::vector<TokenProb> out;
  if (logits.empty() || n <= 0) return out;
  select_top(logits, std::min<int64_t>(n, static_cast<int64_t>(logits.size())), out);
  const float max = out[0].logit;
  if (max == kNegInf) return out;
  double z = 0;
  for (float v : logits) z += std::isnan(v) ? 0.0 : std::exp(static_cast<double>(v) - max);
  for (auto& c : out) c.p = static_cast<float>(std::exp(static_cast<double>(c.logit) - max) / z);
  return out;
}

}  // namespace strata
