// Attention microbenchmarks on the tinyllama-1.1b shape (32 query heads, 4 KV heads, head_dim 64).
//   BM_AttnDecode/<kv_len>/<threads>/<fmt>: one decode step against a cache of kv_len positions. Cold:
//     rotates over enough layers' caches (> 2× the L3) that K/V come from DRAM, as in a real forward pass.
//     Counters: kv_GB/s = K+V bytes the algorithm read per second (compare with DRAM bandwidth,
//     ~30 GB/s on 2 threads here), io_MB = all bytes it counted per call.
//   BM_AttnDecodeHot: the same with one cache (L2/L3 resident): the compute ceiling of the kernel.
//   BM_AttnPrefill/<n>/<threads>: causal prefill of n tokens (GFLOP/s counts 4·n²/2·d per head).
//   BM_Softmax/<n>, BM_SoftmaxTopK/<n>: two-pass softmax over a vocabulary (GB/s of logits read+written),
//     and the fused top-40/top-0.95 selection (one read).
// fmt: 0 = f16, 1 = q8_0, 2 = f32.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <random>
#include <vector>

#include "core/fp16.h"
#include "kernels/attention.h"
#include "kernels/softmax.h"

namespace {

using namespace strata;

constexpr int32_t kHeads = 32, kKvHeads = 4, kDim = 64;

DType fmt_type(int64_t f) { return f == 1 ? DType::Q8_0 : f == 2 ? DType::F32 : DType::F16; }

size_t row_bytes(DType t) {
  return t == DType::F32 ? 4 * kDim : t == DType::F16 ? 2 * kDim : sizeof(block_q8_0) * (kDim / QK8_0);
}

// One layer's K (or V) cache in [pos][kv_head] layout with random contents.
struct Cache {
  std::vector<uint8_t> bytes;
  kernels::KvView view;
  Cache(DType t, int64_t n, uint64_t seed) {
    const size_t rb = row_bytes(t);
    bytes.resize(rb * kKvHeads * n);
    std::mt19937 rng(static_cast<uint32_t>(seed));
    std::normal_distribution<float> nd(0.f, 1.f);
    std::vector<float> x(kDim);
    for (int64_t r = 0; r < n * kKvHeads; ++r) {
      for (auto& e : x) e = nd(rng);
      uint8_t* dst = bytes.data() + r * rb;
      if (t == DType::F32) {
        std::memcpy(dst, x.data(), rb);
      } else if (t == DType::F16) {
        for (int i = 0; i < kDim; ++i) {
          const uint16_t h = f32_to_fp16(x[i]);
          std::memcpy(dst + 2 * i, &h, 2);
        }
      } else {
        for (int b = 0; b < kDim / QK8_0; ++b) {
          float amax = 0;
          for (int i = 0; i < QK8_0; ++i) amax = std::max(amax, std::fabs(x[b * QK8_0 + i]));
          block_q8_0 blk;
          const float dd = amax / 127.f;
          blk.d = f32_to_fp16(dd);
          for (int i = 0; i < QK8_0; ++i) blk.qs[i] = static_cast<int8_t>(std::lround(x[b * QK8_0 + i] / dd));
          std::memcpy(dst + b * sizeof(block_q8_0), &blk, sizeof(blk));
        }
      }
    }
    view = {t, bytes.data(), static_cast<int64_t>(rb), static_cast<int64_t>(rb * kKvHeads)};
  }
};

kernels::AttentionShape shape() {
  kernels::AttentionShape s;
  s.n_head = kHeads;
  s.n_head_kv = kKvHeads;
  s.head_dim = kDim;
  s.scale = 1.f / std::sqrt(static_cast<float>(kDim));
  s.causal = true;
  return s;
}

// int8: AttentionConfig::int8_scores (-1: the default).
void decode(benchmark::State& state, bool cold, int int8 = -1) {
  const int64_t n = state.range(0);
  const int threads = static_cast<int>(state.range(1));
  const DType t = fmt_type(state.range(2));
  const int64_t layer_bytes = 2 * static_cast<int64_t>(row_bytes(t)) * kKvHeads * n;
  const int64_t want = std::min<int64_t>(2 * kernels::cache_sizes().l3 + (64 << 20), int64_t{1} << 30);
  const int64_t n_layers = cold ? std::max<int64_t>(1, (want + layer_bytes - 1) / layer_bytes) : 1;
  // Layer 0 is random; the others are copies at other addresses (cheap to set up, still cold).
  std::vector<std::unique_ptr<Cache>> ks, vs;
  ks.push_back(std::make_unique<Cache>(t, n, 1));
  vs.push_back(std::make_unique<Cache>(t, n, 2));
  for (int64_t l = 1; l < n_layers; ++l) {
    ks.push_back(std::make_unique<Cache>(*ks[0]));
    vs.push_back(std::make_unique<Cache>(*vs[0]));
    ks.back()->view.data = ks.back()->bytes.data();
    vs.back()->view.data = vs.back()->bytes.data();
  }
  std::vector<float> q(kHeads * kDim), out(kHeads * kDim);
  std::mt19937 rng(5);
  std::normal_distribution<float> nd(0.f, 1.f);
  for (auto& e : q) e = nd(rng);
  ThreadPool pool(threads);
  const auto s = shape();
  kernels::AttentionIoStats st;
  int64_t layer = 0, kv_bytes = 0, io_bytes = 0;
  kernels::AttentionConfig cfg;
  cfg.int8_scores = int8;
  for (auto _ : state) {
    kernels::attention(s, q.data(), 1, n - 1, ks[layer]->view, vs[layer]->view, n, out.data(), pool, cfg, &st);
    kv_bytes += st.k_bytes + st.v_bytes;
    io_bytes = st.total_bytes();
    layer = (layer + 1) % n_layers;
    benchmark::DoNotOptimize(out.data());
  }
  state.counters["kv_GB/s"] = benchmark::Counter(static_cast<double>(kv_bytes) * 1e-9, benchmark::Counter::kIsRate);
  state.counters["io_MB"] = static_cast<double>(io_bytes) * 1e-6;
  state.counters["layers"] = static_cast<double>(n_layers);
  state.counters["splits"] = st.config.kv_splits;
  state.counters["kv_tile"] = st.config.kv_tile;
}

void BM_AttnDecode(benchmark::State& state) { decode(state, true); }
void BM_AttnDecodeHot(benchmark::State& state) { decode(state, false); }
// q8_0 K/V in cache, 1 thread: float32 scores (int8 0) vs int8 with one or two query digits (session 4).
void BM_AttnDecodeInt8(benchmark::State& state) { decode(state, false, static_cast<int>(state.range(3))); }

void BM_AttnPrefill(benchmark::State& state) {
  const int64_t n = state.range(0);
  const int threads = static_cast<int>(state.range(1));
  Cache k(DType::F16, n, 1), v(DType::F16, n, 2);
  std::vector<float> q(n * kHeads * kDim), out(q.size());
  std::mt19937 rng(5);
  std::normal_distribution<float> nd(0.f, 1.f);
  for (auto& e : q) e = nd(rng);
  ThreadPool pool(threads);
  kernels::AttentionIoStats st;
  for (auto _ : state) {
    kernels::attention(shape(), q.data(), n, 0, k.view, v.view, n, out.data(), pool, {}, &st);
    benchmark::DoNotOptimize(out.data());
  }
  const double flops = 4.0 * kHeads * kDim * (static_cast<double>(n) * (n + 1) / 2);
  state.counters["GFLOP/s"] =
      benchmark::Counter(flops * 1e-9 * static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
  state.counters["io_MB"] = static_cast<double>(st.total_bytes()) * 1e-6;
  // The I/O-complexity yardstick with M = the L2 (per core), elements of the KV format (f16).
  state.counters["bound_MB"] =
      kHeads * kernels::attention_io_bound_bytes(n, n, kDim, kernels::cache_sizes().l2, 2) * 1e-6;
  state.counters["q_tile"] = st.config.q_tile;
  state.counters["kv_tile"] = st.config.kv_tile;
}

std::vector<float> vocab_logits(int64_t n) {
  std::vector<float> x(static_cast<size_t>(n));
  std::mt19937 rng(3);
  std::normal_distribution<float> nd(0.f, 3.f);
  for (auto& e : x) e = nd(rng);
  return x;
}

void BM_Softmax(benchmark::State& state) {
  const int64_t n = state.range(0);
  auto x = vocab_logits(n);
  std::vector<float> y(x.size());
  for (auto _ : state) {
    benchmark::DoNotOptimize(kernels::softmax(x.data(), y.data(), n, 1.f / 0.8f));
    benchmark::ClobberMemory();
  }
  state.counters["GB/s"] = benchmark::Counter(12.0 * static_cast<double>(n) * 1e-9 * static_cast<double>(state.iterations()),
                                              benchmark::Counter::kIsRate);  // 2 reads + 1 write
}

void BM_SoftmaxTopK(benchmark::State& state) {
  const int64_t n = state.range(0);
  auto x = vocab_logits(n);
  std::vector<kernels::TokenCandidate> cands;
  for (auto _ : state) benchmark::DoNotOptimize(kernels::softmax_top_k(x.data(), n, 1.f / 0.8f, 40, 0.95f, cands));
  state.counters["GB/s"] = benchmark::Counter(4.0 * static_cast<double>(n) * 1e-9 * static_cast<double>(state.iterations()),
                                              benchmark::Counter::kIsRate);
}

void decode_args(benchmark::internal::Benchmark* b) {
  for (int64_t f : {0, 1, 2})
    for (int64_t th : {1, 2})
      for (int64_t n : {1024, 4096, 16384, 32768}) {
        if (f != 0 && th != 2) continue;
        b->Args({n, th, f});
      }
  b->ArgNames({"kv", "threads", "fmt"})->UseRealTime();
}

BENCHMARK(BM_AttnDecode)->Apply(decode_args);
BENCHMARK(BM_AttnDecodeHot)->Args({4096, 1, 0})->Args({4096, 2, 0})->ArgNames({"kv", "threads", "fmt"})->UseRealTime();
BENCHMARK(BM_AttnDecodeInt8)
    ->Args({4096, 1, 1, 0})->Args({4096, 1, 1, 1})->Args({4096, 1, 1, 2})
    ->ArgNames({"kv", "threads", "fmt", "int8"})->UseRealTime()
    ->ComputeStatistics("min", [](const std::vector<double>& v) { return *std::min_element(v.begin(), v.end()); });
BENCHMARK(BM_Softmax)->Arg(32000)->Arg(151936);
BENCHMARK(BM_SoftmaxTopK)->Arg(32000)->Arg(151936);
BENCHMARK(BM_AttnPrefill)->Args({512, 2})->Args({2048, 2})->Args({2048, 1})->ArgNames({"n", "threads"})->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
