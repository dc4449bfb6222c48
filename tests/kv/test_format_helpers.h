// Shared by the KV format tests: seeded data with planted outlier channels, error measures, and a KV head
// stored in a format the way a cache would store it (units in the format, the partial GEAR chunk and an
// optional recent window in f16), with a small scalar attention over it and a float64 reference.
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "core/fp16.h"
#include "kv/kv_format.h"

namespace strata::kv::test {

// Rows [n][d] of N(0,1) values; the channels in `outliers` are scaled by `outlier_scale` and shifted by
// outlier_scale / 2 (K's outlier channels in real models are large and biased). With low_rank > 0, each
// row also gets a shared random low-rank component (rank low_rank, amplitude 1): real K/V rows are
// strongly correlated across tokens.
inline std::vector<float> make_rows(int n, int d, uint32_t seed, const std::vector<int>& outliers = {},
                                    float outlier_scale = 20.f, int low_rank = 0) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> N(0.f, 1.f);
  std::vector<float> basis(static_cast<size_t>(low_rank) * d);
  for (auto& b : basis) b = N(rng) / std::sqrt(static_cast<float>(std::max(low_rank, 1)));
  std::vector<float> x(static_cast<size_t>(n) * d);
  for (int t = 0; t < n; ++t) {
    std::vector<float> coef(low_rank);
    for (auto& c : coef) c = N(rng);
    for (int c = 0; c < d; ++c) {
      float v = N(rng);
      for (int k = 0; k < low_rank; ++k) v += coef[k] * basis[k * d + c] * 2.f;
      x[t * d + c] = v;
    }
    for (int c : outliers) x[t * d + c] = x[t * d + c] * outlier_scale + outlier_scale / 2;
  }
  return x;
}

// 4 outlier channels spread over head_dim (each lands in a different block of 16 channels).
inline std::vector<int> spread_outliers(int d) { return {d / 16 + 1, d / 4 + 6, d / 2 + 3, d - 3}; }

inline double sq_err(const float* a, const float* b, size_t n) {
  double s = 0;
  for (size_t i = 0; i < n; ++i) s += (static_cast<double>(a[i]) - b[i]) * (static_cast<double>(a[i]) - b[i]);
  return s;
}
inline double mse(const std::vector<float>& a, const std::vector<float>& b) {
  return sq_err(a.data(), b.data(), a.size()) / static_cast<double>(a.size());
}
// Mean squared error over the channels not in `skip` (the error the normal channels see).
inline double mse_except(const std::vector<float>& a, const std::vector<float>& b, int d, const std::vector<int>& skip) {
  double s = 0;
  size_t n = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::find(skip.begin(), skip.end(), static_cast<int>(i % d)) != skip.end()) continue;
    s += (static_cast<double>(a[i]) - b[i]) * (static_cast<double>(a[i]) - b[i]);
    ++n;
  }
  return s / static_cast<double>(n);
}

// One KV head of n positions in format f: positions [0, n_main) as units of f, the rest (the partial GEAR
// chunk, or the recent window of a row format) as f16 rows.
struct StoredHead {
  KvFormat f;
  FormatParams p;
  int64_t n = 0, n_main = 0;
  size_t unit = 0;
  std::vector<uint8_t> main;  // n_main / tokens_per_unit units
  std::vector<uint8_t> tail;  // (n - n_main) f16 rows

  StoredHead(KvFormat f_, FormatParams p_, const std::vector<float>& rows, int64_t n_, int32_t window = 0)
      : f(f_), p(p_), n(n_) {
    const int d = p.head_dim;
    const int tpu = format_info(f).tokens_per_unit;
    n_main = tpu > 1 ? n / tpu * tpu : std::max<int64_t>(0, n - window);
    unit = unit_bytes(f, d);
    main.resize(unit * (n_main / tpu));
    for (int64_t u = 0; u < n_main / tpu; ++u) encode_unit(f, p, rows.data() + u * tpu * d, main.data() + u * unit);
    tail.resize(2 * d * (n - n_main));
    for (int64_t t = n_main; t < n; ++t)
      for (int c = 0; c < d; ++c) {
        const uint16_t h = f32_to_fp16(rows[t * d + c]);
        std::memcpy(&tail[2 * ((t - n_main) * d + c)], &h, 2);
      }
  }

  // All n rows decoded to logical values [n][d].
  std::vector<float> decoded() const {
    const int d = p.head_dim;
    const int tpu = format_info(f).tokens_per_unit;
    std::vector<float> out(static_cast<size_t>(n) * d);
    for (int64_t u = 0; u < n_main / tpu; ++u) decode_unit(f, p, main.data() + u * unit, out.data() + u * tpu * d);
    if (n > n_main) decode_range_stored(KvFormat::F16, d, tail.data(), 2 * d, 0, n - n_main, out.data() + n_main * d);
    return out;
  }

  // Scores <q, row p> for all positions, through prepare_query + dot_range (the attention path).
  std::vector<float> scores(const float* q) const {
    const int d = p.head_dim;
    std::vector<float> q_t(d), s(n);
    prepare_query(f, p, q, q_t.data());
    dot_range(f, d, q_t.data(), main.data(), static_cast<int64_t>(unit), 0, n_main, s.data());
    dot_range(KvFormat::F16, d, q, tail.data(), 2 * d, 0, n - n_main, s.data() + n_main);
    return s;
  }

  // out = sum_p w[p] row p, through axpy_range + finish_output (the attention path).
  std::vector<float> weighted_sum(const std::vector<float>& w) const {
    const int d = p.head_dim;
    std::vector<float> acc_t(d, 0.f), out(d);
    axpy_range(f, d, w.data(), main.data(), static_cast<int64_t>(unit), 0, n_main, acc_t.data());
    finish_output(f, p, acc_t.data(), out.data());
    axpy_range(KvFormat::F16, d, w.data() + n_main, tail.data(), 2 * d, 0, n - n_main, out.data());
    return out;
  }
};

// Single-query attention over a stored K and V head, in float (what a kernel would do, unfused).
inline std::vector<float> attend(const StoredHead& k, const StoredHead& v, const float* q, float scale) {
  std::vector<float> s = k.scores(q);
  const float m = *std::max_element(s.begin(), s.end());
  float l = 0;
  for (auto& x : s) l += (x = std::exp((x - m) * scale));
  for (auto& x : s) x /= l;
  return v.weighted_sum(s);
}

// The float64 reference: softmax(scale * K q) V on float rows [n][d].
inline std::vector<double> attend_f64(const std::vector<float>& K, const std::vector<float>& V, int64_t n, int d,
                                      const float* q, double scale) {
  std::vector<double> s(n), out(d, 0.0);
  double m = -INFINITY, l = 0;
  for (int64_t t = 0; t < n; ++t) {
    double x = 0;
    for (int c = 0; c < d; ++c) x += static_cast<double>(q[c]) * K[t * d + c];
    s[t] = x * scale;
    m = std::max(m, s[t]);
  }
  for (auto& x : s) l += (x = std::exp(x - m));
  for (int64_t t = 0; t < n; ++t)
    for (int c = 0; c < d; ++c) out[c] += s[t] / l * V[t * d + c];
  return out;
}

// ||a - b|| / ||b||
inline double rel_err(const std::vector<float>& a, const std::vector<double>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    num += (a[i] - b[i]) * (a[i] - b[i]);
    den += b[i] * b[i];
  }
  return std::sqrt(num / den);
}

// ||a - b|| / the RMS norm of the value rows V [n][d]: an attention output's error on the values' scale
// (an output that averages many rows can be much shorter than any of them).
inline double err_vs_values(const std::vector<float>& a, const std::vector<double>& b, const std::vector<float>& V) {
  double num = 0, vv = 0;
  for (size_t i = 0; i < a.size(); ++i) num += (a[i] - b[i]) * (a[i] - b[i]);
  for (float x : V) vv += static_cast<double>(x) * x;
  return std::sqrt(num / (vv / (V.size() / a.size())));
}

}  // namespace strata::kv::test
