// A loaded Llama-family model: hyper-parameters and the weights bound to tensors of the GGUF file.
// Weight matrices stay in the memory-mapped file (zero copy); only the small vectors (norms, biases, rope
// frequency factors) are copied out as float32. Shapes are written (rows, cols), row-major: a matrix
// (out, in) maps an input of `in` values to `out` values (ggml's ne = [in, out]).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "gguf/gguf.h"
#include "kernels/matmul.h"
#include "model/hparams.h"
#include "tensor/dtype.h"

namespace strata::model {

// A weight matrix in the file.
struct Matrix {
  std::string name;
  DType type = DType::F32;
  const uint8_t* data = nullptr;  // into the mapped file: rows × row_bytes
  int64_t rows = 0, cols = 0;
  size_t row_bytes = 0;
  kernels::Weight kw;             // the same matrix prepared for kernels::matmul (may hold a repacked copy)
  const uint8_t* row(int64_t r) const { return data + static_cast<size_t>(r) * row_bytes; }
};

struct LayerWeights {
  std::vector<float> attn_norm;  // (n_embd)
  Matrix wq;                     // (n_head * head_dim, n_embd)
  Matrix wk;                     // (n_head_kv * head_dim, n_embd)
  Matrix wv;                     // (n_head_kv * head_dim_v, n_embd)
  Matrix wo;                     // (n_embd, n_head * head_dim_v)
  std::vector<float> bq;         // (n_head * head_dim) or empty: qwen2 has Q/K/V biases
  std::vector<float> bk;         // (n_head_kv * head_dim) or empty
  std::vector<float> bv;         // (n_head_kv * head_dim_v) or empty
  std::vector<float> bo;         // (n_embd) or empty
  std::vector<float> ffn_norm;   // (n_embd)
  Matrix w_gate;                 // (n_ff, n_embd)
  Matrix w_up;                   // (n_ff, n_embd)
  Matrix w_down;                 // (n_embd, n_ff)
};

struct Weights {
  Matrix tok_embd;                       // (n_vocab, n_embd)
  std::vector<LayerWeights> layers;      // n_layer
  std::vector<float> output_norm;        // (n_embd)
  Matrix output;                         // (n_vocab, n_embd): token_embd itself when output.weight is absent
  bool tied_output = false;              // output.weight absent: the embedding matrix is reused
  std::vector<float> rope_freq_factors;  // (n_rot / 2) or empty: Llama 3 (rope_freqs.weight)
};

struct LoadOptions {
  bool prepare_kernels = true;  // call kernels::prepare_weight on every matrix (the runtime path needs it)
  bool progress = false;        // progress bar while parsing (terminal only)
};

class Model {
 public:
  // Opens and binds a GGUF file. Throws strata::Error naming the key or tensor that is missing, has the
  // wrong shape or an unsupported type.
  static std::unique_ptr<Model> load(const std::string& path, const LoadOptions& opts = {});
  static std::unique_ptr<Model> from_file(gguf::File file, const LoadOptions& opts = {});

  const gguf::File& file() const { return file_; }
  const HParams& hparams() const { return hp_; }
  const Weights& weights() const { return w_; }
  uint64_t weight_bytes() const { return weight_bytes_; }  // bytes of all tensors bound from the file
  // "llama 5 layers, n_embd 64, ... f32" for logs.
  std::string describe() const;

 private:
  Model() = default;
  gguf::File file_;
  HParams hp_;
  Weights w_;
  uint64_t weight_bytes_ = 0;
};

}  // namespace strata::model
