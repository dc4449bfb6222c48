#include "kv/calibration.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <numeric>

#include "core/error.h"

namespace strata::kv {

namespace {
constexpr char kMagic[8] = {'S', 'T', 'K', 'V', 'C', 'A', 'L', '1'};
}

void ChannelStats::add(const float* row) {
  for (size_t c = 0; c < sum_sq_.size(); ++c) {
    const double x = row[c];
    sum_sq_[c] += x * x;
    max_abs_[c] = std::max(max_abs_[c], std::fabs(x));
  }
  ++n_;
}

double ChannelStats::rms(int32_t c) const { return n_ ? std::sqrt(sum_sq_[c] / static_cast<double>(n_)) : 0.0; }

std::vector<uint16_t> permutation_by_magnitude(const ChannelStats& s) {
  STRATA_ASSERT(s.head_dim() <= 65536, "permutation_by_magnitude: head_dim too large");
  std::vector<uint16_t> p(s.head_dim());
  std::iota(p.begin(), p.end(), uint16_t{0});
  std::stable_sort(p.begin(), p.end(), [&](uint16_t a, uint16_t b) { return s.rms(a) > s.rms(b); });
  return p;
}

bool is_permutation(const std::vector<uint16_t>& p) {
  std::vector<uint8_t> seen(p.size(), 0);
  for (uint16_t v : p) {
    if (v >= p.size() || seen[v]) return false;
    seen[v] = 1;
  }
  return true;
}

KvCalibration KvCalibration::identity(int32_t n_layer, int32_t n_head_kv, int32_t head_dim) {
  KvCalibration c{n_layer, n_head_kv, head_dim, {}, {}};
  const size_t n = static_cast<size_t>(n_layer) * n_head_kv;
  c.perm_k.resize(n * head_dim);
  for (size_t i = 0; i < n; ++i)
    std::iota(c.perm_k.begin() + i * head_dim, c.perm_k.begin() + (i + 1) * head_dim, uint16_t{0});
  c.perm_v = c.perm_k;
  return c;
}

void KvCalibration::check_shape(int32_t l, int32_t h, int32_t d) const {
  if (l != n_layer || h != n_head_kv || d != head_dim)
    fail("KV calibration is for {} layers × {} KV heads × head_dim {}, but the model has {} × {} × {}: "
         "recalibrate for this model",
         n_layer, n_head_kv, head_dim, l, h, d);
}

void KvCalibration::save(const std::string& path) const {
  std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(path.c_str(), "wb"), std::fclose);
  if (!f) fail("cannot write KV calibration file {}: {}", path, std::strerror(errno));
  const int32_t dims[3] = {n_layer, n_head_kv, head_dim};
  bool ok = std::fwrite(kMagic, 1, 8, f.get()) == 8 && std::fwrite(dims, 4, 3, f.get()) == 3 &&
            std::fwrite(perm_k.data(), 2, perm_k.size(), f.get()) == perm_k.size() &&
            std::fwrite(perm_v.data(), 2, perm_v.size(), f.get()) == perm_v.size();
  if (!ok) fail("cannot write KV calibration file {}: {}", path, std::strerror(errno));
}

KvCalibration KvCalibration::load(const std::string& path) {
  std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(path.c_str(), "rb"), std::fclose);
  if (!f) fail("cannot open KV calibration file {}: {}", path, std::strerror(errno));
  char magic[8];
  int32_t dims[3];
  if (std::fread(magic, 1, 8, f.get()) != 8 || std::memcmp(magic, kMagic, 8) != 0 ||
      std::fread(dims, 4, 3, f.get()) != 3)
    fail("{} is not a strata KV calibration file (bad header)", path);
  if (dims[0] <= 0 || dims[1] <= 0 || dims[2] <= 0 || dims[0] > 4096 || dims[1] > 4096 || dims[2] > 4096)
    fail("KV calibration file {} has an implausible shape {} × {} × {}", path, dims[0], dims[1], dims[2]);
  KvCalibration c{dims[0], dims[1], dims[2], {}, {}};
  const size_t n = static_cast<size_t>(dims[0]) * dims[1] * dims[2];
  c.perm_k.resize(n);
  c.perm_v.resize(n);
  if (std::fread(c.perm_k.data(), 2, n, f.get()) != n || std::fread(c.perm_v.data(), 2, n, f.get()) != n)
    fail("KV calibration file {} is truncated", path);
  for (const auto* v : {&c.perm_k, &c.perm_v})
    for (size_t i = 0; i < n; i += dims[2]) {
      std::vector<uint16_t> p(v->begin() + i, v->begin() + i + dims[2]);
      if (!is_permutation(p)) fail("KV calibration file {} is corrupt (not a permutation)", path);
    }
  return c;
}

KvCalibrator::KvCalibrator(int32_t n_layer, int32_t n_head_kv, int32_t head_dim)
    : n_layer_(n_layer), n_head_kv_(n_head_kv), head_dim_(head_dim),
      stats_k_(static_cast<size_t>(n_layer) * n_head_kv, ChannelStats(head_dim)),
      stats_v_(stats_k_) {}

void KvCalibrator::add(int32_t layer, const float* k, const float* v, int64_t n_tokens) {
  STRATA_ASSERT(layer >= 0 && layer < n_layer_, "KvCalibrator::add: layer out of range");
  for (int64_t t = 0; t < n_tokens; ++t)
    for (int32_t h = 0; h < n_head_kv_; ++h) {
      const size_t i = static_cast<size_t>(layer) * n_head_kv_ + h;
      const int64_t off = (t * n_head_kv_ + h) * head_dim_;
      if (k) stats_k_[i].add(k + off);
      if (v) stats_v_[i].add(v + off);
    }
}

KvCalibration KvCalibrator::finish() const {
  KvCalibration c = KvCalibration::identity(n_layer_, n_head_kv_, head_dim_);
  for (size_t i = 0; i < stats_k_.size(); ++i) {
    const auto pk = permutation_by_magnitude(stats_k_[i]);
    const auto pv = permutation_by_magnitude(stats_v_[i]);
    std::copy(pk.begin(), pk.end(), c.perm_k.begin() + i * head_dim_);
    std::copy(pv.begin(), pv.end(), c.perm_v.begin() + i * head_dim_);
  }
  return c;
}

}  // namespace strata::kv
