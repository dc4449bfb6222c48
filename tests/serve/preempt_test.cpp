// Preemption with KV swap (--kv-mem, --swap-dir) and KV formats in the server's scheduler: a sequence that is
// preempted (its cache saved as one image and released) and resumed later must produce exactly the tokens
// it produces uninterrupted; swap files are deleted; the metrics count preemptions and swapped bytes.
#include <gtest/gtest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "core/error.h"
#include "kv/kv_format.h"
#include "model/model.h"
#include "model/synthetic.h"
#include "runtime/generate.h"
#include "runtime/session.h"
#include "serve/http_server.h"
#include "serve/scheduler.h"
#include "serve/swap_store.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"

namespace strata::serve {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// stories260K's KV rows are 16 bytes per head in f16: a 4 KiB page holds 256 positions, so a cache grows
// by one page per head every 256 positions. At 1024 positions the budget of one full context (4 pages per
// head) holds four sequences while they are short, two once they pass 256 positions, one past 512.
constexpr int64_t kCtx = 1024;

struct Result {
  std::string text;
  Finish fin;
};

Result wait_for(const std::shared_ptr<RequestHandle>& h) {
  Result r;
  std::vector<RequestHandle::Event> ev;
  for (;;) {
    const bool done = h->wait(ev, 100ms);
    for (auto& e : ev) r.text += e.text;
    ev.clear();
    if (done) break;
  }
  r.fin = h->finish();
  return r;
}

SamplerParams greedy() {
  SamplerParams sp;
  sp.temperature = 0;
  return sp;
}

SamplerParams seeded(uint64_t seed) {
  SamplerParams sp;
  sp.temperature = 0.9f;
  sp.top_k = 40;
  sp.top_p = 0.95f;
  sp.seed = seed;
  return sp;
}

Job make_job(std::vector<int32_t> prompt, int64_t n, const SamplerParams& sp) {
  Job j;
  j.prompt = std::move(prompt);
  j.sampling = sp;
  j.max_tokens = n;
  j.ignore_eos = true;
  j.text_start = false;
  return j;
}

// What a single uninterrupted session produces (`strata run`).
std::string reference(const model::Model& m, const Tokenizer& tok, const SchedulerConfig& sc, const Job& j) {
  runtime::SessionConfig c;
  c.n_ctx = sc.n_ctx;
  c.n_threads = 2;
  c.type_k = sc.type_k;
  c.type_v = sc.type_v;
  c.format_k = sc.format_k;
  c.format_v = sc.format_v;
  c.kv_window = sc.kv_window;
  runtime::Session session(m, c);
  Sampler sampler(j.sampling, static_cast<int32_t>(session.n_vocab()));
  runtime::GenerateParams gp;
  gp.n_predict = j.max_tokens;
  gp.ignore_eos = true;
  gp.text_start = false;
  return runtime::generate(session, tok, sampler, j.prompt, gp, nullptr).text;
}

struct Stories {
  std::unique_ptr<model::Model> model;
  std::unique_ptr<Tokenizer> tok;
};
Stories* g = nullptr;

class Preempt : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const std::string path = test::shared_file("models/stories260K.gguf");
    if (path.empty()) return;
    g = new Stories;
    g->model = model::Model::load(path);
    g->tok = Tokenizer::from_gguf(g->model->file());
  }
  static void TearDownTestSuite() {
    delete g;
    g = nullptr;
  }
  void SetUp() override {
    STRATA_REQUIRE_SHARED(path, "models/stories260K.gguf");
    ASSERT_NE(g, nullptr);
  }

  static SchedulerConfig config() {
    SchedulerConfig sc;
    sc.n_threads = 2;
    sc.n_ctx = kCtx;
    sc.max_active = 4;
    sc.max_queue = 16;
    sc.prefill_chunk = 7;
    sc.cache_entries = 0;
    return sc;
  }
  // The smallest budget the scheduler accepts: one sequence's full context.
  static uint64_t one_context(const SchedulerConfig& sc) {
    runtime::SessionConfig c;
    c.n_ctx = sc.n_ctx;
    return KvSizer(runtime::kv_config(*g->model, c)).bytes(sc.n_ctx);
  }

  std::vector<Job> jobs() const {
    const char* prompts[] = {"Once upon a time", "Lily and Ben went to the park", "The sun was hot",
                             "Tom had a red ball", "A big fish swam"};
    std::vector<Job> js;
    for (int i = 0; i < 5; ++i)
      js.push_back(make_job(g->tok->encode(prompts[i], true, false), 560 - 20 * i,
                            i == 4 ? seeded(77) : greedy()));
    return js;
  }
};

// Runs the jobs together; returns their results. `during` runs on the test thread while they run (with the
// handles), until they are all done.
std::vector<Result> run_all(Scheduler& s, const std::vector<Job>& js,
                            const std::function<void(std::vector<std::shared_ptr<RequestHandle>>&)>& during = {}) {
  s.set_paused(true);  // all queued before the first step, so they are admitted in order
  std::vector<std::shared_ptr<RequestHandle>> hs;
  for (const Job& j : js) hs.push_back(s.submit(j));
  s.set_paused(false);
  if (during) during(hs);
  std::vector<Result> out;
  for (auto& h : hs) out.push_back(wait_for(h));
  return out;
}

TEST_F(Preempt, SwapToRamContinuesBitIdentically) {
  SchedulerConfig sc = config();
  sc.kv_mem = one_context(sc);
  const std::vector<Job> js = jobs();
  Scheduler s(*g->model, *g->tok, sc);
  // Watch the committed KV bytes while it runs: they never exceed the budget.
  std::atomic<bool> running{true};
  std::atomic<uint64_t> max_committed{0};
  std::thread watch([&] {
    while (running.load()) {
      const uint64_t b = s.metrics().kv_committed_bytes;
      if (b > max_committed.load()) max_committed.store(b);
      std::this_thread::sleep_for(1ms);
    }
  });
  const std::vector<Result> got = run_all(s, js);
  running.store(false);
  watch.join();
  for (size_t i = 0; i < js.size(); ++i) {
    EXPECT_EQ(got[i].fin.status, 200) << got[i].fin.error;
    EXPECT_EQ(got[i].fin.reason, "length");
    EXPECT_EQ(got[i].fin.usage.completion_tokens, js[i].max_tokens);
    EXPECT_EQ(got[i].text, reference(*g->model, *g->tok, sc, js[i])) << "request " << i;
  }
  const MetricsSnapshot m = s.metrics();
  EXPECT_GE(m.preemptions_total, 2u) << "the budget holds 4 short or 2 long sequences: some must give way";
  EXPECT_EQ(m.resumes_total, m.preemptions_total);
  EXPECT_GT(m.swap_out_bytes_total, 0u);
  EXPECT_EQ(m.swap_in_bytes_total, m.swap_out_bytes_total);
  EXPECT_EQ(m.swapped_sequences, 0);
  EXPECT_EQ(m.swapped_bytes, 0u);
  EXPECT_EQ(m.kv_mem_budget, sc.kv_mem);
  EXPECT_LE(max_committed.load(), sc.kv_mem);
  const std::string prom = prometheus_text(m);
  for (const char* name : {"strata_preemptions_total", "strata_resumes_total", "strata_swap_out_bytes_total",
                           "strata_swapped_sequences", "strata_swapped_bytes", "strata_kv_mem_budget_bytes"})
    EXPECT_NE(prom.find(std::string("\n") + name + " "), std::string::npos) << name;
  EXPECT_NE(prom.find("strata_preemptions_total " + std::to_string(m.preemptions_total) + "\n"), std::string::npos);
}

TEST_F(Preempt, SwapToDiskContinuesBitIdenticallyAndRemovesItsFiles) {
  const fs::path dir = fs::temp_directory_path() / ("strata-swap-test-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  SchedulerConfig sc = config();
  sc.kv_mem = one_context(sc);
  sc.swap_dir = dir.string();
  const std::vector<Job> js = jobs();
  constexpr size_t kCancel = 3;  // the youngest of the four admitted first: the first to give way
  size_t max_files = 0;
  bool cancelled_while_swapped = false;
  std::vector<Result> got;
  {
    Scheduler s(*g->model, *g->tok, sc);
    got = run_all(s, js, [&](std::vector<std::shared_ptr<RequestHandle>>& hs) {
      // Watch the folder; the first time a sequence is swapped out, cancel the youngest running request (the
      // first to give way), so a swapped sequence's file must go when it ends.
      for (;;) {
        bool all_done = true;
        for (auto& h : hs) all_done &= h->done();
        if (all_done) break;
        size_t n = 0;
        for (auto& e : fs::directory_iterator(dir)) n += e.path().extension() == ".kv";
        max_files = std::max(max_files, n);
        if (n > 0 && !hs[kCancel]->cancelled() && s.metrics().swapped_sequences > 0) {
          hs[kCancel]->cancel();
          cancelled_while_swapped = true;
        }
        std::this_thread::sleep_for(1ms);
      }
    });
    const MetricsSnapshot m = s.metrics();
    EXPECT_GE(m.preemptions_total, 2u);
    EXPECT_GT(m.swap_out_bytes_total, 0u);
    EXPECT_EQ(m.swapped_sequences, 0);
    EXPECT_GE(m.requests_cancelled, 1u);
  }
  EXPECT_GT(max_files, 0u) << "no swap file was seen in " << dir;
  EXPECT_TRUE(cancelled_while_swapped);
  for (size_t i = 0; i < js.size(); ++i) {
    if (i == kCancel) continue;
    EXPECT_EQ(got[i].fin.status, 200) << got[i].fin.error;
    EXPECT_EQ(got[i].text, reference(*g->model, *g->tok, sc, js[i])) << "request " << i;
  }
  EXPECT_EQ(got[kCancel].fin.status, 499);
  size_t left = 0;
  for (auto& e : fs::directory_iterator(dir)) ++left, ADD_FAILURE() << "left behind: " << e.path();
  EXPECT_EQ(left, 0u);
  fs::remove_all(dir);
}

// Time slices without a memory budget: 5 requests, 2 slots, a quantum of 16 tokens. Every request starts
// long before any finishes (round robin through the swap), and each still gets exactly its own text.
TEST_F(Preempt, TimeSlicesShareTheSlotsAndContinueBitIdentically) {
  SchedulerConfig sc = config();
  sc.max_active = 2;
  sc.swap_quantum = 16;
  const std::vector<Job> js = jobs();
  Scheduler s(*g->model, *g->tok, sc);
  s.set_paused(true);
  std::vector<std::shared_ptr<RequestHandle>> hs;
  for (const Job& j : js) hs.push_back(s.submit(j));
  std::vector<Result> got(js.size());
  std::vector<std::chrono::steady_clock::time_point> first(js.size()), end(js.size());
  std::vector<std::thread> ts;
  for (size_t i = 0; i < js.size(); ++i)
    ts.emplace_back([&, i] {
      std::vector<RequestHandle::Event> ev;
      bool seen = false;
      for (;;) {
        const bool done = hs[i]->wait(ev, 100ms);
        if (!ev.empty() && !seen) first[i] = std::chrono::steady_clock::now(), seen = true;
        for (auto& e : ev) got[i].text += e.text;
        ev.clear();
        if (done) break;
      }
      end[i] = std::chrono::steady_clock::now();
      got[i].fin = hs[i]->finish();
    });
  s.set_paused(false);
  for (auto& t : ts) t.join();
  const auto last_start = *std::max_element(first.begin(), first.end());
  const auto first_end = *std::min_element(end.begin(), end.end());
  EXPECT_LT(last_start, first_end) << "a request waited for another to finish: no time slicing";
  for (size_t i = 0; i < js.size(); ++i) {
    EXPECT_EQ(got[i].fin.status, 200) << got[i].fin.error;
    EXPECT_EQ(got[i].text, reference(*g->model, *g->tok, sc, js[i])) << "request " << i;
  }
  const MetricsSnapshot m = s.metrics();
  EXPECT_GE(m.preemptions_total, 10u);
  EXPECT_EQ(m.resumes_total, m.preemptions_total);
  EXPECT_EQ(m.swapped_sequences, 0);
}

TEST_F(Preempt, ABudgetBelowOneContextIsRefused) {
  SchedulerConfig sc = config();
  sc.kv_mem = one_context(sc) - 1;
  try {
    Scheduler s(*g->model, *g->tok, sc);
    FAIL() << "accepted a budget below one context";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--kv-mem"), std::string::npos) << e.what();
  }
  sc.kv_mem = 0;
  sc.swap_dir = "/proc/no-such-place/strata";
  EXPECT_THROW(Scheduler(*g->model, *g->tok, sc), Error);
}

// ---- KV formats: a synthetic model whose heads (64 values) fit every format ----

struct Synthetic {
  std::string path;
  std::unique_ptr<model::Model> model;
  std::unique_ptr<Tokenizer> tok;
  Synthetic() {
    model::SyntheticSpec spec = model::synthetic_shape("demo");
    spec.n_embd = 256;
    spec.n_head = 4;
    spec.n_head_kv = 2;
    spec.n_ff = 512;
    spec.n_layer = 2;
    spec.n_ctx = 2048;
    spec.progress = false;
    path = (fs::temp_directory_path() / ("strata-serve-kvfmt-" + std::to_string(::getpid()) + ".gguf")).string();
    model::write_synthetic_gguf(spec, path);
    model = model::Model::load(path);
    tok = Tokenizer::from_gguf(model->file());
  }
  ~Synthetic() {
    std::error_code ec;
    fs::remove(path, ec);
  }
};

SchedulerConfig format_config() {
  SchedulerConfig sc;
  sc.n_threads = 2;
  sc.n_ctx = 512;
  sc.max_active = 4;
  sc.prefill_chunk = 16;
  sc.cache_entries = 0;
  sc.format_k = kv::KvFormat::BFP4;
  sc.format_v = kv::KvFormat::Q4H;
  sc.kv_window = 16;
  return sc;
}

std::vector<Job> format_jobs() {
  std::vector<Job> js;
  for (int i = 0; i < 4; ++i) {
    std::vector<int32_t> p;
    for (int k = 0; k < 12 + 5 * i; ++k) p.push_back(1 + (k * 37 + i * 11) % 500);
    js.push_back(make_job(p, 300 - 10 * i, i == 3 ? seeded(5) : greedy()));
  }
  return js;
}

// Lossy strata formats with an f16 window (bfp4 keys, Hadamard q4 values): the image round trip is exact,
// so a run with preemption gives the texts of a run without.
TEST(PreemptFormats, StrataFormatsSwapBitIdentically) {
  Synthetic syn;
  SchedulerConfig plain = format_config();
  std::vector<Result> want;
  {
    Scheduler s(*syn.model, *syn.tok, plain);
    want = run_all(s, format_jobs());
  }
  SchedulerConfig tight = plain;
  runtime::SessionConfig c;
  c.n_ctx = plain.n_ctx;
  c.format_k = plain.format_k;
  c.format_v = plain.format_v;
  c.kv_window = plain.kv_window;
  const KvSizer sizer(runtime::kv_config(*syn.model, c));
  // Room for the four prompts, not for four sequences of 300 tokens.
  tight.kv_mem = std::max(sizer.bytes(plain.n_ctx), 2 * sizer.bytes(340));
  ASSERT_LT(tight.kv_mem, 4 * sizer.bytes(300)) << "the budget would hold everything";
  Scheduler s(*syn.model, *syn.tok, tight);
  const std::vector<Result> got = run_all(s, format_jobs());
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].fin.status, 200) << got[i].fin.error;
    EXPECT_FALSE(got[i].text.empty());
    EXPECT_EQ(got[i].text, want[i].text) << "request " << i;
  }
  EXPECT_GE(s.metrics().preemptions_total, 1u);
}

// `strata serve -ctk bfp4 -ctv q4h --kv-window 16` answers over HTTP, streaming and not, the same text.
TEST(PreemptFormats, ServerWithAStrataKvFormatAnswers) {
  Synthetic syn;
  SchedulerConfig sc = format_config();
  sc.prefill_chunk = 0;  // adaptive
  auto sched = std::make_unique<Scheduler>(*syn.model, *syn.tok, sc);
  ServerConfig hc;
  hc.host = "127.0.0.1";
  hc.port = 0;
  hc.model_id = "synthetic";
  HttpServer http(*syn.model, *syn.tok, *sched, hc);
  const int port = http.bind();
  std::thread t([&] { http.run(); });
  httplib::Client c("127.0.0.1", port);
  c.set_read_timeout(60, 0);
  const nlohmann::json body = {{"prompt", std::vector<int>{1, 20, 30, 40, 50}}, {"max_tokens", 24},
                               {"temperature", 0}};
  auto r = c.Post("/v1/completions", body.dump(), "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
  const nlohmann::json j = nlohmann::json::parse(r->body);
  EXPECT_EQ(j["usage"]["completion_tokens"], 24);
  auto r2 = c.Post("/v1/completions", body.dump(), "application/json");
  ASSERT_TRUE(r2);
  EXPECT_EQ(nlohmann::json::parse(r2->body)["choices"][0]["text"], j["choices"][0]["text"]);
  http.stop();
  t.join();
}

}  // namespace
}  // namespace strata::serve
