// Attention on AMX tiles (attention_amx.h): bf16 K/V, items of at most 16 query rows. Against the float64
// reference at odd lengths, head dims 64/96/128/256, GQA 1/4/8/16, causal and not, both layouts, both
// precisions; the float32 path on the same cache; the items that must not take the tile path; the counters.
#include <gtest/gtest.h>

#include <cstdio>

#include "kernels/attention.h"
#include "kernels/ref/attention_ref.h"
#include "test_attention_util.h"

namespace strata::test {
namespace {

bool amx_or_skip() {
  if (kernels::attention_amx_usable()) return true;
  std::printf("[ skipped  ] this CPU or OS has no AMX-BF16 tiles (Sapphire Rapids or later, Linux 5.16+)\n");
  return false;
}

struct Result {
  std::vector<float> out;
  kernels::AttentionIoStats st;
};

Result run(const AttnCase& c, const AttnData& a, kernels::AttentionConfig cfg) {
  Result r;
  r.out.assign(a.out_size(c), -7.f);
  ThreadPool pool(c.threads);
  kernels::attention(a.shape, a.q.data(), c.n_q, c.q_pos0, a.k.view, a.v.view, c.n_kv, r.out.data(), pool, cfg, &r.st);
  return r;
}

double vs_reference(const AttnCase& c, const AttnData& a, const Result& r) {
  std::vector<double> want(r.out.size());
  kernels::ref::attention_f64(a.shape, a.q.data(), c.n_q, c.q_pos0, a.k.view, a.v.view, c.n_kv, want.data());
  return max_abs_diff(r.out.data(), want.data(), want.size());
}

kernels::AttentionConfig amx(int level) {
  kernels::AttentionConfig cfg;
  cfg.amx = level;
  return cfg;
}

// Stated tolerances for outputs ~N(0, 1), about twice the largest error seen over these cases: two
// products (q and p as bf16 hi + lo: 1.1e-5 seen); one product rounds q and p to bf16 (8 bits, ~2^-9
// relative each: 1.0e-2 seen).
constexpr double kTolPrecise = 3e-5;
constexpr double kTolFast = 2e-2;

TEST(AttentionAmx, DecodeMatchesReference) {
  if (!amx_or_skip()) return;
  for (int32_t d : {64, 96, 128, 256})
    for (int32_t group : {1, 4, 8, 16})
      for (int64_t n : {1, 2, 15, 16, 17, 31, 32, 33, 127, 129, 1000, 4097}) {
        if (d == 256 && n > 1000) continue;  // time
        AttnCase c;
        c.n_q = 1; c.q_pos0 = n - 1; c.n_kv = n; c.n_head_kv = 2; c.group = group; c.head_dim = d;
        c.type = DType::BF16; c.pos_major = n % 2 == 0; c.pad = c.pos_major ? 32 : 0; c.threads = 2;
        c.seed = static_cast<uint64_t>(n * 31 + d + group);
        SCOPED_TRACE(describe(c));
        AttnData a(c);
        for (int level : {2, 1}) {
          const Result r = run(c, a, amx(level));
          EXPECT_EQ(r.st.amx_items, r.st.items) << "every item is on the tiles";
          EXPECT_LE(vs_reference(c, a, r), level == 2 ? kTolPrecise : kTolFast) << "amx " << level;
        }
      }
}

// A few query positions (2 × group 8 = 16 rows: the largest item on the tiles), causal (the diagonal
// crosses the last tile) and not, with forced splits.
TEST(AttentionAmx, SmallBatchesCausalAndFull) {
  if (!amx_or_skip()) return;
  for (bool causal : {true, false})
    for (int64_t n_q : {2}) {
      for (int64_t n : {40, 301, 2050}) {
        AttnCase c;
        c.n_q = n_q; c.q_pos0 = n - n_q; c.n_kv = n + (causal ? 0 : 3); c.n_head_kv = 2; c.group = 8;
        c.causal = causal; c.type = DType::BF16; c.threads = 2; c.seed = static_cast<uint64_t>(n + 5);
        SCOPED_TRACE(describe(c));
        AttnData a(c);
        for (int32_t splits : {1, 3}) {
          kernels::AttentionConfig cfg = amx(2);
          cfg.q_tile = static_cast<int32_t>(n_q);
          cfg.kv_splits = splits;
          const Result r = run(c, a, cfg);
          EXPECT_EQ(r.st.amx_items, r.st.items);
          EXPECT_LE(vs_reference(c, a, r), kTolPrecise) << "splits " << splits;
        }
      }
    }
}

// The tile path and the float32 path read the same bytes (the counters are the algorithm's, not the
// instruction set's) and agree to the stated tolerance.
TEST(AttentionAmx, AgreesWithFloatPathAndCountsTheSameBytes) {
  if (!amx_or_skip()) return;
  AttnCase c;
  c.n_q = 1; c.q_pos0 = 3000; c.n_kv = 3001; c.n_head_kv = 4; c.group = 8; c.type = DType::BF16;
  c.pos_major = false; c.pad = 0; c.threads = 2;
  AttnData a(c);
  const Result tiles = run(c, a, amx(2));
  const Result f32 = run(c, a, amx(0));
  EXPECT_GT(tiles.st.amx_items, 0);
  EXPECT_EQ(f32.st.amx_items, 0);
  std::vector<double> f32d(f32.out.begin(), f32.out.end());
  EXPECT_LE(max_abs_diff(tiles.out.data(), f32d.data(), f32d.size()), kTolPrecise);
  EXPECT_EQ(tiles.st.k_bytes, f32.st.k_bytes);
  EXPECT_EQ(tiles.st.v_bytes, f32.st.v_bytes);
  EXPECT_EQ(tiles.st.q_bytes, f32.st.q_bytes);
  EXPECT_EQ(tiles.st.partial_bytes, f32.st.partial_bytes);
  EXPECT_EQ(tiles.st.o_bytes, f32.st.o_bytes);
}

// Items the tiles do not take run on the float32 path, with its results: other K/V formats, head dims
// that are not a multiple of 32, more than 16 rows, AMX off.
TEST(AttentionAmx, OtherItemsTakeTheFloatPath) {
  if (!amx_or_skip()) return;
  struct Case {
    DType type;
    int32_t d, group;
    int64_t n_q;
    int level;
  };
  for (const Case& k : {Case{DType::F16, 64, 8, 1, 2}, Case{DType::F32, 64, 8, 1, 2}, Case{DType::BF16, 80, 8, 1, 2},
                        Case{DType::BF16, 64, 8, 3, 2}, Case{DType::BF16, 64, 8, 1, 0}}) {
    AttnCase c;
    c.n_q = k.n_q; c.q_pos0 = 500; c.n_kv = 500 + k.n_q; c.n_head_kv = 2; c.group = k.group; c.head_dim = k.d;
    c.type = k.type; c.threads = 2;
    SCOPED_TRACE(describe(c) + " amx=" + std::to_string(k.level));
    AttnData a(c);
    kernels::AttentionConfig cfg = amx(k.level);
    cfg.q_tile = static_cast<int32_t>(k.n_q);
    const Result r = run(c, a, cfg);
    EXPECT_EQ(r.st.amx_items, 0);
    EXPECT_GT(r.st.items, 0);
    EXPECT_LE(vs_reference(c, a, r), attention_tolerance(c.type));
  }
}

}  // namespace
}  // namespace strata::test
