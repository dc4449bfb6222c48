// LlamaForward::eval_multi (several sequences, each with its own cache, through each weight matrix together)
// against eval() on one sequence at a time, the single-sequence path: same logits for every sequence, at odd
// sizes (1-token decode steps beside prompt chunks of 5 and 13 tokens, sequences at different depths).
// Tolerance 1e-4 absolute: the rows of a matmul are computed independently, but a kernel may pick another
// tiling (and summation order) for more rows: measured 4e-6 on stories260K (F32 GEMM), 0 on Q4_0.
#include <gtest/gtest.h>

#include <cmath>

#include "core/error.h"
#include "core/thread_pool.h"
#include "kv/kv_cache.h"
#include "model/llama_forward.h"
#include "model/model.h"
#include "test_util.h"

namespace strata::model {
namespace {

constexpr float kTol = 1e-4f;

kv::KvCacheConfig cache_config(const Model& m, int64_t n_ctx) {
  const HParams& hp = m.hparams();
  kv::KvCacheConfig c;
  c.n_layer = hp.n_layer;
  c.n_head_kv = hp.n_head_kv;
  c.head_dim_k = hp.head_dim;
  c.head_dim_v = hp.head_dim_v;
  c.n_ctx = n_ctx;
  return c;
}

std::vector<int32_t> tokens(int64_t n_vocab, size_t n, size_t salt) {
  std::vector<int32_t> t(n);
  for (size_t i = 0; i < n; ++i) t[i] = static_cast<int32_t>((i * 7919 + salt * 104729 + 1) % size_t(n_vocab));
  return t;
}

void check_multi_equals_single(const Model& m) {
  const int64_t nv = m.hparams().n_vocab;
  ThreadPool pool(2);
  // Three sequences: already holding 0, 9 and 30 tokens; this step feeds 13, 1 and 5 tokens.
  const std::vector<size_t> before = {0, 9, 30}, now = {13, 1, 5};
  std::vector<std::unique_ptr<kv::KvCache>> single, multi;
  std::vector<std::unique_ptr<LlamaForward>> fwd;
  std::vector<std::vector<float>> want(3, std::vector<float>(size_t(nv))), got(3, std::vector<float>(size_t(nv), NAN));
  for (size_t i = 0; i < 3; ++i) {
    const auto all = tokens(nv, before[i] + now[i], i);
    single.push_back(std::make_unique<kv::KvCache>(cache_config(m, 64)));
    multi.push_back(std::make_unique<kv::KvCache>(cache_config(m, 64)));
    LlamaForward one(m, *single[i], pool, 16);
    LlamaForward pre(m, *multi[i], pool, 16);
    if (before[i] > 0) {
      one.eval(std::span<const int32_t>(all.data(), before[i]), nullptr);
      pre.eval(std::span<const int32_t>(all.data(), before[i]), nullptr);
    }
    one.eval(std::span<const int32_t>(all.data() + before[i], now[i]), want[i].data());
  }
  std::vector<std::vector<int32_t>> step_tokens;
  for (size_t i = 0; i < 3; ++i) {
    const auto all = tokens(nv, before[i] + now[i], i);
    step_tokens.emplace_back(all.begin() + static_cast<std::ptrdiff_t>(before[i]), all.end());
  }
  LlamaForward batch(m, pool, /*n_batch=*/19);
  std::vector<SeqStep> steps;
  for (size_t i = 0; i < 3; ++i) steps.push_back({multi[i].get(), step_tokens[i], got[i].data()});
  batch.eval_multi(steps);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(multi[i]->n_used(), static_cast<int64_t>(before[i] + now[i]));
    float worst = 0;
    for (int64_t v = 0; v < nv; ++v) worst = std::max(worst, std::fabs(got[i][size_t(v)] - want[i][size_t(v)]));
    EXPECT_LE(worst, kTol) << "sequence " << i;
    std::printf("sequence %zu: max |multi - single| = %g\n", i, double(worst));
  }

  // A sequence without logits (a prompt chunk that does not end its prompt) still fills its cache.
  std::vector<float> after(static_cast<size_t>(nv)), after_want(static_cast<size_t>(nv));
  const int32_t next[1] = {5};
  steps = {{multi[0].get(), std::span<const int32_t>(next, 1), after.data()}};
  batch.eval_multi(steps);
  LlamaForward one(m, *single[0], pool, 16);
  one.eval(std::span<const int32_t>(next, 1), after_want.data());
  for (int64_t v = 0; v < nv; ++v) ASSERT_NEAR(after[size_t(v)], after_want[size_t(v)], kTol);

  // Too many tokens for the batch, or for a sequence's context: a clear error, caches untouched.
  const auto big = tokens(nv, 20, 7);
  steps = {{multi[1].get(), big, nullptr}};
  EXPECT_THROW(batch.eval_multi(steps), Error);
  EXPECT_EQ(multi[1]->n_used(), 10);
  kv::KvCache small(cache_config(m, 4));
  steps = {{&small, std::span<const int32_t>(big.data(), 5), nullptr}};
  EXPECT_THROW(batch.eval_multi(steps), Error);
  EXPECT_EQ(small.n_used(), 0);
}

TEST(LlamaForwardMulti, Stories260KEqualsSingleSequence) {
  STRATA_REQUIRE_SHARED(path, "models/stories260K.gguf");
  auto m = Model::load(path);
  check_multi_equals_single(*m);
}

TEST(LlamaForwardMulti, QuantizedEqualsSingleSequence) {
  STRATA_REQUIRE_SHARED(path, "models/quant/strata-tiny-256-Q4_0.gguf");
  auto m = Model::load(path);
  check_multi_equals_single(*m);
}

}  // namespace
}  // namespace strata::model
