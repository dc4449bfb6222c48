// The int8 scores of decode attention (attention_i8-inl.h, AVX-512 VNNI): q8_0 / q4_0 K, each query row
// quantized to int8 per 32 dims. Checked two ways against float64:
//  - exactness of the path: the reference run with the query replaced by its int8 rounding (q8·d/scale,
//    computed here from the rule "d = max|q·scale| / 127 per 32-dim block, q8 = round(q·scale / d)"):
//    only float32 arithmetic separates them, tolerance 5e-5 (values ~N(0, 1), as test_attention_util.h);
//  - the approximation: the reference with the exact query, tolerance 2e-2 with one digit (the rounding of q
//    to int8 moves a score by ~|q|·|k|/254·sqrt(32); outputs are averages of V rows ~N(0,1)), 1e-3 with two
//    digits (the residual of q's rounding, times 254, as a second int8 value).
#include "kernels/simd_config.h"  // first: the same target list as the kernels (AVX3_DL included)

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "hwy/targets.h"
#include "kernels/attention.h"
#include "kernels/attention_item.h"
#include "kernels/ref/attention_ref.h"
#include "test_attention_util.h"

namespace strata::test {
namespace {

constexpr double kTolPath = 5e-5;     // int8 path vs float64 with the same int8 query
constexpr double kTolApprox = 2e-2;   // int8 path vs float64 with the exact query

bool have_int8_path() { return std::string(kernels::detail::attention_target_name()) == "AVX3_DL"; }

// The query the int8 path uses, in float: per row and 32-dim block, q8·d / scale (see the file comment);
// two digits: (hi + lo/254)·d / scale with lo = round((x·scale/d - hi)·254).
std::vector<float> int8_rounded_query(const std::vector<float>& q, int32_t hd, float scale, int digits = 1) {
  std::vector<float> out(q.size());
  for (size_t r = 0; r < q.size() / hd; ++r)
    for (int32_t b = 0; b < hd / 32; ++b) {
      const float* x = q.data() + r * hd + 32 * b;
      float amax = 0;
      for (int32_t c = 0; c < 32; ++c) amax = std::max(amax, std::fabs(x[c] * scale));
      const float d = amax / 127.f, id = d > 0 ? 1.f / d : 0.f;
      for (int32_t c = 0; c < 32; ++c) {
        const float v = x[c] * scale * id;
        const float q8 = std::clamp(std::nearbyint(v), -127.f, 127.f);
        const float lo = digits == 2 ? std::clamp(std::nearbyint((v - q8) * 254.f), -127.f, 127.f) : 0.f;
        out[r * hd + 32 * b + c] = static_cast<float>((q8 + lo / 254.0) * d / scale);
      }
    }
  return out;
}

// digits: AttentionConfig::int8_scores (1 or 2).
void check_case(const AttnCase& c, ThreadPool& pool, int32_t kv_splits, int digits) {
  SCOPED_TRACE(describe(c) + " splits=" + std::to_string(kv_splits) + " digits=" + std::to_string(digits));
  AttnData a(c);
  std::vector<float> out(a.out_size(c)), exact(out.size());
  std::vector<double> want(out.size()), want_exact(out.size());
  kernels::AttentionConfig cfg;
  cfg.kv_splits = kv_splits;
  cfg.int8_scores = digits;
  kernels::AttentionIoStats st;
  kernels::attention(a.shape, a.q.data(), c.n_q, c.q_pos0, a.k.view, a.v.view, c.n_kv, out.data(), pool, cfg, &st);
  const auto q8 = int8_rounded_query(a.q, c.head_dim, a.shape.scale, digits);
  kernels::ref::attention_f64(a.shape, q8.data(), c.n_q, c.q_pos0, a.k.view, a.v.view, c.n_kv, want.data());
  kernels::ref::attention_f64(a.shape, a.q.data(), c.n_q, c.q_pos0, a.k.view, a.v.view, c.n_kv, want_exact.data());
  EXPECT_LE(max_abs_diff(out.data(), want.data(), out.size()), kTolPath);
  EXPECT_LE(max_abs_diff(out.data(), want_exact.data(), out.size()), digits == 2 ? 1e-3 : kTolApprox);
  // Byte accounting is the same as the float path's (K rows in their storage format).
  cfg.int8_scores = 0;
  kernels::AttentionIoStats st_exact;
  kernels::attention(a.shape, a.q.data(), c.n_q, c.q_pos0, a.k.view, a.v.view, c.n_kv, exact.data(), pool, cfg,
                     &st_exact);
  EXPECT_EQ(st.k_bytes, st_exact.k_bytes);
  EXPECT_LE(max_abs_diff(exact.data(), want_exact.data(), out.size()), attention_tolerance(c.type));
}

// Decode (one query at the end of the cache) at odd lengths 1 .. 4097, GQA 1/4/8, d 64/128, q8_0 and q4_0,
// both cache layouts, with and without KV splits.
TEST(AttentionInt8, DecodeMatchesReference) {
  if (!have_int8_path()) GTEST_SKIP() << "no AVX-512 VNNI (AVX3_DL) on this CPU: the int8 path is not compiled in";
  ThreadPool pool(2);
  for (DType t : {DType::Q8_0, DType::Q4_0})
    for (int64_t n : {1, 2, 17, 33, 100, 257, 1031, 4097})
      for (int32_t group : {1, 4, 8})
        for (int32_t d : {64, 128}) {
          if (n > 300 && (group != 8 || d != 64)) continue;  // long lengths: tinyllama's shape only
          AttnCase c;
          c.n_q = 1; c.q_pos0 = n - 1; c.n_kv = n; c.n_head_kv = 2; c.group = group; c.head_dim = d; c.type = t;
          c.pos_major = (n % 2) == 1;
          c.pad = c.pos_major ? -1 : 0;  // 0 with !pos_major: kv::KvCache's layout
          c.seed = static_cast<uint64_t>(n * 7 + group);
          check_case(c, pool, n > 64 ? 3 : 1, 1);
          check_case(c, pool, n > 64 ? 3 : 1, 2);
        }
}

// Several query positions (speculative / small-batch decode: up to 4 are "decoding"): 3 × 8 rows = 3 row
// vectors; causal and not.
TEST(AttentionInt8, FewQueriesMatchReference) {
  if (!have_int8_path()) GTEST_SKIP() << "no AVX-512 VNNI (AVX3_DL) on this CPU: the int8 path is not compiled in";
  ThreadPool pool(2);
  for (bool causal : {true, false})
    for (DType t : {DType::Q8_0, DType::Q4_0}) {
      AttnCase c;
      c.n_q = 3; c.q_pos0 = 211; c.n_kv = 214; c.n_head_kv = 2; c.group = 8; c.type = t; c.causal = causal;
      c.seed = 11;
      check_case(c, pool, 2, 1);
      check_case(c, pool, 2, 2);
    }
}

// The default (AttentionConfig::int8_scores = -1) when decoding is two digits; resolve_attention_config says
// so, and prefill stays float32. (This binary turns the process default off: test_attention_util.h.)
TEST(AttentionInt8, DefaultIsTwoDigitsWhenDecoding) {
  kernels::set_attention_int8_scores_default(true);
  kernels::AttentionShape s{8, 1, 64, 0.125f, true};
  EXPECT_EQ(kernels::resolve_attention_config(s, 1, 1000, 2).int8_scores, 2);
  EXPECT_EQ(kernels::resolve_attention_config(s, 64, 1000, 2).int8_scores, 0);
  if (have_int8_path()) {
    ThreadPool pool(2);
    AttnCase c;
    c.n_q = 1; c.q_pos0 = 332; c.n_kv = 333; c.n_head_kv = 2; c.group = 8; c.type = DType::Q8_0;
    AttnData a(c);
    std::vector<float> out(a.out_size(c));
    std::vector<double> want(out.size());
    kernels::attention(a.shape, a.q.data(), c.n_q, c.q_pos0, a.k.view, a.v.view, c.n_kv, out.data(), pool);
    const auto q8 = int8_rounded_query(a.q, c.head_dim, a.shape.scale, 2);
    kernels::ref::attention_f64(a.shape, q8.data(), c.n_q, c.q_pos0, a.k.view, a.v.view, c.n_kv, want.data());
    EXPECT_LE(max_abs_diff(out.data(), want.data(), out.size()), kTolPath);
  }
  kernels::set_attention_int8_scores_default(false);
  EXPECT_EQ(kernels::resolve_attention_config(s, 1, 1000, 2).int8_scores, 0);
}

// f16 / f32 K never take the int8 path: results stay within the exact path's tolerance with int8 asked for.
TEST(AttentionInt8, FloatKeysUnaffected) {
  ThreadPool pool(2);
  for (DType t : {DType::F16, DType::F32}) {
    AttnCase c;
    c.n_q = 1; c.q_pos0 = 130; c.n_kv = 131; c.n_head_kv = 2; c.group = 8; c.type = t;
    AttnData a(c);
    std::vector<float> out(a.out_size(c));
    std::vector<double> want(out.size());
    kernels::AttentionConfig cfg;
    cfg.int8_scores = 1;
    kernels::attention(a.shape, a.q.data(), c.n_q, c.q_pos0, a.k.view, a.v.view, c.n_kv, out.data(), pool, cfg,
                       nullptr);
    kernels::ref::attention_f64(a.shape, a.q.data(), c.n_q, c.q_pos0, a.k.view, a.v.view, c.n_kv, want.data());
    EXPECT_LE(max_abs_diff(out.data(), want.data(), out.size()), attention_tolerance(t));
  }
}

// Every compiled target runs int8_scores = 1 correctly: AVX3_DL with the int8 path, the others (which ignore
// it) exactly.
TEST(AttentionInt8, EveryTarget) {
  struct Restore {
    ~Restore() { hwy::SetSupportedTargetsForTest(0); }
  } restore;
  std::string seen;
  for (int64_t target : hwy::SupportedAndGeneratedTargets()) {
    hwy::SetSupportedTargetsForTest(target);
    const std::string name = kernels::detail::attention_target_name();
    seen += name + " ";
    SCOPED_TRACE("target " + name);
    ThreadPool pool(2);
    AttnCase c;
    c.n_q = 1; c.q_pos0 = 298; c.n_kv = 299; c.n_head_kv = 2; c.group = 8; c.type = DType::Q8_0;
    AttnData a(c);
    std::vector<float> out(a.out_size(c));
    std::vector<double> want(out.size());
    kernels::AttentionConfig cfg;
    cfg.int8_scores = 1;
    cfg.kv_splits = 3;
    kernels::attention(a.shape, a.q.data(), c.n_q, c.q_pos0, a.k.view, a.v.view, c.n_kv, out.data(), pool, cfg,
                       nullptr);
    const bool i8 = name == "AVX3_DL";
    const auto q = i8 ? int8_rounded_query(a.q, c.head_dim, a.shape.scale) : a.q;
    kernels::ref::attention_f64(a.shape, q.data(), c.n_q, c.q_pos0, a.k.view, a.v.view, c.n_kv, want.data());
    EXPECT_LE(max_abs_diff(out.data(), want.data(), out.size()), i8 ? kTolPath : attention_tolerance(c.type));
  }
  std::printf("[ targets  ] %s\n", seen.c_str());
}

}  // namespace
}  // namespace strata::test
