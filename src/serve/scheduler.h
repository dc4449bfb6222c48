// Continuous batching: one scheduler thread runs forward steps over every active sequence.
//
// Requests are queued by submit() (from the HTTP threads) and join the running batch between steps, up to
// max_active sequences. One step = the next token of every decoding sequence + a chunk of prompt tokens of
// the prefilling ones (at most prefill_chunk, oldest request first), all in ONE LlamaForward::eval_multi call,
// so every weight matrix is read once per step for all sequences. Each sequence has its own KvCache.
//
// Prefix cache: when a sequence ends, its cache (and the tokens in it) is kept (up to cache_entries caches,
// least recently used dropped first). A new request starts from the kept cache with the longest common
// prefix with its prompt (taken over and truncated to that prefix), or, when a running sequence shares a
// longer prefix (at least 8 tokens), from a copy of that sequence's rows; only the rest of the prompt is
// computed. The reused tokens are reported as cached_tokens in its usage and counted in the metrics.
//
// Each request has a handle: the HTTP thread waits on it for events (text pieces, then the end with the
// finish reason and usage) and cancels it when the client goes away; the scheduler drops a cancelled or
// timed-out sequence before the next step.
#pragma once
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/thread_pool.h"
#include "kv/kv_cache.h"
#include "model/llama_forward.h"
#include "model/model.h"
#include "sample/sampler.h"
#include "serve/api.h"
#include "tokenizer/tokenizer.h"

namespace strata::serve {

struct SchedulerConfig {
  int n_threads = 0;             // 0: one per hardware thread
  int64_t n_ctx = 0;             // positions per sequence; 0: the model's training context
  int max_active = 4;            // sequences decoded together (--parallel)
  int max_queue = 64;            // requests waiting when all max_active slots are busy; more get 429
  int64_t prefill_chunk = 64;    // most prompt tokens per step (all prefilling sequences together)
  double timeout_seconds = 600;  // a request running longer is ended (0: no limit)
  int cache_entries = -1;        // finished sequences' caches kept for prefix reuse; -1: max_active
  DType type_k = DType::F16, type_v = DType::F16;
};

// What a request asks the scheduler to do (tokenized and validated by the HTTP layer).
struct Job {
  std::vector<int32_t> prompt;  // at least one token, shorter than n_ctx
  SamplerParams sampling;
  int64_t max_tokens = -1;      // -1: until end of generation or the context is full
  std::vector<std::string> stop;
  bool ignore_eos = false;
  int32_t logprobs = -1;        // alternatives per token to report; -1: none
  bool text_start = true;       // the generated text starts the output (SPM: drop the prefix space)
};

// The end of a request.
struct Finish {
  std::string reason;  // "stop", "length"; "" with an error
  Usage usage;
  int status = 200;    // an error's HTTP status (504 timeout, 500 internal), else 200
  std::string error;   // the error's message, "" when none
};

// The scheduler's side of one request, shared with the HTTP thread that waits for it.
class RequestHandle {
 public:
  struct Event {
    std::string text;                   // text that became final (may be empty with logprobs)
    std::vector<TokenLogprob> logprobs; // of the tokens since the last event (when asked for)
  };
  // Waits up to `timeout` for something new; moves the pending events to `out`. Returns true when the request
  // has finished (then finish() is valid and no more events come).
  bool wait(std::vector<Event>& out, std::chrono::milliseconds timeout);
  const Finish& finish() const { return finish_; }
  // Asks the scheduler to drop the request (client gone). Safe to call from any thread, any number of times.
  void cancel() { cancelled_.store(true); }
  bool cancelled() const { return cancelled_.load(); }

  // Scheduler side.
  void push(Event e);
  void end(Finish f);

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Event> events_;
  bool done_ = false;
  Finish finish_;
  std::atomic<bool> cancelled_{false};
};

struct MetricsSnapshot {
  uint64_t requests_total = 0, requests_cancelled = 0, requests_timed_out = 0, requests_rejected = 0;
  uint64_t prompt_tokens_total = 0;       // prompt tokens of admitted requests
  uint64_t prompt_tokens_computed = 0;    // of those, computed (not taken from the prefix cache)
  uint64_t tokens_generated_total = 0;
  uint64_t prefix_cache_hits = 0, prefix_cache_tokens = 0;
  uint64_t steps_total = 0;
  double step_seconds_total = 0;
  double tokens_per_second = 0;           // generated tokens per second over the last ~10 s
  int64_t queue_length = 0, active_sequences = 0, cached_sequences = 0;
  uint64_t kv_committed_bytes = 0;        // active and kept caches
};

class Scheduler {
 public:
  Scheduler(const model::Model& model, const Tokenizer& tok, const SchedulerConfig& cfg);
  ~Scheduler();  // stops the thread; unfinished requests end with an error
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Queues a job. Throws ApiError 429 when the queue is full.
  std::shared_ptr<RequestHandle> submit(Job job);

  int64_t n_ctx() const { return n_ctx_; }
  int n_threads() const { return pool_.size(); }
  const SchedulerConfig& config() const { return cfg_; }
  MetricsSnapshot metrics() const;
  // Holds the steps while true: requests queue up and running ones wait (for tests and for draining).
  void set_paused(bool paused);

 private:
  struct Sequence;
  void loop();
  void admit();
  bool step();  // false when there was nothing to do
  void count_generated();
  void sample_and_emit(Sequence& s, const float* logits);
  void finish(Sequence& s, Finish f);
  void retire(std::unique_ptr<Sequence> s);
  std::unique_ptr<kv::KvCache> take_cache(const std::vector<int32_t>& prompt, int64_t& reused);

  const model::Model& model_;
  const Tokenizer& tok_;
  SchedulerConfig cfg_;
  int64_t n_ctx_;
  kv::KvCacheConfig kv_cfg_;
  ThreadPool pool_;
  model::LlamaForward fwd_;

  mutable std::mutex mu_;  // guards queue_, stop_, and the metric fields below
  std::condition_variable cv_;
  struct Queued {
    Job job;
    std::shared_ptr<RequestHandle> handle;
    std::chrono::steady_clock::time_point submitted;
  };
  std::deque<Queued> queue_;
  bool stop_ = false;
  bool paused_ = false;
  MetricsSnapshot m_;
  std::deque<std::pair<std::chrono::steady_clock::time_point, uint64_t>> rate_;  // (time, generated) samples

  // Scheduler thread only.
  std::vector<std::unique_ptr<Sequence>> active_;
  struct Kept {
    std::vector<int32_t> tokens;  // what the cache holds
    std::unique_ptr<kv::KvCache> kv;
    uint64_t last_use = 0;
  };
  std::vector<Kept> kept_;
  uint64_t use_clock_ = 0;

  std::thread thread_;
};

}  // namespace strata::serve
