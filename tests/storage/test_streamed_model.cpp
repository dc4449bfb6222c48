// A model under a placement (model::WeightPlacement): streamed matrices read from the file each token and
// resident ones copied into anonymous memory give the SAME logits, bit for bit, as the weights used in place
// from the mapped file, for every weight type; a file truncated or modified while streaming is a clear error.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "core/error.h"
#include "model/logits_util.h"
#include "model/model.h"
#include "model/synthetic.h"
#include "runtime/session.h"
#include "test_util.h"

namespace strata::model {
namespace {

using test::some_tokens;

// Logits after a prompt of 5 tokens (two batches), then after each of 3 decoded tokens.
std::vector<float> run_logits(const Model& m) { return test::run_logits(m, 3); }

std::vector<std::string> matrices(const Model& m, bool with_embeddings) {
  std::vector<std::string> v;
  for (const auto& t : m.file().tensors())
    if (t.ne.size() >= 2 && t.ne[1] > 1 && (with_embeddings || t.name != "token_embd.weight")) v.push_back(t.name);
  return v;
}

void expect_same_logits(const std::string& path) {
  SCOPED_TRACE(path);
  const auto plain = Model::load(path);
  const std::vector<float> want = run_logits(*plain);
  const std::vector<std::string> all = matrices(*plain, true);
  // Every matrix streamed (embeddings gathered from disk), none streamed (copies in anonymous memory), and
  // every other one streamed.
  std::vector<std::string> half;
  for (size_t i = 0; i < all.size(); i += 2) half.push_back(all[i]);
  for (const auto& streamed : {all, std::vector<std::string>{}, half}) {
    WeightPlacement pl;
    pl.streamed = streamed;
    const auto m = Model::load(path, {.placement = &pl});
    ASSERT_EQ(m->streamer() != nullptr, !streamed.empty() && streamed != std::vector<std::string>{"token_embd.weight"});
    const std::vector<float> got = run_logits(*m);
    ASSERT_EQ(got.size(), want.size());
    EXPECT_EQ(std::memcmp(got.data(), want.data(), want.size() * sizeof(float)), 0)
        << streamed.size() << " of " << all.size() << " matrices streamed: logits differ";
    if (m->streamer()) {
      const auto st = m->streamer()->stats();
      EXPECT_GE(st.reads, m->streamer()->size() * 4) << "each token reads every streamed tensor";
    }
  }
}

TEST(StreamedModel, SameLogitsStories260K) {
  STRATA_REQUIRE_SHARED(path, "models/stories260K.gguf");
  expect_same_logits(path);
}

TEST(StreamedModel, SameLogitsEveryWeightType) {
  STRATA_REQUIRE_SHARED(f32, "models/strata-tiny-256.gguf");
  expect_same_logits(f32);
  STRATA_REQUIRE_SHARED(dir, "models/quant");
  for (const auto& e : std::filesystem::directory_iterator(dir))
    if (e.path().extension() == ".gguf") expect_same_logits(e.path().string());
}

TEST(StreamedModel, TiedEmbeddingsSynthetic) {
  SyntheticSpec s = synthetic_shape("demo");
  s.tied_embeddings = true;
  s.weight_type = DType::Q8_0;
  s.progress = false;
  const std::string path = ::testing::TempDir() + "stream-tied.gguf";
  write_synthetic_gguf(s, path);
  expect_same_logits(path);
}

TEST(StreamedModel, PlacementNamingAMissingTensorIsAnError) {
  STRATA_REQUIRE_SHARED(path, "models/stories260K.gguf");
  WeightPlacement pl;
  pl.streamed = {"blk.99.ffn_up.weight"};
  EXPECT_THROW(Model::load(path, {.placement = &pl}), Error);
}

// The file changes under a running model: the next token is an error that says so, not garbage logits.
TEST(StreamedModel, TruncatedOrModifiedWhileStreaming) {
  STRATA_REQUIRE_SHARED(src, "models/strata-tiny-256.gguf");
  for (bool truncate_it : {true, false}) {
    SCOPED_TRACE(truncate_it ? "truncated" : "modified");
    const std::string path = ::testing::TempDir() + "stream-changing.gguf";
    std::filesystem::copy_file(src, path, std::filesystem::copy_options::overwrite_existing);
    WeightPlacement pl;
    const auto m0 = Model::load(path);
    pl.streamed = matrices(*m0, false);
    const auto m = Model::load(path, {.placement = &pl});
    runtime::SessionConfig c;
    c.n_ctx = 16;
    c.n_threads = 2;
    runtime::Session s(*m, c);
    const auto toks = some_tokens(m->hparams().n_vocab, 8);
    s.append(std::span<const int32_t>(toks.data(), 2));
    const auto* ffn = m0->file().find_tensor("blk.1.ffn_down.weight");
    ASSERT_NE(ffn, nullptr);
    const auto off = static_cast<off_t>(ffn->data - m0->file().bytes().data());
    if (truncate_it) {
      ASSERT_EQ(::truncate(path.c_str(), off + 100), 0);
    } else {
      const int fd = ::open(path.c_str(), O_WRONLY);
      ASSERT_GE(fd, 0);
      std::vector<uint8_t> junk(64, 0x5a);
      ASSERT_EQ(pwrite(fd, junk.data(), junk.size(), off + 1000), 64);
      ::close(fd);
    }
    try {
      for (size_t i = 2; i < toks.size(); ++i) s.append(std::span<const int32_t>(&toks[i], 1));
      FAIL() << "a changed file must be an error";
    } catch (const Error& e) {
      const std::string msg = e.what();
      // Modified: exactly that tensor. Truncated: the first tensor the forward pass needs past the cut.
      if (!truncate_it) {
        EXPECT_NE(msg.find("'blk.1.ffn_down.weight'"), std::string::npos) << msg;
      }
      EXPECT_NE(msg.find(path), std::string::npos) << msg;
      EXPECT_NE(msg.find(truncate_it ? "truncated" : "modified"), std::string::npos) << msg;
    }
  }
}

}  // namespace
}  // namespace strata::model
