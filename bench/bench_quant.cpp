// Throughput of the scalar quantize/dequantize references, per type (Google Benchmark).
//   build/bench/bench_bench_quant --benchmark_filter=Dequantize/q4_K
// These are the specification, not the fast path: they show what a SIMD kernel has to beat.
#include <benchmark/benchmark.h>

#include <random>
#include <string>
#include <vector>

#include "tensor/dtype.h"

namespace {

constexpr int64_t kElements = 256 * 256;  // 64 Ki elements: a few hundred KiB, stays in L2

std::vector<float> random_data() {
  std::mt19937 rng(1);
  std::normal_distribution<float> g(0.f, 1.f);
  std::vector<float> x(kElements);
  for (auto& v : x) v = g(rng);
  return x;
}

void BM_Dequantize(benchmark::State& state, strata::DType t) {
  const auto x = random_data();
  std::vector<uint8_t> q(strata::row_bytes(t, kElements));
  strata::quantize_row(t, x.data(), q.data(), kElements);
  std::vector<float> y(kElements);
  for (auto _ : state) {
    strata::dequantize_row(t, q.data(), y.data(), kElements);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * kElements);
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(q.size()));
}

void BM_Quantize(benchmark::State& state, strata::DType t) {
  const auto x = random_data();
  std::vector<uint8_t> q(strata::row_bytes(t, kElements));
  for (auto _ : state) {
    strata::quantize_row(t, x.data(), q.data(), kElements);
    benchmark::DoNotOptimize(q.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * kElements);
}

// One benchmark per supported type, named after it (the traits table is the registry).
const int kRegistered = [] {
  for (uint32_t id = 0; id < 64; ++id) {
    const strata::TypeTraits* tr = strata::find_traits(id);
    if (!tr || !tr->supported) continue;
    benchmark::RegisterBenchmark((std::string("Dequantize/") + tr->name).c_str(), BM_Dequantize, tr->type);
    benchmark::RegisterBenchmark((std::string("Quantize/") + tr->name).c_str(), BM_Quantize, tr->type);
  }
  return 0;
}();

}  // namespace

BENCHMARK_MAIN();
