// `strata serve -m MODEL [--host H] [--port P]`: an OpenAI-compatible HTTP server with continuous batching
// and a prefix cache (src/serve). Prints "strata: listening on http://HOST:PORT" on stdout once it accepts
// connections (--port 0 picks a free port); Ctrl-C or SIGTERM stops it.
// KV tier and memory: -ctk/-ctv (any registered KV format), --kv-window, --mem (weights beyond it stream from
// the file, as for `strata run`), --kv-mem (KV budget: preemption with swap, to RAM or --swap-dir).
#include <signal.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <thread>

#include "cli/command.h"
#include "cli/generation_flags.h"
#include "cli/mem_budget.h"
#include "core/error.h"
#include "gguf/gguf.h"
#include "kv/kv_format.h"
#include "model/model.h"
#include "plan/planner.h"
#include "serve/http_server.h"
#include "serve/scheduler.h"
#include "tokenizer/tokenizer.h"

namespace strata::cli {
namespace {

struct ServeOptions {
  std::string model, host = "127.0.0.1", api_key, alias, chat_template;
  int port = 8080;
  int threads = 0;
  std::vector<std::string> ctx_args;
  int64_t ctx = 0;
  int parallel = 4;
  int queue = 64;
  int64_t prefill_chunk = 0;
  double step_budget_ms = 150;
  int64_t prefill_min = 4, prefill_max = 256;
  double timeout = 600;
  size_t max_body = 1 << 20;
  int cache_entries = -1;
  std::string cache_type_k = "f16", cache_type_v = "f16";
  int32_t kv_window = 0;
  std::string mem, kv_mem, swap_dir;
  int64_t swap_quantum = 0;
};

int serve(ServeOptions& o) {
  for (size_t i = 0; i < o.ctx_args.size(); ++i) {
    const std::string& a = o.ctx_args[i];
    if (a == "tk" || a == "tv") {  // -ctk T / -ctv T, read by CLI11 as -c tk T
      if (i + 1 >= o.ctx_args.size()) fail("-ct{} needs a type ({})", a.substr(1), kv::format_name_list());
      (a == "tk" ? o.cache_type_k : o.cache_type_v) = o.ctx_args[++i];
      continue;
    }
    char* end = nullptr;
    const long long v = std::strtoll(a.c_str(), &end, 10);
    if (a.empty() || *end != '\0' || v < 0) fail("-c/--ctx {}: expected a number of tokens", a);
    o.ctx = v;
  }
  if (o.port < 0 || o.port > 65535) fail("--port {}: must be 0 (any free port) .. 65535", o.port);
  if (o.threads < 0) fail("-t/--threads {}: must be positive", o.threads);
  if (o.kv_window < 0) fail("--kv-window {}: must be 0 or more", o.kv_window);
  const kv::KvFormat fk = kv::parse_format(o.cache_type_k, "--cache-type-k");
  const kv::KvFormat fv = kv::parse_format(o.cache_type_v, "--cache-type-v");
  const uint64_t kv_mem = o.kv_mem.empty() ? 0 : static_cast<uint64_t>(plan::parse_bytes(o.kv_mem, "--kv-mem"));
  // SIGINT/SIGTERM: a helper thread waits for them and stops the server (no work in a signal handler).
  // Blocked before any thread starts, so every thread inherits the mask.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  signal(SIGPIPE, SIG_IGN);
  const std::string path = resolve_model(o.model);
  // --mem: the weight placement is planned for the KV the server may hold (every sequence at full context,
  // or the --kv-mem budget) and its step rows.
  runtime::SessionConfig plan_sc;
  plan_sc.n_threads = o.threads;
  plan_sc.format_k = fk;
  plan_sc.format_v = fv;
  plan_sc.kv_window = o.kv_window;
  plan_sc.n_batch = o.parallel + (o.prefill_chunk > 0 ? o.prefill_chunk : o.prefill_max);
  if (!o.mem.empty()) {
    const plan::ModelDesc d = plan::describe_gguf(gguf::File::open(path, {}));
    const int64_t ctx = o.ctx > 0 ? o.ctx : std::max<int64_t>(d.n_ctx_train, 1);
    int64_t positions = ctx * std::max(1, o.parallel);
    if (kv_mem > 0) {
      const double bpt = kv::model_bytes_per_token({fk, fv, 0}, static_cast<int32_t>(d.n_layer),
                                                   static_cast<int32_t>(d.n_head_kv), static_cast<int32_t>(d.head_dim));
      if (bpt > 0) positions = std::min<int64_t>(positions, std::max<int64_t>(ctx, static_cast<int64_t>(kv_mem / bpt)));
    }
    plan_sc.n_ctx = positions;
  }
  auto model = load_model_with_budget(path, plan_sc, {.mem = o.mem, .progress = true});
  auto tok = Tokenizer::from_gguf(model->file());

  serve::SchedulerConfig sc;
  sc.n_threads = o.threads;
  sc.n_ctx = o.ctx;
  sc.max_active = o.parallel;
  sc.max_queue = o.queue;
  sc.prefill_chunk = o.prefill_chunk;
  sc.step_budget_ms = o.step_budget_ms;
  sc.prefill_min = o.prefill_min;
  sc.prefill_max = o.prefill_max;
  sc.timeout_seconds = o.timeout;
  sc.cache_entries = o.cache_entries;
  sc.format_k = fk;
  sc.format_v = fv;
  sc.kv_window = o.kv_window;
  sc.kv_mem = kv_mem;
  sc.swap_dir = o.swap_dir;
  sc.swap_quantum = o.swap_quantum;
  serve::Scheduler sched(*model, *tok, sc);

  serve::ServerConfig hc;
  hc.host = o.host;
  hc.port = o.port;
  hc.api_key = o.api_key;
  hc.max_body = o.max_body;
  hc.model_id = o.alias.empty() ? std::filesystem::path(path).filename().string() : o.alias;
  hc.chat_template = o.chat_template;
  serve::HttpServer http(*model, *tok, sched, hc);
  const int port = http.bind();

  std::thread waiter([&] {
    int sig = 0;
    sigwait(&sigs, &sig);
    if (sig != 0) http.stop();
  });

  std::fprintf(stderr, "strata: %s, context %lld per sequence, %d sequences at once, %d threads, chat template %s\n",
               hc.model_id.c_str(), static_cast<long long>(sched.n_ctx()), sc.max_active, sched.n_threads(),
               http.chat_template_name().c_str());
  std::fprintf(stderr, "strata: KV %s/%s%s, prefill %s%s\n", kv::format_name(fk), kv::format_name(fv),
               o.kv_window > 0 ? fmt::format(" (window {})", o.kv_window).c_str() : "",
               o.prefill_chunk > 0 ? fmt::format("{} tokens per step", o.prefill_chunk).c_str()
                                   : fmt::format("adaptive (step budget {} ms, {}..{} tokens)", o.step_budget_ms,
                                                 o.prefill_min, o.prefill_max).c_str(),
               kv_mem > 0 || o.swap_quantum > 0
                   ? fmt::format(", KV budget {}, preemption {}, swapped KV to {}",
                                 kv_mem > 0 ? fmt::format("{} bytes", kv_mem) : std::string("none"),
                                 o.swap_quantum > 0 ? fmt::format("every {} tokens", o.swap_quantum)
                                                    : std::string("first come first served"),
                                 o.swap_dir.empty() ? std::string("RAM") : o.swap_dir).c_str()
                   : "");
  std::printf("strata: listening on http://%s:%d\n", o.host.c_str(), port);
  std::fflush(stdout);
  http.run();
  // Stopped by a signal (the waiter returned) or by an error: make sure the waiter ends.
  pthread_kill(waiter.native_handle(), SIGTERM);
  waiter.join();
  std::fprintf(stderr, "strata: server stopped\n");
  return 0;
}

const Command kCmd{"serve", "an OpenAI-compatible HTTP server (continuous batching, prefix cache, /metrics)",
                   [](CLI::App& sub) -> RunFn {
                     auto o = std::make_shared<ServeOptions>();
                     sub.add_option("-m,--model", o->model, "GGUF model file (default as for `strata run`)");
                     sub.add_option("--host", o->host, "address to listen on")->capture_default_str();
                     sub.add_option("--port", o->port, "port (0: any free port, printed at start)")->capture_default_str();
                     sub.add_option("-t,--threads", o->threads, "threads for the forward pass (default: all)");
                     sub.add_option("-c,--ctx", o->ctx_args,
                                    "context per sequence in tokens (default: the model's). Also takes -ctk TYPE / "
                                    "-ctv TYPE")
                         ->type_name("N")->expected(1, 2)->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
                     sub.add_option("--parallel", o->parallel, "sequences decoded together (continuous batching)")
                         ->capture_default_str();
                     sub.add_option("--queue", o->queue, "requests that may wait for a slot; more get 429")
                         ->capture_default_str();
                     sub.add_option("--prefill-chunk", o->prefill_chunk,
                                    "prompt tokens per step, fixed (0: adaptive, sized by --step-budget-ms)")
                         ->capture_default_str();
                     sub.add_option("--step-budget-ms", o->step_budget_ms,
                                    "adaptive prefill: the target time of a step (= between two tokens of a "
                                    "client) with prompt tokens riding along")
                         ->capture_default_str();
                     sub.add_option("--prefill-min", o->prefill_min,
                                    "adaptive prefill: prompt tokens per step at least (so prompts always progress)")
                         ->capture_default_str();
                     sub.add_option("--prefill-max", o->prefill_max,
                                    "adaptive prefill: prompt tokens per step at most")
                         ->capture_default_str();
                     sub.add_option("--kv-mem", o->kv_mem,
                                    "KV memory budget (e.g. 64M, 1G): running sequences and cached prefixes stay "
                                    "within it; beyond, a sequence is preempted (the newest, or see --swap-quantum): its "
                                    "KV is swapped out and resumed later without recomputation (default: no limit)");
                     sub.add_option("--swap-dir", o->swap_dir,
                                    "with --kv-mem: preempted sequences' KV goes to files here (default: RAM)");
                     sub.add_option("--swap-quantum", o->swap_quantum,
                                    "time slices: a sequence that has generated N tokens since it joined the batch "
                                    "gives its place to a waiting one (KV swapped out, resumed later); 0: first "
                                    "come, first served")
                         ->capture_default_str();
                     sub.add_option("--mem", o->mem,
                                    "memory budget for the weights (e.g. 600M, 1.5G): those that do not fit stream "
                                    "from the file each step (as for `strata run --mem`)");
                     sub.add_option("--timeout", o->timeout, "seconds a request may take, queue included (0: none)")
                         ->capture_default_str();
                     sub.add_option("--max-body", o->max_body, "largest request body in bytes (413 beyond)")
                         ->capture_default_str();
                     sub.add_option("--api-key", o->api_key, "require 'Authorization: Bearer KEY' (not on /health)");
                     sub.add_option("--alias", o->alias, "model name for /v1/models (default: the file name)");
                     sub.add_option("--chat-template", o->chat_template,
                                    "template family or Jinja text (default: the model's, else chatml)");
                     sub.add_option("--cache-entries", o->cache_entries,
                                    "finished sequences kept for prefix reuse (-1: as many as --parallel)")
                         ->capture_default_str();
                     add_kv_flags(sub, o->cache_type_k, o->cache_type_v, o->kv_window);
                     return [o] { return serve(*o); };
                   }};

}  // namespace
}  // namespace strata::cli
