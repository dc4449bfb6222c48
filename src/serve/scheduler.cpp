#include "serve/scheduler.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <span>
#include <utility>

#include "core/error.h"
#include "runtime/session.h"
#include "runtime/stop_filter.h"

namespace strata::serve {

using Clock = std::chrono::steady_clock;
constexpr int64_t kMinCopy = 8;  // shortest prefix worth copying from a running sequence
// With a KV budget: positions of headroom every active sequence must have before a swapped sequence resumes
// or a new one is admitted (so that the next steps do not preempt it again at once).
constexpr int64_t kResumeMargin = 32;

// ---- RequestHandle ----

bool RequestHandle::wait(std::vector<Event>& out, std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  cv_.wait_for(lock, timeout, [&] { return done_ || !events_.empty(); });
  while (!events_.empty()) {
    out.push_back(std::move(events_.front()));
    events_.pop_front();
  }
  return done_;
}

void RequestHandle::push(Event e) {
  {
    std::lock_guard lock(mu_);
    events_.push_back(std::move(e));
  }
  cv_.notify_all();
}

void RequestHandle::end(Finish f) {
  {
    std::lock_guard lock(mu_);
    if (done_) return;
    finish_ = std::move(f);
    done_ = true;
  }
  cv_.notify_all();
}

namespace {

size_t common_prefix(const std::vector<int32_t>& a, const std::vector<int32_t>& b) {
  size_t n = 0;
  while (n < a.size() && n < b.size() && a[n] == b[n]) ++n;
  return n;
}

}  // namespace

struct Scheduler::Sequence {
  Sequence(Job j, std::shared_ptr<RequestHandle> handle, const Tokenizer& tok, int32_t n_vocab)
      : job(std::move(j)),
        h(std::move(handle)),
        sampler(job.sampling, n_vocab),
        dec(tok, /*render_special=*/false, job.text_start),
        filter(job.stop),
        logits(static_cast<size_t>(n_vocab)) {}

  Job job;
  std::shared_ptr<RequestHandle> h;
  std::unique_ptr<kv::KvCache> kv;
  std::vector<int32_t> tokens;  // the tokens whose keys and values are in kv, in order
  size_t n_fed = 0;             // prompt tokens in kv
  int64_t cached = 0;           // of those, taken from the prefix cache
  Sampler sampler;
  StreamDecoder dec;
  runtime::StopFilter filter;
  int64_t n_generated = 0;
  int32_t pending = -1;         // sampled, to be fed at the next step
  Clock::time_point deadline = Clock::time_point::max();
  std::vector<float> logits;    // (n_vocab)
  bool done = false;
  uint64_t arrival = 0;         // submission order (prefill order; FCFS: the preemption priority)
  uint64_t ticket = 0;          // place in the waiting line while preempted (FCFS: arrival; quantum: preemption)
  int64_t resident_from = 0;    // n_generated when it last joined the batch (time slices count from there)
  std::unique_ptr<SwapStore::Image> image;  // while preempted: its cache's image (the cache holds nothing)
  bool swapped = false;
};

Scheduler::Scheduler(const model::Model& model, const Tokenizer& tok, const SchedulerConfig& cfg)
    : model_(model),
      tok_(tok),
      cfg_(cfg),
      n_ctx_(cfg.n_ctx > 0 ? cfg.n_ctx : model.hparams().n_ctx_train),
      pool_(cfg.n_threads > 0 ? cfg.n_threads : runtime::default_threads()),
      fwd_(model, pool_,
           std::max(1, cfg.max_active) +
               std::max<int64_t>(1, cfg.prefill_chunk > 0 ? cfg.prefill_chunk : cfg.prefill_max)),
      store_(cfg.swap_dir) {
  if (cfg_.max_active < 1) fail("--parallel {}: must be at least 1", cfg_.max_active);
  if (cfg_.max_queue < 0) fail("--queue {}: must not be negative", cfg_.max_queue);
  if (cfg_.prefill_chunk < 0) fail("--prefill-chunk {}: must be 0 (adaptive) or more", cfg_.prefill_chunk);
  if (cfg_.prefill_chunk == 0) {
    if (!(cfg_.step_budget_ms > 0)) fail("--step-budget-ms {}: must be positive", cfg_.step_budget_ms);
    if (cfg_.prefill_min < 1 || cfg_.prefill_max < cfg_.prefill_min)
      fail("--prefill-min {} / --prefill-max {}: need 1 <= min <= max", cfg_.prefill_min, cfg_.prefill_max);
  }
  if (n_ctx_ < 2) fail("--ctx {}: a sequence needs at least 2 positions", n_ctx_);
  if (cfg_.swap_quantum < 0) fail("--swap-quantum {}: must be 0 (off) or a number of tokens", cfg_.swap_quantum);
  if (cfg_.cache_entries < 0) cfg_.cache_entries = cfg_.max_active;
  chunk_limits_.budget_seconds = cfg_.step_budget_ms * 1e-3;
  chunk_limits_.min_chunk = cfg_.prefill_min;
  chunk_limits_.max_chunk = cfg_.prefill_max;
  runtime::SessionConfig sc;  // one sequence's cache, as a session would have it
  sc.n_ctx = n_ctx_;
  sc.type_k = cfg_.type_k;
  sc.type_v = cfg_.type_v;
  sc.format_k = cfg_.format_k;
  sc.format_v = cfg_.format_v;
  sc.kv_window = cfg_.kv_window;
  kv_cfg_ = runtime::kv_config(model, sc);
  sizer_ = KvSizer(kv_cfg_);  // also checks the formats and that the context can be reserved, before serving
  if (cfg_.kv_mem > 0 && cfg_.kv_mem < sizer_.bytes(n_ctx_))
    fail("--kv-mem {}: one sequence's full context takes {} bytes of KV cache (--ctx {}): give at least that, or "
         "a smaller --ctx or KV format",
         cfg_.kv_mem, sizer_.bytes(n_ctx_), n_ctx_);
  m_.kv_mem_budget = cfg_.kv_mem;
  thread_ = std::thread([this] { loop(); });
}

Scheduler::~Scheduler() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

std::shared_ptr<RequestHandle> Scheduler::submit(Job job) {
  STRATA_ASSERT(!job.prompt.empty() && static_cast<int64_t>(job.prompt.size()) < n_ctx_,
                "submit: the prompt must be checked against the context first");
  auto h = std::make_shared<RequestHandle>();
  {
    std::lock_guard lock(mu_);
    if (static_cast<int64_t>(queue_.size()) + m_.active_sequences + m_.swapped_sequences >=
        cfg_.max_active + cfg_.max_queue) {
      ++m_.requests_rejected;
      throw ApiError(429, "rate_limit_error", "queue_full",
                     fmt::format("the server is busy: {} requests are running and {} are waiting (--parallel {}, "
                                 "--queue {}); retry later",
                                 m_.active_sequences, queue_.size(), cfg_.max_active, cfg_.max_queue));
    }
    queue_.push_back({std::move(job), h, Clock::now(), ++arrivals_});
    ++m_.requests_total;
    m_.queue_length = static_cast<int64_t>(queue_.size());
  }
  cv_.notify_all();
  return h;
}

void Scheduler::set_paused(bool paused) {
  {
    std::lock_guard lock(mu_);
    paused_ = paused;
  }
  cv_.notify_all();
}

MetricsSnapshot Scheduler::metrics() const {
  std::lock_guard lock(mu_);
  return m_;
}

void Scheduler::loop() {
  for (;;) {
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] {
        return stop_ || (!paused_ && (!active_.empty() || !swapped_.empty() || !queue_.empty()));
      });
      if (stop_) break;
    }
    try {
      step();
    } catch (const std::exception& e) {
      // A bug or an out-of-memory: end the requests of this batch rather than the server.
      for (auto& s : active_)
        if (!s->done) finish(*s, {"", {}, 500, fmt::format("internal error: {}", e.what())});
      active_.clear();
    }
  }
  // Shutting down: nobody is left waiting forever.
  const Finish bye{"", {}, 503, "the server is shutting down"};
  for (auto& s : active_) s->h->end(bye);
  for (auto& s : swapped_) s->h->end(bye);
  swapped_.clear();  // their images (files) are deleted
  std::lock_guard lock(mu_);
  for (auto& q : queue_) q.handle->end(bye);
  queue_.clear();
}

std::unique_ptr<kv::KvCache> Scheduler::take_cache(const std::vector<int32_t>& prompt, int64_t& reused) {
  // The kept cache with the longest common prefix; at least the last prompt token is computed again (its
  // logits are needed).
  reused = 0;
  size_t best = kept_.size();
  for (size_t i = 0; i < kept_.size(); ++i) {
    const int64_t n = std::min<int64_t>(static_cast<int64_t>(common_prefix(kept_[i].tokens, prompt)),
                                        static_cast<int64_t>(prompt.size()) - 1);
    if (n > reused) reused = n, best = i;
  }
  // A running sequence with a longer common prefix: fork its cache (it keeps its own). The whole pages of
  // the shared prefix are then stored once, copy-on-write (KvCache::fork), not copied.
  Sequence* donor = nullptr;
  int64_t donor_n = std::max<int64_t>(reused, kMinCopy - 1);
  for (const auto& s : active_) {
    const int64_t n = std::min<int64_t>(static_cast<int64_t>(common_prefix(s->tokens, prompt)),
                                        static_cast<int64_t>(prompt.size()) - 1);
    if (n > donor_n) donor_n = n, donor = s.get();
  }
  if (donor) {
    auto kv = std::make_unique<kv::KvCache>(donor->kv->fork(donor_n));
    reused = donor_n;
    return kv;
  }
  if (best == kept_.size()) return std::make_unique<kv::KvCache>(kv_cfg_);
  std::unique_ptr<kv::KvCache> kv = std::move(kept_[best].kv);
  kept_.erase(kept_.begin() + static_cast<std::ptrdiff_t>(best));
  kv->truncate(reused);
  return kv;
}

uint64_t Scheduler::kept_bytes() const {
  uint64_t b = 0;
  for (const Kept& k : kept_) b += k.kv->committed_bytes();
  return b;
}

uint64_t Scheduler::active_bytes(int64_t margin) const {
  uint64_t b = 0;
  for (const auto& s : active_)
    if (!s->done)
      b += std::max<uint64_t>(s->kv->committed_bytes(), sizer_.bytes(s->kv->n_used() + margin));
  return b;
}

bool Scheduler::make_room(uint64_t need) {
  if (cfg_.kv_mem == 0) return true;
  if (need > cfg_.kv_mem) return false;
  uint64_t kept = kept_bytes();
  while (need + kept > cfg_.kv_mem && !kept_.empty()) {
    auto lru = std::min_element(kept_.begin(), kept_.end(),
                                [](const Kept& a, const Kept& b) { return a.last_use < b.last_use; });
    kept_.erase(lru);
    kept = kept_bytes();
  }
  return need + kept <= cfg_.kv_mem;
}

void Scheduler::insert_active(std::unique_ptr<Sequence> s) {
  auto at = std::upper_bound(active_.begin(), active_.end(), s->arrival,
                             [](uint64_t a, const std::unique_ptr<Sequence>& x) { return a < x->arrival; });
  active_.insert(at, std::move(s));
}

void Scheduler::preempt(size_t index) {
  const auto t0 = Clock::now();
  std::unique_ptr<Sequence> s = std::move(active_[index]);
  active_.erase(active_.begin() + static_cast<std::ptrdiff_t>(index));
  size_t bytes = 0;
  if (s->kv->n_used() > 0) {
    s->image = store_.save(*s->kv);
    bytes = s->image->size();
  }
  s->kv->release();
  s->swapped = true;
  {
    std::lock_guard lock(mu_);
    // FCFS: it keeps its place (its arrival); time slices: it goes to the back of the line.
    s->ticket = cfg_.swap_quantum > 0 ? ++arrivals_ : s->arrival;
    ++m_.preemptions_total;
    m_.swap_out_bytes_total += bytes;
    m_.swap_seconds_total += std::chrono::duration<double>(Clock::now() - t0).count();
    --m_.active_sequences;
    ++m_.swapped_sequences;
    m_.swapped_bytes += bytes;
  }
  auto at = std::upper_bound(swapped_.begin(), swapped_.end(), s->ticket,
                             [](uint64_t t, const std::unique_ptr<Sequence>& x) { return t < x->ticket; });
  swapped_.insert(at, std::move(s));
}

void Scheduler::resume() {
  const auto t0 = Clock::now();
  std::unique_ptr<Sequence> s = std::move(swapped_.front());
  swapped_.erase(swapped_.begin());
  size_t bytes = 0;
  if (s->image) {
    bytes = s->image->size();
    store_.load(*s->image, *s->kv);
    s->image.reset();  // frees the RAM or deletes the file
  }
  STRATA_ASSERT(s->kv->n_used() == static_cast<int64_t>(s->tokens.size()), "a resumed cache lost positions");
  s->swapped = false;
  s->resident_from = s->n_generated;
  insert_active(std::move(s));
  std::lock_guard lock(mu_);
  ++m_.resumes_total;
  m_.swap_in_bytes_total += bytes;
  m_.swap_seconds_total += std::chrono::duration<double>(Clock::now() - t0).count();
  ++m_.active_sequences;
  --m_.swapped_sequences;
  m_.swapped_bytes -= bytes;
}

size_t Scheduler::victim(bool time_slice) const {
  // FCFS: the live sequence that arrived last. Time slices: the one that has generated the most tokens since
  // it (re)joined the batch (ties: the later arrival); with time_slice, only one past its quantum.
  size_t best = active_.size();
  for (size_t i = 0; i < active_.size(); ++i) {
    const Sequence& s = *active_[i];
    if (s.done) continue;
    const int64_t run = s.n_generated - s.resident_from;
    if (time_slice && run < cfg_.swap_quantum) continue;
    if (best == active_.size()) {
      best = i;
      continue;
    }
    const Sequence& b = *active_[best];
    const int64_t brun = b.n_generated - b.resident_from;
    const bool later = s.arrival > b.arrival;
    if (cfg_.swap_quantum > 0 ? (run > brun || (run == brun && later)) : later) best = i;
  }
  return best;
}

void Scheduler::admit() {
  // The waiting line: preempted sequences and queued requests, by ticket (a queued request's is its arrival;
  // a preempted sequence's its arrival under FCFS, its preemption under time slices). The head joins the
  // batch when a slot is free and its cache fits the KV budget with headroom (alone, always: one full
  // context fits by the check at start); nobody passes it. With time slices a sequence past its quantum
  // gives its place to the head.
  const size_t max_rounds = 4 * (static_cast<size_t>(cfg_.max_active) + swapped_.size()) + 4;
  for (size_t round = 0; round < max_rounds; ++round) {
    Sequence* sw = swapped_.empty() ? nullptr : swapped_.front().get();
    bool has_q = false, q_cancelled = false;
    uint64_t q_ticket = 0;
    int64_t q_len = 0;
    {
      std::lock_guard lock(mu_);
      if (!queue_.empty()) {
        has_q = true;
        q_ticket = queue_.front().arrival;
        q_len = static_cast<int64_t>(queue_.front().job.prompt.size());
        q_cancelled = queue_.front().handle->cancelled();
      }
    }
    if (!sw && !has_q) return;
    const bool take_swapped = sw && (!has_q || sw->ticket < q_ticket);
    const bool slot = static_cast<int>(active_.size()) < cfg_.max_active;
    bool fits = slot || (!take_swapped && q_cancelled);  // a cancelled request only leaves the line
    if (slot && !active_.empty() && !(!take_swapped && q_cancelled)) {
      const int64_t positions = take_swapped ? static_cast<int64_t>(sw->tokens.size()) : q_len;
      fits = make_room(active_bytes(kResumeMargin) + sizer_.bytes(positions + kResumeMargin));
    }
    if (!fits) {
      if (cfg_.swap_quantum > 0) {
        const size_t v = victim(/*time_slice=*/true);
        if (v < active_.size()) {
          preempt(v);
          continue;
        }
      }
      return;
    }
    if (take_swapped) {
      resume();
      continue;
    }
    Queued q;
    {
      std::lock_guard lock(mu_);
      q = std::move(queue_.front());
      queue_.pop_front();
      m_.queue_length = static_cast<int64_t>(queue_.size());
      ++m_.active_sequences;  // counted at once, so submit() sees the slot taken
    }
    if (q.handle->cancelled()) {
      std::lock_guard lock(mu_);
      ++m_.requests_cancelled;
      --m_.active_sequences;
      q.handle->end({"", {}, 499, "cancelled"});
      continue;
    }
    auto s = std::make_unique<Sequence>(std::move(q.job), q.handle, tok_,
                                        static_cast<int32_t>(model_.hparams().n_vocab));
    s->arrival = s->ticket = q.arrival;
    if (cfg_.timeout_seconds > 0)
      s->deadline = q.submitted + std::chrono::duration_cast<Clock::duration>(
                                      std::chrono::duration<double>(cfg_.timeout_seconds));
    s->kv = take_cache(s->job.prompt, s->cached);
    s->tokens.assign(s->job.prompt.begin(), s->job.prompt.begin() + s->cached);
    s->n_fed = static_cast<size_t>(s->cached);
    for (int32_t t : s->job.prompt) s->sampler.accept(t);  // the penalties see the whole prompt
    {
      std::lock_guard lock(mu_);
      m_.prompt_tokens_total += s->job.prompt.size();
      m_.prompt_tokens_computed += s->job.prompt.size() - static_cast<size_t>(s->cached);
      if (s->cached > 0) ++m_.prefix_cache_hits, m_.prefix_cache_tokens += static_cast<uint64_t>(s->cached);
    }
    insert_active(std::move(s));
  }
}

void Scheduler::finish(Sequence& s, Finish f) {
  if (s.done) return;
  s.done = true;
  {
    // The slot is free as soon as the client has its answer (the sequence leaves active_ at the end of
    // the step): a request sent right after the response must not be refused as "queue full".
    std::lock_guard lock(mu_);
    if (s.swapped) {
      --m_.swapped_sequences;
      if (s.image) m_.swapped_bytes -= s.image->size();
    } else {
      --m_.active_sequences;
    }
  }
  s.image.reset();  // a preempted sequence's image (file) goes now
  if (f.status == 200 && f.reason != "stop_string") {
    // Whatever text the decoder or the stop filter still holds is final now.
    bool stopped = false;
    std::string rest = s.filter.push(s.dec.flush(), stopped);
    if (!stopped) rest += s.filter.flush();
    if (!rest.empty()) s.h->push({rest, {}});
  }
  if (f.reason == "stop_string") f.reason = "stop";
  f.usage.prompt_tokens = static_cast<int64_t>(s.job.prompt.size());
  f.usage.completion_tokens = s.n_generated;
  f.usage.cached_tokens = s.cached;
  s.h->end(std::move(f));
}

void Scheduler::sample_and_emit(Sequence& s, const float* logits) {
  const int64_t n_vocab = model_.hparams().n_vocab;
  const std::span<const float> lg(logits, static_cast<size_t>(n_vocab));
  const int32_t id = s.sampler.sample(lg);
  s.sampler.accept(id);
  ++s.n_generated;
  RequestHandle::Event ev;
  if (s.job.logprobs >= 0) {
    double mx = -INFINITY;
    for (float v : lg) mx = std::max(mx, static_cast<double>(v));
    double sum = 0;
    for (float v : lg) sum += std::exp(static_cast<double>(v) - mx);
    const double lse = mx + std::log(sum);
    TokenLogprob t;
    t.token = tok_.token_to_piece(id);
    t.logprob = static_cast<float>(static_cast<double>(lg[static_cast<size_t>(id)]) - lse);
    if (s.job.logprobs > 0)
      for (const TokenProb& c : Sampler::top_n(lg, s.job.logprobs))
        t.top.emplace_back(tok_.token_to_piece(c.id), static_cast<float>(std::log(std::max(c.p, 1e-38f))));
    ev.logprobs.push_back(std::move(t));
  }
  if (!s.job.ignore_eos && tok_.is_eog(id)) {
    if (!ev.logprobs.empty()) s.h->push(std::move(ev));
    finish(s, {"stop", {}, 200, ""});
    return;
  }
  bool stopped = false;
  ev.text = s.filter.push(s.dec.push(id), stopped);
  if (!ev.text.empty() || !ev.logprobs.empty()) s.h->push(std::move(ev));
  if (stopped) return finish(s, {"stop_string", {}, 200, ""});
  if (s.job.max_tokens >= 0 && s.n_generated >= s.job.max_tokens) return finish(s, {"length", {}, 200, ""});
  if (s.kv->n_used() + 1 > n_ctx_) return finish(s, {"length", {}, 200, ""});
  s.pending = id;
}

void Scheduler::retire(std::unique_ptr<Sequence> s) {
  if (cfg_.cache_entries <= 0 || !s->kv || s->tokens.empty()) return;
  s->kv->truncate(static_cast<int64_t>(s->tokens.size()));
  kept_.push_back({std::move(s->tokens), std::move(s->kv), ++use_clock_});
  while (static_cast<int>(kept_.size()) > cfg_.cache_entries) {
    auto lru = std::min_element(kept_.begin(), kept_.end(),
                                [](const Kept& a, const Kept& b) { return a.last_use < b.last_use; });
    kept_.erase(lru);
  }
}

// A client that reads /metrics right after its response must see the tokens of that response counted.
void Scheduler::count_generated() {
  std::lock_guard lock(mu_);
  ++m_.tokens_generated_total;
}

bool Scheduler::step() {
  const auto now = Clock::now();
  // Cancelled and timed-out requests end, running or preempted. Counted before finish(): a client reading
  // /metrics right after its response sees it.
  auto drop = [&](Sequence& s) {
    if (s.done) return;
    if (s.h->cancelled()) {
      {
        std::lock_guard lock(mu_);
        ++m_.requests_cancelled;
      }
      finish(s, {"", {}, 499, "cancelled"});
    } else if (now >= s.deadline) {
      {
        std::lock_guard lock(mu_);
        ++m_.requests_timed_out;
      }
      finish(s, {"", {}, 504,
                 fmt::format("the request took longer than {} s (--timeout): ask for fewer max_tokens or retry "
                             "when the server is less busy", cfg_.timeout_seconds)});
    }
  };
  for (auto& s : swapped_) drop(*s);  // before admit(): a cancelled sequence is not swapped back in
  std::erase_if(swapped_, [](const std::unique_ptr<Sequence>& s) { return s->done; });
  admit();
  for (auto& s : active_) drop(*s);

  // One step: every decoding sequence's next token, then prompt chunks, oldest request first.
  std::vector<model::SeqStep> steps;
  std::vector<std::pair<Sequence*, size_t>> who;  // sequence, prompt tokens fed (0: a decode token)
  int64_t chunk = 0;
  auto plan = [&] {
    steps.clear();
    who.clear();
    for (auto& s : active_)
      if (!s->done && s->pending >= 0) {
        steps.push_back({s->kv.get(), std::span<const int32_t>(&s->pending, 1), s->logits.data()});
        who.emplace_back(s.get(), 0);
      }
    const int64_t n_decode = static_cast<int64_t>(steps.size());
    chunk = cfg_.prefill_chunk > 0 ? cfg_.prefill_chunk : adaptive_chunk(step_model_, n_decode, chunk_limits_);
    int64_t budget = chunk;
    for (auto& s : active_) {
      if (s->done || s->pending >= 0 || budget == 0) continue;
      const int64_t rest = static_cast<int64_t>(s->job.prompt.size() - s->n_fed);
      const int64_t take = std::min(rest, budget);
      const bool last = take == rest;
      steps.push_back({s->kv.get(),
                       std::span<const int32_t>(s->job.prompt.data() + s->n_fed, static_cast<size_t>(take)),
                       last ? s->logits.data() : nullptr});
      who.emplace_back(s.get(), static_cast<size_t>(take));
      budget -= take;
    }
  };
  for (;;) {
    plan();
    if (cfg_.kv_mem == 0) break;
    // The bytes committed after this step: every sequence at its positions plus this step's tokens.
    uint64_t need = 0;
    int live = 0;
    for (auto& s : active_) {
      if (s->done) continue;
      ++live;
      int64_t add = 0;
      for (auto& [w, fed] : who)
        if (w == s.get()) add = fed == 0 ? 1 : static_cast<int64_t>(fed);
      need += std::max<uint64_t>(s->kv->committed_bytes(), sizer_.bytes(s->kv->n_used() + add));
    }
    if (make_room(need) || live <= 1) break;
    const size_t v = victim(/*time_slice=*/false);
    STRATA_ASSERT(v < active_.size(), "no sequence to preempt");
    preempt(v);
  }
  int64_t rows = 0;
  bool prefill = false;
  for (auto& [s, fed] : who) rows += fed == 0 ? 1 : static_cast<int64_t>(fed), prefill |= fed > 0;

  const auto t0 = Clock::now();
  if (!steps.empty()) {
    fwd_.eval_multi(steps);
    for (auto& [s, fed] : who) {
      if (fed == 0) {
        s->tokens.push_back(s->pending);
        s->pending = -1;
        count_generated();  // before emitting: the last token completes the response
        sample_and_emit(*s, s->logits.data());
      } else {
        s->tokens.insert(s->tokens.end(), s->job.prompt.begin() + static_cast<std::ptrdiff_t>(s->n_fed),
                         s->job.prompt.begin() + static_cast<std::ptrdiff_t>(s->n_fed + fed));
        s->n_fed += fed;
        if (s->n_fed == s->job.prompt.size()) {
          count_generated();
          sample_and_emit(*s, s->logits.data());
        }
      }
    }
  }
  const double dt = std::chrono::duration<double>(Clock::now() - t0).count();
  step_model_.observe(rows, dt);

  // Finished sequences leave the batch; their caches are kept for prefix reuse.
  std::vector<std::unique_ptr<Sequence>> still;
  for (auto& s : active_) {
    if (s->done) retire(std::move(s));
    else still.push_back(std::move(s));
  }
  active_ = std::move(still);
  if (cfg_.kv_mem > 0) make_room(active_bytes(0));  // the newly kept caches within the budget

  uint64_t kv_bytes = 0;
  for (auto& s : active_) kv_bytes += s->kv->committed_bytes();
  for (auto& k : kept_) kv_bytes += k.kv->committed_bytes();
  {
    std::lock_guard lock(mu_);
    if (!steps.empty()) ++m_.steps_total, m_.step_seconds_total += dt;
    if (prefill || cfg_.prefill_chunk > 0) m_.prefill_chunk = chunk;
    m_.step_seconds_per_row = step_model_.per_row();
    m_.step_seconds_base = step_model_.base();
    m_.active_sequences = static_cast<int64_t>(active_.size());
    m_.swapped_sequences = static_cast<int64_t>(swapped_.size());
    m_.swapped_bytes = 0;
    for (auto& s : swapped_) m_.swapped_bytes += s->image ? s->image->size() : 0;
    m_.cached_sequences = static_cast<int64_t>(kept_.size());
    m_.kv_committed_bytes = kv_bytes;
    const auto now2 = Clock::now();
    rate_.emplace_back(now2, m_.tokens_generated_total);
    while (rate_.size() > 2 && now2 - rate_.front().first > std::chrono::seconds(10)) rate_.pop_front();
    const double span = std::chrono::duration<double>(rate_.back().first - rate_.front().first).count();
    m_.tokens_per_second = span > 0 ? static_cast<double>(rate_.back().second - rate_.front().second) / span : 0;
    if (active_.empty() && swapped_.empty() && queue_.empty()) rate_.clear(), m_.tokens_per_second = 0;
  }
  return !steps.empty();
}

}  // namespace strata::serve
