// `strata serve -m MODEL [--host H] [--port P]`: an OpenAI-compatible HTTP server with continuous batching
// and a prefix cache (src/serve). Prints "strata: listening on http://HOST:PORT" on stdout once it accepts
// connections (--port 0 picks a free port); Ctrl-C or SIGTERM stops it.
#include <signal.h>

#include <cstdio>
#include <filesystem>
#include <thread>

#include "cli/command.h"
#include "cli/generation_flags.h"
#include "core/error.h"
#include "model/model.h"
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
  int64_t prefill_chunk = 64;
  double timeout = 600;
  size_t max_body = 1 << 20;
  int cache_entries = -1;
  std::string cache_type_k = "f16", cache_type_v = "f16";
};

int serve(ServeOptions& o) {
  for (const std::string& a : o.ctx_args) {
    char* end = nullptr;
    const long long v = std::strtoll(a.c_str(), &end, 10);
    if (a.empty() || *end != '\0' || v < 0) fail("-c/--ctx {}: expected a number of tokens", a);
    o.ctx = v;
  }
  if (o.port < 0 || o.port > 65535) fail("--port {}: must be 0 (any free port) .. 65535", o.port);
  if (o.threads < 0) fail("-t/--threads {}: must be positive", o.threads);
  // SIGINT/SIGTERM: a helper thread waits for them and stops the server (no work in a signal handler).
  // Blocked before any thread starts, so every thread inherits the mask.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  signal(SIGPIPE, SIG_IGN);
  const std::string path = resolve_model(o.model);
  auto model = model::Model::load(path, {.prepare_kernels = true, .progress = true});
  auto tok = Tokenizer::from_gguf(model->file());

  serve::SchedulerConfig sc;
  sc.n_threads = o.threads;
  sc.n_ctx = o.ctx;
  sc.max_active = o.parallel;
  sc.max_queue = o.queue;
  sc.prefill_chunk = o.prefill_chunk;
  sc.timeout_seconds = o.timeout;
  sc.cache_entries = o.cache_entries;
  sc.type_k = parse_kv_type(o.cache_type_k, "--cache-type-k");
  sc.type_v = parse_kv_type(o.cache_type_v, "--cache-type-v");
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
                     sub.add_option("-c,--ctx", o->ctx_args, "context per sequence in tokens (default: the model's)")
                         ->type_name("N")->expected(1);
                     sub.add_option("--parallel", o->parallel, "sequences decoded together (continuous batching)")
                         ->capture_default_str();
                     sub.add_option("--queue", o->queue, "requests that may wait for a slot; more get 429")
                         ->capture_default_str();
                     sub.add_option("--prefill-chunk", o->prefill_chunk,
                                    "most prompt tokens per step, so long prompts do not stall others' decoding")
                         ->capture_default_str();
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
                     sub.add_option("--cache-type-k", o->cache_type_k, "KV cache type for K")->capture_default_str();
                     sub.add_option("--cache-type-v", o->cache_type_v, "KV cache type for V")->capture_default_str();
                     return [o] { return serve(*o); };
                   }};

}  // namespace
}  // namespace strata::cli
