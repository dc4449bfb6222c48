// `strata run -m MODEL -p PROMPT -n N`: generates text from a prompt, streaming it as it is produced, and
// ends (on stderr) with load time, prompt and generation speed and peak memory.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "cli/command.h"
#include "cli/generation_flags.h"
#include "cli/mem_budget.h"
#include "core/error.h"
#include "model/model.h"
#include "runtime/generate.h"
#include "runtime/session.h"
#include "sample/sampler.h"
#include "tokenizer/tokenizer.h"

namespace strata::cli {
namespace {

std::atomic<bool> g_interrupt{false};

// Ctrl-C stops the generation (the statistics are still printed); a second one ends the program.
void on_sigint(int) {
  if (g_interrupt.exchange(true)) _exit(130);
}

struct RunOptions {
  GenerationFlags gen;
  std::string prompt, prompt_file;
  bool no_display_prompt = false;
  std::string mem;  // --mem: weights beyond it stream from disk
  model::FfnSparsity ffn;  // --ffn-threshold, --ffn-window, --ffn-cache-bytes
};

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) fail("cannot read the prompt file '{}'", path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

int run(RunOptions& o) {
  resolve_flags(o.gen);
  if (!o.prompt.empty() && !o.prompt_file.empty()) fail("give the prompt with -p or -f, not both");
  const std::string prompt = o.prompt_file.empty() ? o.prompt : read_file(o.prompt_file);

  using Clock = std::chrono::steady_clock;
  const auto t_load = Clock::now();
  const std::string path = resolve_model(o.gen.model);
  auto model = load_model_with_budget(path, session_config(o.gen), {.mem = o.mem, .progress = true});
  model->set_ffn_sparsity(o.ffn);
  auto tok = Tokenizer::from_gguf(model->file());
  runtime::Session session(*model, session_config(o.gen, model.get()));
  const double load_s = std::chrono::duration<double>(Clock::now() - t_load).count();
  if (o.gen.verbose) std::fprintf(stderr, "strata: %s\n", model->describe().c_str());

  const std::vector<int32_t> ids = tok->encode(prompt, /*add_special=*/true, /*parse_special=*/false);
  if (ids.empty()) fail("the prompt gives no tokens and the model adds no BOS: give a prompt with -p");
  if (static_cast<int64_t>(ids.size()) > session.n_ctx())
    fail("prompt is {} tokens: raise --ctx to at least {}", ids.size(), ids.size());

  if (!o.no_display_prompt) {
    std::fwrite(prompt.data(), 1, prompt.size(), stdout);
    std::fflush(stdout);
  }
  Sampler sampler(o.gen.sampling, static_cast<int32_t>(session.n_vocab()));
  runtime::GenerateParams gp;
  gp.n_predict = o.gen.n_predict;
  gp.ignore_eos = o.gen.ignore_eos;
  gp.interrupt = &g_interrupt;
  gp.text_start = prompt.empty() || o.no_display_prompt;

  struct sigaction sa {};
  sa.sa_handler = on_sigint;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  const runtime::GenerateResult r = runtime::generate(session, *tok, sampler, ids, gp, [](std::string_view s) {
    std::fwrite(s.data(), 1, s.size(), stdout);
    std::fflush(stdout);
  });
  std::fputc('\n', stdout);
  std::fflush(stdout);

  const double pp = r.prompt_seconds > 0 ? static_cast<double>(r.n_prompt_fed) / r.prompt_seconds : 0;
  const double tg = r.gen_seconds > 0 ? static_cast<double>(r.n_generated) / r.gen_seconds : 0;
  std::fprintf(stderr,
               "strata: load %.1f ms | prompt %lld tokens, %.1f tok/s | generation %lld tokens, %.1f tok/s | "
               "peak memory %s | %d threads, stop: %s%s\n",
               load_s * 1e3, static_cast<long long>(r.n_prompt), pp, static_cast<long long>(r.n_generated), tg,
               format_bytes(static_cast<double>(runtime::peak_rss_bytes())).c_str(), session.n_threads(),
               runtime::stop_reason_name(r.stop),
               o.gen.sampling.temperature > 0 ? fmt::format(", seed {}", sampler.seed()).c_str() : "");
  return 0;
}

const Command kCmd{"run", "generate text from a prompt (streams the text, then prints speed and memory)",
                   [](CLI::App& sub) -> RunFn {
                     auto o = std::make_shared<RunOptions>();
                     sub.add_option("-p,--prompt", o->prompt, "the prompt (default: empty: start from BOS)");
                     sub.add_option("-f,--file", o->prompt_file, "read the prompt from a file");
                     sub.add_flag("--no-display-prompt", o->no_display_prompt, "do not print the prompt");
                     add_generation_flags(sub, o->gen);
                     sub.add_option("--mem", o->mem, "memory budget (e.g. 600M, 1.5G): weights that do not fit "
                                    "are read from the model file each token with direct I/O (see `strata plan`)");
                     add_ffn_flags(sub, o->ffn);
                     return [o] { return run(*o); };
                   }};

}  // namespace
}  // namespace strata::cli
