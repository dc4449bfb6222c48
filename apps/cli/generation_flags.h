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
  int64_t batch = 512;
  int64_t n_predict = -1;
  SamplerParams sampling;
  int64_t seed = -1;
  bool ignore_eos = false;
  bool verbose = false;
  int64_t ctx = 0;  // resolved from ctx_args: 0 = the model's context_length
};

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
  sub.add_option("--cache-type-k", f.cache_type_k, "KV cache type for K: f32 or f16 (also -ctk)")->capture_default_str();
  sub.add_option("--cache-type-v", f.cache_type_v, "KV cache type for V: f32 or f16 (also -ctv)")->capture_default_str();
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

inline DType parse_kv_type(const std::string& s, const char* flag) {
  const auto t = dtype_from_name(s);
  if (!t || !kv::KvCache::supported_type(*t))
    fail("{} {}: the KV cache type must be f32 or f16 (quantized caches come with the KV-tier work)", flag, s);
  return *t;
}

// Decodes -c / -ctk / -ctv and checks the flag values. Throws strata::Error with the flag's name.
inline void resolve_flags(GenerationFlags& f) {
  for (size_t i = 0; i < f.ctx_args.size(); ++i) {
    const std::string& a = f.ctx_args[i];
    if (a == "tk" || a == "tv") {
      if (i + 1 >= f.ctx_args.size()) fail("-ct{} needs a type (f32 or f16)", a.substr(1));
      (a == "tk" ? f.cache_type_k : f.cache_type_v) = f.ctx_args[++i];
      continue;
    }
    char* end = nullptr;
    const long long v = std::strtoll(a.c_str(), &end, 10);
    if (a.empty() || *end != '\0' || v < 0) fail("-c/--ctx {}: expected a number of tokens", a);
    f.ctx = v;
  }
  parse_kv_type(f.cache_type_k, "--cache-type-k");
  parse_kv_type(f.cache_type_v, "--cache-type-v");
  if (f.threads < 0) fail("-t/--threads {}: must be positive", f.threads);
  if (f.batch < 1) fail("-b/--batch-size {}: must be positive", f.batch);
  f.sampling.seed = f.seed < 0 ? 0xFFFFFFFFu : static_cast<uint64_t>(f.seed);
}

inline runtime::SessionConfig session_config(const GenerationFlags& f) {
  runtime::SessionConfig c;
  c.n_ctx = f.ctx;
  c.n_threads = f.threads;
  c.type_k = parse_kv_type(f.cache_type_k, "--cache-type-k");
  c.type_v = parse_kv_type(f.cache_type_v, "--cache-type-v");
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
