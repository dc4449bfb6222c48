// Sampler chain microbenchmark: one sample() over a large vocabulary (Qwen2's 151936) with the default chain
// (penalties, top-k 40, top-p, min-p, temperature), beside what a full sort of the vocabulary costs — the
// chain must stay far below it (it selects the top k with a partial selection, never sorting everything).
// Example: build/bench/bench_bench_sampler --benchmark_min_time=0.5
#include <benchmark/benchmark.h>

#include <algorithm>
#include <random>
#include <vector>

#include "sample/sampler.h"

namespace {

std::vector<float> random_logits(size_t n, uint64_t seed) {
  std::mt19937_64 g(seed);
  std::normal_distribution<float> d(0.0f, 2.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = d(g);
  return v;
}

void sampler_default_chain(benchmark::State& state) {
  const auto n = static_cast<int32_t>(state.range(0));
  const auto l = random_logits(static_cast<size_t>(n), 3);
  strata::SamplerParams p;  // defaults: top-k 40
  p.seed = 1;
  p.repeat_penalty = 1.1f;
  strata::Sampler s(p, n);
  for (int i = 0; i < 64; ++i) s.accept(i * 7);
  for (auto _ : state) benchmark::DoNotOptimize(s.sample(l));
}

void full_sort(benchmark::State& state) {
  const auto l = random_logits(static_cast<size_t>(state.range(0)), 3);
  std::vector<std::pair<float, int32_t>> all(l.size());
  for (auto _ : state) {
    for (size_t i = 0; i < l.size(); ++i) all[i] = {l[i], static_cast<int32_t>(i)};
    std::sort(all.begin(), all.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
    benchmark::DoNotOptimize(all.data());
  }
}

BENCHMARK(sampler_default_chain)->Arg(32000)->Arg(151936)->Unit(benchmark::kMicrosecond);
BENCHMARK(full_sort)->Arg(32000)->Arg(151936)->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
