// How fast can a core stream K/V while it also computes? (Google Benchmark.) The decode attention reads
// each layer's K/V as interleaved streams (KV heads × K and V, a tile of 4 KiB of each in turn, a split of
// the positions per thread) and does work between the tiles. This reads a buffer larger than the caches in
// exactly that pattern and, between tiles, runs `work` dependent integer multiply-adds (no memory), with
// software prefetches `pf` tiles ahead (0: none): the plain read rate (work 0) against the rate once a core
// has something to compute, i.e. how much of the memory time and the work overlap; `hot` reads one tile
// over and over (in L1): the rate of the work alone. Perfect overlap gives min(cold work:0, hot work:N).
//   kv_stream/work:<N>/pf:<tiles>/t<threads>     counter GB/s (bytes read per second, all threads)
//   kv_stream/work:<N>/hot/t<threads>
// Example: build/bench/bench_bench_kv_stream --benchmark_min_time=1  (docs/PERFORMANCE.md, session 6)
#include <benchmark/benchmark.h>
#include <sys/mman.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "core/thread_pool.h"

namespace {

constexpr size_t kTotal = size_t{400} << 20;  // > this machine's share of L3 and any L2
constexpr size_t kLayer = size_t{4} << 20;    // one layer's K+V at 4096 positions (tinyllama, f16)
constexpr size_t kTile = 4096;
constexpr int kStreams = 8;                   // 4 KV heads × K, V

struct Buffer {
  uint8_t* p = nullptr;
  Buffer() {
    p = static_cast<uint8_t*>(std::aligned_alloc(size_t{2} << 20, kTotal));
    if (!p) throw std::bad_alloc();
#ifdef MADV_HUGEPAGE
    madvise(p, kTotal, MADV_HUGEPAGE);
#endif
    std::memset(p, 1, kTotal);
  }
  ~Buffer() { std::free(p); }
};

uint64_t read_tile(const uint8_t* p) {
  uint64_t s = 0;
  for (size_t i = 0; i < kTile; i += 8) {
    uint64_t v;
    std::memcpy(&v, p + i, 8);
    s += v;
  }
  return s;
}

// Each thread reads its share of every layer: kStreams streams, one tile of each in turn.
uint64_t pass(const uint8_t* base, int t, int n_threads, int work, int pf, bool hot) {
  uint64_t s = 0;
  const size_t share = kLayer / n_threads, region = share / kStreams;
  for (size_t l = 0; l + kLayer <= kTotal; l += kLayer) {
    const uint8_t* mine = base + l + t * share;
    for (size_t off = 0; off < region; off += kTile)
      for (int st = 0; st < kStreams; ++st) {
        const uint8_t* p = hot ? base + t * kTile : mine + st * region + off;
        if (pf > 0 && off + pf * kTile < region)
          for (size_t i = 0; i < kTile; i += 64) __builtin_prefetch(p + pf * kTile + i, 0, 2);
        s += read_tile(p);
        uint64_t x = s;
        for (int w = 0; w < work; ++w) {
          x = x * 3 + 1;
          __asm__ volatile("" : "+r"(x));  // keep the chain: compute the core cannot skip
        }
        s += x & 1;
      }
  }
  return s;
}

void kv_stream(benchmark::State& state, int work, int pf, int threads, bool hot) {
  static Buffer buf;
  strata::ThreadPool pool(threads);
  std::unique_ptr<uint64_t[]> sums(new uint64_t[threads]);
  for (auto _ : state) {
    pool.run([&](int t) { sums[t] = pass(buf.p, t, threads, work, pf, hot); });
    benchmark::DoNotOptimize(sums.get());
  }
  state.counters["GB/s"] = benchmark::Counter(static_cast<double>(kTotal) * static_cast<double>(state.iterations()),
                                              benchmark::Counter::kIsRate);
}

void register_all() {
  for (int threads : {1, 2})
    for (int work : {0, 150, 300, 600})
      for (int pf : {-1, 0, 2, 8}) {
        const std::string how = pf < 0 ? "hot" : "pf:" + std::to_string(pf);
        benchmark::RegisterBenchmark(
            ("kv_stream/work:" + std::to_string(work) + "/" + how + "/t" + std::to_string(threads)).c_str(),
            [=](benchmark::State& s) { kv_stream(s, work, pf < 0 ? 0 : pf, threads, pf < 0); })
            ->UseRealTime()
            ->Unit(benchmark::kMillisecond);
      }
}

}  // namespace

int main(int argc, char** argv) {
  register_all();
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  return 0;
}
