// kernels::attention against the float64 reference (materialized softmax) on seeded random Q/K/V:
// lengths 1..4097, head dims 64/80/128, GQA ratios 1/4/8, causal or not, every KV format, 1-3 threads.
#include <gtest/gtest.h>

#include "kernels/attention.h"
#include "kernels/ref/attention_ref.h"
#include "test_attention_util.h"

namespace strata::test {
namespace {

void check(const AttnCase& c) {
  SCOPED_TRACE(describe(c));
  AttnData a(c);
  std::vector<float> out(a.out_size(c), -7.f);
  std::vector<double> want(out.size());
  ThreadPool pool(c.threads);
  kernels::attention(a.shape, a.q.data(), c.n_q, c.q_pos0, a.k.view, a.v.view, c.n_kv, out.data(), pool);
  kernels::ref::attention_f64(a.shape, a.q.data(), c.n_q, c.q_pos0, a.k.view, a.v.view, c.n_kv, want.data());
  EXPECT_LE(max_abs_diff(out.data(), want.data(), out.size()), attention_tolerance(c.type));
}

constexpr DType kTypes[] = {DType::F32, DType::F16, DType::BF16, DType::Q8_0};

// Prefill of a whole prompt (q_pos0 = 0, n_q = n_kv), causal and not, every format, short lengths.
TEST(Attention, PrefillShortLengthsEveryFormat) {
  for (DType t : kTypes)
    for (int64_t n : {1, 2, 3, 17, 63, 64, 65, 127})
      for (bool causal : {true, false}) {
        AttnCase c;
        c.n_q = n; c.n_kv = n; c.n_head_kv = 2; c.group = 4; c.causal = causal; c.type = t;
        c.seed = static_cast<uint64_t>(n);
        check(c);
      }
}

// Head dims 64/80/128 (80 is not a multiple of 32: f32/f16 only) and GQA ratios 1/4/8.
TEST(Attention, HeadDimsAndGqaRatios) {
  for (int32_t d : {64, 80, 128})
    for (int32_t group : {1, 4, 8})
      for (DType t : kTypes) {
        if (t == DType::Q8_0 && d % 32 != 0) continue;
        AttnCase c;
        c.n_q = 37; c.q_pos0 = 90; c.n_kv = 127; c.n_head_kv = 2; c.group = group; c.head_dim = d; c.type = t;
        c.threads = 2;
        check(c);
        c.causal = false;
        check(c);
      }
}

// Chunked prefill: queries at positions q_pos0.. against a longer cache; [head][pos] layout with padding.
TEST(Attention, ChunkedPrefillAndLayouts) {
  for (bool pos_major : {true, false})
    for (int64_t q_pos0 : {0, 1, 64, 200}) {
      AttnCase c;
      c.n_q = 65; c.q_pos0 = q_pos0; c.n_kv = q_pos0 + 65 + (pos_major ? 0 : 30); c.n_head_kv = 2; c.group = 4;
      c.pos_major = pos_major; c.threads = 3;
      check(c);
    }
}

// Long sequences with few heads: 255, 1000 and 4097 keys, 1-3 threads.
TEST(Attention, LongPrefill) {
  for (int64_t n : {255, 1000}) {
    AttnCase c;
    c.n_q = n; c.n_kv = n; c.n_head_kv = 1; c.group = 4; c.threads = 2; c.type = DType::Q8_0;
    check(c);
  }
  AttnCase c;
  c.n_q = 200; c.q_pos0 = 4097 - 200; c.n_kv = 4097; c.n_head_kv = 1; c.group = 2; c.threads = 3;
  check(c);
}

// Thread counts 1, 2, 3 give the same answer within tolerance.
TEST(Attention, ThreadCounts) {
  for (int threads : {1, 2, 3}) {
    AttnCase c;
    c.n_q = 130; c.n_kv = 130; c.n_head_kv = 3; c.group = 2; c.threads = threads; c.type = DType::F32;
    check(c);
  }
}

}  // namespace
}  // namespace strata::test
