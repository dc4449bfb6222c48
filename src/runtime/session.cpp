#include "runtime/session.h"

#include <algorithm>
#include <thread>

#include "core/error.h"

namespace strata::runtime {

int default_threads() {
  const unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : static_cast<int>(n);
}

namespace {

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
  return c;
}

}  // namespace

Session::Session(const model::Model& model, const SessionConfig& cfg)
    : model_(model),
      pool_(cfg.n_threads > 0 ? cfg.n_threads : default_threads()),
      kv_(kv_config(model, cfg)),
      fwd_(model, kv_, pool_, cfg.n_batch),
      logits_(static_cast<size_t>(model.hparams().n_vocab)) {}

std::span<const float> Session::set_tokens(std::span<const int32_t> tokens) {
  if (tokens.empty()) fail("empty prompt: there must be at least one token");
  if (static_cast<int64_t>(tokens.size()) > n_ctx())
    fail("prompt is {} tokens: raise --ctx to at least {}", tokens.size(), tokens.size());
  size_t common = 0;
  while (common < tokens_.size() && common < tokens.size() && tokens_[common] == tokens[common]) ++common;
  // At least the last token is fed again, since its logits are needed.
  if (common == tokens.size()) --common;
  rewind(static_cast<int64_t>(common));
  return append(tokens.subspan(common));
}

std::span<const float> Session::append(std::span<const int32_t> tokens) {
  if (tokens.empty()) fail("nothing to feed: no tokens");
  fwd_.eval(tokens, logits_.data());
  tokens_.insert(tokens_.end(), tokens.begin(), tokens.end());
  return logits_;
}

void Session::append_all_logits(std::span<const int32_t> tokens, std::vector<float>& out) {
  out.resize(tokens.size() * static_cast<size_t>(n_vocab()));
  fwd_.eval(tokens, out.data(), /*all_logits=*/true);
  tokens_.insert(tokens_.end(), tokens.begin(), tokens.end());
}

void Session::rewind(int64_t n) {
  n = std::clamp<int64_t>(n, 0, n_past());
  tokens_.resize(static_cast<size_t>(n));
  kv_.truncate(n);
}

}  // namespace strata::runtime
