// The flags shared by `strata run` and `strata chat` (the names llama.cpp users know), their defaults, and
// turning them into a model path, a session configuration and sampler parameters.
#pragma once
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "cli/command.h"
#include "core/error.h"
#include "kv/kv_cache.h"
#include "model/sparse_ffn_options.h"
#include "model/synthetic.h"
#include "runtime/session.h"
#include "sample/sampler.h"
#include "tensor/dtype.h"

namespace strata::cli {

struct GenerationFlags {
  std::string model;
  int threads = 0;
  // -c N; CLI11 reads llama.cpp's -ctk T / -ctv T as "-c tk T" / "-c tv T", so they are decoded here.
  std::vector<std::string> ctx_args;
  std::string cache_type_k = "f16", cache_type_v = "f16";
  int32_t kv_window = 0;  // --kv-window: recent positions kept in f16
  std::string kv_budget;  // --kv-budget: tokens ("2048") or bytes ("64MiB"); "" = unlimited
  std::string kv_policy = "streaming";
  int32_t kv_sink = 4, kv_recent = 32;
  int64_t batch = 512;
  int64_t n_predict = -1;
  SamplerParams sampling;
  int64_t seed = -1;
  bool ignore_eos = false;
  bool verbose = false;
  int64_t ctx = 0;  // resolved from ctx_args: 0 = the model's context_length
};

// --cache-type-k/-v (also -ctk/-ctv, decoded from -c) and --kv-window: shared by run, chat, ppl and bench.
inline void add_kv_flags(CLI::App& sub, std::string& type_k, std::string& type_v, int32_t& window) {
  const std::string names = kv::format_name_list();
  sub.add_option("--cache-type-k", type_k, "KV cache type for K (also -ctk): " + names)->capture_default_str();
  sub.add_option("--cache-type-v", type_v, "KV cache type for V (also -ctv): " + names)->capture_default_str();
  sub.add_option("--kv-window", window, "the most recent N tokens of the KV cache kept in f16 (0: none)")
      ->capture_default_str();
}

// The sparse FFN's flags (model/sparse_ffn.h), for commands that load a model: after loading, call
// model->set_ffn_sparsity(s). run and bench add all three; `strata ppl` has --ffn-threshold only.
inline void add_ffn_flags(CLI::App& sub, model::FfnSparsity& s) {
  sub.add_option("--ffn-threshold", s.threshold,
                 "SiLU models: skip FFN neurons whose |silu(gate)| is below T (an approximation; 0: off)")
      ->capture_default_str();
  sub.add_option("--ffn-window", s.window,
                 "bundled models under --mem: keep the FFN rows of neurons active in the last N tokens in memory")
      ->capture_default_str();
  sub.add_option("--ffn-cache-bytes", s.cache_bytes, "with --ffn-window: most bytes the neuron cache keeps (0: no cap)")
      ->capture_default_str();
}

inline void add_generation_flags(CLI::App& sub, GenerationFlags& f) {
  sub.add_option("-m,--model", f.model,
                 "GGUF model file (default: $STRATA_MODEL, else ../shared/models/stories260K.gguf, "
                 "else a generated demo model)");
  sub.add_option("-n,--n-predict", f.n_predict, "tokens to generate (-1: until end of text or context full)")
      ->capture_default_str();
  sub.add_option("-t,--threads", f.threads, "threads (default: all hardware threads)");
  sub.add_option("-c,--ctx", f.ctx_args, "context size in tokens (default: the model's; memory is committed "
                 "only as it fills). Also takes -ctk TYPE / -ctv TYPE")
      ->type_name("N")->expected(1, 2)->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  add_kv_flags(sub, f.cache_type_k, f.cache_type_v, f.kv_window);
  sub.add_option("--kv-budget", f.kv_budget, "most KV cache slots: tokens (2048) or bytes (64MiB); older ones are "
                 "evicted or merged per --kv-policy (default: unlimited)");
  sub.add_option("--kv-policy", f.kv_policy, "with --kv-budget: streaming (sinks + recent), h2o (+ most attended), "
                 "merge (h2o, evicted merged into similar kept ones)")->capture_default_str();
  sub.add_option("--kv-sink", f.kv_sink, "with --kv-budget: first tokens always kept")->capture_default_str();
  sub.add_option("--kv-recent", f.kv_recent, "with --kv-budget: most recent tokens always kept")->capture_default_str();
  sub.add_option("-b,--batch-size", f.batch, "tokens per prompt-processing step")->capture_default_str();
  sub.add_option("--temp", f.sampling.temperature, "temperature (0: greedy)")->capture_default_str();
  sub.add_option("--top-k", f.sampling.top_k, "top-k (0: off)")->capture_default_str();
  sub.add_option("--top-p", f.sampling.top_p, "top-p (1: off)")->capture_default_str();
  sub.add_option("--min-p", f.sampling.min_p, "min-p (0: off)")->capture_default_str();
  sub.add_option("--repeat-penalty", f.sampling.repeat_penalty, "repetition penalty (1: off)")->capture_default_str();
  sub.add_option("--repeat-last-n", f.sampling.repeat_last_n, "tokens the penalties look back on")->capture_default_str();
  sub.add_option("--presence-penalty", f.sampling.presence_penalty, "presence penalty (0: off)")->capture_default_str();
  sub.add_option("--frequency-penalty", f.sampling.frequency_penalty, "frequency penalty (0: off)")->capture_default_str();
  sub.add_option("-s,--seed", f.seed, "random seed (-1: random)")->capture_default_str();
  sub.add_flag("--ignore-eos", f.ignore_eos, "keep generating after end-of-text tokens");
  sub.add_flag("-v,--verbose", f.verbose, "print the model's shape and per-turn statistics");
}

// A ggml-compatible KV type (the server's caches): f32, f16, bf16, q8_0, q4_0, q4_1.
inline DType parse_kv_type(const std::string& s, const char* flag) {
  const auto t = dtype_from_name(s);
  if (!t || !kv::KvCache::supported_type(*t)) {
    if (kv::format_from_name(s))
      fail("{} {}: this KV format is not available here: use f32, f16, bf16, q8_0, q4_0 or q4_1", flag, s);
    fail("{} {}: unknown KV cache type (known: f32, f16, bf16, q8_0, q4_0, q4_1)", flag, s);
  }
  return *t;
}

// Decodes -c / -ctk / -ctv and checks the flag values. Throws strata::Error with the flag's name.
inline void resolve_flags(GenerationFlags& f) {
  for (size_t i = 0; i < f.ctx_args.size(); ++i) {
    const std::string& a = f.ctx_args[i];
    if (a == "tk" || a == "tv") {
      if (i + 1 >= f.ctx_args.size()) fail("-ct{} needs a type ({})", a.substr(1), kv::format_name_list());
      (a == "tk" ? f.cache_type_k : f.cache_type_v) = f.ctx_args[++i];
      continue;
    }
    char* end = nullptr;
    const long long v = std::strtoll(a.c_str(), &end, 10);
    if (a.empty() || *end != '\0' || v < 0) fail("-c/--ctx {}: expected a number of tokens", a);
    f.ctx = v;
  }
  kv::parse_format(f.cache_type_k, "--cache-type-k");
  kv::parse_format(f.cache_type_v, "--cache-type-v");
  if (f.kv_window < 0) fail("--kv-window {}: must be 0 or more", f.kv_window);
  kv::parse_policy(f.kv_policy, "--kv-policy");
  if (f.kv_sink < 0 || f.kv_recent < 1) fail("--kv-sink must be 0 or more and --kv-recent at least 1");
  if (f.threads < 0) fail("-t/--threads {}: must be positive", f.threads);
  if (f.batch < 1) fail("-b/--batch-size {}: must be positive", f.batch);
  f.sampling.seed = f.seed < 0 ? 0xFFFFFFFFu : static_cast<uint64_t>(f.seed);
}

// With the model, a --kv-budget in bytes becomes tokens (without it, such a budget is left unset).
inline runtime::SessionConfig session_config(const GenerationFlags& f, const model::Model* m = nullptr) {
  runtime::SessionConfig c;
  c.n_ctx = f.ctx;
  c.n_threads = f.threads;
  c.format_k = kv::parse_format(f.cache_type_k, "--cache-type-k");
  c.format_v = kv::parse_format(f.cache_type_v, "--cache-type-v");
  c.kv_window = f.kv_window;
  if (!f.kv_budget.empty()) {
    double bpt = 0;
    if (m) {
      const model::HParams& hp = m->hparams();
      bpt = kv::model_bytes_per_token({*c.format_k, *c.format_v, 0}, static_cast<int32_t>(hp.n_layer),
                                      static_cast<int32_t>(hp.n_head_kv), static_cast<int32_t>(hp.head_dim));
    }
    const bool digits = f.kv_budget.find_first_not_of("0123456789") == std::string::npos;
    c.kv_budget.policy = kv::parse_policy(f.kv_policy, "--kv-policy");
    c.kv_budget.max_tokens = digits || bpt > 0 ? kv::parse_budget_tokens(f.kv_budget, bpt > 0 ? bpt : 1.0) : 0;
    c.kv_budget.n_sink = f.kv_sink;
    c.kv_budget.n_recent = f.kv_recent;
  }
  c.n_batch = f.batch;
  return c;
}

// Where the demo model is kept: $XDG_CACHE_HOME/strata/demo.gguf, else ~/.cache/strata/demo.gguf, else the
// system's temporary folder.
inline std::string demo_model_path() {
  namespace fs = std::filesystem;
  fs::path dir;
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) dir = fs::path(x) / "strata";
  else if (const char* h = std::getenv("HOME"); h && *h) dir = fs::path(h) / ".cache" / "strata";
  else dir = fs::temp_directory_path() / "strata";
  return (dir / "demo.gguf").string();
}

// The model to load: -m, else `default_path`; when that is "" too, a demo model is generated (once, at
// demo_model_path()) and the user is told its output is gibberish.
inline std::string resolve_model(const std::string& flag, const std::string& default_path) {
  if (!flag.empty()) return flag;
  if (!default_path.empty()) return default_path;
  namespace fs = std::filesystem;
  const std::string path = demo_model_path();
  std::error_code ec;
  if (!fs::exists(path, ec)) {
    fs::create_directories(fs::path(path).parent_path(), ec);
    if (ec) fail("cannot create {} for the demo model: {}: pass -m MODEL.gguf", fs::path(path).parent_path().string(), ec.message());
    model::SyntheticSpec spec = model::synthetic_shape("demo");
    spec.progress = false;
    model::write_synthetic_gguf(spec, path);
  }
  std::fprintf(stderr,
               "strata: no model given (-m) and no default model found: using a demo model with RANDOM weights "
               "(%s); its output is gibberish. Pass -m MODEL.gguf or set STRATA_MODEL.\n",
               path.c_str());
  return path;
}

inline std::string resolve_model(const std::string& flag) {
  return resolve_model(flag, flag.empty() ? default_model_path() : std::string());
}

inline std::string format_bytes(double b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (b >= 1024 && u < 4) b /= 1024, ++u;
  return fmt::format("{:.1f} {}", b, units[u]);
}

}  // namespace strata::cli
