// Decode attention (n_q = 1 against a long cache): split KV (flash-decoding), the shared max estimate and
// its fallback, decode == prefill at the same positions, and the I/O counters.
#include <gtest/gtest.h>

#include "kernels/attention.h"
#include "kernels/ref/attention_ref.h"
#include "test_attention_util.h"

namespace strata::test {
namespace {

double run_and_compare(const AttnCase& c, AttnData& a, const kernels::AttentionConfig& cfg,
                       kernels::AttentionIoStats* st = nullptr) {
  std::vector<float> out(a.out_size(c), -7.f);
  std::vector<double> want(out.size());
  ThreadPool pool(c.threads);
  kernels::attention(a.shape, a.q.data(), c.n_q, c.q_pos0, a.k.view, a.v.view, c.n_kv, out.data(), pool, cfg, st);
  kernels::ref::attention_f64(a.shape, a.q.data(), c.n_q, c.q_pos0, a.k.view, a.v.view, c.n_kv, want.data());
  return max_abs_diff(out.data(), want.data(), out.size());
}

// One decode step at the end of caches of every length, every format, tinyllama's GQA (4 KV heads × 8).
TEST(AttentionDecode, LengthsAndFormats) {
  for (DType t : {DType::F32, DType::F16, DType::BF16, DType::Q8_0, DType::Q4_0})
    for (int64_t n : {1, 2, 3, 17, 63, 64, 65, 127, 255, 1000, 4097}) {
      AttnCase c;
      c.n_q = 1; c.q_pos0 = n - 1; c.n_kv = n; c.n_head_kv = n > 1000 ? 2 : 4; c.group = 8; c.type = t;
      c.threads = 2; c.seed = static_cast<uint64_t>(n) + 100;
      SCOPED_TRACE(describe(c));
      AttnData a(c);
      EXPECT_LE(run_and_compare(c, a, {}), attention_tolerance(t));
    }
}

// kv::KvCache's layout: each KV head's rows one after another ([head][pos], no gaps), which the kernel
// converts a tile at a time as one long row (LoadFlat). Every native format, odd lengths, head dims 64/80/128
// (q8_0/q4_0 need multiples of 32), GQA 1/4/8, the default tile and an odd one (17 keys).
TEST(AttentionDecode, CacheLayoutEveryNativeFormat) {
  for (DType t : {DType::F32, DType::F16, DType::BF16, DType::Q8_0, DType::Q4_0})
    for (int32_t d : {64, 80, 128})
      for (int32_t group : {1, 4, 8})
        for (int64_t n : {1, 5, 33, 200, 1027}) {
          if (d == 80 && (t == DType::Q8_0 || t == DType::Q4_0)) continue;
          AttnCase c;
          c.n_q = 1; c.q_pos0 = n - 1; c.n_kv = n; c.n_head_kv = group == 8 ? 4 : 2; c.group = group;
          c.head_dim = d; c.type = t; c.pos_major = false; c.pad = 0; c.threads = 2;
          c.seed = static_cast<uint64_t>(n * 7 + d + group);
          SCOPED_TRACE(describe(c));
          AttnData a(c);
          ASSERT_EQ(a.k.view.pos_stride, static_cast<int64_t>(kv_row_bytes(t, d)));  // contiguous rows
          for (int32_t tile : {0, 17}) {
            kernels::AttentionConfig cfg;
            cfg.kv_tile = tile;
            EXPECT_LE(run_and_compare(c, a, cfg), attention_tolerance(t)) << "kv_tile " << tile;
          }
        }
}

// Forced KV splits (1..7 chunks), shared max on and off, 1-3 threads, GQA ratios 1/4/8, head dims, KV heads
// per item (all: one contiguous stream; or one).
TEST(AttentionDecode, SplitsSharedMaxThreads) {
  for (int32_t group : {1, 4, 8})
    for (int32_t d : {64, 80, 128}) {
      AttnCase c;
      c.n_q = 1; c.q_pos0 = 700; c.n_kv = 701; c.n_head_kv = 2; c.group = group; c.head_dim = d;
      c.type = d == 80 ? DType::F16 : DType::Q8_0; c.seed = 7;
      AttnData a(c);
      std::vector<double> want(a.out_size(c));
      kernels::ref::attention_f64(a.shape, a.q.data(), 1, 700, a.k.view, a.v.view, 701, want.data());
      for (int threads : {1, 2, 3}) {
        ThreadPool pool(threads);
        for (int32_t splits : {1, 2, 7})
          for (int32_t shared : {0, 1}) {
            const int32_t heads_per_item = splits == 2 ? 1 : 0;
            kernels::AttentionConfig cfg;
            cfg.kv_splits = splits;
            cfg.kv_tile = 64;
            cfg.shared_max = shared;
            cfg.kv_heads_per_item = heads_per_item;
            SCOPED_TRACE(describe(c) + " threads=" + std::to_string(threads) + " splits=" + std::to_string(splits) +
                         " shared=" + std::to_string(shared) + " heads/item=" + std::to_string(heads_per_item));
            std::vector<float> out(want.size(), -7.f);
            kernels::AttentionIoStats st;
            kernels::attention(a.shape, a.q.data(), 1, 700, a.k.view, a.v.view, 701, out.data(), pool, cfg, &st);
            EXPECT_LE(max_abs_diff(out.data(), want.data(), out.size()), attention_tolerance(c.type));
            EXPECT_EQ(st.config.kv_splits, splits);
            const int64_t chunk = ((701 + splits - 1) / splits + 63) / 64 * 64;  // chunks are whole tiles
            EXPECT_EQ(st.items, (heads_per_item == 1 ? 2 : 1) * ((701 + chunk - 1) / chunk));
            EXPECT_EQ(st.rescales, 0);  // random scores never exceed the estimate by the slack
          }
      }
    }
}

// Non-causal decode-sized batches (a few queries, e.g. speculative verification) against a long cache.
TEST(AttentionDecode, SmallBatches) {
  for (int64_t n_q : {2, 3, 4})
    for (bool causal : {true, false}) {
      AttnCase c;
      c.n_q = n_q; c.q_pos0 = 2000; c.n_kv = 2000 + n_q + (causal ? 0 : 5); c.n_head_kv = 2; c.group = 4;
      c.causal = causal; c.threads = 3;
      SCOPED_TRACE(describe(c));
      AttnData a(c);
      kernels::AttentionConfig cfg;
      cfg.kv_splits = 5;
      EXPECT_LE(run_and_compare(c, a, cfg), attention_tolerance(c.type));
    }
}

// A planted score far above the shared estimate (key 777 aligned with query head 3) takes the exact
// fallback: the partial holding it raises its max and rescales; the combine weighs the partials.
TEST(AttentionDecode, SharedMaxFallback) {
  for (DType t : {DType::F32, DType::F16, DType::BF16, DType::Q8_0})
    for (int32_t splits : {1, 3}) {
      AttnCase c;
      c.n_q = 1; c.q_pos0 = 1499; c.n_kv = 1500; c.n_head_kv = 2; c.group = 4; c.type = t; c.threads = 2;
      const size_t row = static_cast<size_t>(c.n_head_kv * c.head_dim);
      auto kf = random_floats(static_cast<size_t>(c.n_kv) * row, 11, 1.f);
      auto vf = random_floats(static_cast<size_t>(c.n_kv) * row, 12, 1.f);
      AttnData probe(c, kf, vf);
      // K row (777, KV head 0) = 4 × query head 3 (of KV head 0): score ≈ 4·|q|²/8 ≈ 70 ≫ estimate + 30.
      for (int32_t i = 0; i < c.head_dim; ++i) kf[777 * row + i] = 4.f * probe.q[3 * c.head_dim + i];
      AttnData a(c, kf, vf);
      kernels::AttentionConfig cfg;
      cfg.kv_splits = splits;
      cfg.shared_max = 1;
      kernels::AttentionIoStats st;
      SCOPED_TRACE(describe(c) + " splits=" + std::to_string(splits));
      EXPECT_LE(run_and_compare(c, a, cfg, &st), attention_tolerance(t));
      EXPECT_GE(st.rescales, 1);
      // Without the slack (plain online softmax from the estimate) the answer is the same.
      cfg.max_slack = 0;
      EXPECT_LE(run_and_compare(c, a, cfg), attention_tolerance(t));
    }
}

// A decode step at position p gives the row p of a causal prefill over the same cache.
TEST(AttentionDecode, DecodeEqualsPrefill) {
  for (DType t : {DType::F32, DType::F16, DType::BF16, DType::Q8_0}) {
    AttnCase c;
    c.n_q = 300; c.q_pos0 = 0; c.n_kv = 300; c.n_head_kv = 2; c.group = 4; c.type = t; c.threads = 2;
    AttnData a(c);
    const int64_t row = static_cast<int64_t>(a.shape.n_head) * c.head_dim;
    std::vector<float> prefill(a.out_size(c));
    ThreadPool pool(2);
    kernels::attention(a.shape, a.q.data(), c.n_q, 0, a.k.view, a.v.view, c.n_kv, prefill.data(), pool);
    for (int64_t p : {0, 1, 63, 64, 65, 200, 299}) {
      std::vector<float> step(static_cast<size_t>(row));
      kernels::attention(a.shape, a.q.data() + p * row, 1, p, a.k.view, a.v.view, p + 1, step.data(), pool);
      double e = 0;
      for (int64_t i = 0; i < row; ++i) e = std::max(e, std::fabs(double(step[i]) - prefill[p * row + i]));
      // Both float32 paths agree to rounding; bf16 decode steps on AMX tiles (q and p as bf16 hi + lo) to
      // ~2^-17 relative against the float32 prefill.
      const double tol = t == DType::BF16 && kernels::attention_amx_usable() ? 3e-5 : 2e-6;
      EXPECT_LE(e, tol) << "position " << p << " type " << dtype_name(t);
    }
  }
}

// The counters are what the algorithm reads: every K/V row of the causal triangle once per query tile,
// fully masked tiles skipped; decode reads each row once plus the two probe rows.
TEST(AttentionDecode, IoCounters) {
  AttnCase c;
  c.n_q = 1; c.q_pos0 = 999; c.n_kv = 1000; c.n_head_kv = 4; c.group = 8; c.type = DType::F16; c.threads = 2;
  AttnData a(c);
  std::vector<float> out(a.out_size(c));
  ThreadPool pool(2);
  kernels::AttentionIoStats st;
  kernels::AttentionConfig cfg;
  cfg.kv_splits = 2;
  kernels::attention(a.shape, a.q.data(), 1, 999, a.k.view, a.v.view, 1000, out.data(), pool, cfg, &st);
  const int64_t rb = 2 * 64;
  EXPECT_EQ(st.v_bytes, 4 * 1000 * rb);
  EXPECT_EQ(st.k_bytes, 4 * 1000 * rb + 4 * 2 * 2 * rb);  // + key 0 and the last key per item
  EXPECT_EQ(st.q_bytes, 4 * 2 * 8 * 64 * 4);
  EXPECT_EQ(st.o_bytes, 32 * 64 * 4);
  EXPECT_GT(st.partial_bytes, 0);

  // Causal prefill, 256 queries in tiles of 64, KV tiles of 64: query tile t reads keys 0 .. 64(t+1).
  AttnCase p;
  p.n_q = 256; p.n_kv = 256; p.n_head_kv = 1; p.group = 2; p.type = DType::Q8_0;
  AttnData b(p);
  std::vector<float> o2(b.out_size(p));
  kernels::AttentionConfig pc;
  pc.q_tile = 64;
  pc.kv_tile = 64;
  pc.kv_splits = 1;
  kernels::attention(b.shape, b.q.data(), 256, 0, b.k.view, b.v.view, 256, o2.data(), pool, pc, &st);
  const int64_t qb = 2 * sizeof(block_q8_0);
  EXPECT_EQ(st.kv_tiles, 1 + 2 + 3 + 4);
  EXPECT_EQ(st.k_bytes, (64 + 128 + 192 + 256) * qb);
  EXPECT_EQ(st.v_bytes, st.k_bytes);
  EXPECT_EQ(st.o_bytes, 256 * 2 * 64 * 4);
  EXPECT_EQ(st.partial_bytes, 0);
}

}  // namespace
}  // namespace strata::test
