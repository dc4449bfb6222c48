// Hyper-parameters of the Llama family (llama, mistral, qwen2), read from GGUF keys `{arch}.*` with the
// defaults llama.cpp uses when a key is absent.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "kernels/ops.h"

namespace strata::gguf { class File; }

namespace strata::model {

enum class Arch { kLlama, kMistral, kQwen2 };

// The FFN gate's activation: SiLU (SwiGLU, every llama-family model llama.cpp reads) or ReLU (ReLU-fied
// models such as ProSparse/ReluLLaMA, and `strata gen-model --ffn-act relu`), from the strata key
// `strata.ffn_act` ("silu" when absent).
enum class FfnAct { kSilu, kRelu };

struct HParams {
  Arch arch = Arch::kLlama;
  std::string arch_name;       // general.architecture: "llama", "mistral", "qwen2"
  std::string name;            // general.name (may be empty)
  int64_t n_vocab = 0;         // rows of token_embd.weight
  int64_t n_ctx_train = 0;     // {arch}.context_length
  int64_t n_embd = 0;          // {arch}.embedding_length
  int64_t n_layer = 0;         // {arch}.block_count
  int64_t n_ff = 0;            // {arch}.feed_forward_length
  int64_t n_head = 0;          // {arch}.attention.head_count
  int64_t n_head_kv = 0;       // {arch}.attention.head_count_kv (default n_head)
  int64_t head_dim = 0;        // {arch}.attention.key_length (default n_embd / n_head)
  int64_t head_dim_v = 0;      // {arch}.attention.value_length (default n_embd / n_head)
  int64_t n_rot = 0;           // {arch}.rope.dimension_count (default head_dim): rotated dims per head
  float rms_eps = 0;           // {arch}.attention.layer_norm_rms_epsilon (required, as in llama.cpp)
  double rope_freq_base = 10000;   // {arch}.rope.freq_base
  double rope_freq_scale = 1;      // 1 / {arch}.rope.scaling.factor for linear scaling (or rope.scale_linear)
  std::string rope_scaling = "none";  // {arch}.rope.scaling.type: none, linear, llama3
  kernels::RopeMode rope_mode = kernels::RopeMode::kNormal;  // llama/mistral: normal; qwen2: NeoX
  // Llama 3 scaling parameters (used only to compute the frequency factors when rope_freqs.weight is absent).
  double rope_llama3_factor = 8, rope_llama3_low = 1, rope_llama3_high = 4, rope_llama3_orig_ctx = 8192;
  FfnAct ffn_act = FfnAct::kSilu;  // strata.ffn_act
  // strata.ffn_bundle: the file holds blk.N.ffn_up_down (row i = [up row i | down column i], `strata convert
  // --bundle`) instead of ffn_up and ffn_down (storage/ffn_bundle.h).
  bool ffn_bundle = false;

  int64_t q_dim() const { return n_head * head_dim; }      // width of the query projection
  int64_t k_dim() const { return n_head_kv * head_dim; }   // width of the key projection
  int64_t v_dim() const { return n_head_kv * head_dim_v; } // width of the value projection
  int64_t o_dim() const { return n_head * head_dim_v; }    // width of the attention output
};

// Names of the supported architectures, for messages.
const char* supported_architectures();

// Reads and validates the hyper-parameters. Throws strata::Error naming the key when a required key is
// missing, has the wrong type or an impossible value, or when the architecture is not supported.
HParams read_hparams(const gguf::File& f);

// Llama 3 rope frequency factors (one per rotated pair), as Meta's reference and HF transformers compute them.
std::vector<float> llama3_freq_factors(const HParams& hp);

}  // namespace strata::model
