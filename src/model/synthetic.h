// Synthetic models: GGUF files of real model shapes with seeded random weights and a valid tokenizer, so
// benchmarks and tests run anywhere without downloads (`strata gen-model`). Written tensor by tensor, a
// chunk of rows at a time: a 7B model never sits in memory.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "tensor/dtype.h"

namespace strata::model {

struct SyntheticSpec {
  std::string name = "demo";     // shape name, used in general.name
  std::string arch = "llama";    // "llama" or "qwen2"
  int64_t n_embd = 64;
  int64_t n_layer = 2;
  int64_t n_head = 4;
  int64_t n_head_kv = 2;
  int64_t n_ff = 192;
  int64_t n_vocab = 512;
  int64_t n_ctx = 512;
  float rope_freq_base = 10000.0f;
  float rms_eps = 1e-5f;
  DType weight_type = DType::F32;  // every weight matrix (token_embd and output too, when the row allows)
  int32_t output_type = -1;        // ggml type id of output.weight, -1: weight_type (q6_K: llama-quantize's mix)
  uint64_t seed = 42;
  float weight_std = 0.02f;        // weights ~ N(0, std); norms are 1
  bool qkv_bias = false;           // qwen2: attn_{q,k,v}.bias
  bool tied_embeddings = false;    // no output.weight: the embedding is reused (Qwen2.5 0.5B)
  std::string tokenizer = "llama";  // "llama" (SentencePiece) or "gpt2" (byte-level BPE)
  std::string tokenizer_pre;        // BPE pre-tokenizer: "llama-bpe", "qwen2"
  std::string chat_template;        // family of the tokenizer.chat_template written ("" = none)
  // FFN gate activation: "silu" (SwiGLU, llama.cpp-compatible) or "relu" (written as strata.ffn_act = relu:
  // a sparse-activation test model; llama.cpp ignores the key and would run it as SiLU).
  std::string ffn_act = "silu";
  // Types whose reference quantizer is slow (K-quants, IQ4: 30-350 ns a weight) build each row from a pool of
  // 8192 quantized random blocks instead of quantizing every row: the weights are still N(0, std), blocks
  // repeat across the model, and a 7B model takes seconds instead of many minutes. true: quantize every row.
  bool exact = false;
  int n_threads = 0;                // 0: all hardware threads
  bool progress = true;             // progress bar on a terminal

  int64_t head_dim() const { return n_embd / n_head; }
  int64_t n_embd_kv() const { return head_dim() * n_head_kv; }
};

// The named shapes: tinyllama-1.1b, llama2-7b, llama3-8b, qwen2.5-0.5b, mistral-7b, demo.
// Throws strata::Error listing the names for an unknown one.
SyntheticSpec synthetic_shape(const std::string& name);
const std::vector<std::string>& synthetic_shape_names();

// Throws strata::Error saying what is wrong (e.g. "n_embd 100 is not a multiple of n_head 3").
void validate(const SyntheticSpec& spec);

// The type a tensor with rows of n_cols values gets when `wanted` does not fit the row length (llama.cpp's
// llama_tensor_get_type fallbacks: q4_K -> q5_0, q5_K -> q5_1, q6_K -> q8_0, q2_K/q3_K/iq4_xs -> iq4_nl,
// tq1_0/tq2_0 -> q4_0; then f16 when even that does not fit).
DType fallback_type(DType wanted, int64_t n_cols);

// True for the types that `exact = false` writes from a pool of quantized blocks.
bool pooled_type(DType t);

// llama.cpp's general.file_type (LLAMA_FTYPE_*) for files whose weights are mostly of type t.
uint32_t file_type_of(DType t);

// Writes the model to `path` (via a temporary file renamed at the end). Same spec and seed: the same bytes,
// whatever the thread count. Returns the file size in bytes.
uint64_t write_synthetic_gguf(const SyntheticSpec& spec, const std::string& path);

}  // namespace strata::model
