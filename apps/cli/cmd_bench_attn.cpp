// `strata bench attn`: the I/O model of attention (runtime/bench_attn.h). For each N × head dim × tile
// sizes, prefill and decode: the bytes the kernel counted, the Θ(N²d²/M) lower bound, the median time.
//   strata bench attn -N 256,512,1024,2048,4096 --head-dim 64 -t 2 -r 3 --svg docs/attention-io.svg
//   strata bench attn -N 1024 --q-tile 16,64,256 --kv-tile 32,128 -o json
#include <fmt/format.h>

#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "cli/bench_output.h"
#include "core/error.h"
#include "core/progress.h"
#include "kv/kv_format.h"
#include "runtime/bench_attn.h"
#include "runtime/session.h"

namespace strata::cli {
namespace {

struct AttnOptions {
  std::vector<int64_t> ns = {256, 512, 1024, 2048, 4096};
  std::vector<int32_t> head_dims = {64};
  std::vector<int32_t> q_tiles = {0}, kv_tiles = {0};
  std::vector<std::string> phases = {"prefill", "decode"};
  int32_t heads = 1, kv_heads = 1;
  std::string kv_type = "f16";
  int32_t layers = 1;
  std::string layout = "head";
  int64_t cache_kib = 0;
  int threads = 0;
  int reps = 3;
  std::string output = "md";
  std::string svg;
  bool progress = false;
};

// f32, f16, bf16, q8_0, q4_0: read natively by the kernel (kv_type); any other KV format of the registry (bfp4,
// gear2, ...): through its row decoder, as the KV cache serves it (kv_format).
void set_attn_kv_type(const std::string& s, runtime::AttnBenchCase& c) {
  if (s == "f32") c.kv_type = DType::F32;
  else if (s == "f16") c.kv_type = DType::F16;
  else if (s == "bf16") c.kv_type = DType::BF16;
  else if (s == "q8_0") c.kv_type = DType::Q8_0;
  else if (s == "q4_0") c.kv_type = DType::Q4_0;
  else c.kv_format = kv::format_name(kv::parse_format(s, "--kv-type"));
}

int run_attn(const AttnOptions& o) {
  if (o.output != "md" && o.output != "json") fail("bench attn: -o {}: the output format is md or json", o.output);
  if (o.reps < 1) fail("bench attn: -r {}: need at least one repetition", o.reps);
  if (o.cache_kib < 0) fail("bench attn: --cache-kib {} must be >= 0 (0: the L2 of this CPU)", o.cache_kib);
  if (o.threads < 0) fail("bench attn: -t {} must be >= 1", o.threads);
  for (int64_t n : o.ns)
    if (n < 1) fail("bench attn: -N {}: sequence lengths must be at least 1", n);
  std::vector<bool> decode;
  for (const auto& p : o.phases) {
    if (p != "prefill" && p != "decode") fail("bench attn: --phase {}: the phases are prefill and decode", p);
    decode.push_back(p == "decode");
  }
  if (o.layers < 1) fail("bench attn: --layers {} must be at least 1", o.layers);
  if (o.layout != "head" && o.layout != "token")
    fail("bench attn: --layout {}: the layouts are head ([head][pos], the KV cache's) and token ([pos][head])", o.layout);
  ThreadPool pool(o.threads > 0 ? o.threads : runtime::default_threads());

  std::vector<runtime::AttnBenchCase> cases;
  for (bool dec : decode)
    for (int32_t d : o.head_dims)
      for (int32_t qt : o.q_tiles)
        for (int32_t kt : o.kv_tiles)
          for (int64_t n : o.ns) {
            if (dec && qt != o.q_tiles.front()) continue;  // one query: the query tile does not matter
            runtime::AttnBenchCase c;
            c.n = n;
            c.decode = dec;
            c.head_dim = d;
            c.n_head = o.heads;
            c.n_head_kv = o.kv_heads;
            set_attn_kv_type(o.kv_type, c);
            c.layers = o.layers;
            c.token_major = o.layout == "token";
            c.q_tile = qt;
            c.kv_tile = kt;
            c.cache_bytes = o.cache_kib << 10;
            c.reps = o.reps;
            cases.push_back(c);
          }
  const bool tty = Progress::enabled();
  const bool show = tty || o.progress;
  std::vector<runtime::AttnBenchRecord> rows;
  for (size_t i = 0; i < cases.size(); ++i) {
    if (show)
      std::fprintf(stderr, "%sstrata bench attn: [%zu/%zu] %s N=%lld d=%d%s", tty ? "\r\033[K" : "", i + 1, cases.size(),
                   cases[i].decode ? "decode" : "prefill", static_cast<long long>(cases[i].n), cases[i].head_dim,
                   tty ? "" : "\n");
    rows.push_back(runtime::run_attn_bench(cases[i], pool));
  }
  if (tty) std::fprintf(stderr, "\r\033[K");
  const std::string out = o.output == "json" ? runtime::attn_json(rows) : runtime::attn_markdown(rows);
  std::fputs(out.c_str(), stdout);
  if (o.output == "md")
    fmt::print("\ncounted = Q read + K/V rows loaded (storage format) + O written + split partials, as the kernel "
               "counts them; bound = KV heads × max(q·N·d²/M, (2·q + 2·N)·d) elements with q = the queries sharing a "
               "KV head (n_q × heads/KV heads) (\"The I/O Complexity of Attention\", constant 1), M = cache bytes / "
               "bytes per KV element; {} threads\n",
               pool.size());
  if (!o.svg.empty()) {
    std::ofstream f(o.svg);
    if (!f) fail("bench attn: cannot write {}: check the folder exists and is writable", o.svg);
    const auto& c0 = cases.front();
    f << runtime::attn_svg(rows, fmt::format("strata bench attn: {} query / {} KV heads, d={}, {} KV, M={} KiB, {} "
                                             "threads; counted bytes vs the Θ(N²d²/M) bound (constant 1)",
                                             c0.n_head, c0.n_head_kv, c0.head_dim, o.kv_type,
                                             rows.front().cache_bytes >> 10, pool.size()));
    std::fprintf(stderr, "strata bench attn: wrote %s\n", o.svg.c_str());
  }
  return 0;
}

}  // namespace

RunFn setup_bench_attn(CLI::App& sub) {
  auto o = std::make_shared<AttnOptions>();
  sub.add_option("-N,--n-seq", o->ns, "sequence lengths N, comma-separated")->delimiter(',')->capture_default_str();
  sub.add_option("--head-dim", o->head_dims, "head dims d, comma-separated")->delimiter(',')->capture_default_str();
  sub.add_option("--q-tile", o->q_tiles, "query positions per tile, comma-separated (0: from the cache sizes)")
      ->delimiter(',')->capture_default_str();
  sub.add_option("--kv-tile", o->kv_tiles, "keys per K/V tile, comma-separated (0: from the cache sizes)")
      ->delimiter(',')->capture_default_str();
  sub.add_option("--phase", o->phases, "prefill, decode or both")->delimiter(',')->capture_default_str();
  sub.add_option("--heads", o->heads, "query heads")->capture_default_str();
  sub.add_option("--kv-heads", o->kv_heads, "KV heads (GQA: heads / kv-heads queries share one)")->capture_default_str();
  sub.add_option("--kv-type", o->kv_type,
                 "KV format: f32, f16, bf16, q8_0, q4_0 (read by the kernel) or another of " + kv::format_name_list() +
                     " (through the format's row decoder)")
      ->capture_default_str();
  sub.add_option("--layers", o->layers,
                 "distinct K/V caches the repetitions cycle through (like a model's layers: enough of them and "
                 "K/V come from DRAM)")
      ->capture_default_str();
  sub.add_option("--layout", o->layout,
                 "K/V row layout: head (each KV head's positions contiguous, as the KV cache stores them) or token "
                 "(a token's heads together)")
      ->capture_default_str();
  sub.add_option("--cache-kib", o->cache_kib, "cache size M of the bound in KiB (0: this CPU's L2)")
      ->capture_default_str();
  sub.add_option("-t,--threads", o->threads, "threads (default: all hardware threads)");
  sub.add_option("-r,--repetitions", o->reps, "timed repetitions (the median is reported)")->capture_default_str();
  sub.add_option("-o,--output", o->output, "md or json")->capture_default_str();
  sub.add_option("--svg", o->svg, "also write the plot of time and bytes vs N to this SVG file");
  sub.add_flag("--progress", o->progress, "print progress on stderr (always shown on a terminal)");
  return [o] { return run_attn(*o); };
}

}  // namespace strata::cli
