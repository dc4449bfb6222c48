// A persistent pool of worker threads (STYLE.md practice 12: kernels receive a range and a worker index,
// they never start threads). The calling thread takes part as worker 0.
#pragma once
#include <atomic>
#include <cstdint>
#include <functional>
#include <thread>
#include <vector>

namespace strata {

class ThreadPool {
 public:
  // n_threads >= 1 total workers, including the caller.
  explicit ThreadPool(int n_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }

  // Runs fn(worker) once on each of the n workers (worker in [0, size())) and waits for all.
  // A decode step runs ~200 of these, microseconds apart, so the hand-offs spin first: an idle worker
  // polls for the next job before it sleeps on a futex, and the caller polls for the workers to finish
  // before it sleeps (waking a sleeping thread costs several microseconds, more on a VM). How long they
  // poll adapts between kMinSpinMicros and kSpinMicros (see spin()), so that an idle pool does not burn
  // CPU and an oversubscribed machine does not make every hand-off wait for a descheduled spinner.
  void run(const std::function<void(int worker)>& fn);
  static constexpr int kSpinMicros = 100, kMinSpinMicros = 2;

  // Splits [0, n) into size() contiguous, near-equal chunks: fn(begin, end, worker).
  void parallel_for(int64_t n, const std::function<void(int64_t begin, int64_t end, int worker)>& fn);

 private:
  void worker_loop(int idx);
  template <class Done>
  bool spin(Done&& done);
  int n_threads_;
  std::vector<std::thread> threads_;
  const std::function<void(int)>* job_ = nullptr;  // written before generation_ is bumped
  std::atomic<uint32_t> generation_{0};  // bumped to start a job (or to stop); sleeping workers wait on it
  std::atomic<int> pending_{0};          // helper workers still running the current job
  std::atomic<int> sleepers_{0};         // workers blocked in generation_.wait(): run() wakes them only then
  std::atomic<bool> stop_{false};
  std::atomic<int> spin_us_{kSpinMicros};  // the current polling budget of spin()
};

// Even split of n items over k parts: [begin, end) of part i.
inline void split_range(int64_t n, int k, int i, int64_t& begin, int64_t& end) {
  const int64_t base = n / k, rem = n % k;
  begin = i * base + (i < rem ? i : rem);
  end = begin + base + (i < rem ? 1 : 0);
}

}  // namespace strata
