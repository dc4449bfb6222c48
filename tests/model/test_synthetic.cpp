// Synthetic models (`strata gen-model`): they round-trip through the GGUF reader with the keys, shapes and
// types llama.cpp expects, their tokenizer loads and works, the weights have the stated statistics, and the
// bytes depend only on the spec and seed.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "core/error.h"
#include "gguf/gguf.h"
#include "gguf/stream_writer.h"
#include "model/model.h"
#include "model/synthetic.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"

namespace strata::model {
namespace {

std::string tmp_file(const std::string& name) {
  static int n = 0;
  return ::testing::TempDir() + "strata_synth_" + std::to_string(::getpid()) + "_" + std::to_string(n++) + "_" + name;
}

// A file removed when the test ends.
struct TempGguf {
  std::string path;
  explicit TempGguf(const std::string& name) : path(tmp_file(name)) {}
  ~TempGguf() { std::remove(path.c_str()); }
};

SyntheticSpec tiny(DType t) {  // rows of 256 and 512: every type fits, K-quants included
  SyntheticSpec s = synthetic_shape("demo");
  s.name = "tiny";
  s.n_embd = 256, s.n_layer = 2, s.n_head = 4, s.n_head_kv = 2, s.n_ff = 512, s.n_vocab = 300, s.n_ctx = 128;
  s.weight_type = t;
  s.progress = false;
  s.n_threads = 2;
  return s;
}

std::vector<float> dequantized(const gguf::TensorInfo& t) {
  std::vector<float> v(static_cast<size_t>(t.n_elements()));
  dequantize_row(static_cast<DType>(t.type), t.data, v.data(), t.n_elements());
  return v;
}

void expect_layout(const gguf::File& f, const SyntheticSpec& s) {
  const std::string a = s.arch;
  EXPECT_EQ(f.get_string("general.architecture"), a);
  EXPECT_EQ(f.get_int(a + ".context_length", -1), s.n_ctx);
  EXPECT_EQ(f.get_int(a + ".embedding_length", -1), s.n_embd);
  EXPECT_EQ(f.get_int(a + ".block_count", -1), s.n_layer);
  EXPECT_EQ(f.get_int(a + ".feed_forward_length", -1), s.n_ff);
  EXPECT_EQ(f.get_int(a + ".attention.head_count", -1), s.n_head);
  EXPECT_EQ(f.get_int(a + ".attention.head_count_kv", -1), s.n_head_kv);
  EXPECT_EQ(f.get_int(a + ".rope.dimension_count", -1), s.n_embd / s.n_head);
  EXPECT_FLOAT_EQ(static_cast<float>(f.get_float(a + ".rope.freq_base", -1)), s.rope_freq_base);
  EXPECT_FLOAT_EQ(static_cast<float>(f.get_float(a + ".attention.layer_norm_rms_epsilon", -1)), s.rms_eps);
  EXPECT_EQ(f.get_int("general.file_type", -1), file_type_of(s.weight_type));

  const int64_t kv = s.n_embd / s.n_head * s.n_head_kv;
  const size_t per_layer = s.qkv_bias ? 12 : 9;
  EXPECT_EQ(f.tensors().size(), 2 + (s.tied_embeddings ? 0 : 1) + per_layer * s.n_layer);
  auto expect = [&](const std::string& name, std::vector<int64_t> ne, DType type) {
    const gguf::TensorInfo* t = f.find_tensor(name);
    ASSERT_NE(t, nullptr) << name;
    EXPECT_EQ(t->ne, ne) << name;
    EXPECT_EQ(t->type, static_cast<uint32_t>(type)) << name;
    EXPECT_EQ(t->nbytes, row_bytes(type, ne[0]) * static_cast<size_t>(t->n_rows())) << name;
  };
  const DType wt = s.weight_type;
  expect("token_embd.weight", {s.n_embd, s.n_vocab}, fallback_type(wt, s.n_embd));
  expect("output_norm.weight", {s.n_embd}, DType::F32);
  if (!s.tied_embeddings) expect("output.weight", {s.n_embd, s.n_vocab}, fallback_type(wt, s.n_embd));
  for (int64_t l = 0; l < s.n_layer; ++l) {
    const std::string b = "blk." + std::to_string(l) + ".";
    expect(b + "attn_norm.weight", {s.n_embd}, DType::F32);
    expect(b + "attn_q.weight", {s.n_embd, s.n_embd}, fallback_type(wt, s.n_embd));
    expect(b + "attn_k.weight", {s.n_embd, kv}, fallback_type(wt, s.n_embd));
    expect(b + "attn_v.weight", {s.n_embd, kv}, fallback_type(wt, s.n_embd));
    expect(b + "attn_output.weight", {s.n_embd, s.n_embd}, fallback_type(wt, s.n_embd));
    expect(b + "ffn_norm.weight", {s.n_embd}, DType::F32);
    expect(b + "ffn_gate.weight", {s.n_embd, s.n_ff}, fallback_type(wt, s.n_embd));
    expect(b + "ffn_up.weight", {s.n_embd, s.n_ff}, fallback_type(wt, s.n_embd));
    expect(b + "ffn_down.weight", {s.n_ff, s.n_embd}, fallback_type(wt, s.n_ff));
    if (s.qkv_bias) {
      expect(b + "attn_q.bias", {s.n_embd}, DType::F32);
      expect(b + "attn_k.bias", {kv}, DType::F32);
      expect(b + "attn_v.bias", {kv}, DType::F32);
    }
  }
}

TEST(Synthetic, DemoShapeRoundTripsThroughTheReader) {
  TempGguf tmp("demo.gguf");
  SyntheticSpec s = synthetic_shape("demo");
  s.progress = false;
  const uint64_t size = write_synthetic_gguf(s, tmp.path);
  const auto f = gguf::File::open(tmp.path);
  EXPECT_EQ(f.file_size(), size);
  EXPECT_EQ(f.version(), 3u);
  expect_layout(f, s);
  EXPECT_EQ(f.get_int("llama.vocab_size", -1), 512);
  EXPECT_EQ(f.get_string("tokenizer.ggml.model"), "llama");
  EXPECT_EQ(f.get_string_array("tokenizer.ggml.tokens").size(), 512u);
  EXPECT_FALSE(f.get_string("tokenizer.chat_template").empty());
  EXPECT_EQ(f.tensors().back().offset + f.tensors().back().nbytes + f.data_offset(), size);  // 32-aligned sizes
}

TEST(Synthetic, WeightsHaveTheStatedStatistics) {
  TempGguf tmp("stats.gguf");
  SyntheticSpec s = tiny(DType::F32);
  write_synthetic_gguf(s, tmp.path);
  const auto f = gguf::File::open(tmp.path);
  for (const char* name : {"token_embd.weight", "blk.1.ffn_down.weight", "output.weight"}) {
    const auto v = dequantized(*f.find_tensor(name));
    double sum = 0, sq = 0, max = 0;
    for (float x : v) sum += x, sq += double(x) * x, max = std::max(max, std::fabs(double(x)));
    const double mean = sum / v.size(), sd = std::sqrt(sq / v.size() - mean * mean);
    EXPECT_NEAR(mean, 0.0, 0.001) << name;
    EXPECT_NEAR(sd, 0.02, 0.0005) << name;
    EXPECT_LT(max, 0.02 * 3.47) << name;  // the Irwin-Hall bound
  }
  for (const char* name : {"blk.0.attn_norm.weight", "output_norm.weight"})
    for (float x : dequantized(*f.find_tensor(name))) ASSERT_EQ(x, 1.0f) << name;
  // Different tensors and rows get different numbers.
  const auto q0 = dequantized(*f.find_tensor("blk.0.attn_q.weight"));
  const auto q1 = dequantized(*f.find_tensor("blk.1.attn_q.weight"));
  EXPECT_NE(q0, q1);
  EXPECT_FALSE(std::equal(q0.begin(), q0.begin() + 256, q0.begin() + 256));
}

TEST(Synthetic, EveryWeightTypeRoundTrips) {
  for (DType t : {DType::Q4_0, DType::Q8_0, DType::Q4_K, DType::F16, DType::Q6_K, DType::BF16}) {
    SCOPED_TRACE(dtype_name(t));
    TempGguf tmp("types.gguf");
    const SyntheticSpec s = tiny(t);
    const uint64_t size = write_synthetic_gguf(s, tmp.path);
    const auto f = gguf::File::open(tmp.path);
    EXPECT_EQ(f.file_size(), size);
    expect_layout(f, s);
    // The quantized weights still have std ~0.02 (quantization error is small against it).
    const auto v = dequantized(*f.find_tensor("blk.0.ffn_up.weight"));
    double sq = 0;
    for (float x : v) sq += double(x) * x;
    EXPECT_NEAR(std::sqrt(sq / v.size()), 0.02, 0.002);
  }
}

TEST(Synthetic, SlowTypesDrawBlocksFromAPoolUnlessExact) {
  EXPECT_TRUE(pooled_type(DType::Q4_K));
  EXPECT_TRUE(pooled_type(DType::IQ4_NL));
  EXPECT_FALSE(pooled_type(DType::Q4_0));
  TempGguf a("pool.gguf"), b("exact.gguf");
  SyntheticSpec s = tiny(DType::Q4_K);
  write_synthetic_gguf(s, a.path);
  s.exact = true;
  write_synthetic_gguf(s, b.path);
  const auto fa = gguf::File::open(a.path), fb = gguf::File::open(b.path);
  for (const auto* f : {&fa, &fb}) {
    const gguf::TensorInfo* t = f->find_tensor("blk.1.ffn_gate.weight");
    const auto v = dequantized(*t);
    double sq = 0;
    for (float x : v) sq += double(x) * x;
    EXPECT_NEAR(std::sqrt(sq / v.size()), 0.02, 0.002);
    EXPECT_NE(std::memcmp(t->data, t->data + 144, 144), 0);  // rows are not all the same blocks
  }
  EXPECT_EQ(fa.file_size(), fb.file_size());
  EXPECT_NE(std::memcmp(fa.find_tensor("token_embd.weight")->data, fb.find_tensor("token_embd.weight")->data, 144), 0);
}

TEST(Synthetic, RowLengthsTheTypeCannotHoldFallBackLikeLlamaCpp) {
  EXPECT_EQ(fallback_type(DType::Q4_K, 64), DType::Q5_0);
  EXPECT_EQ(fallback_type(DType::Q5_K, 896), DType::Q5_1);
  EXPECT_EQ(fallback_type(DType::Q6_K, 896), DType::Q8_0);
  EXPECT_EQ(fallback_type(DType::Q3_K, 896), DType::IQ4_NL);
  EXPECT_EQ(fallback_type(DType::Q4_0, 172), DType::F16);
  EXPECT_EQ(fallback_type(DType::Q4_K, 4096), DType::Q4_K);

  TempGguf tmp("fallback.gguf");
  SyntheticSpec s = synthetic_shape("demo");  // n_embd 64: no room for a 256-block
  s.weight_type = DType::Q4_K;
  s.n_ff = 160;                               // 160 % 32 == 0 but not % 256
  s.progress = false;
  write_synthetic_gguf(s, tmp.path);
  const auto f = gguf::File::open(tmp.path);
  expect_layout(f, s);
  EXPECT_EQ(f.find_tensor("blk.0.attn_q.weight")->type, static_cast<uint32_t>(DType::Q5_0));
  EXPECT_EQ(f.find_tensor("blk.0.ffn_down.weight")->type, static_cast<uint32_t>(DType::Q5_0));
}

TEST(Synthetic, OutputTypeOverride) {
  TempGguf tmp("mix.gguf");
  SyntheticSpec s = tiny(DType::Q4_0);
  s.output_type = static_cast<int32_t>(DType::Q6_K);  // llama-quantize's default mix for Q4_0
  write_synthetic_gguf(s, tmp.path);
  const auto f = gguf::File::open(tmp.path);
  EXPECT_EQ(f.find_tensor("output.weight")->type, static_cast<uint32_t>(DType::Q6_K));
  EXPECT_EQ(f.find_tensor("token_embd.weight")->type, static_cast<uint32_t>(DType::Q4_0));
}

TEST(Synthetic, SameSeedSameBytesWhateverTheThreads) {
  TempGguf a("a.gguf"), b("b.gguf"), c("c.gguf");
  SyntheticSpec s = tiny(DType::Q4_K);
  s.n_threads = 1;
  write_synthetic_gguf(s, a.path);
  s.n_threads = 3;
  write_synthetic_gguf(s, b.path);
  const auto ba = test::read_bytes(a.path), bb = test::read_bytes(b.path);
  EXPECT_FALSE(ba.empty());
  EXPECT_TRUE(ba == bb);
  s.seed = 43;
  write_synthetic_gguf(s, c.path);
  const auto bc = test::read_bytes(c.path);
  EXPECT_EQ(ba.size(), bc.size());
  EXPECT_FALSE(ba == bc);
}

std::string roundtrip(const Tokenizer& tok, const std::string& text) {
  return tok.decode(tok.encode(text, false, false));
}

TEST(Synthetic, SentencePieceVocabularyLoadsAndRoundTrips) {
  TempGguf tmp("spm.gguf");
  SyntheticSpec s = synthetic_shape("demo");
  s.progress = false;
  write_synthetic_gguf(s, tmp.path);
  const auto f = gguf::File::open(tmp.path);
  const auto tok = Tokenizer::from_gguf(f);
  EXPECT_EQ(tok->n_vocab(), 512);
  EXPECT_EQ(tok->model_name(), "llama");
  EXPECT_EQ(tok->bos(), 1);
  EXPECT_EQ(tok->eos(), 2);
  const std::string text = "Hello world, once upon a time: 42 cats! \xc3\xa9t\xc3\xa9";
  const auto ids = tok->encode(text, true, false);
  ASSERT_FALSE(ids.empty());
  EXPECT_EQ(ids[0], 1);
  EXPECT_LT(ids.size(), text.size());  // pieces merge letters
  EXPECT_EQ(roundtrip(*tok, text), text);
}

TEST(Synthetic, ByteLevelBpeVocabulariesLoadAndRoundTrip) {
  for (const char* pre : {"llama-bpe", "qwen2"}) {
    SCOPED_TRACE(pre);
    TempGguf tmp("bpe.gguf");
    SyntheticSpec s = synthetic_shape(std::string(pre) == "qwen2" ? "qwen2.5-0.5b" : "llama3-8b");
    s.n_embd = 64, s.n_head = 4, s.n_head_kv = 2, s.n_ff = 128, s.n_layer = 1, s.n_vocab = 2000;
    s.weight_type = DType::Q8_0;
    s.progress = false;
    write_synthetic_gguf(s, tmp.path);
    const auto f = gguf::File::open(tmp.path);
    expect_layout(f, s);
    EXPECT_EQ(f.get_string("tokenizer.ggml.pre"), pre);
    EXPECT_FALSE(f.get_string_array("tokenizer.ggml.merges").empty());
    const auto tok = Tokenizer::from_gguf(f);
    EXPECT_EQ(tok->n_vocab(), 2000);
    EXPECT_EQ(tok->model_name(), "gpt2");
    const std::string text = "Hello world, once upon a time: 42 cats!\n\xc3\xa9t\xc3\xa9 \xf0\x9f\x98\x80";
    const auto ids = tok->encode(text, false, false);
    EXPECT_LT(ids.size(), text.size());
    EXPECT_EQ(roundtrip(*tok, text), text);
    const std::string eot = std::string(pre) == "qwen2" ? "<|im_end|>" : "<|eot_id|>";
    const auto special = tok->encode(eot, false, true);
    ASSERT_EQ(special.size(), 1u);
    EXPECT_TRUE(tok->is_eog(special[0]));
  }
}

TEST(Synthetic, QwenShapeHasBiasesAndTiedEmbeddings) {
  TempGguf tmp("qwen.gguf");
  SyntheticSpec s = synthetic_shape("qwen2.5-0.5b");
  EXPECT_EQ(s.arch, "qwen2");
  EXPECT_TRUE(s.qkv_bias && s.tied_embeddings);
  s.n_layer = 1, s.n_vocab = 1000, s.n_ff = 256;  // 896-wide rows: q4_0 fits (896 = 28 x 32)
  s.progress = false;
  write_synthetic_gguf(s, tmp.path);
  const auto f = gguf::File::open(tmp.path);
  expect_layout(f, s);
  EXPECT_EQ(f.find_tensor("output.weight"), nullptr);
  EXPECT_NE(f.find_tensor("blk.0.attn_k.bias"), nullptr);
}

TEST(Synthetic, TheLlama2VocabularyIsCopiedWhenAvailable) {
  STRATA_REQUIRE_SHARED(ref_path, "models/llama-2-tiny-random.gguf");
  TempGguf tmp("l2.gguf");
  SyntheticSpec s = synthetic_shape("tinyllama-1.1b");
  s.n_embd = 64, s.n_layer = 1, s.n_head = 4, s.n_head_kv = 4, s.n_ff = 128;
  s.progress = false;
  write_synthetic_gguf(s, tmp.path);
  const auto f = gguf::File::open(tmp.path);
  const auto ref = gguf::File::open(ref_path);
  EXPECT_EQ(f.get_string_array("tokenizer.ggml.tokens"), ref.get_string_array("tokenizer.ggml.tokens"));
  EXPECT_EQ(f.get_f32_array("tokenizer.ggml.scores"), ref.get_f32_array("tokenizer.ggml.scores"));
  const auto tok = Tokenizer::from_gguf(f);
  EXPECT_EQ(tok->n_vocab(), 32000);
  EXPECT_EQ(tok->encode("Hello world", true, false), (std::vector<TokenId>{1, 15043, 3186}));
}

// The model loader (src/model/model.h) accepts what gen-model writes.
TEST(Synthetic, TheModelLoaderAcceptsTheFiles) {
  SyntheticSpec q = synthetic_shape("qwen2.5-0.5b");
  q.n_layer = 1, q.n_vocab = 1000, q.n_ff = 256, q.weight_type = DType::Q8_0;
  for (SyntheticSpec s : {synthetic_shape("demo"), tiny(DType::Q4_K), q}) {
    SCOPED_TRACE(s.name);
    s.progress = false;
    TempGguf tmp("load.gguf");
    write_synthetic_gguf(s, tmp.path);
    LoadOptions opts;
    opts.prepare_kernels = false;
    const auto m = Model::load(tmp.path, opts);
    const HParams& hp = m->hparams();
    EXPECT_EQ(hp.n_vocab, s.n_vocab);
    EXPECT_EQ(hp.n_embd, s.n_embd);
    EXPECT_EQ(hp.n_layer, s.n_layer);
    EXPECT_EQ(hp.n_head_kv, s.n_head_kv);
    EXPECT_EQ(hp.n_ff, s.n_ff);
    EXPECT_EQ(hp.rope_freq_base, static_cast<double>(s.rope_freq_base));
    EXPECT_EQ(m->weights().tied_output, s.tied_embeddings);
    EXPECT_EQ(m->weights().layers[0].bq.empty(), !s.qkv_bias);
  }
}

TEST(Synthetic, NamedShapes) {
  const auto t = synthetic_shape("tinyllama-1.1b");
  EXPECT_EQ(t.n_embd, 2048);
  EXPECT_EQ(t.n_layer, 22);
  EXPECT_EQ(t.n_head_kv, 4);
  EXPECT_EQ(t.n_ff, 5632);
  const auto l3 = synthetic_shape("llama3-8b");
  EXPECT_EQ(l3.n_vocab, 128256);
  EXPECT_EQ(l3.rope_freq_base, 500000.0f);
  EXPECT_EQ(l3.tokenizer, "gpt2");
  EXPECT_EQ(synthetic_shape("llama2-7b").n_head_kv, 32);
  EXPECT_EQ(synthetic_shape("mistral-7b").n_ctx, 32768);
  EXPECT_EQ(synthetic_shape_names().size(), 6u);
  for (const auto& n : synthetic_shape_names()) EXPECT_NO_THROW(validate(synthetic_shape(n))) << n;
}

TEST(Synthetic, ClearErrors) {
  try {
    synthetic_shape("llama-9000");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("tinyllama-1.1b"), std::string::npos) << e.what();
  }
  SyntheticSpec s = synthetic_shape("demo");
  s.n_head = 3;
  EXPECT_THROW(validate(s), Error);
  s = synthetic_shape("demo");
  s.n_head_kv = 3;
  EXPECT_THROW(validate(s), Error);
  s = synthetic_shape("demo");
  s.weight_type = DType::Q8_K;
  EXPECT_THROW(validate(s), Error);
  s = synthetic_shape("demo");
  s.n_vocab = 100;  // < 3 + 256 byte tokens
  s.progress = false;
  TempGguf tmp("err.gguf");
  EXPECT_THROW(write_synthetic_gguf(s, tmp.path), Error);
  EXPECT_NE(::access(tmp.path.c_str(), F_OK), 0);  // nothing left behind
}

TEST(StreamWriter, MatchesTheInMemoryWriter) {
  gguf::Writer meta;
  meta.set("general.architecture", gguf::Writer::string("llama"));
  meta.set("x.list", gguf::Writer::i32_array({1, 2, 3}));
  std::vector<uint8_t> a(8 * 4 * 4), b(34 * 3);
  for (size_t i = 0; i < a.size(); ++i) a[i] = static_cast<uint8_t>(i * 7);
  for (size_t i = 0; i < b.size(); ++i) b[i] = static_cast<uint8_t>(i * 13);
  gguf::Writer full = meta;
  full.add_tensor("a", static_cast<uint32_t>(DType::F32), {8, 4}, a);
  full.add_tensor("b", static_cast<uint32_t>(DType::Q8_0), {32, 3}, b);
  TempGguf tmp("stream.gguf");
  {
    gguf::StreamWriter w(tmp.path, meta, {{"a", 0, {8, 4}}, {"b", static_cast<uint32_t>(DType::Q8_0), {32, 3}}});
    w.write(a.data(), 10);  // any split of the bytes
    w.write(a.data() + 10, a.size() - 10 + 0);
    w.write(b.data(), b.size());
    EXPECT_THROW(w.write(b.data(), 1), Error);
    w.finish();
    EXPECT_EQ(w.file_size(), full.to_bytes().size());
  }
  EXPECT_TRUE(test::read_bytes(tmp.path) == full.to_bytes());
}

TEST(StreamWriter, IncompleteDataIsAnErrorAndLeavesNoFile) {
  TempGguf tmp("short.gguf");
  gguf::Writer meta;
  {
    gguf::StreamWriter w(tmp.path, meta, {{"a", 0, {8}}});
    w.write("abcd", 4);
    EXPECT_THROW(w.finish(), Error);
  }
  EXPECT_NE(::access(tmp.path.c_str(), F_OK), 0);
  EXPECT_THROW(gguf::StreamWriter(tmp.path, meta, {{"q", static_cast<uint32_t>(DType::Q4_0), {31}}}), Error);
}

}  // namespace
}  // namespace strata::model
