// The HTTP front of `strata serve` (cpp-httplib): OpenAI-compatible routes over a Scheduler.
//   GET  /health               {"status":"ok"} (no API key needed)
//   GET  /v1/models            the one model served
//   GET  /metrics              Prometheus text: tokens/s, queue, active sequences, KV bytes, prefix hits
//   POST /v1/completions       prompt -> text (stream: server-sent events ending with "data: [DONE]")
//   POST /v1/chat/completions  messages -> the model's chat template -> text
// Errors are {"error":{"message","type","code"}} with 400/401/404/413/429/500/503/504.
#pragma once
#include <cstddef>
#include <memory>
#include <string>

#include "model/model.h"
#include "serve/scheduler.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace httplib { class Server; }

namespace strata::serve {

struct ServerConfig {
  std::string host = "127.0.0.1";
  int port = 8080;                 // 0: any free port (bind() returns it)
  std::string api_key;             // "": no authentication
  size_t max_body = 1 << 20;       // bytes; larger bodies get 413
  std::string model_id;            // the name /v1/models reports and requests may give
  std::string chat_template;       // family name or Jinja text; "": the model's, else chatml
  int http_threads = 0;            // 0: enough for every running and queued request
};

class HttpServer {
 public:
  // Throws strata::Error when the chat template is unknown.
  HttpServer(const model::Model& model, const Tokenizer& tok, Scheduler& sched, ServerConfig cfg);
  ~HttpServer();
  // Binds the socket; returns the port. Throws strata::Error when the address cannot be bound.
  int bind();
  // Serves until stop() (from another thread or a signal handler's helper thread).
  void run();
  void stop();
  const std::string& chat_template_name() const { return tmpl_.name(); }

 private:
  void setup_routes();

  const model::Model& model_;
  const Tokenizer& tok_;
  Scheduler& sched_;
  ServerConfig cfg_;
  ChatTemplate tmpl_;
  bool tmpl_fallback_ = false;  // the model has no template: chatml is used
  std::unique_ptr<httplib::Server> svr_;
};

// The metrics in Prometheus' text format.
std::string prometheus_text(const MetricsSnapshot& m);

}  // namespace strata::serve
