// Row-column bundling of the FFN (LLM in a flash, Alizadeh et al. 2023): `strata convert --bundle` rewrites
// a llama-family GGUF so that, for every layer, the i-th row of ffn_up and the i-th column of ffn_down sit
// side by side in one tensor `blk.N.ffn_up_down.weight` (ggml shape [2 * n_embd, n_ff]):
//
//   bundle row i = [ up row i (n_embd values) | down column i (n_embd values) ]   in one weight type
//
// so the FFN of a set of neurons is read with one contiguous read per run of adjacent neurons. ffn_gate
// stays as it is (it predicts the active neurons); every other tensor and every metadata value is copied
// byte for byte, plus the key `strata.ffn_bundle = true`. llama.cpp cannot read bundled files.
//
// The bundle's type is the one of up and down with more bits per weight. The part in that type is copied
// exactly; the other part is dequantized and re-quantized: exact for F32 (and F16/BF16 from themselves),
// otherwise within the type's quantization error (tests/storage/test_ffn_bundle.cpp states the bounds).
#pragma once
#include <cstdint>
#include <string>

#include "tensor/dtype.h"

namespace strata::storage {

inline constexpr const char* kFfnBundleKey = "strata.ffn_bundle";

// "blk.3.ffn_up_down.weight"
std::string ffn_bundle_tensor(int64_t layer);

struct BundleOptions {
  bool progress = true;    // progress bar on a terminal
  bool overwrite = false;  // replace an existing output file
  int n_threads = 0;       // re-quantization threads; 0: all hardware threads
};

struct BundleResult {
  int64_t layers = 0;
  DType type = DType::F32;       // type of the last layer's bundle
  bool requantized = false;      // some part was re-quantized (not a byte copy)
  uint64_t file_bytes = 0;
};

// Writes the bundled form of `in` to `out` (through a temporary file renamed at the end). Throws
// strata::Error when `in` is already bundled, is not a llama/mistral/qwen2 model, lacks ffn_up/ffn_down, has
// an unsupported weight type, when `out` exists (without overwrite) or is `in`, or on I/O errors.
BundleResult write_ffn_bundle(const std::string& in, const std::string& out, const BundleOptions& opts = {});

}  // namespace strata::storage
