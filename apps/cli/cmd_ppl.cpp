// `strata ppl -m MODEL -f TEXT`: perplexity the way llama-perplexity computes it, and the KL divergence,
// top-1 agreement and Δppl against a saved baseline: the yardstick of the KV formats (docs/KV.md).
//
// Method (llama.cpp's perplexity()): the text is tokenized as one string with BOS; it is cut into chunks of
// -c tokens (the first token of each chunk replaced by BOS); each chunk is evaluated from an empty cache, and
// only the second half of it is scored (token j+1 predicted from the logits at j, for j in [c/2, c-1)), so
// every scored token has at least c/2 tokens of context. With --stride S, windows of c tokens start every S
// tokens and the last S predictions of each are scored instead.
//
// --save-logits FILE writes the log-probabilities of every scored token (float32 [n_scored][n_vocab], after a
// header that pins the model's vocabulary, the chunking and a hash of the tokens); --kl-base FILE reads such a
// file and reports mean KL(base || this), the share of tokens whose top-1 token agrees, and Δppl.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>

#include "cli/command.h"
#include "cli/generation_flags.h"
#include "core/error.h"
#include "kv/kv_cache.h"
#include "kv/kv_format.h"
#include "model/model.h"
#include "runtime/generate.h"
#include "runtime/session.h"
#include "tokenizer/tokenizer.h"

namespace strata::cli {
namespace {

struct PplOptions {
  std::string model, text_file, save_logits, kl_base;
  int64_t ctx = 256;
  int64_t stride = 0;
  int64_t chunks = -1;  // -1: all
  int64_t batch = 0;    // tokens per forward step; 0: a whole chunk (llama-perplexity's default)
  int threads = 0;
  std::vector<std::string> ctx_args;  // -c N, -ctk T, -ctv T (see generation_flags.h)
  std::string cache_type_k = "f16", cache_type_v = "f16";
  int32_t kv_window = 0;
  int64_t kv_budget = 0;  // tokens; 0: unlimited
  std::string kv_policy = "streaming";
  int32_t kv_sink = 4, kv_recent = 32;
  int64_t calib_tokens = 0;  // bfp4r/bfp8r: calibration tokens from the start of the text (0: one chunk)
  float ffn_threshold = 0;   // SiLU: skip neurons with |silu(gate)| below it (model/sparse_ffn.h)
  bool json = false;
};

constexpr char kMagic[8] = {'S', 'T', 'R', 'A', 'T', 'A', 'L', 'P'};

struct LogitsHeader {
  char magic[8];
  uint32_t version = 1, n_vocab = 0;
  uint32_t n_ctx = 0, stride = 0;
  uint64_t n_scored = 0;     // rows of log-probabilities that follow
  uint64_t token_hash = 0;   // FNV-1a of the token ids of the text
  double nll_sum = 0;        // of the scored tokens (base ppl = exp(nll_sum / n_scored))
};

uint64_t fnv1a(const std::vector<int32_t>& ids) {
  uint64_t h = 1469598103934665603ull;
  for (int32_t id : ids)
    for (int b = 0; b < 4; ++b) h = (h ^ ((static_cast<uint32_t>(id) >> (8 * b)) & 0xff)) * 1099511628211ull;
  return h;
}

std::string read_text(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) fail("-f {}: cannot read the text file", path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// log-softmax of one row of logits, in double for the sum.
void log_softmax(const float* logits, int64_t n, float* out) {
  const float m = *std::max_element(logits, logits + n);
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += std::exp(static_cast<double>(logits[i]) - m);
  const double ls = std::log(s) + m;
  for (int64_t i = 0; i < n; ++i) out[i] = static_cast<float>(logits[i] - ls);
}

void resolve(PplOptions& o) {
  for (size_t i = 0; i < o.ctx_args.size(); ++i) {
    const std::string& a = o.ctx_args[i];
    if (a == "tk" || a == "tv") {
      if (i + 1 >= o.ctx_args.size()) fail("-ct{} needs a type ({})", a.substr(1), kv::format_name_list());
      (a == "tk" ? o.cache_type_k : o.cache_type_v) = o.ctx_args[++i];
      continue;
    }
    char* end = nullptr;
    const long long v = std::strtoll(a.c_str(), &end, 10);
    if (a.empty() || *end != '\0' || v < 8) fail("-c/--ctx {}: expected a number of tokens (at least 8)", a);
    o.ctx = v;
  }
  if (o.text_file.empty()) fail("give the text to score with -f FILE");
  if (o.stride < 0 || o.stride >= o.ctx) fail("--stride {}: must be between 1 and --ctx - 1 (or 0: chunks)", o.stride);
  if (o.kv_window < 0) fail("--kv-window {}: must be 0 or more", o.kv_window);
  if (o.threads < 0) fail("-t/--threads {}: must be positive", o.threads);
}

int run(PplOptions& o) {
  resolve(o);
  using Clock = std::chrono::steady_clock;
  const auto t0 = Clock::now();
  const bool tty = isatty(2) && !o.json;
  auto model = model::Model::load(resolve_model(o.model), {.prepare_kernels = true, .progress = tty});
  if (o.ffn_threshold < 0) fail("--ffn-threshold {}: must be 0 or more", o.ffn_threshold);
  model->set_ffn_sparsity({.threshold = o.ffn_threshold});
  auto tok = Tokenizer::from_gguf(model->file());
  std::vector<int32_t> ids = tok->encode(read_text(o.text_file), /*add_special=*/true, /*parse_special=*/false);
  const int64_t n_ctx = o.ctx, n_tok = static_cast<int64_t>(ids.size());
  const int64_t step = o.stride > 0 ? o.stride : n_ctx;
  int64_t n_chunk = n_tok < n_ctx ? 0 : (n_tok - n_ctx) / step + 1;
  if (o.stride == 0) n_chunk = n_tok / n_ctx;
  if (o.chunks >= 0) n_chunk = std::min(n_chunk, o.chunks);
  if (n_chunk < 1) fail("-f {}: {} tokens is less than one chunk of -c {}: use a longer text or a smaller -c",
                        o.text_file, n_tok, n_ctx);
  const int64_t first = o.stride > 0 ? n_ctx - o.stride - 1 : n_ctx / 2;
  const int64_t per_chunk = n_ctx - 1 - first;

  runtime::SessionConfig sc;
  sc.n_ctx = n_ctx;
  sc.n_threads = o.threads;
  sc.n_batch = o.batch > 0 ? std::min(o.batch, n_ctx) : n_ctx;
  sc.format_k = kv::parse_format(o.cache_type_k, "--cache-type-k");
  sc.format_v = kv::parse_format(o.cache_type_v, "--cache-type-v");
  sc.kv_window = o.kv_window;
  if (o.kv_budget > 0) {
    sc.kv_budget.policy = kv::parse_policy(o.kv_policy, "--kv-policy");
    sc.kv_budget.max_tokens = o.kv_budget;
    sc.kv_budget.n_sink = o.kv_sink;
    sc.kv_budget.n_recent = o.kv_recent;
  }
  const bool add_bos = tok->add_bos() && tok->bos() >= 0;

  // The reordered formats: channel permutations from the start of the text, through an f32 cache.
  if (kv::format_info(*sc.format_k).needs_calibration() || kv::format_info(*sc.format_v).needs_calibration()) {
    runtime::SessionConfig cc = sc;
    const int64_t n_cal = std::min(n_tok, o.calib_tokens > 0 ? o.calib_tokens : n_ctx);
    cc.n_ctx = n_cal;
    cc.n_batch = std::min<int64_t>(n_cal, 512);
    cc.format_k = cc.format_v = kv::KvFormat::F32;
    cc.kv_window = 0;
    runtime::Session cal(*model, cc);
    cal.append(std::span<const int32_t>(ids.data(), static_cast<size_t>(n_cal)));
    sc.kv_calibration = kv::calibrate_from(cal.kv());
  }
  runtime::Session session(*model, sc);
  const int64_t n_vocab = session.n_vocab();

  // The baseline to compare with, and the file to save to.
  std::ifstream base;
  LogitsHeader bh{};
  if (!o.kl_base.empty()) {
    base.open(o.kl_base, std::ios::binary);
    if (!base || !base.read(reinterpret_cast<char*>(&bh), sizeof bh) || std::memcmp(bh.magic, kMagic, 8) != 0)
      fail("--kl-base {}: not a logits file of `strata ppl --save-logits`", o.kl_base);
    if (bh.n_vocab != n_vocab || bh.n_ctx != n_ctx || bh.stride != o.stride || bh.token_hash != fnv1a(ids))
      fail("--kl-base {}: saved with another model, text, -c or --stride (vocab {}, ctx {}, stride {}): "
           "save the baseline with the same ones", o.kl_base, bh.n_vocab, bh.n_ctx, bh.stride);
    if (bh.n_scored < static_cast<uint64_t>(n_chunk * per_chunk))
      fail("--kl-base {}: holds {} scored tokens, this run scores {}: save it with at least as many --chunks",
           o.kl_base, bh.n_scored, n_chunk * per_chunk);
  }
  std::ofstream save;
  LogitsHeader sh{};
  if (!o.save_logits.empty()) {
    save.open(o.save_logits, std::ios::binary | std::ios::trunc);
    if (!save) fail("--save-logits {}: cannot write the file", o.save_logits);
    std::memcpy(sh.magic, kMagic, 8);
    sh.n_vocab = static_cast<uint32_t>(n_vocab);
    sh.n_ctx = static_cast<uint32_t>(n_ctx);
    sh.stride = static_cast<uint32_t>(o.stride);
    sh.token_hash = fnv1a(ids);
    save.write(reinterpret_cast<const char*>(&sh), sizeof sh);
  }

  const bool saving = save.is_open(), comparing = base.is_open();
  std::vector<float> logits, lp(static_cast<size_t>(n_vocab)), blp(static_cast<size_t>(n_vocab));
  std::vector<int32_t> chunk(static_cast<size_t>(n_ctx));
  double nll = 0, base_nll = 0, kl_sum = 0;
  int64_t n_scored = 0, n_agree = 0;
  for (int64_t c = 0; c < n_chunk; ++c) {
    const int64_t start = c * step;
    std::copy_n(ids.begin() + start, n_ctx, chunk.begin());
    if (add_bos) chunk[0] = tok->bos();
    session.rewind(0);
    session.append_all_logits(chunk, logits);
    for (int64_t j = first; j < n_ctx - 1; ++j) {
      log_softmax(logits.data() + j * n_vocab, n_vocab, lp.data());
      const int32_t next = ids[static_cast<size_t>(start + j + 1)];
      nll -= lp[static_cast<size_t>(next)];
      ++n_scored;
      if (saving) save.write(reinterpret_cast<const char*>(lp.data()), static_cast<std::streamsize>(n_vocab * 4));
      if (comparing) {
        if (!base.read(reinterpret_cast<char*>(blp.data()), static_cast<std::streamsize>(n_vocab * 4)))
          fail("--kl-base {}: the file is truncated", o.kl_base);
        double kl = 0;
        for (int64_t v = 0; v < n_vocab; ++v) kl += std::exp(static_cast<double>(blp[v])) * (blp[v] - lp[v]);
        kl_sum += std::max(kl, 0.0);
        base_nll -= blp[static_cast<size_t>(next)];
        n_agree += std::max_element(blp.begin(), blp.end()) - blp.begin() ==
                   std::max_element(lp.begin(), lp.end()) - lp.begin();
      }
    }
    if (tty)
      std::fprintf(stderr, "\rstrata ppl: chunk %lld/%lld, ppl %.4f   ", static_cast<long long>(c + 1),
                   static_cast<long long>(n_chunk), std::exp(nll / static_cast<double>(n_scored)));
  }
  if (tty) std::fputc('\n', stderr);
  if (saving) {
    sh.n_scored = static_cast<uint64_t>(n_scored);
    sh.nll_sum = nll;
    save.seekp(0);
    save.write(reinterpret_cast<const char*>(&sh), sizeof sh);
    if (!save.flush()) fail("--save-logits {}: write failed (disk full?)", o.save_logits);
  }
  const double ppl = std::exp(nll / static_cast<double>(n_scored));
  const double kv_bpt = session.kv().bytes_per_token();
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  const bool has_base = comparing;
  const double base_ppl = has_base ? std::exp(base_nll / static_cast<double>(n_scored)) : 0;
  const double kl_mean = has_base ? kl_sum / static_cast<double>(n_scored) : 0;
  const double agree = has_base ? static_cast<double>(n_agree) / static_cast<double>(n_scored) : 0;
  if (o.json) {
    std::string j = fmt::format(
        "{{\"ppl\": {:.6f}, \"n_tokens\": {}, \"n_chunks\": {}, \"ctx\": {}, \"stride\": {}, \"type_k\": \"{}\", "
        "\"type_v\": \"{}\", \"kv_window\": {}, \"kv_budget\": {}, \"kv_policy\": \"{}\", "
        "\"batch\": {}, \"kv_bytes_per_token\": {:.2f}, \"seconds\": {:.2f}",
        ppl, n_scored, n_chunk, n_ctx, o.stride, kv::format_name(*sc.format_k), kv::format_name(*sc.format_v),
        o.kv_window, o.kv_budget, o.kv_budget > 0 ? o.kv_policy : "none", sc.n_batch, kv_bpt, secs);
    if (has_base)
      j += fmt::format(", \"kl_mean\": {:.7f}, \"top1_agree\": {:.6f}, \"base_ppl\": {:.6f}, \"delta_ppl_pct\": {:.4f}",
                       kl_mean, agree, base_ppl, 100.0 * (ppl / base_ppl - 1));
    if (model->ffn_counters().neurons > 0)
      j += fmt::format(", \"ffn_threshold\": {}, \"ffn_sparsity\": {:.6f}", o.ffn_threshold,
                       model->ffn_counters().sparsity());
    std::printf("%s}\n", j.c_str());
  } else {
    std::printf("ppl %.4f over %lld tokens (%lld chunks of %lld), KV %s/%s%s: %.1f bytes/token, %.1f s\n", ppl,
                static_cast<long long>(n_scored), static_cast<long long>(n_chunk), static_cast<long long>(n_ctx),
                kv::format_name(*sc.format_k), kv::format_name(*sc.format_v),
                o.kv_window ? fmt::format(" + f16 window {}", o.kv_window).c_str() : "", kv_bpt, secs);
    if (model->ffn_counters().neurons > 0)
      std::printf("FFN: %.2f%% of neurons skipped (%s%s)\n", 100.0 * model->ffn_counters().sparsity(),
                  model->hparams().ffn_act == model::FfnAct::kRelu ? "relu" : "silu",
                  o.ffn_threshold > 0 ? fmt::format(", --ffn-threshold {}", o.ffn_threshold).c_str() : "");
    if (has_base)
      std::printf("vs base (ppl %.4f): Δppl %+.3f%%, mean KL %.6f, same top token %.2f%%\n", base_ppl,
                  100.0 * (ppl / base_ppl - 1), kl_mean, 100.0 * agree);
  }
  return 0;
}

const Command kCmd{"ppl", "perplexity of a text (llama-perplexity's method), KL divergence against a saved baseline",
                   [](CLI::App& sub) -> RunFn {
                     auto o = std::make_shared<PplOptions>();
                     sub.add_option("-m,--model", o->model, "GGUF model file");
                     sub.add_option("-f,--file", o->text_file, "the text to score")->required();
                     sub.add_option("-c,--ctx", o->ctx_args, "tokens per chunk (default 256); also -ctk T / -ctv T")
                         ->type_name("N")->expected(1, 2)->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
                     sub.add_option("--stride", o->stride,
                                    "windows every S tokens, their last S predictions scored (0: chunks)")
                         ->capture_default_str();
                     sub.add_option("--chunks", o->chunks, "score at most N chunks (-1: all)")->capture_default_str();
                     sub.add_option("-t,--threads", o->threads, "threads (default: all hardware threads)");
                     sub.add_option("-b,--batch-size", o->batch,
                                    "tokens per forward step (0: a whole chunk). Keys and values are stored before "
                                    "attention reads them, so with a KV window or GEAR, -b 1 scores what decoding "
                                    "sees (the window relative to each token); a whole chunk quantizes all of it");
                     add_kv_flags(sub, o->cache_type_k, o->cache_type_v, o->kv_window);
                     sub.add_option("--kv-budget", o->kv_budget, "most KV slots (tokens; 0: unlimited)");
                     sub.add_option("--kv-policy", o->kv_policy, "with --kv-budget: streaming, h2o or merge")
                         ->capture_default_str();
                     sub.add_option("--kv-sink", o->kv_sink, "with --kv-budget: first tokens kept")
                         ->capture_default_str();
                     sub.add_option("--kv-recent", o->kv_recent, "with --kv-budget: recent tokens kept")
                         ->capture_default_str();
                     sub.add_option("--kv-calib-tokens", o->calib_tokens,
                                    "bfp4r/bfp8r: tokens from the start of the text to calibrate on (0: one chunk)");
                     sub.add_option("--save-logits", o->save_logits, "save the scored log-probabilities (a baseline)");
                     sub.add_option("--kl-base", o->kl_base,
                                    "compare with a baseline: mean KL, top-1 agreement, Δppl");
                     sub.add_option("--ffn-threshold", o->ffn_threshold,
                                    "SiLU models: skip FFN neurons whose |silu(gate)| is below T (activation "
                                    "sparsity; an approximation, 0: off)")->capture_default_str();
                     sub.add_flag("--json", o->json, "print the figures as one JSON object");
                     return [o] { return run(*o); };
                   }};

}  // namespace
}  // namespace strata::cli
