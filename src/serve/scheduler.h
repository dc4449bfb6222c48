// Continuous batching: one scheduler thread runs forward steps over every active sequence.
//
// Requests are queued by submit() (from the HTTP threads) and join the running batch between steps, up to
// max_active sequences. One step = the next token of every decoding sequence + a chunk of prompt tokens of
// the prefilling ones (oldest request first), all in ONE LlamaForward::eval_multi call, so every weight
// matrix is read once per step for all sequences. Each sequence has its own KvCache.
//
// The prefill chunk (step_budget.h): by default adaptive. The scheduler fits step time against step rows
// (decode + prompt tokens) over the recent steps and gives each step as many prompt tokens as keep it within
// step_budget_ms (at least prefill_min, at most prefill_max; all of prefill_max when no sequence is decoding),
// so the time between tokens of the decoding clients stays bounded while prompts still progress. A fixed
// prefill_chunk > 0 overrides it.
//
// Prefix cache: when a sequence ends, its cache (and the tokens in it) is kept (up to cache_entries caches,
// least recently used dropped first). A new request starts from the kept cache with the longest common
// prefix with its prompt (taken over and truncated to that prefix), or, when a running sequence shares a
// longer prefix (at least 8 tokens), from a fork of that sequence's cache (KvCache::fork: the whole pages
// of the prefix are shared copy-on-write, stored once); only the rest of the prompt is computed. The reused
// tokens are reported as cached_tokens in its usage and counted in the metrics.
//
// KV memory budget and preemption (kv_mem > 0): the committed KV bytes of the active sequences plus the kept
// prefix caches stay within kv_mem. Before each step the scheduler projects the bytes the step's tokens
// will commit; when they do not fit it first drops kept caches (least recently used first), then preempts an
// active sequence: its cache leaves as one contiguous image (to RAM, or to a file in swap_dir:
// swap_store.h), its pages are released, and it waits, with its sampler and text state, in the waiting line
// with the queued requests. It resumes bit-identically, without recomputation, when it is at the head of
// the line, a slot is free and its cache fits again with headroom (kResumeMargin positions for every active
// sequence, so that it is not preempted again at once). A lone sequence is never preempted (one full
// context must fit kv_mem, checked at start); a new request is admitted under the same rule.
// Two policies:
//  - first come, first served (swap_quantum 0, the default): the victim is the sequence that arrived last,
//    and a preempted sequence keeps its place in line (its arrival), ahead of every newer request. The
//    oldest requests run undisturbed and finish first; the youngest gives way and loses only time.
//  - time slices (swap_quantum N > 0): the victim is the sequence that has generated the most tokens since it
//    last joined the batch; a preempted sequence goes to the back of the line; and whenever the head of the
//    line cannot join (no slot, or no memory), a sequence that has run N tokens since it joined gives way to
//    it. Every client makes progress every few quanta (bounded time between tokens), at the cost of more
//    swaps. Also applies without --kv-mem when more requests wait than --parallel slots.
// Each request has a handle: the HTTP thread waits on it for events (text pieces, then the end with the
// finish reason and usage) and cancels it when the client goes away; the scheduler drops a cancelled or
// timed-out sequence (running or swapped) before the next step.
#pragma once
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "core/thread_pool.h"
#include "kv/kv_cache.h"
#include "model/llama_forward.h"
#include "model/model.h"
#include "sample/sampler.h"
#include "serve/api.h"
#include "serve/step_budget.h"
#include "serve/swap_store.h"
#include "tokenizer/tokenizer.h"

namespace strata::serve {

struct SchedulerConfig {
  int n_threads = 0;             // 0: one per hardware thread
  int64_t n_ctx = 0;             // positions per sequence; 0: the model's training context
  int max_active = 4;            // sequences decoded together (--parallel)
  int max_queue = 64;            // requests waiting when all max_active slots are busy; more get 429
  int64_t prefill_chunk = 0;     // prompt tokens per step (all prefilling sequences together); 0: adaptive
  double step_budget_ms = 150;   // adaptive chunk: a step's target time (the time between tokens)
  int64_t prefill_min = 4;       // adaptive chunk: prompt tokens per step at least (no starvation)
  int64_t prefill_max = 256;     // adaptive chunk: at most (and all of it when nobody is decoding)
  uint64_t kv_mem = 0;           // KV bytes of active + kept sequences; beyond, preemption (0: no limit)
  std::string swap_dir;          // preempted caches go to files here; "": to RAM
  int64_t swap_quantum = 0;      // time slices: tokens a sequence runs before a waiting one may take its place
                                 // (0: first come, first served)
  double timeout_seconds = 600;  // a request running longer is ended (0: no limit)
  int cache_entries = -1;        // finished sequences' caches kept for prefix reuse; -1: max_active
  DType type_k = DType::F16, type_v = DType::F16;
  std::optional<kv::KvFormat> format_k, format_v;  // any registered KV format (overrides type_k/type_v)
  int32_t kv_window = 0;                           // recent positions kept in f16 (--kv-window)
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
  // Whether the request has finished (without waiting or taking the events).
  bool done() const {
    std::lock_guard lock(mu_);
    return done_;
  }
  // Asks the scheduler to drop the request (client gone). Safe to call from any thread, any number of times.
  void cancel() { cancelled_.store(true); }
  bool cancelled() const { return cancelled_.load(); }

  // Scheduler side.
  void push(Event e);
  void end(Finish f);

 private:
  mutable std::mutex mu_;
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
  uint64_t kv_mem_budget = 0;             // --kv-mem (0: none)
  int64_t prefill_chunk = 0;              // prompt tokens the last step with a prompt could take
  double step_seconds_per_row = 0, step_seconds_base = 0;  // the adaptive chunk's step-time model
  // Preemption.
  uint64_t preemptions_total = 0, resumes_total = 0;
  uint64_t swap_out_bytes_total = 0, swap_in_bytes_total = 0;
  double swap_seconds_total = 0;          // saving and restoring images
  int64_t swapped_sequences = 0;          // preempted, waiting to resume
  uint64_t swapped_bytes = 0;             // their images (RAM or disk)
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
  // KV budget: committed bytes of the kept caches; whether `need` more bytes fit once kept caches are dropped
  // (least recently used first; none is dropped when it cannot fit anyway).
  uint64_t kept_bytes() const;
  bool make_room(uint64_t need);
  // Bytes the active sequences commit when each holds `margin` more positions.
  uint64_t active_bytes(int64_t margin) const;
  void preempt(size_t index);  // active_[index] -> swapped_
  void resume();               // swapped_.front() -> active_
  // The active sequence to preempt (active_.size(): none). time_slice: only one past its quantum.
  size_t victim(bool time_slice) const;
  void insert_active(std::unique_ptr<Sequence> s);  // in arrival order

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
    uint64_t arrival = 0;
  };
  std::deque<Queued> queue_;
  bool stop_ = false;
  bool paused_ = false;
  uint64_t arrivals_ = 0;
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
  std::vector<std::unique_ptr<Sequence>> swapped_;  // preempted, by ticket (their place in the waiting line)
  KvSizer sizer_;
  SwapStore store_;
  StepTimeModel step_model_;
  ChunkLimits chunk_limits_;

  std::thread thread_;
};

}  // namespace strata::serve
