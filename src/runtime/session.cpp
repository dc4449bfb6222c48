#include "runtime/session.h"

#include <algorithm>
#include <thread>

#include "core/error.h"

namespace strata::runtime {

int default_threads() {
  const unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : static_cast<int>(n);
}

kv::KvCacheConfig kv_config(const model::Model& m, const SessionConfig& cfg) {
  const model::HParams& hp = m.hparams();
  kv::KvCacheConfig c;
  c.n_layer = hp.n_layer;
  c.n_head_kv = hp.n_head_kv;
  c.head_dim_k = hp.head_dim;
  c.head_dim_v = hp.head_dim_v;
  c.n_ctx = cfg.n_ctx > 0 ? cfg.n_ctx : hp.n_ctx_train;
  c.type_k = cfg.type_k;
  c.type_v = cfg.type_v;
  c.format_k = cfg.format_k;
  c.format_v = cfg.format_v;
  c.window = cfg.kv_window;
  c.calibration = cfg.kv_calibration;
  return c;
}

Session::Session(const model::Model& model, const SessionConfig& cfg)
    : model_(model),
      pool_(cfg.n_threads > 0 ? cfg.n_threads : default_threads()),
      kv_(kv_config(model, cfg)),
      fwd_(model, kv_, pool_, cfg.n_batch),
      logits_(static_cast<size_t>(model.hparams().n_vocab)),
      budget_(cfg.kv_budget) {
  if (budget_.policy != kv::KvPolicy::None && budget_.max_tokens > 0) {
    if (budget_.max_tokens <= budget_.n_sink + budget_.n_recent)
      fail("--kv-budget {}: must be more than the {} sink and {} recent tokens it always keeps", budget_.max_tokens,
           budget_.n_sink, budget_.n_recent);
    if (budget_.evict_batch == 0)
      budget_.evict_batch = static_cast<int32_t>(std::max<int64_t>(1, budget_.max_tokens / 8));
    budget_.evict_batch = static_cast<int32_t>(std::min<int64_t>(
        budget_.evict_batch, budget_.max_tokens - budget_.n_sink - budget_.n_recent - 1));
  } else {
    budget_.policy = kv::KvPolicy::None;
  }
}

std::span<const float> Session::set_tokens(std::span<const int32_t> tokens) {
  if (tokens.empty()) fail("empty prompt: there must be at least one token");
  if (static_cast<int64_t>(tokens.size()) > n_ctx())
    fail("prompt is {} tokens: raise --ctx to at least {}", tokens.size(), tokens.size());
  size_t common = 0;
  while (common < tokens_.size() && common < tokens.size() && tokens_[common] == tokens[common]) ++common;
  // At least the last token is fed again, since its logits are needed.
  if (common == tokens.size()) --common;
  // After an eviction the cache is no prefix of the tokens any more: only a pure continuation reuses it.
  if (n_evictions_ > 0 && common < tokens_.size()) common = 0;
  rewind(static_cast<int64_t>(common));
  return append(tokens.subspan(common));
}

std::span<const float> Session::append(std::span<const int32_t> tokens) {
  if (tokens.empty()) fail("nothing to feed: no tokens");
  feed(tokens, logits_.data(), false);
  return logits_;
}

void Session::append_all_logits(std::span<const int32_t> tokens, std::vector<float>& out) {
  out.resize(tokens.size() * static_cast<size_t>(n_vocab()));
  feed(tokens, out.data(), /*all_logits=*/true);
}

void Session::feed(std::span<const int32_t> tokens, float* logits, bool all_logits) {
  if (budget_.policy == kv::KvPolicy::None) {
    fwd_.eval(tokens, logits, all_logits);
    tokens_.insert(tokens_.end(), tokens.begin(), tokens.end());
    return;
  }
  if (n_past() + static_cast<int64_t>(tokens.size()) > n_ctx())
    fail("the context is full: {} positions needed but --ctx is {}: raise --ctx", n_past() + tokens.size(), n_ctx());
  // Pieces small enough that the sinks, the recent window and the piece fit the budget.
  const int64_t piece = std::max<int64_t>(1, budget_.max_tokens - budget_.n_sink - budget_.n_recent);
  const int64_t n = static_cast<int64_t>(tokens.size());
  for (int64_t b = 0; b < n; b += piece) {
    const int64_t nb = std::min(piece, n - b);
    make_room(nb);
    float* out = all_logits ? logits + b * n_vocab() : (b + nb == n ? logits : nullptr);
    fwd_.eval(tokens.subspan(static_cast<size_t>(b), static_cast<size_t>(nb)), out, all_logits);
    for (int64_t i = 0; i < nb; ++i) slots_.push_back({static_cast<int32_t>(n_past() + i), 0.f, 1});
    tokens_.insert(tokens_.end(), tokens.begin() + b, tokens.begin() + b + nb);
  }
}

void Session::make_room(int64_t n_incoming) {
  if (kv_.n_used() + n_incoming <= budget_.max_tokens) return;
  std::vector<float> keys;
  kv::KvSimilarity similarity;
  if (budget_.policy == kv::KvPolicy::H2O || budget_.policy == kv::KvPolicy::Merge) {
    const std::vector<float> s = kv_.recent_key_attention(budget_.n_recent);
    for (size_t i = 0; i < slots_.size(); ++i) slots_[i].score += s[i];
  }
  if (budget_.policy == kv::KvPolicy::Merge) {
    keys = kv_.unit_keys();
    const int64_t w = static_cast<int64_t>(keys.size()) / std::max<int64_t>(1, kv_.n_used());
    similarity = [&keys, w](int32_t a, int32_t b) {
      double x = 0;
      for (int64_t i = 0; i < w; ++i) x += static_cast<double>(keys[a * w + i]) * keys[b * w + i];
      return static_cast<float>(x);
    };
  }
  const kv::KvBudgetUpdate u = kv::prepare_budget_update(slots_, n_incoming, budget_, similarity);
  if (u.noop()) return;
  kv_.apply_update(u, slots_);
  slots_ = kv::apply_update(u, slots_);
  ++n_evictions_;
}

void Session::reset() {
  tokens_.clear();
  slots_.clear();
  kv_.truncate(0);
  n_evictions_ = 0;
}

void Session::rewind(int64_t n) {
  n = std::clamp<int64_t>(n, 0, n_past());
  if (n_evictions_ > 0 && n < n_past()) {
    // The cache no longer holds the tokens one to one: start again and feed the first n.
    std::vector<int32_t> keep(tokens_.begin(), tokens_.begin() + n);
    reset();
    if (n > 0) feed(keep, logits_.data(), false);
    return;
  }
  tokens_.resize(static_cast<size_t>(n));
  if (!slots_.empty()) slots_.resize(static_cast<size_t>(n));
  kv_.truncate(n);
}

}  // namespace strata::runtime
