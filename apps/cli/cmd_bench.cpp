// `strata bench`: llama-bench's tests and flags. For every model × KV type × thread count × depth, a pp test
// per prompt size and a tg test per generation size, each repeated -r times; mean ± sd of tokens/s. Each tg row
// also shows the bytes one decode step reads, the GB/s that makes, and its fraction of the DRAM read
// bandwidth `strata probe` measured for that thread count (the decode roofline).
//   strata bench -m tinyllama-q4_0.gguf -p 128 -n 64 -t 2 -r 3
//   strata bench -m m.gguf -p 0 -n 32 -d 0,4096 -o json
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cli/bench_output.h"
#include "cli/command.h"
#include "cli/generation_flags.h"
#include "cli/mem_budget.h"
#include "core/error.h"
#include "core/progress.h"
#include "model/model.h"
#include "plan/probe.h"
#include "runtime/bench.h"
#include "runtime/generate.h"
#include "runtime/session.h"

namespace strata::cli {
namespace {

struct BenchOptions {
  std::vector<std::string> models;
  std::vector<int64_t> prompts = {512}, gens = {128}, depths = {0};
  std::vector<int> threads;
  std::vector<int64_t> batches = {512};
  int reps = 5;
  std::string output = "md";
  std::vector<std::string> ctx_args;  // -ctk T / -ctv T arrive as "-c tk T" / "-c tv T"
  std::vector<std::string> types_k = {"f16"}, types_v = {"f16"};
  std::string profile;
  bool progress = false;
  bool no_warmup = false;
  std::string mem;  // --mem: weights beyond it stream from disk
  model::FfnSparsity ffn;  // --ffn-threshold, --ffn-window, --ffn-cache-bytes
};

std::vector<std::string> split_commas(const std::string& s) {
  std::vector<std::string> out;
  size_t a = 0;
  while (a <= s.size()) {
    const size_t b = std::min(s.find(',', a), s.size());
    if (b > a) out.push_back(s.substr(a, b - a));
    a = b + 1;
  }
  return out;
}

void resolve_ctx_args(BenchOptions& o) {
  for (size_t i = 0; i < o.ctx_args.size(); ++i) {
    const std::string& a = o.ctx_args[i];
    if ((a != "tk" && a != "tv") || i + 1 >= o.ctx_args.size())
      fail("bench: unknown option -c{}: the KV types are given with -ctk TYPE and -ctv TYPE", a);
    (a == "tk" ? o.types_k : o.types_v) = split_commas(o.ctx_args[++i]);
  }
}

template <typename T>
void require_at_least(const std::vector<T>& v, T min, const char* flag) {
  if (v.empty()) fail("bench: {} needs at least one value", flag);
  for (T x : v)
    if (x < min) fail("bench: {} {}: must be at least {}", flag, x, min);
}

// The probed profile, or nullopt (with a note on stderr) when there is none.
std::optional<plan::MachineProfile> load_profile_or_note(const std::string& flag) {
  const std::string path = flag.empty() ? plan::default_profile_path() : flag;
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    std::fprintf(stderr, "strata bench: no machine profile at %s: run `strata probe` for the roofline column\n",
                 path.c_str());
    return std::nullopt;
  }
  return plan::load_profile(path);  // a malformed profile is an error that says so
}

int run(BenchOptions& o) {
  resolve_ctx_args(o);
  const auto format = parse_bench_format(o.output);
  if (!format) fail("bench: -o {}: the output format is md, json, jsonl or csv", o.output);
  if (o.threads.empty()) o.threads = {runtime::default_threads()};
  require_at_least<int64_t>(o.prompts, 0, "-p");
  require_at_least<int64_t>(o.gens, 0, "-n");
  require_at_least<int64_t>(o.depths, 0, "-d");
  require_at_least<int>(o.threads, 1, "-t");
  require_at_least<int64_t>(o.batches, 1, "-b");
  if (o.reps < 1) fail("bench: -r {}: need at least one repetition", o.reps);
  std::vector<kv::KvFormat> tk, tv;  // ggml's types and strata's own formats (bfp4, q4h, gear2, ...)
  for (const auto& s : o.types_k) tk.push_back(kv::parse_format(s, "-ctk"));
  for (const auto& s : o.types_v) tv.push_back(kv::parse_format(s, "-ctv"));
  if (tk.empty() || tv.empty()) fail("bench: -ctk/-ctv need a KV format ({})", kv::format_name_list());

  std::vector<std::string> models;
  for (const auto& m : o.models)
    for (const auto& p : split_commas(m)) models.push_back(p);
  if (models.empty()) models.push_back(resolve_model(""));

  // Every test, in the order they run.
  std::vector<runtime::BenchTest> tests;
  for (kv::KvFormat k : tk)
    for (kv::KvFormat v : tv)
      for (int64_t b : o.batches)
        for (int t : o.threads)
          for (int64_t d : o.depths) {
            runtime::BenchTest base;
            base.n_threads = t;
            base.n_batch = b;
            base.format_k = k;
            base.format_v = v;
            base.n_depth = d;
            base.repetitions = o.reps;
            base.warmup = !o.no_warmup;
            for (int64_t p : o.prompts)
              if (p > 0) tests.push_back(base), tests.back().n_prompt = p;
            for (int64_t n : o.gens)
              if (n > 0) tests.push_back(base), tests.back().n_gen = n;
          }
  if (tests.empty()) fail("bench: no test to run: give -p or -n a size above 0");

  const auto profile = load_profile_or_note(o.profile);
  const bool kv_types = tk.size() > 1 || tv.size() > 1 || tk[0] != kv::KvFormat::F16 || tv[0] != kv::KvFormat::F16;
  BenchPrinter printer(*format, stdout, profile.has_value(), kv_types);

  const bool tty = Progress::enabled();
  const bool show = tty || o.progress;
  const size_t total = tests.size() * models.size();
  size_t done = 0;
  for (const std::string& path : models) {
    if (show) std::fprintf(stderr, "%sstrata bench: loading %s%s", tty ? "\r\033[K" : "", path.c_str(), tty ? "" : "\n");
    runtime::SessionConfig budget_cfg;  // the largest test's context and threads, the first KV types
    for (const runtime::BenchTest& t : tests) {
      budget_cfg.n_ctx = std::max(budget_cfg.n_ctx, t.n_depth + t.n_prompt + t.n_gen);
      budget_cfg.n_threads = std::max(budget_cfg.n_threads, t.n_threads);
      budget_cfg.n_batch = std::max(budget_cfg.n_batch, t.n_batch);
    }
    budget_cfg.format_k = tk.front(), budget_cfg.format_v = tv.front();
    auto model = load_model_with_budget(path, budget_cfg, {.mem = o.mem, .progress = false});
    model->set_ffn_sparsity(o.ffn);
    const runtime::BenchModelInfo info = runtime::bench_model_info(*model, path);
    for (const runtime::BenchTest& t : tests) {
      ++done;
      auto on_rep = [&](int rep) {
        if (!show) return;
        std::fprintf(stderr, "%sstrata bench: [%zu/%zu] %s %s, %d threads: repetition %d/%d%s", tty ? "\r\033[K" : "",
                     done, total, info.type.c_str(), runtime::bench_test_name(t).c_str(), t.n_threads, rep + 1,
                     t.repetitions, tty ? "" : "\n");
      };
      BenchRow row;
      row.model = &info;
      row.rec = runtime::run_bench_test(*model, info, t, on_rep);
      row.dram_gbps = profile ? profile->dram_gbps(t.n_threads) : 0;
      if (tty) std::fprintf(stderr, "\r\033[K");
      printer.row(row);
    }
    if (const storage::WeightStreamer* st = model->streamer()) {  // --mem: what streaming cost
      const storage::StreamStats ss = st->stats();
      std::fprintf(stderr, "strata bench: --mem: %.1f MiB read from disk per forward pass (%llu passes, %llu tensor "
                   "reads), %.2f s waiting for the disk\n",
                   ss.passes ? static_cast<double>(ss.bytes_read) / static_cast<double>(ss.passes) / 1048576.0 : 0.0,
                   static_cast<unsigned long long>(ss.passes), static_cast<unsigned long long>(ss.reads), ss.wait_seconds);
    }
  }
  printer.finish();
  const std::string rss = format_bytes(static_cast<double>(runtime::peak_rss_bytes()));
  if (*format == BenchFormat::kMarkdown) {
    fmt::print("\npeak RSS {}", rss);
    if (profile)
      fmt::print("; roofline = achieved GB/s / DRAM read GB/s probed at that thread count ({} thread{}: {:.1f} GB/s)",
                 o.threads.front(), o.threads.front() == 1 ? "" : "s", profile->dram_gbps(o.threads.front()));
    fmt::print("\n");
  } else {
    std::fprintf(stderr, "strata bench: peak RSS %s\n", rss.c_str());
  }
  return 0;
}

const Command kCmd{
    "bench", "measure prompt processing (pp) and generation (tg) speed like llama-bench, with the bandwidth roofline",
    [](CLI::App& sub) -> RunFn {
      auto o = std::make_shared<BenchOptions>();
      sub.add_option("-m,--model", o->models, "GGUF model file(s), repeatable or comma-separated "
                     "(default: $STRATA_MODEL, else ../shared/models/stories260K.gguf)")->delimiter(',');
      sub.add_option("-p,--n-prompt", o->prompts, "prompt sizes, comma-separated (0: no pp test)")
          ->delimiter(',')->capture_default_str();
      sub.add_option("-n,--n-gen", o->gens, "generation sizes, comma-separated (0: no tg test)")
          ->delimiter(',')->capture_default_str();
      sub.add_option("-d,--n-depth", o->depths, "depths: tokens already in the context before each test")
          ->delimiter(',')->capture_default_str();
      sub.add_option("-t,--threads", o->threads, "thread counts, comma-separated (default: all hardware threads)")
          ->delimiter(',');
      sub.add_option("-b,--batch-size", o->batches, "tokens per prompt-processing step")->delimiter(',')
          ->capture_default_str();
      sub.add_option("-r,--repetitions", o->reps, "repetitions of each test")->capture_default_str();
      sub.add_option("-o,--output", o->output, "output format: md, json, jsonl or csv")->capture_default_str();
      sub.add_option("-c", o->ctx_args,
                     "-ctk TYPE / -ctv TYPE: KV cache formats, comma-separated: ggml's (f32, f16, bf16, q8_0, q4_0, "
                     "q4_1) or strata's (bfp8, bfp4, bfp8r, bfp4r, q4h, bfp4h, gear2, gear4)")
          ->type_name("tk|tv TYPE")->expected(2)->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
      sub.add_option("--cache-type-k", o->types_k, "KV cache types for K (also -ctk)")->delimiter(',')
          ->capture_default_str();
      sub.add_option("--cache-type-v", o->types_v, "KV cache types for V (also -ctv)")->delimiter(',')
          ->capture_default_str();
      sub.add_option("--profile", o->profile, "machine profile for the roofline (default: $STRATA_PROFILE, else "
                     "~/.cache/strata/profile.json, written by `strata probe`)");
      sub.add_flag("--progress", o->progress, "print progress on stderr (always shown on a terminal)");
      sub.add_flag("--no-warmup", o->no_warmup, "skip the untimed warm-up run of each test");
      sub.add_option("--mem", o->mem, "memory budget (e.g. 600M, 1.5G): weights that do not fit are read from "
                     "the model file each token with direct I/O (see `strata plan`)");
      add_ffn_flags(sub, o->ffn);
      CLI::App* attn = sub.add_subcommand("attn", "attention I/O model: bytes moved (counted) vs the N²d²/M bound, "
                                                  "and time, for prefill and decode");
      RunFn run_attn = setup_bench_attn(*attn);
      return [o, attn, run_attn] { return attn->parsed() ? run_attn() : run(*o); };
    }};

}  // namespace
}  // namespace strata::cli
