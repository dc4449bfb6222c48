// Writes small random-weight Llama-family GGUF files with chosen features (QKV bias, NeoX rope, Llama 3
// frequency factors, tied output, partial rotary, GQA), for tests that need shapes no real model here has.
#pragma once
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "gguf/gguf.h"
#include "tensor/dtype.h"

namespace strata::test {

struct TinySpec {
  std::string arch = "llama";
  int64_t n_embd = 32, n_layer = 2, n_head = 4, n_head_kv = 2, n_ff = 48, n_vocab = 64, n_ctx = 64;
  int64_t n_rot = 0;           // 0: no rope.dimension_count key (default: head size)
  double rope_base = 0;        // 0: no rope.freq_base key (default 10000)
  bool qkv_bias = false;       // attn_q/k/v.bias
  bool out_bias = false;       // attn_output.bias
  bool tied = false;           // no output.weight
  bool rope_freqs = false;     // rope_freqs.weight (Llama 3 style factors)
  bool write_eps = true;       // attention.layer_norm_rms_epsilon
  DType type = DType::F32;     // type of the weight matrices
  std::set<std::string> omit;  // tensors or keys not to write
  std::string bad_shape;       // a matrix written with its two dimensions swapped
  uint32_t seed = 1;
};

class TinyModelWriter {
 public:
  void write(const TinySpec& s, const std::string& path) {
    using W = gguf::Writer;
    gguf::Writer w;
    const std::string a = s.arch + ".";
    auto set = [&](const std::string& k, gguf::Value v) { if (!s.omit.count(k)) w.set(k, std::move(v)); };
    set("general.architecture", W::string(s.arch));
    set("general.name", W::string("tiny-test"));
    set(a + "context_length", W::u32(static_cast<uint32_t>(s.n_ctx)));
    set(a + "embedding_length", W::u32(static_cast<uint32_t>(s.n_embd)));
    set(a + "block_count", W::u32(static_cast<uint32_t>(s.n_layer)));
    set(a + "feed_forward_length", W::u32(static_cast<uint32_t>(s.n_ff)));
    set(a + "attention.head_count", W::u32(static_cast<uint32_t>(s.n_head)));
    set(a + "attention.head_count_kv", W::u32(static_cast<uint32_t>(s.n_head_kv)));
    if (s.n_rot) set(a + "rope.dimension_count", W::u32(static_cast<uint32_t>(s.n_rot)));
    if (s.rope_base) set(a + "rope.freq_base", W::f32(static_cast<float>(s.rope_base)));
    if (s.write_eps) set(a + "attention.layer_norm_rms_epsilon", W::f32(1e-5f));

    rng_.seed(s.seed);
    const int64_t hd = s.n_embd / s.n_head;
    const int64_t q = s.n_head * hd, kv = s.n_head_kv * hd, e = s.n_embd;
    matrix(w, s, "token_embd.weight", s.n_vocab, e, 1.0f);
    for (int64_t l = 0; l < s.n_layer; ++l) {
      const std::string p = "blk." + std::to_string(l) + ".";
      vec(w, s, p + "attn_norm.weight", e, 1.0f, 0.2f);
      matrix(w, s, p + "attn_q.weight", q, e, 0.3f);
      matrix(w, s, p + "attn_k.weight", kv, e, 0.3f);
      matrix(w, s, p + "attn_v.weight", kv, e, 0.3f);
      matrix(w, s, p + "attn_output.weight", e, q, 0.3f);
      if (s.qkv_bias) {
        vec(w, s, p + "attn_q.bias", q, 0.0f, 0.5f);
        vec(w, s, p + "attn_k.bias", kv, 0.0f, 0.5f);
        vec(w, s, p + "attn_v.bias", kv, 0.0f, 0.5f);
      }
      if (s.out_bias) vec(w, s, p + "attn_output.bias", e, 0.0f, 0.1f);
      vec(w, s, p + "ffn_norm.weight", e, 1.0f, 0.2f);
      matrix(w, s, p + "ffn_gate.weight", s.n_ff, e, 0.3f);
      matrix(w, s, p + "ffn_up.weight", s.n_ff, e, 0.3f);
      matrix(w, s, p + "ffn_down.weight", e, s.n_ff, 0.3f);
    }
    vec(w, s, "output_norm.weight", e, 1.0f, 0.2f);
    if (!s.tied) matrix(w, s, "output.weight", s.n_vocab, e, 0.3f);
    if (s.rope_freqs) {
      const int64_t half = (s.n_rot ? s.n_rot : hd) / 2;
      std::vector<float> f(static_cast<size_t>(half));
      for (int64_t i = 0; i < half; ++i) f[static_cast<size_t>(i)] = 1.0f + static_cast<float>(i) * 0.7f;
      add(w, s, "rope_freqs.weight", DType::F32, {half}, f);
    }
    w.write(path);
  }

 private:
  void add(gguf::Writer& w, const TinySpec& s, const std::string& name, DType t, std::vector<int64_t> ne,
           const std::vector<float>& v) {
    if (s.omit.count(name)) return;
    if (name == s.bad_shape && ne.size() == 2) std::swap(ne[0], ne[1]);  // (matrices only)
    const int64_t cols = ne[0];
    std::vector<uint8_t> bytes(row_bytes(t, cols) * (v.size() / static_cast<size_t>(cols)));
    const size_t rb = row_bytes(t, cols);
    for (size_t r = 0; r < v.size() / static_cast<size_t>(cols); ++r)
      quantize_row(t, v.data() + r * static_cast<size_t>(cols), bytes.data() + r * rb, cols);
    bufs_.push_back(std::move(bytes));
    w.add_tensor(name, static_cast<uint32_t>(t), ne, bufs_.back());
  }
  void matrix(gguf::Writer& w, const TinySpec& s, const std::string& name, int64_t rows, int64_t cols, float scale) {
    std::normal_distribution<float> nd(0.0f, scale / std::sqrt(static_cast<float>(cols)) * 4.0f);
    std::vector<float> v(static_cast<size_t>(rows * cols));
    for (float& x : v) x = nd(rng_);
    add(w, s, name, s.type, {cols, rows}, v);
  }
  void vec(gguf::Writer& w, const TinySpec& s, const std::string& name, int64_t n, float mean, float spread) {
    std::uniform_real_distribution<float> ud(mean - spread, mean + spread);
    std::vector<float> v(static_cast<size_t>(n));
    for (float& x : v) x = ud(rng_);
    add(w, s, name, DType::F32, {n}, v);
  }
  std::mt19937 rng_;
  std::vector<std::vector<uint8_t>> bufs_;  // tensor bytes, kept until write() copies them
};

inline void write_tiny_model(const TinySpec& s, const std::string& path) { TinyModelWriter().write(s, path); }

// A unique temporary path for a test file.
inline std::string temp_path(const std::string& name) {
  static int counter = 0;
  return ::testing::TempDir() + "strata_" + std::to_string(::getpid()) + "_" + std::to_string(counter++) + "_" + name;
}

}  // namespace strata::test
