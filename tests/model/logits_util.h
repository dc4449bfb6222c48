// Logits of a short fixed run over a model, shared by the tests that compare two forms of the same model
// (streamed vs mapped, bundled vs unbundled, sparse vs dense): a 5-token prompt in batches of 4 and 1, then
// n_decode single decoded tokens; all the logits returned concatenated.
#pragma once
#include <cstdint>
#include <span>
#include <vector>

#include "model/model.h"
#include "runtime/session.h"

namespace strata::test {

// n token ids, fixed, spread over the vocabulary.
inline std::vector<int32_t> some_tokens(int64_t n_vocab, size_t n) {
  std::vector<int32_t> t(n);
  for (size_t i = 0; i < n; ++i) t[i] = static_cast<int32_t>((i * 7919 + 13) % static_cast<size_t>(n_vocab));
  return t;
}

inline std::vector<float> run_logits(const model::Model& m, size_t n_decode) {
  runtime::SessionConfig c;
  c.n_ctx = 16;
  c.n_threads = 2;
  c.n_batch = 4;  // the prompt takes two batches
  runtime::Session s(m, c);
  const std::vector<int32_t> toks = some_tokens(m.hparams().n_vocab, 5 + n_decode);
  std::vector<float> out;
  auto l = s.append(std::span<const int32_t>(toks.data(), 5));
  out.insert(out.end(), l.begin(), l.end());
  for (size_t i = 5; i < toks.size(); ++i) {
    l = s.append(std::span<const int32_t>(&toks[i], 1));
    out.insert(out.end(), l.begin(), l.end());
  }
  return out;
}

}  // namespace strata::test
