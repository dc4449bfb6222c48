#include "core/thread_pool.h"

#include <algorithm>
#include <chrono>

#include "core/error.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace strata {

namespace {

void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}

// Polls done() with pause instructions for up to budget_us microseconds. No sched_yield: on a loaded
// machine a yield hands the CPU to another process for a whole time slice (milliseconds), far longer than
// the wait it was meant to fill. Returns done()'s last value.
template <class Done>
bool spin_until(Done&& done, int budget_us) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::microseconds(budget_us);
  for (int i = 0;; ++i) {
    if (done()) return true;
    if ((i & 63) == 63 && std::chrono::steady_clock::now() > deadline) return done();
    cpu_relax();
  }
}

}  // namespace

ThreadPool::ThreadPool(int n_threads) : n_threads_(n_threads < 1 ? 1 : n_threads) {
  for (int i = 1; i < n_threads_; ++i) threads_.emplace_back([this, i] { worker_loop(i); });
}

ThreadPool::~ThreadPool() {
  stop_.store(true, std::memory_order_seq_cst);
  generation_.fetch_add(1, std::memory_order_seq_cst);
  generation_.notify_all();
  for (auto& t : threads_) t.join();
}

// Spins for the current budget and adapts it: a wait that ended while spinning doubles the budget (up to
// kSpinMicros), one that timed out halves it (down to kMinSpinMicros). On a quiet machine the other side
// answers within microseconds and the pool hands off by spinning; on an oversubscribed one the thread we
// wait for is often not running, spinning only delays it (the scheduler charges the spinner's time), and
// the budget falls until the pool sleeps on futexes almost at once, as a condition variable would.
template <class Done>
bool ThreadPool::spin(Done&& done) {
  const int budget = spin_us_.load(std::memory_order_relaxed);
  const bool ok = spin_until(done, budget);
  spin_us_.store(ok ? std::min(kSpinMicros, 2 * budget) : std::max(kMinSpinMicros, budget / 2),
                 std::memory_order_relaxed);
  return ok;
}

void ThreadPool::worker_loop(int idx) {
  uint32_t seen = 0;
  for (;;) {
    uint32_t g = generation_.load(std::memory_order_acquire);
    if (g == seen && !spin([&] { return (g = generation_.load(std::memory_order_acquire)) != seen; })) {
      // Sleep. The seq_cst increment pairs with run()'s seq_cst bump and load of sleepers_: either run()
      // sees this sleeper and notifies, or this wait sees the new generation and returns at once.
      sleepers_.fetch_add(1, std::memory_order_seq_cst);
      while ((g = generation_.load(std::memory_order_seq_cst)) == seen) generation_.wait(seen, std::memory_order_seq_cst);
      sleepers_.fetch_sub(1, std::memory_order_relaxed);
    }
    seen = g;
    if (stop_.load(std::memory_order_acquire)) return;
    (*job_)(idx);
    if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) pending_.notify_one();
  }
}

void ThreadPool::run(const std::function<void(int)>& fn) {
  if (n_threads_ == 1) {
    fn(0);
    return;
  }
  STRATA_ASSERT(pending_.load(std::memory_order_relaxed) == 0, "ThreadPool::run called from inside a job");
  job_ = &fn;
  pending_.store(n_threads_ - 1, std::memory_order_relaxed);
  generation_.fetch_add(1, std::memory_order_seq_cst);  // publishes job_ and pending_
  if (sleepers_.load(std::memory_order_seq_cst) > 0) generation_.notify_all();
  fn(0);
  if (!spin([&] { return pending_.load(std::memory_order_acquire) == 0; })) {
    for (int p; (p = pending_.load(std::memory_order_acquire)) != 0;) pending_.wait(p, std::memory_order_acquire);
  }
}

void ThreadPool::parallel_for(int64_t n, const std::function<void(int64_t, int64_t, int)>& fn) {
  if (n <= 0) return;
  run([&](int w) {
    int64_t b, e;
    split_range(n, n_threads_, w, b, e);
    if (b < e) fn(b, e, w);
  });
}

}  // namespace strata
