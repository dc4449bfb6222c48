// KvCache in every KV format (with and without an f16 recent window), read by the real attention kernel
// through its views (fused decode per tile, query/output transforms outside the kernel), against a float64
// reference on (a) the cache's own decoded rows: only float rounding may differ, and (b) the original rows:
// the format's error, bounded per format. Also: the tail/encoded split, truncation through a GEAR chunk.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/fp16.h"
#include "core/thread_pool.h"
#include "kernels/attention.h"
#include "kernels/ref/attention_ref.h"
#include "kv/kv_cache.h"
#include "test_format_helpers.h"

namespace strata::kv {
namespace {

constexpr int kLayers = 1, kHeadsKv = 2, kHeads = 4, kDim = 64;

// K, V: [n][kHeadsKv][kDim], K with outlier channels (×8, biased) and a rank-4 component, V rank-4.
struct Data {
  int64_t n;
  std::vector<float> K, V;
};

Data make_data(int64_t n, uint32_t seed) {
  Data d{n, {}, {}};
  const auto outl = test::spread_outliers(kDim);
  // make_rows gives [rows][kDim]; the (position, head) rows interleave naturally as [n][heads][dim].
  d.K = test::make_rows(static_cast<int>(n * kHeadsKv), kDim, seed, outl, 8.f, 4);
  d.V = test::make_rows(static_cast<int>(n * kHeadsKv), kDim, seed + 1, {}, 1.f, 4);
  return d;
}

KvCacheConfig config(KvFormat f, int32_t window, int64_t n_ctx) {
  KvCacheConfig c;
  c.n_layer = kLayers;
  c.n_head_kv = kHeadsKv;
  c.head_dim_k = c.head_dim_v = kDim;
  c.n_ctx = n_ctx;
  c.format_k = c.format_v = f;
  c.window = window;
  return c;
}

// Feeds positions [from, to) of d into the cache in steps of `step` tokens (a prompt, then decoding).
void feed(KvCache& kv, const Data& d, int64_t from, int64_t to, int64_t step) {
  for (int64_t p = from; p < to; p += step) {
    const int64_t n = std::min(step, to - p);
    kv.reserve(p + n);
    kv.store(0, p, n, d.K.data() + p * kHeadsKv * kDim, d.V.data() + p * kHeadsKv * kDim);
    kv.set_used(p + n);
  }
}

// f32 view of rows [n][heads][dim] (head_stride = dim floats, pos_stride = heads*dim floats).
kernels::KvView f32_view(const std::vector<float>& rows) {
  return {DType::F32, rows.data(), kDim * 4, kHeadsKv * kDim * 4};
}

// The cache's rows decoded to logical float32 [n][heads][dim].
std::vector<float> decoded(const KvCache& kv, int kind, int64_t n) {
  std::vector<float> out(static_cast<size_t>(n * kHeadsKv * kDim)), head(static_cast<size_t>(n * kDim));
  for (int h = 0; h < kHeadsKv; ++h) {
    kv.read_rows(0, kind, h, 0, n, head.data());
    for (int64_t p = 0; p < n; ++p) std::copy_n(head.data() + p * kDim, kDim, out.data() + (p * kHeadsKv + h) * kDim);
  }
  return out;
}

double max_abs(const std::vector<double>& a) {
  double m = 0;
  for (double x : a) m = std::max(m, std::abs(x));
  return m;
}

struct Errors {
  double vs_decoded = 0, vs_original = 0;
};

// Attention of n_q queries at the last positions over the cache, by the kernel, vs float64 references.
Errors attention_errors(const KvCache& kv, const Data& d, int64_t n_q, uint32_t seed) {
  const int64_t n = kv.n_used(), q_pos0 = n - n_q;
  std::vector<float> q = test::make_rows(static_cast<int>(n_q * kHeads), kDim, seed);
  for (auto& x : q) x *= 0.3f;
  kernels::AttentionShape s{kHeads, kHeadsKv, kDim, 1.f / std::sqrt(static_cast<float>(kDim)), true};
  std::vector<float> qt = q, out(q.size());
  static ThreadPool pool(2);
  kv.query_to_stored(0, qt.data(), n_q, kHeads);
  kernels::attention(s, qt.data(), n_q, q_pos0, kv.k_view(0), kv.v_view(0), n, out.data(), pool);
  kv.output_from_stored(0, out.data(), n_q, kHeads);

  const std::vector<float> Kd = decoded(kv, 0, n), Vd = decoded(kv, 1, n);
  std::vector<double> ref_dec(q.size()), ref_orig(q.size());
  kernels::ref::attention_f64(s, q.data(), n_q, q_pos0, f32_view(Kd), f32_view(Vd), n, ref_dec.data());
  kernels::ref::attention_f64(s, q.data(), n_q, q_pos0, f32_view(d.K), f32_view(d.V), n, ref_orig.data());
  Errors e;
  double num_d = 0, num_o = 0, den = 0;
  for (size_t i = 0; i < out.size(); ++i) {
    num_d = std::max(num_d, std::abs(out[i] - ref_dec[i]));
    num_o = std::max(num_o, std::abs(out[i] - ref_orig[i]));
  }
  den = max_abs(ref_orig);
  e.vs_decoded = num_d / den;
  e.vs_original = num_o / den;
  return e;
}

// Max abs error of the output relative to its largest value, vs float64 attention on the original rows
// (190 positions: a 150-token prompt then 40 decoded one at a time; 2 KV heads, 4 query heads; worst of
// the prefill of 8 queries and a single decode query; f32 with a window: its f16 rows). Stated tolerance per
// format, ~1.5× the worst of window 0 / 32 on these seeds (a max over outputs of peaky attention is noisy:
// the strict check is the one against the decoded rows).
const std::map<std::string, double> kTolerance = {
    {"f32", 2e-3},  {"f16", 2e-3},  {"bf16", 0.013}, {"q8_0", 0.03},  {"q4_0", 1.1}, {"q4_1", 0.5},
    {"bfp8", 0.055}, {"bfp4", 0.65}, {"bfp8r", 0.05}, {"bfp4r", 0.53}, {"q4h", 0.3},  {"bfp4h", 0.48},
    {"gear2", 0.48}, {"gear4", 0.11},
};

TEST(KvCacheFormats, AttentionOverEveryFormatAgainstTheFloat64Reference) {
  ASSERT_EQ(kTolerance.size(), all_formats().size());
  const Data d = make_data(190, 11);
  // bfp4r/bfp8r: channel permutations calibrated on other rows of the same distribution (an f32 cache).
  KvCache cal(config(KvFormat::F32, 0, 256));
  feed(cal, make_data(256, 99), 0, 256, 256);
  const KvCalibration calibration = calibrate_from(cal);
  for (const auto& info : all_formats())
    for (int32_t window : {0, 32}) {
      KvCacheConfig cfg = config(info.format, window, 1000);
      if (info.needs_calibration()) cfg.calibration = calibration;
      KvCache kv(cfg);
      feed(kv, d, 0, 150, 150);  // a prompt: most rows encoded straight from float32
      const Errors prefill = attention_errors(kv, d, 8, 21);
      feed(kv, d, 150, 190, 1);  // decoding: rows pass through the f16 tail first
      const Errors decode = attention_errors(kv, d, 1, 22);
      const double e_dec = std::max(prefill.vs_decoded, decode.vs_decoded);
      const double e_orig = std::max(prefill.vs_original, decode.vs_original);
      std::printf("  %-6s window %2d: encoded %3lld of %lld; rel. error vs decoded %.1e, vs original %.4f\n",
                  info.name, window, static_cast<long long>(kv.n_encoded()), static_cast<long long>(kv.n_used()),
                  e_dec, e_orig);
      EXPECT_LT(e_dec, 1e-4) << info.name << " window " << window;
      EXPECT_LT(e_orig, kTolerance.at(info.name)) << info.name << " window " << window;
      // The tail: exactly the last `window` positions (rows) or window + the partial chunk (GEAR).
      const int64_t t = info.tokens_per_unit;
      EXPECT_EQ(kv.n_encoded(), std::max<int64_t>(0, 190 - window) / t * t) << info.name;
    }
}

// The window's rows are f16 copies of the input; older rows carry the format's error.
TEST(KvCacheFormats, WindowRowsAreF16) {
  const Data d = make_data(100, 12);
  KvCache kv(config(KvFormat::Q4_0, 16, 256));
  feed(kv, d, 0, 60, 60);
  feed(kv, d, 60, 100, 1);
  ASSERT_EQ(kv.n_encoded(), 84);
  std::vector<float> rows(100 * kDim);
  kv.read_rows(0, 0, 1, 0, 100, rows.data());
  // Rows 0..43 were encoded straight from the prompt's float32, rows 44..83 from their f16 copy when they
  // left the window, rows 84..99 are the f16 window.
  double err_old = 0;
  std::vector<float> x(kDim), want(kDim);
  std::vector<uint8_t> unit(unit_bytes(KvFormat::Q4_0, kDim));
  for (int64_t p = 0; p < 100; ++p) {
    for (int c = 0; c < kDim; ++c) {
      x[c] = d.K[(p * kHeadsKv + 1) * kDim + c];
      if (p >= 44) x[c] = fp16_to_f32(f32_to_fp16(x[c]));
    }
    if (p < 84) {
      encode_row(KvFormat::Q4_0, {kDim, nullptr}, x.data(), unit.data());
      decode_row(KvFormat::Q4_0, {kDim, nullptr}, unit.data(), want.data());
    } else {
      want = x;
    }
    for (int c = 0; c < kDim; ++c) {
      ASSERT_EQ(rows[p * kDim + c], want[c]) << p << " " << c;
      if (p < 84) err_old = std::max(err_old, static_cast<double>(std::abs(rows[p * kDim + c] - x[c])));
    }
  }
  EXPECT_GT(err_old, 0.01);  // q4_0 is lossy
}

// Truncating into an encoded GEAR chunk decodes it back into the tail; the sequence then continues.
TEST(KvCacheFormats, TruncateThroughAGearChunk) {
  const Data d = make_data(160, 13);
  KvCache kv(config(KvFormat::GEAR4, 0, 512));
  feed(kv, d, 0, 150, 150);
  EXPECT_EQ(kv.n_encoded(), 128);
  std::vector<float> before(150 * kDim), after(150 * kDim);
  kv.read_rows(0, 1, 0, 0, 150, before.data());
  kv.truncate(100);
  EXPECT_EQ(kv.n_used(), 100);
  EXPECT_EQ(kv.n_encoded(), 64);
  kv.read_rows(0, 1, 0, 0, 100, after.data());
  for (int64_t i = 0; i < 100 * kDim; ++i)  // rows 64..99 went through f16: within its rounding
    ASSERT_NEAR(after[i], before[i], 2e-3 * (1 + std::abs(before[i]))) << i / kDim;
  feed(kv, d, 100, 160, 7);
  EXPECT_EQ(kv.n_encoded(), 128);
  const Errors e = attention_errors(kv, d, 1, 23);
  EXPECT_LT(e.vs_decoded, 1e-4);
  EXPECT_LT(e.vs_original, kTolerance.at("gear4"));
}

TEST(KvCacheFormats, CommittedMemoryFollowsTheFormat) {
  KvCache f16(config(KvFormat::F16, 0, 1 << 16)), q4(config(KvFormat::Q4_0, 0, 1 << 16));
  EXPECT_EQ(f16.committed_bytes(), 0u);
  EXPECT_EQ(q4.committed_bytes(), 0u);
  f16.reserve(1 << 14);
  q4.reserve(1 << 14);
  // 2 (K, V) × 2 heads × 16384 positions × 64 values: f16 2 bytes, q4_0 18 bytes per 32.
  EXPECT_EQ(f16.committed_bytes(), 2u * 2 * 16384 * 64 * 2);
  EXPECT_EQ(q4.committed_bytes(), 2u * 2 * 16384 * 2 * 18);
  EXPECT_DOUBLE_EQ(q4.bytes_per_token(), 2.0 * 2 * 36);
}

TEST(KvCacheFormats, Errors) {
  KvCacheConfig c = config(KvFormat::Q4_0, 0, 64);
  c.head_dim_k = c.head_dim_v = 48;  // not a multiple of 32
  EXPECT_THROW(KvCache{c}, Error);
  c = config(KvFormat::F16, -1, 64);
  EXPECT_THROW(KvCache{c}, Error);
  EXPECT_TRUE(KvCache::supported_type(DType::Q4_1));
  EXPECT_FALSE(KvCache::supported_type(DType::Q4_K));
}

}  // namespace
}  // namespace strata::kv
