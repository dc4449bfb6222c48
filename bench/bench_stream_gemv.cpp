// The streamed-weight GEMV side by side with the resident one (Google Benchmark). A weight streamed under
// `--mem` is in its file layout in a ring buffer, so the int8 kernels pack each tile on the fly; a
// resident weight was repacked once at load.
//   stream_gemv/<type>/<rows>x<cols>/t<threads>/file-layout   cold, file layout: pack per tile + GEMV
//   stream_gemv/<type>/<rows>x<cols>/t<threads>/repacked      cold, the resident path
//   pack/<type>/<rows>x<cols>/simd|scalar                     one thread packing every tile of the matrix
//                                                             (cached source): the packer's own speed
// Counters: GB/s = file-layout weight bytes per second. The cold sets cycle through >= --cold-mib MiB
// (default 512) of distinct matrices so every byte comes from DRAM, like a ring slot just read from disk.
// Example: build-stream/bench/bench_bench_stream_gemv --benchmark_min_time=0.5
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "bench_data.h"
#include "core/thread_pool.h"
#include "kernels/int8_panel.h"
#include "kernels/matmul.h"
#include "kernels/pack_panel_simd.h"

namespace {

using strata::DType;
namespace kernels = strata::kernels;

int64_t g_cold_bytes = int64_t{512} << 20;

std::vector<uint8_t> random_weight(DType type, int64_t rows, int64_t cols) {
  return strata::bench::random_weight(type, rows, cols, 1);
}

void gemv(benchmark::State& state, DType type, int64_t rows, int64_t cols, int threads, bool repack) {
  strata::ThreadPool pool(threads);
  const size_t bytes = rows * strata::row_bytes(type, cols);
  const int64_t n_mats = std::max<int64_t>(2, g_cold_bytes / static_cast<int64_t>(bytes));
  const std::vector<uint8_t> src = random_weight(type, rows, cols);
  std::vector<std::vector<uint8_t>> copies;
  std::vector<kernels::Weight> ws;
  for (int64_t i = 0; i < n_mats; ++i) {
    if (repack) {
      ws.push_back(kernels::prepare_weight(type, src.data(), rows, cols));
    } else {
      ws.push_back(kernels::Weight{type, copies.emplace_back(src).data(), rows, cols, nullptr});
    }
  }
  std::vector<float> x(cols);
  std::mt19937 rng(2);
  std::normal_distribution<float> nd;
  for (auto& v : x) v = nd(rng);
  std::vector<float> y(rows);
  size_t i = 0;
  for (auto _ : state) {
    kernels::matmul(ws[i], x.data(), 1, y.data(), pool);
    benchmark::DoNotOptimize(y.data());
    if (++i == ws.size()) i = 0;
  }
  state.counters["GB/s"] = benchmark::Counter(static_cast<double>(state.iterations()) * static_cast<double>(bytes) / 1e9,
                                              benchmark::Counter::kIsRate);
}

void pack(benchmark::State& state, DType type, int64_t rows, int64_t cols, bool simd) {
  const kernels::PanelFormat& f = *kernels::panel_format(type);
  const std::vector<uint8_t> src = random_weight(type, rows, cols);
  const size_t stride = strata::row_bytes(type, cols);
  // The tile height of this CPU's best target: the one the SIMD packer accepts.
  int R = 0;
  std::vector<uint8_t> probe(kernels::panel_tile_bytes(f, 16, cols) + 64);
  for (int r : {16, 8, 4})
    if (!R && kernels::pack_panel_tile_simd(f, r, src.data(), stride, r, cols, probe.data())) R = r;
  if (!R) {
    state.SkipWithError("no SIMD packer for this type on this CPU");
    return;
  }
  const size_t tb = kernels::panel_tile_bytes(f, R, cols);
  void* dst = nullptr;
  if (posix_memalign(&dst, 64, tb) != 0) std::abort();
  auto* d = static_cast<uint8_t*>(dst);
  const int64_t n_tiles = rows / R;
  for (auto _ : state) {
    for (int64_t t = 0; t < n_tiles; ++t) {
      const uint8_t* s = src.data() + t * R * stride;
      if (simd) {
        kernels::pack_panel_tile_simd(f, R, s, stride, R, cols, d);
      } else {
        kernels::pack_panel_tile_scalar(f, R, s, stride, R, cols, d);
      }
      benchmark::DoNotOptimize(d);
    }
  }
  state.counters["GB/s"] = benchmark::Counter(
      static_cast<double>(state.iterations()) * static_cast<double>(n_tiles * R * stride) / 1e9,
      benchmark::Counter::kIsRate);
  std::free(dst);
}

void register_all() {
  struct Shape {
    int64_t rows, cols;
  };
  const Shape shapes[] = {{5632, 2048}, {2048, 5632}};  // tinyllama FFN gate/up and down
  for (DType t : {DType::Q8_0, DType::Q4_0, DType::Q4_K, DType::Q5_0, DType::Q5_K, DType::Q6_K}) {
    const std::string type = strata::dtype_name(t);
    for (const Shape& s : shapes) {
      const std::string shape = std::to_string(s.rows) + "x" + std::to_string(s.cols);
      for (bool simd : {true, false}) {
        benchmark::RegisterBenchmark(("pack/" + type + "/" + shape + (simd ? "/simd" : "/scalar")).c_str(),
                                     [=](benchmark::State& st) { pack(st, t, s.rows, s.cols, simd); })
            ->Unit(benchmark::kMillisecond);
      }
      for (int threads : {1, 2}) {
        for (bool repack : {false, true}) {
          const std::string name = "stream_gemv/" + type + "/" + shape + "/t" + std::to_string(threads) +
                                   (repack ? "/repacked" : "/file-layout");
          benchmark::RegisterBenchmark(name.c_str(),
                                       [=](benchmark::State& st) { gemv(st, t, s.rows, s.cols, threads, repack); })
              ->UseRealTime()
              ->Unit(benchmark::kMicrosecond);
        }
      }
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<char*> rest{argv[0]};
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--cold-mib=", 11) == 0) {
      g_cold_bytes = std::atoll(argv[i] + 11) << 20;
    } else {
      rest.push_back(argv[i]);
    }
  }
  register_all();
  int n = static_cast<int>(rest.size());
  benchmark::Initialize(&n, rest.data());
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
