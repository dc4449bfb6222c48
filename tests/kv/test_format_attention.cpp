// Attention over every KV format, the way a kernel would run it (query transformed once, fused dot/axpy on
// stored rows, output transformed back once; GEAR's partial chunk and the recent window in f16), against a
// float64 reference on (a) the dequantized rows: only float rounding may differ (relative error < 2e-5), and
// (b) the original rows: the format's own error, bounded per format below.
#include <gtest/gtest.h>

#include <cstdio>
#include <map>
#include <string>

#include "kv/calibration.h"
#include "test_format_helpers.h"

namespace strata::kv {
namespace {

using test::make_rows;

// L2 error of the attention output vs float64 attention on the original rows, relative to the RMS norm of
// the value rows (K with 4 outlier channels ×10, K and V with a rank-4 component, 200 positions, worst of
// 8 queries): the stated tolerance per format, about 1.5× what these seeds give.
const std::map<std::string, double> kTolerance = {
    {"f32", 1e-5},  {"f16", 1e-3},  {"bf16", 8e-3},  {"q8_0", 0.04},  {"q4_0", 0.45}, {"q4_1", 0.28},
    {"bfp8", 0.025}, {"bfp4", 0.65}, {"bfp8r", 0.02}, {"bfp4r", 0.18}, {"q4h", 0.24},  {"bfp4h", 0.48},
    {"gear2", 0.30}, {"gear4", 0.11},
};

struct Case {
  int d, n, n_q;
  std::vector<float> K, V, Q;
  KvCalibration cal;
};

Case make_case(int d) {
  Case c{d, 200, 8, {}, {}, {}, {}};
  const auto outl = test::spread_outliers(d);
  c.K = make_rows(c.n, d, 1000 + d, outl, 10.f, 4);
  c.V = make_rows(c.n, d, 2000 + d, {}, 1.f, 4);
  c.Q = make_rows(c.n_q, d, 3000 + d);
  for (auto& q : c.Q) q *= 0.5f;
  KvCalibrator cal(1, 1, d);
  const auto ck = make_rows(256, d, 4000 + d, outl, 10.f, 4), cv = make_rows(256, d, 5000 + d, {}, 1.f, 4);
  cal.add(0, ck.data(), cv.data(), 256);
  c.cal = cal.finish();
  return c;
}

// Worst error over the queries: relative to the output vs the dequantized rows, and relative to the values'
// scale vs the original rows.
std::pair<double, double> attention_errors(const Case& c, KvFormat f, int window) {
  const bool calib = format_info(f).needs_calibration();
  const test::StoredHead k(f, {c.d, calib ? c.cal.k_perm(0, 0) : nullptr}, c.K, c.n, window);
  const test::StoredHead v(f, {c.d, calib ? c.cal.v_perm(0, 0) : nullptr}, c.V, c.n, window);
  const auto Kd = k.decoded(), Vd = v.decoded();
  const float scale = 1.f / std::sqrt(static_cast<float>(c.d));
  double e_dec = 0, e_orig = 0;
  for (int i = 0; i < c.n_q; ++i) {
    const float* q = c.Q.data() + i * c.d;
    const auto out = test::attend(k, v, q, scale);
    e_dec = std::max(e_dec, test::rel_err(out, test::attend_f64(Kd, Vd, c.n, c.d, q, scale)));
    e_orig = std::max(e_orig, test::err_vs_values(out, test::attend_f64(c.K, c.V, c.n, c.d, q, scale), c.V));
  }
  return {e_dec, e_orig};
}

TEST(KvFormatAttention, EveryFormatAgainstTheFloat64Reference) {
  ASSERT_EQ(kTolerance.size(), all_formats().size());
  for (int d : {64, 128}) {
    const Case c = make_case(d);
    std::map<std::string, double> e;
    for (const auto& i : all_formats()) {
      const auto [e_dec, e_orig] = attention_errors(c, i.format, 0);
      e[i.name] = e_orig;
      std::printf("  attention d=%d %-6s rel. error vs dequantized %.2e, vs original %.4f\n", d, i.name, e_dec,
                  e_orig);
      EXPECT_LT(e_dec, 2e-5) << i.name << " d=" << d;
      EXPECT_LT(e_orig, kTolerance.at(i.name)) << i.name << " d=" << d;
    }
    // With outlier channels in K, outlier handling shows in attention too (measured: 3.7× / 2.6×,
    // 1.9× / 2.1×, 4.0× / 4.3×, d=64 / d=128).
    EXPECT_LT(e.at("bfp4r") * 2, e.at("bfp4")) << d;
    EXPECT_LT(e.at("q4h") * 1.5, e.at("q4_0")) << d;
    EXPECT_LT(e.at("gear4") * 3, e.at("q4_0")) << d;
  }
}

// The most recent W positions kept in f16: the format's error only applies to older positions.
TEST(KvFormatAttention, RecentWindowInF16) {
  const Case c = make_case(64);
  for (KvFormat f : {KvFormat::Q4_0, KvFormat::BFP4, KvFormat::Q8_0}) {
    const auto [dec0, orig0] = attention_errors(c, f, 0);
    const auto [dec_w, orig_w] = attention_errors(c, f, 64);
    const auto [dec_all, orig_all] = attention_errors(c, f, c.n);  // everything in the window: f16
    std::printf("  attention %s: no window %.4f, W=64 %.4f, W=n %.2e\n", format_name(f), orig0, orig_w, orig_all);
    EXPECT_LT(dec_w, 2e-5);
    EXPECT_LT(orig_w, orig0) << format_name(f);
    EXPECT_LT(orig_all, kTolerance.at("f16")) << format_name(f);
  }
}

}  // namespace
}  // namespace strata::kv
