// Calibration of the reordered KV formats (bfp4r, bfp8r): per layer, per KV head, and separately for K and
// V, a channel permutation that sorts channels by magnitude (RMS over calibration rows), so that each block of
// 16 channels sharing an exponent holds channels of similar magnitude and outlier channels share blocks
// with each other only ("Accurate Block Quantization in LLMs with Outliers"). Computed once, offline or from
// the first prompt, and stored with the cache (save/load). The permutation is a FormatParams::perm.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace strata::kv {

// Per-channel statistics of one (layer, KV head, K or V).
class ChannelStats {
 public:
  explicit ChannelStats(int32_t head_dim = 0) : sum_sq_(head_dim, 0.0), max_abs_(head_dim, 0.0) {}
  void add(const float* row);
  int32_t head_dim() const { return static_cast<int32_t>(sum_sq_.size()); }
  int64_t count() const { return n_; }
  double rms(int32_t c) const;
  double max_abs(int32_t c) const { return max_abs_[c]; }

 private:
  std::vector<double> sum_sq_;   // (head_dim)
  std::vector<double> max_abs_;  // (head_dim)
  int64_t n_ = 0;
};

// Channels by decreasing RMS (ties: lower index first). perm[j] = the channel stored at position j.
std::vector<uint16_t> permutation_by_magnitude(const ChannelStats& s);
// True when p is a permutation of 0 .. p.size()-1.
bool is_permutation(const std::vector<uint16_t>& p);

struct KvCalibration {
  int32_t n_layer = 0, n_head_kv = 0, head_dim = 0;
  std::vector<uint16_t> perm_k;  // (layer, kv_head, head_dim)
  std::vector<uint16_t> perm_v;  // (layer, kv_head, head_dim)

  const uint16_t* k_perm(int32_t layer, int32_t head) const { return perm_k.data() + offset(layer, head); }
  const uint16_t* v_perm(int32_t layer, int32_t head) const { return perm_v.data() + offset(layer, head); }
  size_t offset(int32_t layer, int32_t head) const {
    return (static_cast<size_t>(layer) * n_head_kv + head) * head_dim;
  }
  static KvCalibration identity(int32_t n_layer, int32_t n_head_kv, int32_t head_dim);
  // Throws strata::Error on I/O errors or a file that does not match (n_layer, n_head_kv, head_dim).
  void save(const std::string& path) const;
  static KvCalibration load(const std::string& path);
  void check_shape(int32_t n_layer_, int32_t n_head_kv_, int32_t head_dim_) const;
};

// Accumulates K and V rows while a calibration text runs through the model.
class KvCalibrator {
 public:
  KvCalibrator(int32_t n_layer, int32_t n_head_kv, int32_t head_dim);
  // k, v: [n_tokens][n_head_kv][head_dim] of one layer (either may be null).
  void add(int32_t layer, const float* k, const float* v, int64_t n_tokens);
  int64_t tokens(int32_t layer) const { return stats_k_[static_cast<size_t>(layer) * n_head_kv_].count(); }
  KvCalibration finish() const;

 private:
  int32_t n_layer_, n_head_kv_, head_dim_;
  std::vector<ChannelStats> stats_k_, stats_v_;  // (layer, kv_head)
};

}  // namespace strata::kv
