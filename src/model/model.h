// A loaded Llama-family model: hyper-parameters and the weights bound to tensors of the GGUF file.
// Weight matrices stay in the memory-mapped file (zero copy), or under a memory budget (WeightPlacement)
// are copied into anonymous memory or streamed from the file each token; only the small vectors (norms,
// biases, rope frequency factors) are copied out as float32. Shapes are written (rows, cols), row-major: a matrix
// (out, in) maps an input of `in` values to `out` values (ggml's ne = [in, out]).
#pragma once
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "gguf/gguf.h"
#include "kernels/matmul.h"
#include "model/hparams.h"
#include "model/sparse_ffn_options.h"
#include "storage/direct_file.h"
#include "storage/weight_streamer.h"
#include "tensor/dtype.h"

namespace strata::model {

// A weight matrix in the file.
struct Matrix {
  std::string name;
  DType type = DType::F32;
  // rows × row_bytes: into the mapped file; under a memory budget (LoadOptions::placement) a copy in
  // anonymous memory, or null when the matrix streams (kw.source reads it) or only its repacked copy is kept.
  const uint8_t* data = nullptr;
  uint64_t file_offset = 0;       // absolute offset of the bytes in the model file
  bool streamed = false;          // read from the file each token (LoadOptions::placement)
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
  // Bundled files (hparams.ffn_bundle): w_up and w_down are empty and this holds (n_ff, 2 * n_embd) rows
  // [up row i | down column i] in the file's layout (never repacked; storage/ffn_bundle.h).
  Matrix w_up_down;
};

struct Weights {
  Matrix tok_embd;                       // (n_vocab, n_embd)
  std::vector<LayerWeights> layers;      // n_layer
  std::vector<float> output_norm;        // (n_embd)
  Matrix output;                         // (n_vocab, n_embd): token_embd itself when output.weight is absent
  bool tied_output = false;              // output.weight absent: the embedding matrix is reused
  std::vector<float> rope_freq_factors;  // (n_rot / 2) or empty: Llama 3 (rope_freqs.weight)
};

// Where the weights live under a memory budget (`--mem`; the plan layer decides it). Listed matrices are
// streamed from the model file each token with direct I/O into a ring of `ring_slots` buffers
// (storage::WeightStreamer); every other matrix is read once with direct I/O into anonymous memory. The
// file's pages are then dropped from the page cache and the mapping: only the header stays mapped.
struct WeightPlacement {
  std::vector<std::string> streamed;  // tensor names ("blk.3.ffn_up.weight")
  int ring_slots = 2;
  bool verify = true;                 // checksum streamed tensors at every read (file changed: an error)
};

struct LoadOptions {
  bool prepare_kernels = true;  // call kernels::prepare_weight on every matrix (the runtime path needs it)
  bool progress = false;        // progress bar while parsing (terminal only)
  const WeightPlacement* placement = nullptr;  // null: every weight used in place from the mapped file
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
  // Under a placement: bytes of weights held in anonymous memory (copies and repacked copies), and the
  // streamer (null when nothing streams).
  uint64_t resident_bytes() const { return resident_bytes_; }
  const storage::WeightStreamer* streamer() const { return streamer_.get(); }
  const storage::DirectFile* direct_file() const { return direct_.get(); }
  // out[t] = the embedding row of tokens[t] (n_embd floats each): from memory, or gathered from the file
  // when the embeddings stream. Throws strata::Error for a token id outside the vocabulary.
  void embed(const int32_t* tokens, int64_t n, float* out) const;
  // "llama 5 layers, n_embd 64, ... f32" for logs.
  std::string describe() const;
  // The sparse FFN's settings (model/sparse_ffn.h) and the counters every forward over this model adds to.
  const FfnSparsity& ffn_sparsity() const { return ffn_sparsity_; }
  void set_ffn_sparsity(const FfnSparsity& s) { ffn_sparsity_ = s; }
  FfnCounters& ffn_counters() const { return ffn_counters_; }

 private:
  Model() = default;
  void start_streaming(const WeightPlacement& pl);
  gguf::File file_;
  HParams hp_;
  Weights w_;
  uint64_t weight_bytes_ = 0;
  // ---- under a placement (LoadOptions::placement) ----
  std::unique_ptr<storage::DirectFile> direct_;
  std::vector<storage::AlignedBuffer> resident_;  // resident weights' bytes
  uint64_t resident_bytes_ = 0;
  std::unique_ptr<storage::WeightStreamer> streamer_;
  std::deque<std::unique_ptr<kernels::WeightSource>> sources_;
  mutable std::mutex embed_mu_;
  mutable storage::AlignedBuffer embed_buf_;  // one gathered embedding row (aligned span)
  FfnSparsity ffn_sparsity_;
  mutable FfnCounters ffn_counters_;
};

}  // namespace strata::model
