#include "serve/http_server.h"

#include <fmt/format.h>
#include <httplib.h>

#include <atomic>
#include <chrono>
#include <cstdio>

#include "core/error.h"
#include "serve/connection.h"

namespace strata::serve {

using nlohmann::json;

namespace {

// JSON text that never throws on invalid UTF-8 (a token piece may be half a character).
std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

void send_error(httplib::Response& res, int status, const std::string& message, const std::string& code = "") {
  res.status = status;
  res.set_content(dump(error_json(message, error_type_for_status(status), code)), "application/json");
}

std::string new_id(const char* prefix) {
  static std::atomic<uint64_t> counter{0};
  const auto t = std::chrono::system_clock::now().time_since_epoch().count();
  return fmt::format("{}-{:x}{:06x}", prefix, static_cast<uint64_t>(t) & 0xffffffffffULL, ++counter);
}

int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

std::string prometheus_text(const MetricsSnapshot& m) {
  std::string s;
  auto metric = [&s](const char* name, const char* type, const char* help, double v) {
    s += fmt::format("# HELP {} {}\n# TYPE {} {}\n{} {}\n", name, help, name, type, name, v);
  };
  metric("strata_requests_total", "counter", "Requests accepted into the queue.", double(m.requests_total));
  metric("strata_requests_rejected_total", "counter", "Requests refused because the queue was full (429).",
         double(m.requests_rejected));
  metric("strata_requests_cancelled_total", "counter", "Requests dropped because the client went away.",
         double(m.requests_cancelled));
  metric("strata_requests_timed_out_total", "counter", "Requests ended by --timeout.", double(m.requests_timed_out));
  metric("strata_prompt_tokens_total", "counter", "Prompt tokens of admitted requests.", double(m.prompt_tokens_total));
  metric("strata_prompt_tokens_computed_total", "counter", "Prompt tokens computed (not reused from the prefix cache).",
         double(m.prompt_tokens_computed));
  metric("strata_tokens_generated_total", "counter", "Tokens generated.", double(m.tokens_generated_total));
  metric("strata_tokens_per_second", "gauge", "Tokens generated per second over the last 10 s.", m.tokens_per_second);
  metric("strata_prefix_cache_hits_total", "counter", "Requests that reused a cached prefix.",
         double(m.prefix_cache_hits));
  metric("strata_prefix_cache_tokens_total", "counter", "Prompt tokens reused from the prefix cache.",
         double(m.prefix_cache_tokens));
  metric("strata_queue_length", "gauge", "Requests waiting for a sequence slot.", double(m.queue_length));
  metric("strata_active_sequences", "gauge", "Sequences in the running batch.", double(m.active_sequences));
  metric("strata_cached_sequences", "gauge", "Finished sequences kept for prefix reuse.", double(m.cached_sequences));
  metric("strata_kv_committed_bytes", "gauge", "KV cache memory committed (active and kept sequences).",
         double(m.kv_committed_bytes));
  metric("strata_kv_mem_budget_bytes", "gauge", "KV memory budget (--kv-mem; 0: none).", double(m.kv_mem_budget));
  metric("strata_steps_total", "counter", "Forward steps run.", double(m.steps_total));
  metric("strata_step_seconds_total", "counter", "Time spent in forward steps.", m.step_seconds_total);
  metric("strata_prefill_chunk", "gauge", "Prompt tokens the last step with a prompt could take.",
         double(m.prefill_chunk));
  metric("strata_step_seconds_per_row", "gauge", "Step time model: seconds per token row.", m.step_seconds_per_row);
  metric("strata_step_seconds_base", "gauge", "Step time model: seconds per step beyond the rows.",
         m.step_seconds_base);
  metric("strata_preemptions_total", "counter", "Sequences preempted (KV swapped out) for lack of KV memory.",
         double(m.preemptions_total));
  metric("strata_resumes_total", "counter", "Preempted sequences resumed (KV swapped back in).",
         double(m.resumes_total));
  metric("strata_swap_out_bytes_total", "counter", "KV bytes swapped out.", double(m.swap_out_bytes_total));
  metric("strata_swap_in_bytes_total", "counter", "KV bytes swapped back in.", double(m.swap_in_bytes_total));
  metric("strata_swap_seconds_total", "counter", "Time spent saving and restoring swapped KV.", m.swap_seconds_total);
  metric("strata_swapped_sequences", "gauge", "Preempted sequences waiting to resume.", double(m.swapped_sequences));
  metric("strata_swapped_bytes", "gauge", "KV bytes of the preempted sequences (RAM or --swap-dir).",
         double(m.swapped_bytes));
  return s;
}

HttpServer::HttpServer(const model::Model& model, const Tokenizer& tok, Scheduler& sched, ServerConfig cfg)
    : model_(model), tok_(tok), sched_(sched), cfg_(std::move(cfg)), svr_(std::make_unique<httplib::Server>()) {
  std::string src = cfg_.chat_template;
  if (src.empty()) src = model_.file().get_string("tokenizer.chat_template", "");
  if (src.empty()) {
    src = "chatml";
    tmpl_fallback_ = true;
  }
  tmpl_ = ChatTemplate::detect(src);
  setup_routes();
}

HttpServer::~HttpServer() { stop(); }

int HttpServer::bind() {
  int port = cfg_.port;
  if (port == 0) {
    port = svr_->bind_to_any_port(cfg_.host);
    if (port < 0) fail("cannot bind to {}: check --host", cfg_.host);
  } else if (!svr_->bind_to_port(cfg_.host, port)) {
    fail("cannot listen on {}:{}: the port is in use or the host is not an address of this machine (pick another "
         "--port, or --port 0 for any free one)",
         cfg_.host, port);
  }
  cfg_.port = port;
  return port;
}

void HttpServer::run() { svr_->listen_after_bind(); }

void HttpServer::stop() {
  if (svr_ && svr_->is_running()) svr_->stop();
}

void HttpServer::setup_routes() {
  httplib::Server& svr = *svr_;
  const SchedulerConfig& sc = sched_.config();
  const int threads = cfg_.http_threads > 0 ? cfg_.http_threads : sc.max_active + sc.max_queue + 8;
  svr.new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };
  svr.set_payload_max_length(cfg_.max_body);
  svr.set_read_timeout(30, 0);
  svr.set_write_timeout(30, 0);
  svr.set_tcp_nodelay(true);

  svr.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (cfg_.api_key.empty() || req.path == "/health") return httplib::Server::HandlerResponse::Unhandled;
    const std::string want = "Bearer " + cfg_.api_key;
    if (req.get_header_value("Authorization") == want) return httplib::Server::HandlerResponse::Unhandled;
    send_error(res, 401,
               req.has_header("Authorization")
                   ? "invalid API key: send the key given to --api-key as 'Authorization: Bearer KEY'"
                   : "missing API key: send 'Authorization: Bearer KEY' (the server was started with --api-key)",
               "invalid_api_key");
    return httplib::Server::HandlerResponse::Handled;
  });

  // Statuses httplib sets itself (404 no route, 413 body too large, 400 bad HTTP) get an OpenAI-style body.
  svr.set_error_handler(httplib::Server::HandlerWithResponse([this](const httplib::Request& req,
                                                                      httplib::Response& res) {
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    if (res.status == 404)
      send_error(res, 404,
                 fmt::format("unknown route {} {}: strata serves POST /v1/completions, POST /v1/chat/completions, "
                             "GET /v1/models, GET /health and GET /metrics",
                             req.method, req.path),
                 "unknown_url");
    else if (res.status == 413)
      send_error(res, 413, fmt::format("the request body is larger than {} bytes (--max-body)", cfg_.max_body),
                 "request_too_large");
    else
      send_error(res, res.status, fmt::format("HTTP error {}", res.status));
    return httplib::Server::HandlerResponse::Handled;
  }));
  svr.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
    std::string what = "unknown exception";
    try {
      std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    send_error(res, 500, "internal error: " + what);
  });

  svr.Get("/health", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(R"({"status":"ok"})", "application/json");
  });
  svr.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(prometheus_text(sched_.metrics()), "text/plain; version=0.0.4");
  });
  auto models = [this](const httplib::Request&, httplib::Response& res) {
    const model::HParams& hp = model_.hparams();
    json m = {{"id", cfg_.model_id},
              {"object", "model"},
              {"created", unix_now()},
              {"owned_by", "strata"},
              {"meta",
               {{"n_ctx", sched_.n_ctx()},
                {"n_ctx_train", hp.n_ctx_train},
                {"n_vocab", hp.n_vocab},
                {"n_params_bytes", model_.weight_bytes()},
                {"chat_template", tmpl_.name()}}}};
    res.set_content(dump(json{{"object", "list"}, {"data", json::array({m})}}), "application/json");
  };
  svr.Get("/v1/models", models);
  svr.Get("/models", models);

  auto completion = [this](Endpoint ep) {
    return [this, ep](const httplib::Request& req, httplib::Response& res) {
      try {
        CompletionRequest r = parse_request(req.body, ep);
        if (!r.model.empty() && r.model != cfg_.model_id)
          throw ApiError(404, "not_found_error", "model_not_found",
                         fmt::format("the model '{}' does not exist: this server serves '{}' (GET /v1/models)",
                                     r.model, cfg_.model_id));
        Job job;
        job.sampling = r.sampling;
        job.stop = r.stop;
        job.ignore_eos = r.ignore_eos;
        job.logprobs = r.logprobs;
        if (ep == Endpoint::kCompletions) {
          job.text_start = false;  // the text continues the prompt (keeps its leading space)
          if (!r.prompt_ids.empty()) {
            for (int32_t id : r.prompt_ids)
              if (id >= tok_.n_vocab())
                bad_request("prompt", fmt::format("token id {} is not in the vocabulary (0 .. {})", id, tok_.n_vocab() - 1));
            job.prompt = r.prompt_ids;
          } else {
            job.prompt = tok_.encode(r.prompt, /*add_special=*/true, /*parse_special=*/false);
            job.text_start = r.prompt.empty();
          }
        } else {
          const std::string text = tmpl_.apply(r.messages, /*add_generation_prompt=*/true);
          job.prompt = tok_.encode(text, /*add_special=*/true, /*parse_special=*/true);
          for (const std::string& s : tmpl_.stop_strings()) job.stop.push_back(s);
          job.text_start = true;
        }
        const int64_t n_prompt = static_cast<int64_t>(job.prompt.size());
        const int64_t n_ctx = sched_.n_ctx();
        if (n_prompt == 0)
          bad_request(ep == Endpoint::kChat ? "messages" : "prompt",
                      "the prompt gives no tokens (and the model adds no BOS): give some text");
        if (n_prompt >= n_ctx)
          bad_request(ep == Endpoint::kChat ? "messages" : "prompt",
                      fmt::format("the prompt is {} tokens but the context is {} (--ctx): shorten it, or restart the "
                                  "server with --ctx {} or more", n_prompt, n_ctx, n_prompt + 1));
        if (r.max_tokens > n_ctx - n_prompt)
          bad_request("max_tokens", fmt::format("max_tokens {} plus the prompt's {} tokens is more than the context "
                                                "of {} (--ctx): ask for at most {} tokens",
                                                r.max_tokens, n_prompt, n_ctx, n_ctx - n_prompt));
        job.max_tokens = r.max_tokens;
        auto h = sched_.submit(std::move(job));

        const std::string id = new_id(ep == Endpoint::kChat ? "chatcmpl" : "cmpl");
        const int64_t created = unix_now();
        const std::string model = cfg_.model_id;
        const bool want_lp = r.logprobs >= 0;

        if (!r.stream) {
          // The client may go away while it waits: its socket is watched and the request cancelled then.
          const ConnectionWatch watch(req.local_addr, req.local_port, req.remote_addr, req.remote_port);
          std::string text;
          std::vector<TokenLogprob> lps;
          std::vector<RequestHandle::Event> evs;
          for (;;) {
            const bool done = h->wait(evs, std::chrono::milliseconds(50));
            for (auto& e : evs) {
              text += e.text;
              for (auto& lp : e.logprobs) lps.push_back(std::move(lp));
            }
            evs.clear();
            if (done) break;
            if (!h->cancelled() && watch.gone()) h->cancel();
          }
          const Finish& f = h->finish();
          if (f.status != 200) return send_error(res, f.status, f.error, f.status == 504 ? "timeout" : "");
          const json out = ep == Endpoint::kChat
                               ? chat_response(id, created, model, text, f.reason, f.usage, want_lp ? &lps : nullptr)
                               : completion_response(id, created, model, text, f.reason, f.usage, want_lp ? &lps : nullptr);
          res.set_content(dump(out), "application/json");
          return;
        }

        // Server-sent events: one chunk per piece of text, the finish reason, then [DONE].
        struct StreamState {
          std::shared_ptr<RequestHandle> h;
          bool first = true, finished = false;
        };
        auto st = std::make_shared<StreamState>();
        st->h = h;
        const bool include_usage = r.include_usage;
        res.set_header("Cache-Control", "no-cache");
        res.set_header("X-Accel-Buffering", "no");
        res.set_chunked_content_provider(
            "text/event-stream",
            [st, ep, id, created, model, want_lp, include_usage](size_t, httplib::DataSink& sink) {
              auto send = [&sink](const json& j) {
                const std::string s = "data: " + dump(j) + "\n\n";
                return sink.write(s.data(), s.size());
              };
              if (st->finished) {
                sink.done();
                return true;
              }
              std::vector<RequestHandle::Event> evs;
              const bool done = st->h->wait(evs, std::chrono::milliseconds(100));
              if (ep == Endpoint::kChat && st->first) {
                st->first = false;
                if (!send(chat_chunk(id, created, model, "", "", true, nullptr))) return st->h->cancel(), false;
              }
              for (auto& e : evs) {
                const auto* lp = want_lp ? &e.logprobs : nullptr;
                const json c = ep == Endpoint::kChat ? chat_chunk(id, created, model, e.text, "", false, lp)
                                                     : completion_chunk(id, created, model, e.text, "", lp);
                if (!send(c)) return st->h->cancel(), false;
              }
              if (evs.empty() && !done && sink.is_writable && !sink.is_writable()) return st->h->cancel(), false;
              if (!done) return true;
              const Finish& f = st->h->finish();
              if (f.status != 200) {
                send(error_json(f.error, error_type_for_status(f.status), f.status == 504 ? "timeout" : ""));
              } else {
                json c = ep == Endpoint::kChat ? chat_chunk(id, created, model, "", f.reason, false, nullptr)
                                               : completion_chunk(id, created, model, "", f.reason, nullptr);
                if (!include_usage) c["usage"] = usage_json(f.usage);  // llama-server also sends it here
                send(c);
                if (include_usage) send(usage_chunk(ep, id, created, model, f.usage));
              }
              const std::string end = "data: [DONE]\n\n";
              sink.write(end.data(), end.size());
              st->finished = true;
              sink.done();
              return true;
            },
            [st](bool) { st->h->cancel(); });  // the client went away (or the stream ended: then a no-op)
      } catch (const ApiError& e) {
        send_error(res, e.status(), e.what(), e.code());
      } catch (const Error& e) {
        send_error(res, 400, e.what());
      } catch (const std::exception& e) {
        send_error(res, 500, fmt::format("internal error: {}", e.what()));
      }
    };
  };
  svr.Post("/v1/completions", completion(Endpoint::kCompletions));
  svr.Post("/completions", completion(Endpoint::kCompletions));
  svr.Post("/v1/chat/completions", completion(Endpoint::kChat));
  svr.Post("/chat/completions", completion(Endpoint::kChat));
}

}  // namespace strata::serve
