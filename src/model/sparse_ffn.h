// The FFN block for models with sparse activations (LLM in a flash, Alizadeh et al. 2023), used by
// LlamaForward instead of its dense SwiGLU block when the model has a ReLU gate, a bundled file
// (storage/ffn_bundle.h) or a SiLU threshold (FfnSparsity::threshold):
//
//   h_i = act(gate_i · x) · (up_i · x)      out = Σ_i h_i · down[:, i]
//
// A neuron is active when relu(gate_i · x) > 0 (ReLU: skipping the others is exact) or |silu(gate_i · x)| >=
// threshold (SiLU: an approximation, off by default). The gate is computed densely (it is the predictor).
// - Unbundled files: up and down are dense matmuls; inactive neurons' h is zeroed (the quality effect of
//   thresholding, no saving).
// - Bundled files: only the active neurons' bundle rows [up row i | down column i] are touched: dequantized,
//   up_i · x and h_i · down column i accumulated in float. Streamed bundles (under --mem) are read from the
//   file with direct I/O, runs of adjacent active neurons in one read each; with a window W, the rows of
//   the neurons active in the last W tokens stay in a per-layer neuron cache and only newly active ones are
//   read. Every row read is checked (check_row): its checksum at its first read is kept (8 bytes per row)
//   and a later read of other bytes, or a first read after the file's size/times changed, is an error.
//   The per-neuron work is kernels::sparse_ffn_accumulate (SIMD; kernels/sparse_ffn_simd.h).
#pragma once
#include <cstdint>
#include <vector>

#include "core/thread_pool.h"
#include "model/model.h"
#include "storage/direct_file.h"

namespace strata::model {

class SparseFfn {
 public:
  // True when the forward pass over `m` must use this block instead of the dense SwiGLU one.
  static bool needed(const Model& m);

  SparseFfn(const Model& m, ThreadPool& pool, int64_t n_batch);
  ~SparseFfn();  // STRATA_FFN_STATS=1: prints the model's FFN counters (sparsity, bytes read per token)
  SparseFfn(const SparseFfn&) = delete;
  SparseFfn& operator=(const SparseFfn&) = delete;
  // x: n rows (n <= n_batch) of the residual stream; adds layer l's FFN output to them (the ffn_norm is
  // applied here, as in LlamaForward's dense block).
  void run(const LayerWeights& lw, int64_t l, float* x, int64_t n);

  // Bytes of bundle rows currently held by the neuron caches (streamed bundles).
  uint64_t cache_bytes() const { return cache_bytes_; }

 private:
  struct NeuronCache {
    std::vector<int32_t> slot_of;    // neuron -> slot of slots_, or -1
    std::vector<int64_t> last;       // token count when last active
    std::vector<int32_t> cached;     // neurons with a slot
    std::vector<uint64_t> sum;       // neuron -> checksum of its bundle row at its first read
    std::vector<uint8_t> have_sum;   // neuron -> sum is set
  };
  void run_dense(const LayerWeights& lw, float* x, int64_t n);
  void run_bundled(const LayerWeights& lw, int64_t l, float* x, int64_t n);
  // Pointers to the bundle rows of the active neurons (reads the missing ones when the bundle streams).
  void fetch_rows(const LayerWeights& lw, int64_t l);
  bool check_row(NeuronCache& c, const Matrix& b, int64_t l, size_t i, const uint8_t* row, bool changed);
  void evict(int64_t l);
  bool active(float g) const;
  float act(float g) const;

  const Model& m_;
  ThreadPool& pool_;
  int64_t n_batch_;
  bool relu_;
  float threshold_;
  int window_;
  uint64_t cache_cap_;       // FfnSparsity::cache_bytes
  size_t gap_ = 0;           // FfnSparsity::gap_bytes (or STRATA_FFN_GAP_BYTES)
  int64_t n_streamed_ = 0;   // layers whose bundle streams
  std::vector<float> xb_, gate_, up_, proj_;   // (n_batch, n_embd | n_ff)
  std::vector<float> coef_;                    // (n_batch, n_ff): act(gate) of active neurons, else 0
  std::vector<int32_t> active_;                // neurons active for some row of the step, ascending
  std::vector<const uint8_t*> rows_;           // their bundle rows
  std::vector<std::vector<float>> acc_;        // per worker (n_batch, n_embd) partial outputs
  std::vector<std::vector<float>> deq_;        // per worker one dequantized bundle row
  std::vector<NeuronCache> caches_;            // per layer (streamed bundles)
  // One pool of row slots for all layers (room for every row; pages are touched only as slots are used,
  // freed slots are reused first, so the memory used is the most rows cached at once).
  storage::AlignedBuffer slots_;
  size_t slot_bytes_ = 0;
  std::vector<int32_t> free_slots_;
  int32_t next_slot_ = 0;
  storage::AlignedBuffer staging_;             // one coalesced read
  int64_t tokens_ = 0;                         // rows seen by layer 0 (the window's clock)
  uint64_t cache_bytes_ = 0;
  bool print_stats_ = false;
};

}  // namespace strata::model
