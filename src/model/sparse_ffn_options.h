// Settings and counters of the sparse FFN (model/sparse_ffn.h), kept by the Model so that every forward pass
// over it sees them: `--ffn-threshold` and `--ffn-window` set them after loading.
#pragma once
#include <atomic>
#include <cstdint>

namespace strata::model {

// Counters the sparse FFN adds to (all layers, all forwards over the model).
struct FfnCounters {
  std::atomic<uint64_t> neurons{0};     // neuron evaluations considered (tokens × layers × n_ff)
  std::atomic<uint64_t> active{0};      // of which active (computed)
  std::atomic<uint64_t> tokens{0};      // token rows through the FFN of layer 0
  std::atomic<uint64_t> bytes_read{0};  // bundle bytes read from the file (streamed bundles)
  std::atomic<uint64_t> reads{0};       // direct reads issued for them (after coalescing)
  std::atomic<uint64_t> cache_peak{0};  // most bundle bytes held by the neuron caches at once
  std::atomic<uint64_t> check_ns{0};    // time spent checksumming the rows read (checked reads)
  double sparsity() const {
    const uint64_t n = neurons.load();
    return n ? 1.0 - static_cast<double>(active.load()) / static_cast<double>(n) : 0.0;
  }
};

struct FfnSparsity {
  // SiLU models: a neuron whose |silu(gate)| is below this is skipped (0: dense, the default). ReLU models
  // skip relu(gate) = 0 exactly and ignore it.
  float threshold = 0;
  // Streamed bundles: the rows of the neurons active in the last `window` tokens stay in memory and only the
  // newly active ones are read (0: every step reads its active rows).
  int window = 0;
  // Most bytes the neuron caches keep between steps, shared equally by the streamed layers (least recently
  // active rows dropped first); 0: no cap beyond the window.
  uint64_t cache_bytes = 0;
  // Streamed bundles: gaps of inactive rows up to this many bytes are read through, so that the rows on both
  // sides come in one request (the default was measured: model/sparse_ffn.cpp, docs/PLANNING.md); 0: only
  // adjacent rows share a read. The environment variable STRATA_FFN_GAP_BYTES overrides it (measurement).
  uint64_t gap_bytes = 16384;
};

}  // namespace strata::model
