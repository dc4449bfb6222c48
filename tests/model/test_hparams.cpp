// Hyper-parameters and weight binding: real files, llama.cpp's defaults, and clear errors.
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "core/error.h"
#include "model/model.h"
#include "model/tiny_model.h"
#include "test_util.h"

namespace strata::model {
namespace {

using test::TinySpec;

// Loads a synthetic model; returns the error message ("" when it loads).
std::string load_error(const TinySpec& s) {
  const std::string path = test::temp_path("hp.gguf");
  test::write_tiny_model(s, path);
  try {
    Model::load(path);
  } catch (const Error& e) {
    std::remove(path.c_str());
    return e.what();
  }
  std::remove(path.c_str());
  return "";
}

std::unique_ptr<Model> load_tiny(const TinySpec& s) {
  const std::string path = test::temp_path("hp.gguf");
  test::write_tiny_model(s, path);
  auto m = Model::load(path);  // the mapping stays valid after the path is unlinked
  std::remove(path.c_str());
  return m;
}

TEST(HParams, Stories260K) {
  STRATA_REQUIRE_SHARED(path, "models/stories260K.gguf");
  auto m = Model::load(path);
  const HParams& hp = m->hparams();
  EXPECT_EQ(hp.arch, Arch::kLlama);
  EXPECT_EQ(hp.n_vocab, 512);
  EXPECT_EQ(hp.n_ctx_train, 2048);
  EXPECT_EQ(hp.n_embd, 64);
  EXPECT_EQ(hp.n_layer, 5);
  EXPECT_EQ(hp.n_ff, 172);
  EXPECT_EQ(hp.n_head, 8);
  EXPECT_EQ(hp.n_head_kv, 4);
  EXPECT_EQ(hp.head_dim, 8);
  EXPECT_EQ(hp.n_rot, 8);
  EXPECT_EQ(hp.rope_freq_base, 10000.0);  // the key is absent: llama.cpp's default
  EXPECT_EQ(hp.rope_freq_scale, 1.0);
  EXPECT_FLOAT_EQ(hp.rms_eps, 1e-5f);
  EXPECT_EQ(hp.rope_mode, kernels::RopeMode::kNormal);
  EXPECT_FALSE(m->weights().tied_output);
  EXPECT_TRUE(m->weights().rope_freq_factors.empty());
  EXPECT_TRUE(m->weights().layers[0].bq.empty());
  // Zero copy: the matrices point into the mapped file.
  EXPECT_EQ(m->weights().tok_embd.data, m->file().find_tensor("token_embd.weight")->data);
  EXPECT_EQ(m->weights().layers[4].w_down.data, m->file().find_tensor("blk.4.ffn_down.weight")->data);
  EXPECT_EQ(m->weights().layers[4].w_down.rows, 64);
  EXPECT_EQ(m->weights().layers[4].w_down.cols, 172);
  EXPECT_NE(m->describe().find("5 layers"), std::string::npos);
}

TEST(HParams, StrataTiny256) {
  STRATA_REQUIRE_SHARED(path, "models/strata-tiny-256-f16.gguf");
  auto m = Model::load(path);
  const HParams& hp = m->hparams();
  EXPECT_EQ(hp.n_embd, 256);
  EXPECT_EQ(hp.n_layer, 4);
  EXPECT_EQ(hp.n_ff, 768);
  EXPECT_EQ(hp.n_head, 4);
  EXPECT_EQ(hp.n_head_kv, 2);
  EXPECT_EQ(hp.head_dim, 64);
  EXPECT_EQ(hp.n_ctx_train, 512);
  EXPECT_EQ(m->weights().layers[0].wq.type, DType::F16);
  EXPECT_EQ(m->weights().output.type, DType::F16);
  EXPECT_EQ(m->weight_bytes(), 6838720u - m->file().data_offset());
}

TEST(HParams, LlamaCppDefaults) {
  TinySpec s;
  s.n_head_kv = 4;  // tensors written for 4 KV heads, the key left out
  s.omit = {"llama.attention.head_count_kv"};
  auto m = load_tiny(s);
  EXPECT_EQ(m->hparams().n_head_kv, 4);  // absent: head_count
  EXPECT_EQ(m->hparams().head_dim, 8);   // n_embd / n_head
  EXPECT_EQ(m->hparams().n_rot, 8);      // absent: the head size
  EXPECT_EQ(m->hparams().rope_freq_base, 10000.0);
  EXPECT_EQ(m->hparams().rope_scaling, "none");
}

TEST(HParams, ExplicitRopeKeys) {
  TinySpec s;
  s.rope_base = 500000;
  s.n_rot = 4;  // partial rotary
  auto m = load_tiny(s);
  EXPECT_EQ(m->hparams().rope_freq_base, 500000.0);
  EXPECT_EQ(m->hparams().n_rot, 4);
}

TEST(HParams, TiedOutputUsesTheEmbedding) {
  TinySpec s;
  s.tied = true;
  auto m = load_tiny(s);
  EXPECT_TRUE(m->weights().tied_output);
  EXPECT_EQ(m->weights().output.data, m->weights().tok_embd.data);
  EXPECT_EQ(m->weights().output.rows, 64);
}

TEST(HParams, Qwen2HasBiasAndNeoxRope) {
  TinySpec s;
  s.arch = "qwen2";
  s.qkv_bias = true;
  auto m = load_tiny(s);
  EXPECT_EQ(m->hparams().arch, Arch::kQwen2);
  EXPECT_EQ(m->hparams().rope_mode, kernels::RopeMode::kNeox);
  EXPECT_EQ(m->weights().layers[1].bq.size(), 32u);
  EXPECT_EQ(m->weights().layers[1].bk.size(), 16u);
  EXPECT_EQ(m->weights().layers[1].bv.size(), 16u);
}

TEST(HParams, MistralIsLlamaShaped) {
  TinySpec s;
  s.arch = "mistral";
  auto m = load_tiny(s);
  EXPECT_EQ(m->hparams().arch, Arch::kMistral);
  EXPECT_EQ(m->hparams().rope_mode, kernels::RopeMode::kNormal);
}

TEST(HParams, RopeFreqsTensorGivesFactors) {
  TinySpec s;
  s.rope_freqs = true;
  auto m = load_tiny(s);
  ASSERT_EQ(m->weights().rope_freq_factors.size(), 4u);
  EXPECT_FLOAT_EQ(m->weights().rope_freq_factors[1], 1.7f);
}

TEST(HParams, Llama3FactorsMatchTheReferenceFormula) {
  // Llama 3.1 8B: base 500000, factor 8, low 1, high 4, original context 8192, head size 128.
  HParams hp;
  hp.n_rot = 128;
  hp.rope_freq_base = 500000;
  const std::vector<float> ff = llama3_freq_factors(hp);
  ASSERT_EQ(ff.size(), 64u);
  EXPECT_EQ(ff[0], 1.0f);    // high frequencies are kept
  EXPECT_EQ(ff[63], 8.0f);   // low frequencies divided by the factor
  // In between: smooth interpolation, increasing.
  for (size_t i = 1; i < ff.size(); ++i) EXPECT_GE(ff[i], ff[i - 1]);
  bool interpolated = false;
  for (float f : ff) interpolated |= f > 1.0f && f < 8.0f;
  EXPECT_TRUE(interpolated);
}

TEST(HParams, LinearRopeScaling) {
  // Written through the tiny writer with extra keys is not possible; check the parsing through a real key.
  TinySpec s;
  const std::string path = test::temp_path("lin.gguf");
  test::write_tiny_model(s, path);
  gguf::File f = gguf::File::open(path);
  std::remove(path.c_str());
  gguf::Writer w;
  for (const auto& [k, v] : f.metadata()) w.set(k, v);
  w.set("llama.rope.scaling.type", gguf::Writer::string("linear"));
  w.set("llama.rope.scaling.factor", gguf::Writer::f32(4.0f));
  const std::string path2 = test::temp_path("lin2.gguf");
  w.write(path2);
  gguf::File f2 = gguf::File::open(path2);
  std::remove(path2.c_str());
  const HParams hp = read_hparams(f2);
  EXPECT_EQ(hp.rope_scaling, "linear");
  EXPECT_DOUBLE_EQ(hp.rope_freq_scale, 0.25);
}

TEST(HParams, MissingKeyIsNamed) {
  TinySpec s;
  s.write_eps = false;
  EXPECT_NE(load_error(s).find("llama.attention.layer_norm_rms_epsilon"), std::string::npos) << load_error(s);
  TinySpec s2;
  s2.omit = {"llama.feed_forward_length"};
  EXPECT_NE(load_error(s2).find("llama.feed_forward_length"), std::string::npos) << load_error(s2);
  TinySpec s3;
  s3.omit = {"general.architecture"};
  EXPECT_NE(load_error(s3).find("general.architecture"), std::string::npos) << load_error(s3);
}

TEST(HParams, UnsupportedArchitectureIsNamed) {
  TinySpec s;
  s.arch = "gpt2";
  const std::string e = load_error(s);
  EXPECT_NE(e.find("'gpt2'"), std::string::npos) << e;
  EXPECT_NE(e.find("llama, mistral, qwen2"), std::string::npos) << e;
}

TEST(HParams, MissingTensorIsNamed) {
  TinySpec s;
  s.omit = {"blk.1.ffn_up.weight"};
  const std::string e = load_error(s);
  EXPECT_NE(e.find("blk.1.ffn_up.weight"), std::string::npos) << e;
  TinySpec q;
  q.arch = "qwen2";  // qwen2 requires the Q/K/V biases
  EXPECT_NE(load_error(q).find("blk.0.attn_q.bias"), std::string::npos) << load_error(q);
}

TEST(HParams, WrongShapeIsNamed) {
  TinySpec s;
  s.bad_shape = "blk.0.attn_k.weight";
  const std::string e = load_error(s);
  EXPECT_NE(e.find("blk.0.attn_k.weight"), std::string::npos) << e;
  EXPECT_NE(e.find("[16, 32]"), std::string::npos) << e;  // what it has
  EXPECT_NE(e.find("[32, 16]"), std::string::npos) << e;  // what it should have
}

TEST(HParams, ImpossibleHeadCounts) {
  TinySpec s;
  s.n_head_kv = 3;
  s.omit = {"blk.0.attn_k.weight"};  // never reached
  EXPECT_NE(load_error(s).find("head_count_kv"), std::string::npos) << load_error(s);
}

}  // namespace
}  // namespace strata::model
