// `strata serve` over real HTTP on loopback: a server on a free port in this process (stories260K), talked to
// with httplib::Client like any OpenAI client would. The expected texts come from runtime::generate() on a
// single-sequence Session (what `strata run` does), never from the server's code: concurrent requests must
// each get exactly the text they get alone.
#include <arpa/inet.h>
#include <httplib.h>
#include <netinet/in.h>
#include <nlohmann/json.hpp>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "model/model.h"
#include "runtime/generate.h"
#include "runtime/session.h"
#include "serve/http_server.h"
#include "serve/scheduler.h"
#include "test_util.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace strata::serve {
namespace {

using nlohmann::json;
constexpr int64_t kCtx = 256;

// A server in this process: model, scheduler, HTTP on a free loopback port, served from a thread.
struct TestServer {
  TestServer(const model::Model& m, const Tokenizer& t, SchedulerConfig sc, ServerConfig hc) {
    sched = std::make_unique<Scheduler>(m, t, sc);
    hc.host = "127.0.0.1";
    hc.port = 0;
    if (hc.model_id.empty()) hc.model_id = "stories260K.gguf";
    http = std::make_unique<HttpServer>(m, t, *sched, hc);
    port = http->bind();
    thread = std::thread([this] { http->run(); });
  }
  ~TestServer() {
    http->stop();
    thread.join();
  }
  httplib::Client client() const {
    httplib::Client c("127.0.0.1", port);
    c.set_read_timeout(60, 0);
    return c;
  }
  std::unique_ptr<Scheduler> sched;
  std::unique_ptr<HttpServer> http;
  int port = 0;
  std::thread thread;
};

struct Shared {
  std::unique_ptr<model::Model> model;
  std::unique_ptr<Tokenizer> tok;
  std::unique_ptr<TestServer> server;
};
Shared* g = nullptr;

class Serve : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const std::string path = test::shared_file("models/stories260K.gguf");
    if (path.empty()) return;
    g = new Shared;
    g->model = model::Model::load(path);
    g->tok = Tokenizer::from_gguf(g->model->file());
    SchedulerConfig sc;
    sc.n_threads = 2;
    sc.n_ctx = kCtx;
    sc.max_active = 4;
    sc.max_queue = 16;
    sc.prefill_chunk = 7;  // odd, so prompts are fed in several chunks beside others' decode tokens
    ServerConfig hc;
    hc.max_body = 64 << 10;
    g->server = std::make_unique<TestServer>(*g->model, *g->tok, sc, hc);
  }
  static void TearDownTestSuite() {
    delete g;
    g = nullptr;
  }
  void SetUp() override {
    STRATA_REQUIRE_SHARED(path, "models/stories260K.gguf");
    ASSERT_NE(g, nullptr);
  }
};

// What `strata run --temp 0` prints after the prompt: a single-sequence session and runtime::generate().
SamplerParams greedy() {
  SamplerParams sp;
  sp.temperature = 0;
  return sp;
}

std::string reference(const std::vector<int32_t>& ids, int64_t n, bool text_start,
                      const std::vector<std::string>& stops = {}, const SamplerParams& sp = greedy()) {
  runtime::SessionConfig c;
  c.n_ctx = kCtx;
  c.n_threads = 2;
  runtime::Session session(*g->model, c);
  Sampler sampler(sp, static_cast<int32_t>(session.n_vocab()));
  runtime::GenerateParams gp;
  gp.n_predict = n;
  gp.text_start = text_start;
  gp.stop_strings = stops;
  return runtime::generate(session, *g->tok, sampler, ids, gp, nullptr).text;
}

std::string reference_prompt(const std::string& prompt, int64_t n, const std::vector<std::string>& stops = {}) {
  return reference(g->tok->encode(prompt, true, false), n, false, stops);
}

std::string reference_chat(const std::vector<ChatMessage>& msgs, int64_t n) {
  const ChatTemplate t = ChatTemplate::detect("chatml");  // stories260K has no template: the server's fallback
  return reference(g->tok->encode(t.apply(msgs, true), true, true), n, true, t.stop_strings());
}

json post(const std::string& path, const json& body, int expect_status = 200) {
  auto c = g->server->client();
  auto r = c.Post(path.c_str(), body.dump(), "application/json");
  EXPECT_TRUE(r) << "no response";
  if (!r) return json();
  EXPECT_EQ(r->status, expect_status) << r->body;
  return json::parse(r->body, nullptr, false);
}

// A streamed request: the "data:" payloads in order (the last one "[DONE]").
std::vector<std::string> post_stream(const std::string& path, const json& body, int* status = nullptr) {
  auto c = g->server->client();
  std::string buf;
  httplib::Request req;
  req.method = "POST";
  req.path = path;
  req.body = body.dump();
  req.set_header("Content-Type", "application/json");
  req.content_receiver = [&](const char* d, size_t n, uint64_t, uint64_t) {
    buf.append(d, n);
    return true;
  };
  auto r = c.send(req);
  EXPECT_TRUE(r);
  if (status && r) *status = r->status;
  std::vector<std::string> out;
  size_t p = 0;
  while ((p = buf.find("data: ", p)) != std::string::npos) {
    const size_t e = buf.find("\n\n", p);
    out.push_back(buf.substr(p + 6, e - p - 6));
    p = e;
  }
  return out;
}

// Text, finish reason and usage of a stream.
struct Streamed {
  std::string text, finish;
  json usage;
  bool done = false;
};
Streamed collect(const std::vector<std::string>& events, bool chat) {
  Streamed s;
  for (const std::string& e : events) {
    if (e == "[DONE]") {
      s.done = true;
      continue;
    }
    const json j = json::parse(e);
    EXPECT_FALSE(s.done) << "data after [DONE]";
    if (j.contains("usage") && !j["usage"].is_null()) s.usage = j["usage"];
    if (j["choices"].empty()) continue;
    const json& ch = j["choices"][0];
    if (chat) {
      EXPECT_EQ(j["object"], "chat.completion.chunk");
      if (ch["delta"].contains("content")) s.text += ch["delta"]["content"].get<std::string>();
    } else {
      EXPECT_EQ(j["object"], "text_completion");
      s.text += ch["text"].get<std::string>();
    }
    if (!ch["finish_reason"].is_null()) s.finish = ch["finish_reason"];
  }
  return s;
}

double metric(const std::string& name) {
  auto c = g->server->client();
  auto r = c.Get("/metrics");
  if (!r) return -1;
  const std::string key = "\n" + name + " ";
  const size_t p = r->body.find(key);
  return p == std::string::npos ? -1 : std::stod(r->body.substr(p + key.size()));
}

TEST_F(Serve, HealthAndModels) {
  auto c = g->server->client();
  auto h = c.Get("/health");
  ASSERT_TRUE(h);
  EXPECT_EQ(h->status, 200);
  EXPECT_EQ(json::parse(h->body)["status"], "ok");
  auto m = c.Get("/v1/models");
  ASSERT_TRUE(m);
  const json j = json::parse(m->body);
  EXPECT_EQ(j["object"], "list");
  ASSERT_EQ(j["data"].size(), 1u);
  EXPECT_EQ(j["data"][0]["id"], "stories260K.gguf");
  EXPECT_EQ(j["data"][0]["meta"]["n_ctx"], kCtx);
}

TEST_F(Serve, CompletionGreedyEqualsRun) {
  const std::string want = reference_prompt("Once upon a time", 24);
  ASSERT_FALSE(want.empty());
  const json r = post("/v1/completions", {{"model", "stories260K.gguf"}, {"prompt", "Once upon a time"},
                                          {"max_tokens", 24}, {"temperature", 0}});
  EXPECT_EQ(r["object"], "text_completion");
  EXPECT_EQ(r["choices"][0]["text"], want);
  EXPECT_EQ(r["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(r["usage"]["completion_tokens"], 24);
  EXPECT_EQ(r["usage"]["prompt_tokens"], g->tok->encode("Once upon a time", true, false).size());
  EXPECT_TRUE(r["usage"]["prompt_tokens_details"].contains("cached_tokens"));
}

TEST_F(Serve, CompletionStreamEqualsRun) {
  const std::string want = reference_prompt("The little dog", 30);
  const auto ev = post_stream("/v1/completions", {{"prompt", "The little dog"}, {"max_tokens", 30},
                                                  {"temperature", 0}, {"stream", true}});
  ASSERT_GE(ev.size(), 3u);
  EXPECT_EQ(ev.back(), "[DONE]");
  const Streamed s = collect(ev, false);
  EXPECT_EQ(s.text, want);
  EXPECT_EQ(s.finish, "length");
  EXPECT_EQ(s.usage["completion_tokens"], 30);
}

TEST_F(Serve, ChatBothWaysEqualReference) {
  const std::vector<ChatMessage> msgs = {{"system", "You tell stories."}, {"user", "Tell me about a cat."}};
  const std::string want = reference_chat(msgs, 20);
  const json body = {{"messages", json::array({{{"role", "system"}, {"content", "You tell stories."}},
                                               {{"role", "user"}, {"content", "Tell me about a cat."}}})},
                     {"max_tokens", 20},
                     {"temperature", 0}};
  const json r = post("/v1/chat/completions", body);
  EXPECT_EQ(r["object"], "chat.completion");
  EXPECT_EQ(r["choices"][0]["message"]["role"], "assistant");
  EXPECT_EQ(r["choices"][0]["message"]["content"], want);
  json sb = body;
  sb["stream"] = true;
  sb["stream_options"] = {{"include_usage", true}};
  const auto ev = post_stream("/v1/chat/completions", sb);
  ASSERT_FALSE(ev.empty());
  EXPECT_EQ(ev.back(), "[DONE]");
  EXPECT_EQ(json::parse(ev.front())["choices"][0]["delta"]["role"], "assistant");
  const Streamed s = collect(ev, true);
  EXPECT_EQ(s.text, want);
  EXPECT_EQ(s.usage["completion_tokens"], r["usage"]["completion_tokens"]);
}

// More requests than --parallel, streaming and not, with different prompts and lengths: each must get the
// text it gets alone (the batched forward pass computes the same function as the single-sequence one).
TEST_F(Serve, ConcurrentRequestsEachGetTheirOwnText) {
  const std::vector<std::string> prompts = {"Once upon a time", "Lily and Ben went to the park", "The sun",
                                            "Tom had a red ball. He liked to", "A big fish", "One day, a bird",
                                            "Sara was sad because"};
  std::vector<std::string> want, got(prompts.size()), finish(prompts.size());
  for (size_t i = 0; i < prompts.size(); ++i) want.push_back(reference_prompt(prompts[i], 16 + 3 * int64_t(i)));
  std::vector<std::thread> ts;
  for (size_t i = 0; i < prompts.size(); ++i)
    ts.emplace_back([&, i] {
      const json body = {{"prompt", prompts[i]}, {"max_tokens", 16 + 3 * i}, {"temperature", 0}, {"stream", i % 2 == 0}};
      if (i % 2 == 0) {
        const Streamed s = collect(post_stream("/v1/completions", body), false);
        got[i] = s.text;
        finish[i] = s.finish;
      } else {
        const json r = post("/v1/completions", body);
        got[i] = r["choices"][0]["text"];
        finish[i] = r["choices"][0]["finish_reason"];
      }
    });
  for (auto& t : ts) t.join();
  for (size_t i = 0; i < prompts.size(); ++i) {
    EXPECT_EQ(got[i], want[i]) << "prompt " << i << ": " << prompts[i];
    EXPECT_EQ(finish[i], "length");
  }
}

TEST_F(Serve, PrefixCacheReusesAFinishedSequence) {
  const std::string base =
      "Once upon a time, there was a little girl named Lily. She loved to play outside in the sun with her dog";
  post("/v1/completions", {{"prompt", base}, {"max_tokens", 4}, {"temperature", 0}});
  const double hits0 = metric("strata_prefix_cache_hits_total");
  const std::string longer = base + ". One day";
  const json r = post("/v1/completions", {{"prompt", longer}, {"max_tokens", 12}, {"temperature", 0}});
  const int64_t n_base = static_cast<int64_t>(g->tok->encode(base, true, false).size());
  EXPECT_GE(r["usage"]["prompt_tokens_details"]["cached_tokens"].get<int64_t>(), n_base - 2);
  EXPECT_EQ(r["choices"][0]["text"], reference_prompt(longer, 12));
  EXPECT_GE(metric("strata_prefix_cache_hits_total"), hits0 + 1);
  EXPECT_GT(metric("strata_prefix_cache_tokens_total"), 0);
  // The same prompt again: all but the last token come from the cache, and the text is the same.
  const json again = post("/v1/completions", {{"prompt", longer}, {"max_tokens", 12}, {"temperature", 0}});
  EXPECT_EQ(again["usage"]["prompt_tokens_details"]["cached_tokens"], r["usage"]["prompt_tokens"].get<int64_t>() - 1);
  EXPECT_EQ(again["choices"][0]["text"], r["choices"][0]["text"]);
}

// A request whose prompt extends a RUNNING sequence's tokens copies that sequence's rows.
TEST_F(Serve, PrefixCacheCopiesFromARunningSequence) {
  const std::string a = "Lily and Ben were best friends. Every day they played with a big red ball in the garden";
  const std::string b = a + " near the old tree";
  const std::string want_b = reference_prompt(b, 10);
  const double hits0 = metric("strata_prefix_cache_hits_total");
  std::atomic<bool> first_chunk{false};
  std::thread ta([&] {
    auto c = g->server->client();
    httplib::Request req;
    req.method = "POST";
    req.path = "/v1/completions";
    req.body = json{{"prompt", a}, {"max_tokens", 120}, {"stream", true}, {"ignore_eos", true}, {"temperature", 0}}.dump();
    req.set_header("Content-Type", "application/json");
    req.content_receiver = [&](const char*, size_t, uint64_t, uint64_t) {
      if (!first_chunk.exchange(true)) g->server->sched->set_paused(true);  // A is decoding: hold it there
      return true;
    };
    c.send(req);
  });
  while (!first_chunk.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  json rb;
  std::thread tb([&] { rb = post("/v1/completions", {{"prompt", b}, {"max_tokens", 10}, {"temperature", 0}}); });
  for (int i = 0; i < 200 && g->server->sched->metrics().queue_length == 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  g->server->sched->set_paused(false);
  tb.join();
  ta.join();
  const int64_t n_a = static_cast<int64_t>(g->tok->encode(a, true, false).size());
  EXPECT_GE(rb["usage"]["prompt_tokens_details"]["cached_tokens"].get<int64_t>(), n_a - 2) << rb.dump();
  EXPECT_EQ(rb["choices"][0]["text"], want_b);
  EXPECT_GE(metric("strata_prefix_cache_hits_total"), hits0 + 1);
}

TEST_F(Serve, StopStringEndsTheText) {
  const std::string full = reference_prompt("Once upon a time", 40);
  // A stop string taken from the middle of the expected text.
  const size_t cut = full.find(' ', full.size() / 2);
  ASSERT_NE(cut, std::string::npos);
  const std::string stop = full.substr(cut, 4);
  const std::string want = full.substr(0, full.find(stop));
  const json r = post("/v1/completions",
                      {{"prompt", "Once upon a time"}, {"max_tokens", 40}, {"temperature", 0}, {"stop", {stop, "zzzq"}}});
  EXPECT_EQ(r["choices"][0]["text"], want);
  EXPECT_EQ(r["choices"][0]["finish_reason"], "stop");
}

TEST_F(Serve, Logprobs) {
  const json r = post("/v1/completions", {{"prompt", "The cat"}, {"max_tokens", 5}, {"temperature", 0}, {"logprobs", 3}});
  const json& lp = r["choices"][0]["logprobs"];
  ASSERT_EQ(lp["tokens"].size(), 5u);
  for (size_t i = 0; i < 5; ++i) {
    const float chosen = lp["token_logprobs"][i];
    EXPECT_LE(chosen, 0.0f);
    ASSERT_EQ(lp["top_logprobs"][i].size(), 3u);
    float best = -1e30f;
    for (auto& [k, v] : lp["top_logprobs"][i].items()) best = std::max(best, v.get<float>());
    EXPECT_NEAR(chosen, best, 1e-4) << "greedy picks the most likely token";
  }
  const json c = post("/v1/chat/completions", {{"messages", {{{"role", "user"}, {"content", "Hi"}}}},
                                               {"max_tokens", 3}, {"temperature", 0}, {"logprobs", true},
                                               {"top_logprobs", 2}});
  const json& content = c["choices"][0]["logprobs"]["content"];
  ASSERT_EQ(content.size(), c["usage"]["completion_tokens"].get<size_t>());
  EXPECT_EQ(content[0]["top_logprobs"].size(), 2u);
}

TEST_F(Serve, SampledWithSeedIsReproducible) {
  const json body = {{"prompt", "Once upon a time"}, {"max_tokens", 20}, {"temperature", 1.0}, {"seed", 1234},
                     {"top_k", 40}, {"top_p", 0.9}, {"min_p", 0.05}, {"presence_penalty", 0.5},
                     {"frequency_penalty", 0.2}};
  const json a = post("/v1/completions", body);
  const json b = post("/v1/completions", body);
  EXPECT_EQ(a["choices"][0]["text"], b["choices"][0]["text"]);
  // The OpenAI fields reach the sampler chain as `strata run --temp 1 --top-k 40 ... -s 1234` would set it.
  SamplerParams sp;
  sp.temperature = 1.0f;
  sp.top_k = 40;
  sp.top_p = 0.9f;
  sp.min_p = 0.05f;
  sp.presence_penalty = 0.5f;
  sp.frequency_penalty = 0.2f;
  sp.seed = 1234;
  EXPECT_EQ(a["choices"][0]["text"],
            reference(g->tok->encode("Once upon a time", true, false), 20, false, {}, sp));
  json other = body;
  other["seed"] = 1235;
  EXPECT_NE(post("/v1/completions", other)["choices"][0]["text"], a["choices"][0]["text"]);
}

TEST_F(Serve, ClientDisconnectCancels) {
  const double cancelled0 = metric("strata_requests_cancelled_total");
  {
    auto c = g->server->client();
    httplib::Request req;
    req.method = "POST";
    req.path = "/v1/completions";
    req.body = json{{"prompt", "Once upon a time"}, {"max_tokens", 200}, {"stream", true}, {"ignore_eos", true},
                    {"temperature", 0}}.dump();
    req.set_header("Content-Type", "application/json");
    int chunks = 0;
    req.content_receiver = [&](const char*, size_t, uint64_t, uint64_t) { return ++chunks < 2; };  // then hang up
    c.send(req);
    EXPECT_GE(chunks, 2);
  }
  // The scheduler drops the sequence within a few steps.
  bool ok = false;
  for (int i = 0; i < 100 && !ok; ++i) {
    ok = metric("strata_requests_cancelled_total") >= cancelled0 + 1 && metric("strata_active_sequences") == 0;
    if (!ok) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_TRUE(ok) << "cancelled " << metric("strata_requests_cancelled_total") << ", active "
                  << metric("strata_active_sequences");
  EXPECT_LT(metric("strata_tokens_generated_total"), 1e9);
}

// A non-streamed request whose client hangs up while it is being generated: the server notices the closed
// socket (nothing is written until the end, so it watches the socket), cancels the sequence and frees the
// slot long before max_tokens.
TEST_F(Serve, NonStreamedClientDisconnectCancels) {
  Scheduler& sched = *g->server->sched;
  const MetricsSnapshot m0 = sched.metrics();
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(g->server->port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  const int64_t max_tokens = 200;
  const std::string body = json{{"prompt", "Once upon a time"}, {"max_tokens", max_tokens}, {"ignore_eos", true},
                                {"temperature", 0}}.dump();
  const std::string req = "POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                          "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  // Hold the generation as soon as it has started (a step is well under a millisecond on this model).
  ASSERT_EQ(send(fd, req.data(), req.size(), 0), static_cast<ssize_t>(req.size()));
  const auto t_end = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (sched.metrics().tokens_generated_total == m0.tokens_generated_total &&
         std::chrono::steady_clock::now() < t_end) {
  }
  sched.set_paused(true);
  const MetricsSnapshot m1 = sched.metrics();
  ASSERT_GT(m1.tokens_generated_total, m0.tokens_generated_total) << "the request never started";
  ASSERT_LT(m1.tokens_generated_total, m0.tokens_generated_total + max_tokens) << "it finished before the hang-up";
  ASSERT_EQ(m1.active_sequences, 1);
  close(fd);  // the client goes away
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // the server polls the socket every 50 ms
  sched.set_paused(false);
  bool ok = false;
  for (int i = 0; i < 200 && !ok; ++i) {
    const MetricsSnapshot m = sched.metrics();
    ok = m.requests_cancelled >= m0.requests_cancelled + 1 && m.active_sequences == 0;
    if (!ok) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  const MetricsSnapshot m2 = sched.metrics();
  EXPECT_TRUE(ok) << "cancelled " << m2.requests_cancelled << ", active " << m2.active_sequences;
  EXPECT_LT(m2.tokens_generated_total, m0.tokens_generated_total + max_tokens)
      << "the whole request was generated for nobody";
}

TEST_F(Serve, MetricsArePrometheusText) {
  auto c = g->server->client();
  auto r = c.Get("/metrics");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  for (const char* name : {"strata_tokens_generated_total", "strata_tokens_per_second", "strata_queue_length",
                           "strata_active_sequences", "strata_kv_committed_bytes", "strata_prefix_cache_hits_total",
                           "strata_prompt_tokens_total"})
    EXPECT_NE(r->body.find(std::string("# TYPE ") + name + " "), std::string::npos) << name;
  post("/v1/completions", {{"prompt", "Hello"}, {"max_tokens", 2}});
  EXPECT_GT(metric("strata_kv_committed_bytes"), 0);
  EXPECT_GE(metric("strata_tokens_generated_total"), 2);
}

// Every bad input gets a 4xx with an OpenAI-style error body, and the server keeps working.
void expect_error(const std::string& path, const std::string& body, int status, const std::string& needle) {
  auto c = g->server->client();
  auto r = c.Post(path.c_str(), body, "application/json");
  ASSERT_TRUE(r) << body;
  EXPECT_EQ(r->status, status) << body << " -> " << r->body;
  const json j = json::parse(r->body, nullptr, false);
  ASSERT_TRUE(j.is_object()) << r->body;
  ASSERT_TRUE(j.contains("error")) << r->body;
  EXPECT_TRUE(j["error"]["message"].is_string());
  EXPECT_TRUE(j["error"]["type"].is_string());
  EXPECT_NE(j["error"]["message"].get<std::string>().find(needle), std::string::npos)
      << body << " -> " << j["error"]["message"];
}

TEST_F(Serve, BadInputs) {
  const std::string cmp = "/v1/completions", chat = "/v1/chat/completions";
  expect_error(cmp, "{bad json", 400, "not valid JSON");
  expect_error(cmp, "", 400, "not valid JSON");
  expect_error(cmp, "[]", 400, "must be a JSON object");
  expect_error(cmp, R"({"prompt":5})", 400, "'prompt' must be");
  expect_error(cmp, R"({"max_tokens":4})", 400, "'prompt' is required");
  expect_error(cmp, R"({"prompt":"hi","max_tokens":-3})", 400, "max_tokens");
  expect_error(cmp, R"({"prompt":"hi","max_tokens":0})", 400, "max_tokens");
  expect_error(cmp, R"({"prompt":"hi","max_tokens":"many"})", 400, "must be an integer");
  expect_error(cmp, R"({"prompt":"hi","max_tokens":2.5})", 400, "must be an integer");
  expect_error(cmp, R"({"prompt":"hi","max_tokens":100000})", 400, "context");
  expect_error(cmp, R"({"prompt":"hi","max_tokens":99999999999999999999})", 400, "max_tokens");
  expect_error(cmp, R"({"prompt":"hi","temperature":"hot"})", 400, "'temperature' must be a number");
  expect_error(cmp, R"({"prompt":"hi","temperature":-1})", 400, "temperature");
  expect_error(cmp, R"({"prompt":"hi","top_p":0})", 400, "top_p");
  expect_error(cmp, R"({"prompt":"hi","top_k":-1})", 400, "top_k");
  expect_error(cmp, R"({"prompt":"hi","stop":5})", 400, "'stop'");
  expect_error(cmp, R"({"prompt":"hi","stop":[""]})", 400, "'stop'");
  expect_error(cmp, R"({"prompt":"hi","stream":"yes"})", 400, "'stream'");
  expect_error(cmp, R"({"prompt":"hi","seed":"x"})", 400, "'seed'");
  expect_error(cmp, R"({"prompt":"hi","logprobs":99})", 400, "logprobs");
  expect_error(cmp, R"({"prompt":"hi","n":3})", 400, "'n'");
  expect_error(cmp, R"({"prompt":[1,2,99999999]})", 400, "vocabulary");
  expect_error(cmp, R"({"prompt":"hi","model":"gpt-4"})", 404, "does not exist");
  expect_error(cmp, R"({"prompt":"hi","model":7})", 400, "'model' must be a string");
  expect_error(cmp, json{{"prompt", std::string(2000, 'a') + " the end"}}.dump(), 400, "context");
  expect_error(chat, R"({"messages":[]})", 400, "empty");
  expect_error(chat, R"({"prompt":"hi"})", 400, "'messages' is required");
  expect_error(chat, R"({"messages":"hi"})", 400, "must be an array");
  expect_error(chat, R"({"messages":[{"role":"user"}]})", 400, "content");
  expect_error(chat, R"({"messages":[{"role":"wizard","content":"x"}]})", 400, "role");
  expect_error(chat, R"({"messages":[{"role":"user","content":5}]})", 400, "content");
  expect_error(chat, R"({"messages":[{"role":"user","content":"x"}],"top_logprobs":2})", 400, "logprobs");
  expect_error("/v1/nothing", "{}", 404, "unknown route");
  expect_error(cmp, json{{"prompt", std::string(100 << 10, 'a')}}.dump(), 413, "larger than");
  auto c = g->server->client();
  auto r = c.Get("/v2/models");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 404);
  // Still serving.
  EXPECT_EQ(post(cmp, {{"prompt", "Hi"}, {"max_tokens", 2}})["usage"]["completion_tokens"], 2);
}

// A second server: an API key, one sequence at a time, no queue, a short timeout.
TEST_F(Serve, ApiKeyQueueLimitAndTimeout) {
  SchedulerConfig sc;
  sc.n_threads = 1;
  sc.n_ctx = kCtx;
  sc.max_active = 1;
  sc.max_queue = 0;
  sc.timeout_seconds = 1.0;
  ServerConfig hc;
  hc.api_key = "sekret";
  TestServer s(*g->model, *g->tok, sc, hc);
  auto c = s.client();
  const std::string body = json{{"prompt", "Hi"}, {"max_tokens", 2}}.dump();
  auto r = c.Post("/v1/completions", body, "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 401);
  EXPECT_EQ(json::parse(r->body)["error"]["type"], "authentication_error");
  auto h = c.Get("/health");  // open without the key
  ASSERT_TRUE(h);
  EXPECT_EQ(h->status, 200);
  c.set_bearer_token_auth("wrong");
  r = c.Post("/v1/completions", body, "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 401);
  c.set_bearer_token_auth("sekret");
  r = c.Post("/v1/completions", body, "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;

  // The scheduler is held: the first request waits in the only slot's queue, the second is refused (429);
  // the first ends by the timeout (504), counted from its arrival.
  s.sched->set_paused(true);
  int first = 0;
  std::string first_body;
  std::thread t([&] {
    auto cc = s.client();
    cc.set_bearer_token_auth("sekret");
    auto rr = cc.Post("/v1/completions", body, "application/json");
    first = rr ? rr->status : -1;
    if (rr) first_body = rr->body;
  });
  // Unpauses and joins on every exit path (an ASSERT returning with a joinable thread would abort).
  struct Joiner {
    Scheduler* sched;
    std::thread& t;
    ~Joiner() {
      sched->set_paused(false);
      if (t.joinable()) t.join();
    }
  } joiner{s.sched.get(), t};
  // Wait (generously: CI machines are loaded) until the first request is queued.
  for (int i = 0; i < 2000 && s.sched->metrics().queue_length == 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ASSERT_EQ(s.sched->metrics().queue_length, 1) << "the first request never reached the queue";
  r = c.Post("/v1/completions", body, "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 429) << r->body;
  EXPECT_EQ(json::parse(r->body)["error"]["code"], "queue_full");
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  s.sched->set_paused(false);
  t.join();
  EXPECT_EQ(first, 504) << first_body;
  EXPECT_NE(first_body.find("--timeout"), std::string::npos) << first_body;
  EXPECT_EQ(s.sched->metrics().requests_timed_out, 1u);
  // And serving again.
  r = c.Post("/v1/completions", body, "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
}

}  // namespace
}  // namespace strata::serve
