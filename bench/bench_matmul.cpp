// Matmul microbenchmarks (Google Benchmark), registered from the kernel registry so that every kernel is
// measured:
//   gemv/<type>/<rows>x<cols>/t<threads>/<target>        one token; weights cached if they fit
//   gemv_cold/<type>/<rows>x<cols>/t<threads>/<target>   one token; cycles through >= 1 GiB of distinct
//                                                        weights, so every byte comes from DRAM (decode)
//   gemm/<type>/<rows>x<cols>/n<tokens>/t<threads>/<target>   prompt processing
//   dram_read/t<threads>                                  a plain streaming read of the same >= 1 GiB
//   pool_run/t<threads>                                   one empty parallel section (the hand-off cost)
//   decode_step/<type>/t<threads>[/fused]                 the matmuls of one tinyllama decode step, every
//                                                        layer's weights distinct (~0.6-1.1 GB, from DRAM)
// Counters: GB/s = weight bytes read per second (file size of the matrix, not the repacked copy);
// bw% = GB/s over the DRAM read bandwidth `strata probe` measured with as many threads (from
// ~/.cache/strata/profile.json, when present); GFLOP/s = 2 * rows * cols * tokens per second.
//
// Extra flags (before Google Benchmark's own): --targets=all|best|AVX2,... (default best,AVX2),
// --cold-mib=N (default 1024), --file-layout (also run unprepared weights: no repacking).
// Example: build-kern/bench/bench_bench_matmul --benchmark_filter='gemv_cold/q4_0' --benchmark_min_time=1
#include <benchmark/benchmark.h>
#include <sys/mman.h>
#include <hwy/targets.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "bench_data.h"
#include "core/thread_pool.h"
#include "kernels/matmul.h"
#include "kernels/matmul_registry.h"
#include "kernels/stream_read.h"

namespace {

using strata::DType;
namespace kernels = strata::kernels;

// DRAM read bandwidth by thread count from the probe's profile (GB/s), empty when there is none.
std::map<int, double> g_dram_gbps;

void load_profile() {
  const char* home = std::getenv("HOME");
  const char* env = std::getenv("STRATA_PROFILE");
  const std::string path = env ? env : std::string(home ? home : ".") + "/.cache/strata/profile.json";
  std::ifstream f(path);
  if (!f) return;
  try {
    const auto j = nlohmann::json::parse(f);
    for (const auto& e : j.at("dram_read_gbps")) g_dram_gbps[e.at("threads").get<int>()] = e.at("gbps").get<double>();
  } catch (const std::exception&) {
    g_dram_gbps.clear();
  }
}

using strata::bench::random_acts;
using strata::bench::random_weight;

struct Config {
  DType type;
  int64_t rows, cols, n_tok;
  int threads;
  int64_t target;
  bool repack;
  bool cold;
};

int64_t g_cold_bytes = int64_t{1} << 30;

void set_counters(benchmark::State& state, const Config& c, size_t bytes_per_call) {
  const double calls = static_cast<double>(state.iterations());
  state.counters["GB/s"] = benchmark::Counter(calls * static_cast<double>(bytes_per_call) / 1e9,
                                              benchmark::Counter::kIsRate);
  state.counters["GFLOP/s"] = benchmark::Counter(calls * 2.0 * c.rows * c.cols * c.n_tok / 1e9,
                                                 benchmark::Counter::kIsRate);
  if (auto it = g_dram_gbps.find(c.threads); it != g_dram_gbps.end())
    state.counters["bw%"] = benchmark::Counter(calls * static_cast<double>(bytes_per_call) / 1e9 / it->second * 100,
                                               benchmark::Counter::kIsRate);
}

void run(benchmark::State& state, const Config& c) {
  hwy::SetSupportedTargetsForTest(c.target);
  strata::ThreadPool pool(c.threads);
  const size_t bytes = c.rows * strata::row_bytes(c.type, c.cols);
  // Cold: enough distinct matrices to exceed the caches (only the packed copies are kept when repacking).
  const int64_t n_mats = c.cold ? std::max<int64_t>(2, g_cold_bytes / static_cast<int64_t>(bytes)) : 1;
  std::vector<uint8_t> src = random_weight(c.type, c.rows, c.cols, 1);
  std::vector<std::vector<uint8_t>> copies;
  std::vector<kernels::Weight> ws;
  for (int64_t i = 0; i < n_mats; ++i) {
    kernels::Weight w = c.repack ? kernels::prepare_weight(c.type, src.data(), c.rows, c.cols)
                                 : kernels::Weight{c.type, src.data(), c.rows, c.cols, nullptr};
    if (!w.packed && i > 0) w.data = copies.emplace_back(src).data();  // the kernel reads the file layout
    ws.push_back(std::move(w));
  }
  const std::vector<float> x = random_acts(c.n_tok * c.cols, 2);
  std::vector<float> y(c.n_tok * c.rows);
  size_t i = 0;
  for (auto _ : state) {
    kernels::matmul(ws[i], x.data(), c.n_tok, y.data(), pool);
    benchmark::DoNotOptimize(y.data());
    if (++i == ws.size()) i = 0;
  }
  set_counters(state, c, bytes);
  state.SetLabel(kernels::matmul_kernel(c.type).name);
  hwy::SetSupportedTargetsForTest(0);
}

// The yardstick measured in the same run: a streaming read-only pass over the same amount of memory as
// the cold GEMVs, split over the threads like a GEMV (compare gemv_cold with it side by side).
void dram_read(benchmark::State& state, int threads) {
  strata::ThreadPool pool(threads);
  const size_t n = static_cast<size_t>(g_cold_bytes) & ~size_t{255};
  // Huge pages where allowed, like the packed weights and the probe's buffer.
  void* mem = ::mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) {
    state.SkipWithError("mmap failed");
    return;
  }
#ifdef MADV_HUGEPAGE
  ::madvise(mem, n, MADV_HUGEPAGE);
#endif
  auto* buf = static_cast<uint8_t*>(mem);
  std::memset(buf, 1, n);
  std::vector<uint64_t> sums(threads);
  for (auto _ : state) {
    pool.run([&](int w) {
      int64_t b, e;
      strata::split_range(static_cast<int64_t>(n / 256), threads, w, b, e);
      sums[w] = kernels::stream_read_sum(buf + b * 256, static_cast<size_t>(e - b) * 256);
    });
    benchmark::DoNotOptimize(sums.data());
  }
  state.counters["GB/s"] = benchmark::Counter(static_cast<double>(state.iterations()) * static_cast<double>(n) / 1e9,
                                              benchmark::Counter::kIsRate);
  ::munmap(mem, n);
}

// The cost of one parallel section: an empty job on every worker (wake-up plus completion wait). A decode
// step runs ~200 of them (7 matmuls and 2 attention sections per layer).
void pool_run(benchmark::State& state, int threads) {
  strata::ThreadPool pool(threads);
  std::vector<int64_t> hits(static_cast<size_t>(threads) * 16);
  for (auto _ : state) {
    pool.run([&](int w) { ++hits[static_cast<size_t>(w) * 16]; });
    benchmark::DoNotOptimize(hits.data());
  }
}

// The matmuls of one decode step of tinyllama-1.1b (22 layers: q, k, v, o, gate, up, down; then the
// 32000-row output), every layer with its own (repacked) weights, so that the bytes come from DRAM as
// in a real token. GB/s over the file bytes: compare with dram_read in the same run. `fused`: q/k/v and
// gate/up each in one kernels::matmul_multi call (as the forward pass does).
void decode_step(benchmark::State& state, DType type, int threads, bool fused) {
  strata::ThreadPool pool(threads);
  constexpr int64_t kEmbd = 2048, kKv = 256, kFf = 5632, kVocab = 32000, kLayers = 22;
  struct Mat {
    int64_t rows, cols;
  };
  const Mat shapes[] = {{kEmbd, kEmbd}, {kKv, kEmbd}, {kFf, kEmbd}, {kEmbd, kFf}, {kVocab, kEmbd}};
  std::map<std::pair<int64_t, int64_t>, std::vector<uint8_t>> src;
  for (const Mat& m : shapes) src[{m.rows, m.cols}] = random_weight(type, m.rows, m.cols, 1);
  auto make = [&](int64_t rows, int64_t cols) {
    return kernels::prepare_weight(type, src[{rows, cols}].data(), rows, cols);
  };
  struct Layer {
    kernels::Weight q, k, v, o, gate, up, down;
  };
  std::vector<Layer> layers;
  size_t bytes = 0;
  for (int64_t l = 0; l < kLayers; ++l) {
    layers.push_back({make(kEmbd, kEmbd), make(kKv, kEmbd), make(kKv, kEmbd), make(kEmbd, kEmbd), make(kFf, kEmbd),
                      make(kFf, kEmbd), make(kEmbd, kFf)});
    bytes += (2 * kEmbd * strata::row_bytes(type, kEmbd) + 2 * kKv * strata::row_bytes(type, kEmbd) +
              2 * kFf * strata::row_bytes(type, kEmbd) + kEmbd * strata::row_bytes(type, kFf));
  }
  const kernels::Weight out = make(kVocab, kEmbd);
  bytes += kVocab * strata::row_bytes(type, kEmbd);
  const std::vector<float> x = random_acts(kFf, 2);
  std::vector<float> q(kEmbd), k(kKv), v(kKv), o(kEmbd), g(kFf), u(kFf), logits(kVocab);
  for (auto _ : state) {
    for (const Layer& L : layers) {
      if (fused) {
        const kernels::Weight* qkv[] = {&L.q, &L.k, &L.v};
        float* qkv_y[] = {q.data(), k.data(), v.data()};
        kernels::matmul_multi(qkv, x.data(), 1, qkv_y, pool);
      } else {
        kernels::matmul(L.q, x.data(), 1, q.data(), pool);
        kernels::matmul(L.k, x.data(), 1, k.data(), pool);
        kernels::matmul(L.v, x.data(), 1, v.data(), pool);
      }
      kernels::matmul(L.o, q.data(), 1, o.data(), pool);
      if (fused) {
        const kernels::Weight* gu[] = {&L.gate, &L.up};
        float* gu_y[] = {g.data(), u.data()};
        kernels::matmul_multi(gu, x.data(), 1, gu_y, pool);
      } else {
        kernels::matmul(L.gate, x.data(), 1, g.data(), pool);
        kernels::matmul(L.up, x.data(), 1, u.data(), pool);
      }
      kernels::matmul(L.down, g.data(), 1, o.data(), pool);
    }
    kernels::matmul(out, x.data(), 1, logits.data(), pool);
    benchmark::DoNotOptimize(logits.data());
  }
  const Config c{type, 0, 0, 1, threads, 0, true, true};
  set_counters(state, c, bytes);
  state.counters.erase("GFLOP/s");
}

std::string shape_name(const Config& c) { return std::to_string(c.rows) + "x" + std::to_string(c.cols); }

void register_all(const std::vector<int64_t>& targets, bool file_layout) {
  struct Shape {
    int64_t rows, cols;
  };
  // tinyllama-1.1b: attention 2048x2048 (k/v 256x2048), FFN gate/up 5632x2048, FFN down 2048x5632, output 32000x2048.
  const Shape gemv_shapes[] = {{2048, 2048}, {256, 2048}, {5632, 2048}, {2048, 5632}, {32000, 2048}};
  const Shape gemm_shapes[] = {{2048, 2048}, {5632, 2048}, {2048, 5632}};
  for (int threads : {1, 2}) {
    benchmark::RegisterBenchmark(("dram_read/t" + std::to_string(threads)).c_str(),
                                 [threads](benchmark::State& st) { dram_read(st, threads); })
        ->UseRealTime()
        ->Unit(benchmark::kMillisecond);
  }
  for (int threads : {1, 2}) {
    benchmark::RegisterBenchmark(("pool_run/t" + std::to_string(threads)).c_str(),
                                 [threads](benchmark::State& st) { pool_run(st, threads); })
        ->UseRealTime();
    for (DType type : {DType::Q4_0, DType::Q8_0, DType::Q4_K}) {
      for (bool fused : {false, true}) {
        const std::string name = std::string("decode_step/") + strata::dtype_name(type) + "/t" +
                                 std::to_string(threads) + (fused ? "/fused" : "");
        benchmark::RegisterBenchmark(name.c_str(), [=](benchmark::State& st) { decode_step(st, type, threads, fused); })
            ->UseRealTime()
            ->Unit(benchmark::kMillisecond);
      }
    }
  }
  for (int64_t target : targets) {
    const std::string tname = hwy::TargetName(target);
    for (const auto& k : kernels::matmul_kernels()) {
      const std::string type = strata::dtype_name(k.type);
      const bool packs = k.family == kernels::KernelFamily::kInt8Panel;
      for (bool repack : {true, false}) {
        if (!repack && !(packs && file_layout)) continue;
        const std::string layout = packs ? (repack ? "" : "/file-layout") : "";
        for (int threads : {1, 2}) {
          for (const Shape& s : gemv_shapes) {
            for (bool cold : {false, true}) {
              const Config c{k.type, s.rows, s.cols, 1, threads, target, repack, cold};
              const std::string name = std::string(cold ? "gemv_cold/" : "gemv/") + type + "/" + shape_name(c) +
                                       "/t" + std::to_string(threads) + "/" + tname + layout;
              benchmark::RegisterBenchmark(name.c_str(), [c](benchmark::State& st) { run(st, c); })
                  ->UseRealTime()
                  ->Unit(benchmark::kMicrosecond);
            }
          }
          if (k.family == kernels::KernelFamily::kDequant) continue;  // the slow generic path: GEMV only
          for (const Shape& s : gemm_shapes) {
            for (int64_t n_tok : {128, 512}) {
              const Config c{k.type, s.rows, s.cols, n_tok, threads, target, repack, false};
              const std::string name = "gemm/" + type + "/" + shape_name(c) + "/n" + std::to_string(n_tok) + "/t" +
                                       std::to_string(threads) + "/" + tname + layout;
              benchmark::RegisterBenchmark(name.c_str(), [c](benchmark::State& st) { run(st, c); })
                  ->UseRealTime()
                  ->Unit(benchmark::kMillisecond);
            }
          }
        }
      }
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::string targets_flag = "best,AVX2";
  bool file_layout = false;
  std::vector<char*> rest{argv[0]};
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--targets=", 10) == 0) {
      targets_flag = argv[i] + 10;
    } else if (std::strncmp(argv[i], "--cold-mib=", 11) == 0) {
      g_cold_bytes = std::atoll(argv[i] + 11) << 20;
    } else if (std::strcmp(argv[i], "--file-layout") == 0) {
      file_layout = true;
    } else {
      rest.push_back(argv[i]);
    }
  }
  const std::vector<int64_t> avail = kernels::simd_targets();
  std::vector<int64_t> targets;
  auto add = [&](int64_t t) {
    if (std::find(targets.begin(), targets.end(), t) == targets.end()) targets.push_back(t);
  };
  for (size_t p = 0; p <= targets_flag.size();) {
    const size_t q = std::min(targets_flag.find(',', p), targets_flag.size());
    const std::string name = targets_flag.substr(p, q - p);
    for (int64_t t : avail)
      if (name == "all" || (name == "best" && t == avail.front()) || name == hwy::TargetName(t)) add(t);
    p = q + 1;
  }
  load_profile();
  register_all(targets, file_layout);
  int n = static_cast<int>(rest.size());
  benchmark::Initialize(&n, rest.data());
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
