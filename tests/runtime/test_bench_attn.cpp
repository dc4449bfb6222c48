// `strata bench attn`'s arithmetic: the I/O bound, the FLOP count, the median, the bytes the records carry
// for tilings whose traffic is known in closed form, and the plot's log-scale mapping.
#include <gtest/gtest.h>

#include <algorithm>
#include <regex>
#include <string>

#include "core/error.h"
#include "runtime/bench_attn.h"

namespace strata::runtime {
namespace {

TEST(BenchAttn, BoundIsCompulsoryTrafficWhenTheCacheIsLarge) {
  AttnBenchCase c;
  c.n = 4096, c.head_dim = 64, c.kv_type = DType::F16, c.n_head = 1;
  // M = 2 MiB = 1 Mi f16 elements: N²d²/M = 4096² · 4096 / 2^20 = 65536 elements, less than reading
  // Q, K, V and writing O once: 4 · 4096 · 64 = 1048576 elements = 2 MiB of f16.
  EXPECT_DOUBLE_EQ(attn_bound_bytes(c, 2 << 20), 2097152.0);
}

TEST(BenchAttn, BoundIsQuadraticWhenTheCacheIsSmall) {
  AttnBenchCase c;
  c.n = 4096, c.head_dim = 64, c.kv_type = DType::F16, c.n_head = 1;
  // M = 64 KiB = 32768 f16 elements: N²d²/M = 2^24 · 2^12 / 2^15 = 2^21 elements = 4 MiB.
  EXPECT_DOUBLE_EQ(attn_bound_bytes(c, 64 << 10), 4194304.0);
  c.n = 8192;  // quadratic: twice N, four times the bound
  EXPECT_DOUBLE_EQ(attn_bound_bytes(c, 64 << 10), 16777216.0);
  c.n_head = 4;  // four query heads sharing the K/V head: four times the queries
  EXPECT_DOUBLE_EQ(attn_bound_bytes(c, 64 << 10), 4 * 16777216.0);
  c.n_head_kv = 4;  // four independent heads: the same
  EXPECT_DOUBLE_EQ(attn_bound_bytes(c, 64 << 10), 4 * 16777216.0);
  c.n_head_kv = 1;
  c.kv_type = DType::F32;  // 4-byte elements: M holds half as many, each twice the bytes
  c.n_head = 1;
  EXPECT_DOUBLE_EQ(attn_bound_bytes(c, 64 << 10), 4 * 16777216.0);
}

TEST(BenchAttn, DecodeBoundReadsKvOnce) {
  AttnBenchCase c;
  c.n = 1000, c.head_dim = 128, c.kv_type = DType::F16, c.decode = true;
  // One query: (2·1 + 2·1000) · 128 elements of 2 bytes.
  EXPECT_DOUBLE_EQ(attn_bound_bytes(c, 1 << 20), 2002.0 * 128 * 2);
  c.kv_type = DType::Q8_0;  // 34 bytes per 32 elements
  EXPECT_DOUBLE_EQ(attn_bound_bytes(c, 1 << 20), 2002.0 * 128 * 34 / 32);
  // GQA 32/4 (tinyllama): per KV head, 8 queries and outputs and the 1000 K and V rows, read once.
  c.kv_type = DType::F16, c.n_head = 32, c.n_head_kv = 4;
  EXPECT_DOUBLE_EQ(attn_bound_bytes(c, 1 << 20), 4 * (2.0 * 8 + 2.0 * 1000) * 128 * 2);
}

TEST(BenchAttn, FlopsCountAttendedPairs) {
  AttnBenchCase c;
  c.n = 10, c.head_dim = 8, c.n_head = 2;
  EXPECT_DOUBLE_EQ(attn_flops(c), 4.0 * 8 * 2 * 55);  // causal: 1 + 2 + ... + 10 pairs
  c.decode = true;
  EXPECT_DOUBLE_EQ(attn_flops(c), 4.0 * 8 * 2 * 10);
}

TEST(BenchAttn, Median) {
  EXPECT_EQ(median_of({}), 0.0);
  EXPECT_EQ(median_of({3, 1, 2}), 2.0);
  EXPECT_EQ(median_of({4, 1, 3, 2}), 2.5);
  EXPECT_EQ(median_of({5}), 5.0);
}

TEST(BenchAttn, UnsupportedInputIsAnError) {
  ThreadPool pool(1);
  AttnBenchCase c;
  c.n = 0;
  EXPECT_THROW(run_attn_bench(c, pool), Error);
  c.n = 16, c.kv_type = DType::Q4_K;
  EXPECT_THROW(run_attn_bench(c, pool), Error);
  c.kv_type = DType::F16, c.n_head = 3, c.n_head_kv = 2;
  EXPECT_THROW(run_attn_bench(c, pool), Error);
}

// Prefill with one query tile covering all N queries reads every K and V row exactly once per KV head.
TEST(BenchAttn, OneQueryTileReadsKvOnce) {
  ThreadPool pool(2);
  AttnBenchCase c;
  c.n = 96, c.head_dim = 64, c.kv_type = DType::F16, c.n_head = 2, c.n_head_kv = 1, c.q_tile = 96, c.kv_tile = 32;
  c.reps = 1;
  const AttnBenchRecord r = run_attn_bench(c, pool);
  EXPECT_EQ(r.io.config.q_tile, 96);
  EXPECT_EQ(r.io.config.kv_tile, 32);
  const int64_t kv_row = 64 * 2;
  EXPECT_EQ(r.io.k_bytes, 96 * kv_row);
  EXPECT_EQ(r.io.v_bytes, 96 * kv_row);
  // float32 queries of both heads, read by each KV split (2 threads split the keys); outputs written once
  EXPECT_EQ(r.io.q_bytes, r.io.config.kv_splits * 96 * 2 * 64 * 4);
  EXPECT_EQ(r.io.o_bytes, 96 * 2 * 64 * 4);
  ASSERT_EQ(r.samples_s.size(), 1u);
  EXPECT_GT(r.median_s, 0);
}

// Smaller query tiles re-read K/V: with causal masking, query tile i (of q_tile rows) reads the keys up to
// its last position, so V traffic is sum over tiles of min(N, (i+1)·q_tile) rounded up to kv tiles.
TEST(BenchAttn, QueryTilesRereadKvCausally) {
  ThreadPool pool(1);
  AttnBenchCase c;
  c.n = 128, c.head_dim = 64, c.kv_type = DType::F32, c.q_tile = 32, c.kv_tile = 32, c.reps = 1;
  const AttnBenchRecord r = run_attn_bench(c, pool);
  ASSERT_EQ(r.io.config.kv_splits, 1);
  // Tiles end at keys 32, 64, 96, 128: 32 + 64 + 96 + 128 = 320 rows of 256 bytes.
  EXPECT_EQ(r.io.v_bytes, 320 * 256);
  EXPECT_EQ(r.io.k_bytes, 320 * 256);
}

// Every KV layout and format the bench offers reads each K/V row once when decoding: the native formats in
// both layouts and over several cycled caches, a strata format through its row decoder (counted at its
// bytes per token: bfp4 = 9 bytes per 16 values); a strata format has only the cache's layout.
TEST(BenchAttn, LayoutsLayersAndStrataFormatsReadKvOnce) {
  ThreadPool pool(2);
  AttnBenchCase c;
  c.n = 300, c.head_dim = 64, c.decode = true, c.n_head = 8, c.n_head_kv = 2, c.reps = 3, c.kv_tile = 32;
  for (DType t : {DType::F16, DType::Q4_0})
    for (bool token : {false, true}) {
      c.kv_type = t, c.token_major = token, c.layers = token ? 1 : 3;
      const AttnBenchRecord r = run_attn_bench(c, pool);
      const int64_t row = t == DType::F16 ? 128 : 36;
      EXPECT_EQ(r.io.v_bytes, 2 * 300 * row) << dtype_name(t) << (token ? " token" : " head");
      EXPECT_EQ(r.c.layers, c.layers);
      EXPECT_GT(r.median_cpu_s, 0.0);
    }
  c.kv_format = "bfp4", c.token_major = false, c.layers = 2;
  const AttnBenchRecord r = run_attn_bench(c, pool);
  EXPECT_EQ(r.io.v_bytes, 2 * 300 * 36);  // 4 blocks of 9 bytes per row
  EXPECT_EQ(kv_format_label(r.c), "bfp4");
  EXPECT_NE(attn_markdown({r}).find("| bfp4 |"), std::string::npos);
  c.token_major = true;
  EXPECT_THROW(run_attn_bench(c, pool), Error);
  c.token_major = false, c.layers = 0;
  EXPECT_THROW(run_attn_bench(c, pool), Error);
  c.layers = 1, c.kv_format = "nope";
  EXPECT_THROW(run_attn_bench(c, pool), Error);
}

TEST(BenchAttn, MarkdownAndJsonCarryTheNumbers) {
  AttnBenchRecord r;
  r.c.n = 2048;
  r.c.head_dim = 64;
  r.cache_bytes = 2 << 20;
  r.io.k_bytes = 3000000, r.io.v_bytes = 1000000;
  r.bound_bytes = 2000000;
  r.samples_s = {0.002, 0.001, 0.003};
  r.median_s = 0.002;
  const std::string md = attn_markdown({r});
  EXPECT_NE(md.find("| prefill | 2048 | 64 |"), std::string::npos) << md;
  EXPECT_NE(md.find("| 2 MiB | 4.000 | 2.000 | 2.00 |"), std::string::npos) << md;
  EXPECT_NE(md.find("| 2.000 |"), std::string::npos) << md;  // median ms
  const std::string js = attn_json({r});
  EXPECT_NE(js.find("\"counted_bytes\": 4000000"), std::string::npos) << js;
  EXPECT_NE(js.find("\"bound_bytes\": 2000000"), std::string::npos) << js;
  EXPECT_NE(js.find("\"samples_s\": [0.002, 0.001, 0.003]"), std::string::npos) << js;
}

TEST(BenchAttn, LogAxisMapsDecadesEvenly) {
  const LogAxis a{1, 1000, 100, 400};
  EXPECT_DOUBLE_EQ(a.map(1), 100);
  EXPECT_NEAR(a.map(10), 200, 1e-9);
  EXPECT_NEAR(a.map(100), 300, 1e-9);
  EXPECT_DOUBLE_EQ(a.map(1000), 400);
  const LogAxis y{1, 100, 500, 100};  // y grows upward
  EXPECT_NEAR(y.map(10), 300, 1e-9);
}

TEST(BenchAttn, SvgHasOnePolylinePerSeriesWithEveryPoint) {
  std::vector<AttnBenchRecord> rows;
  for (int64_t n : {256, 512, 1024})
    for (bool dec : {false, true}) {
      AttnBenchRecord r;
      r.c.n = n;
      r.c.decode = dec;
      r.median_s = 1e-3 * static_cast<double>(n) / 256;
      r.io.k_bytes = n * 1000;
      r.bound_bytes = static_cast<double>(n) * 500;
      rows.push_back(r);
    }
  const std::string svg = attn_svg(rows, "caption <test>");
  EXPECT_EQ(svg.rfind("<svg", 0), 0u);
  EXPECT_NE(svg.find("</svg>"), std::string::npos);
  EXPECT_NE(svg.find("caption &lt;test&gt;"), std::string::npos);
  const std::regex poly("<polyline[^>]*points=\"([^\"]*)\"");
  int lines = 0;
  for (auto it = std::sregex_iterator(svg.begin(), svg.end(), poly); it != std::sregex_iterator(); ++it) {
    ++lines;
    const std::string pts = (*it)[1];
    EXPECT_EQ(std::count(pts.begin(), pts.end(), ','), 3) << pts;  // 3 values of N
  }
  EXPECT_EQ(lines, 6);  // time: prefill, decode; bytes: counted and bound for each
}

}  // namespace
}  // namespace strata::runtime
