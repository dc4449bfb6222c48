// Session (prefix reuse, rewind, context limits) and the decode loop (stop conditions, stop strings).
#include <gtest/gtest.h>

#include <atomic>

#include "core/error.h"
#include "model/golden_util.h"
#include "model/model.h"
#include "runtime/generate.h"
#include "runtime/session.h"
#include "sample/sampler.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"

namespace strata::runtime {
namespace {

SessionConfig f32_config(int64_t n_ctx) {
  SessionConfig c;
  c.n_ctx = n_ctx;
  c.n_threads = 2;
  c.type_k = c.type_v = DType::F32;
  return c;
}

TEST(Session, SetTokensReusesTheCommonPrefix) {
  STRATA_REQUIRE_SHARED(path, "models/stories260K.gguf");
  auto m = model::Model::load(path);
  Session s(*m, f32_config(64));
  const std::vector<int32_t> a = {1, 403, 407, 261, 378}, b = {1, 403, 407, 300, 301, 302};
  s.set_tokens(a);
  EXPECT_EQ(s.n_past(), 5);
  const auto lb = s.set_tokens(b);  // keeps 3, feeds 3
  const std::vector<float> got(lb.begin(), lb.end());
  EXPECT_EQ(s.tokens(), b);
  Session fresh(*m, f32_config(64));
  const auto lf = fresh.set_tokens(b);
  EXPECT_LT(test::max_abs_diff(got, std::vector<float>(lf.begin(), lf.end())), 1e-4f);  // other batch split
  // The same tokens again: only the last one is recomputed, same logits.
  const auto again = s.set_tokens(b);
  EXPECT_LT(test::max_abs_diff(got, std::vector<float>(again.begin(), again.end())), 1e-5f);
  s.rewind(2);
  EXPECT_EQ(s.n_past(), 2);
  EXPECT_EQ(s.kv().n_used(), 2);
}

TEST(Session, ContextLimits) {
  STRATA_REQUIRE_SHARED(path, "models/stories260K.gguf");
  auto m = model::Model::load(path);
  Session s(*m, f32_config(4));
  EXPECT_THROW(s.set_tokens(std::vector<int32_t>{}), Error);
  try {
    s.set_tokens(std::vector<int32_t>{1, 2, 3, 4, 5});
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("prompt is 5 tokens: raise --ctx to at least 5"), std::string::npos);
  }
  // Default context: the model's context_length.
  Session d(*m, SessionConfig{});
  EXPECT_EQ(d.n_ctx(), 2048);
}

struct Gen {
  std::unique_ptr<model::Model> model;
  std::unique_ptr<Tokenizer> tok;
};

GenerateResult greedy(const Gen& g, Session& s, const std::string& prompt, GenerateParams gp) {
  SamplerParams sp;
  sp.temperature = 0;
  Sampler sampler(sp, g.tok->n_vocab());
  std::string streamed;
  auto r = generate(s, *g.tok, sampler, g.tok->encode(prompt, true, false), gp,
                    [&](std::string_view t) { streamed += t; });
  EXPECT_EQ(streamed, r.text);  // what is streamed is the result's text
  return r;
}

TEST(Generate, StopConditions) {
  STRATA_REQUIRE_SHARED(path, "models/stories260K.gguf");
  Gen g{model::Model::load(path), nullptr};
  g.tok = Tokenizer::from_gguf(g.model->file());
  Session s(*g.model, f32_config(32));

  GenerateParams gp;
  gp.n_predict = 10;
  GenerateResult r = greedy(g, s, "Once upon a time", gp);
  EXPECT_EQ(r.stop, StopReason::kLength);
  EXPECT_EQ(r.n_generated, 10);
  EXPECT_EQ(r.text, ", there was a little girl named Lily");  // llama.cpp's first 10 tokens

  // Stop string: the text stops before it and never shows it, even split over tokens.
  gp.n_predict = 30;
  gp.stop_strings = {"girl nam"};
  r = greedy(g, s, "Once upon a time", gp);
  EXPECT_EQ(r.stop, StopReason::kStopString);
  EXPECT_EQ(r.text, ", there was a little ");
  EXPECT_EQ(r.n_prompt_fed, 1);  // the prompt was cached: only its last token was recomputed

  // Interrupted before the first token.
  std::atomic<bool> stop{true};
  gp.stop_strings.clear();
  gp.interrupt = &stop;
  r = greedy(g, s, "Once upon a time", gp);
  EXPECT_EQ(r.stop, StopReason::kInterrupted);
  EXPECT_EQ(r.n_generated, 0);

  // Context full: 32 positions, a 5-token prompt.
  gp.interrupt = nullptr;
  gp.n_predict = -1;
  gp.ignore_eos = true;
  r = greedy(g, s, "Once upon a time", gp);
  EXPECT_EQ(r.stop, StopReason::kContextFull);
  EXPECT_EQ(s.n_past(), 32);
  EXPECT_EQ(r.n_generated, 28);  // the last one sampled from the logits of position 31
}

TEST(Generate, EndOfGeneration) {
  // stories260K practically never emits </s> (its stories are separated by BOS), so this copy of it calls
  // "▁a" (261) the end-of-sequence token: greedy decoding from BOS gives "Once upon a" and stops there.
  STRATA_REQUIRE_SHARED(path, "models/stories260K.gguf");
  const gguf::File src = gguf::File::open(path);
  gguf::Writer w;
  for (const auto& [k, v] : src.metadata()) w.set(k, v);
  w.set("tokenizer.ggml.eos_token_id", gguf::Writer::u32(261));
  for (const auto& t : src.tensors()) w.add_tensor(t.name, t.type, t.ne, {t.data, t.nbytes});
  const std::string copy = ::testing::TempDir() + "strata_eos261.gguf";
  w.write(copy);
  Gen g{model::Model::load(copy), nullptr};
  std::remove(copy.c_str());
  g.tok = Tokenizer::from_gguf(g.model->file());
  ASSERT_EQ(g.tok->eos(), 261);
  Session s(*g.model, f32_config(64));
  GenerateParams gp;
  gp.text_start = true;
  GenerateResult r = greedy(g, s, "", gp);  // BOS only
  EXPECT_EQ(r.stop, StopReason::kEndOfGeneration);
  EXPECT_EQ(r.ids, (std::vector<int32_t>{403, 407, 261}));
  EXPECT_EQ(r.text, "Once upon");  // no leading space at the start of the text; the end token is not shown
  // --ignore-eos goes on.
  gp.ignore_eos = true;
  gp.n_predict = 5;
  r = greedy(g, s, "", gp);
  EXPECT_EQ(r.stop, StopReason::kLength);
  EXPECT_EQ(r.text, "Once upon a time,");
}

}  // namespace
}  // namespace strata::runtime
