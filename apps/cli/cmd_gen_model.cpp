// `strata gen-model`: writes a synthetic GGUF of a real model's shape (random weights, valid tokenizer), so
// benchmarks run anywhere without downloads.
#include <chrono>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>

#include "cli/command.h"
#include "core/error.h"
#include "model/synthetic.h"
#include "tensor/dtype.h"

namespace strata::cli {
namespace {

struct GenModelOptions {
  std::string shape = "demo", type, output_type, output, arch, tokenizer, tokenizer_pre, chat_template, ffn_act;
  uint64_t seed = 42;
  int threads = 0;
  std::optional<int64_t> n_embd, n_layer, n_head, n_head_kv, n_ff, n_vocab, n_ctx;
  std::optional<float> rope_freq_base, rms_eps;
  bool tied = false, untied = false, exact = false;
};

DType parse_type(const std::string& name, const char* flag) {
  const auto t = dtype_from_name(name);
  if (!t) fail("{} {}: unknown tensor type: use one of {}", flag, name, supported_type_list());
  return *t;
}

int run_gen_model(const GenModelOptions& o) {
  model::SyntheticSpec s = model::synthetic_shape(o.shape);
  if (!o.type.empty()) s.weight_type = parse_type(o.type, "--type");
  if (!o.output_type.empty()) s.output_type = static_cast<int32_t>(parse_type(o.output_type, "--output-type"));
  s.seed = o.seed;
  s.n_threads = o.threads;
  s.exact = o.exact;
  bool custom = false;
  for (auto [dst, src] : {std::pair{&s.n_embd, o.n_embd}, {&s.n_layer, o.n_layer}, {&s.n_head, o.n_head},
                          {&s.n_head_kv, o.n_head_kv}, {&s.n_ff, o.n_ff}, {&s.n_vocab, o.n_vocab}, {&s.n_ctx, o.n_ctx}})
    if (src) *dst = *src, custom = true;
  if (o.rope_freq_base) s.rope_freq_base = *o.rope_freq_base;
  if (o.rms_eps) s.rms_eps = *o.rms_eps;
  if (!o.arch.empty()) s.arch = o.arch;
  if (!o.ffn_act.empty()) s.ffn_act = o.ffn_act;
  if (!o.tokenizer.empty()) s.tokenizer = o.tokenizer;
  if (!o.tokenizer_pre.empty()) s.tokenizer_pre = o.tokenizer_pre;
  if (!o.chat_template.empty()) s.chat_template = o.chat_template == "none" ? "" : o.chat_template;
  if (o.tied) s.tied_embeddings = true;
  if (o.untied) s.tied_embeddings = false;
  if (custom) s.name += "-custom";
  model::validate(s);

  const std::string path =
      o.output.empty() ? s.name + "-" + dtype_name(s.weight_type) + ".gguf" : o.output;
  std::fprintf(stderr,
               "gen-model: %s (%s): n_embd %lld, n_layer %lld, n_head %lld/%lld kv, n_ff %lld, n_vocab %lld, "
               "n_ctx %lld, %s weights, seed %llu\n",
               s.name.c_str(), s.arch.c_str(), static_cast<long long>(s.n_embd), static_cast<long long>(s.n_layer),
               static_cast<long long>(s.n_head), static_cast<long long>(s.n_head_kv), static_cast<long long>(s.n_ff),
               static_cast<long long>(s.n_vocab), static_cast<long long>(s.n_ctx), dtype_name(s.weight_type),
               static_cast<unsigned long long>(s.seed));
  const auto t0 = std::chrono::steady_clock::now();
  const uint64_t bytes = model::write_synthetic_gguf(s, path);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("wrote %s: %.1f MiB in %.1f s (random weights: the model's output is gibberish)\n", path.c_str(),
              static_cast<double>(bytes) / (1 << 20), secs);
  return 0;
}

RunFn setup_gen_model(CLI::App& sub) {
  auto o = std::make_shared<GenModelOptions>();
  std::string names;
  for (const auto& n : model::synthetic_shape_names()) names += (names.empty() ? "" : ", ") + n;
  sub.add_option("--shape", o->shape, "model shape: " + names)->capture_default_str();
  sub.add_option("--type", o->type, "weight type (f32, f16, q4_0, q8_0, q4_K, ...; default: q4_0, demo f32)");
  sub.add_option("--output-type", o->output_type, "type of output.weight (default: --type; q6_K: llama-quantize's mix)");
  sub.add_option("-o,--output", o->output, "output file (default: SHAPE-TYPE.gguf)");
  sub.add_option("-s,--seed", o->seed, "seed of the random weights")->capture_default_str();
  sub.add_option("-t,--threads", o->threads, "threads (default: all)");
  sub.add_flag("--exact", o->exact,
               "quantize every row (K-quants and IQ4 otherwise reuse a pool of 8192 random blocks: much faster)");
  sub.add_option("--n-embd", o->n_embd, "override: embedding width");
  sub.add_option("--n-layer", o->n_layer, "override: number of layers");
  sub.add_option("--n-head", o->n_head, "override: attention heads");
  sub.add_option("--n-head-kv", o->n_head_kv, "override: key/value heads (grouped-query attention)");
  sub.add_option("--n-ff", o->n_ff, "override: feed-forward width");
  sub.add_option("--n-vocab", o->n_vocab, "override: vocabulary size");
  sub.add_option("--n-ctx", o->n_ctx, "override: training context length");
  sub.add_option("--rope-freq-base", o->rope_freq_base, "override: rope base frequency");
  sub.add_option("--rms-eps", o->rms_eps, "override: RMS norm epsilon");
  sub.add_option("--arch", o->arch, "override: architecture (llama, qwen2)");
  sub.add_option("--ffn-act", o->ffn_act,
                 "FFN gate activation: silu (default, llama.cpp-compatible) or relu (sparse activations, ~50% "
                 "active with random weights; strata-only: llama.cpp would run it as silu)");
  sub.add_option("--tokenizer", o->tokenizer, "override: llama (SentencePiece) or gpt2 (byte-level BPE)");
  sub.add_option("--tokenizer-pre", o->tokenizer_pre, "override: BPE pre-tokenizer (llama-bpe, qwen2)");
  sub.add_option("--chat-template", o->chat_template, "chat template written: llama2, mistral, llama3, chatml, none");
  auto* tied = sub.add_flag("--tied-embeddings", o->tied, "no output.weight: reuse token_embd");
  sub.add_flag("--untied-embeddings", o->untied, "write output.weight")->excludes(tied);
  return [o] { return run_gen_model(*o); };
}

const Command kCmd{"gen-model", "write a synthetic GGUF of a real model's shape (random weights, valid tokenizer)",
                   setup_gen_model};

}  // namespace
}  // namespace strata::cli
