// A persistent pool of worker threads (STYLE.md practice 12: kernels receive a range and a worker index,
// they never start threads). The calling thread takes part as worker 0.
#pragma once
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
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
  void run(const std::function<void(int worker)>& fn);

  // Splits [0, n) into size() contiguous, near-equal chunks: fn(begin, end, worker).
  void parallel_for(int64_t n, const std::function<void(int64_t begin, int64_t end, int worker)>& fn);

 private:
  void worker_loop(int idx);
  int n_threads_;
  std::vector<std::thread> threads_;
  std::mutex mu_;
  std::condition_variable cv_start_, cv_done_;
  const std::function<void(int)>* job_ = nullptr;
  uint64_t generation_ = 0;
  int pending_ = 0;
  bool stop_ = false;
};

// Even split of n items over k parts: [begin, end) of part i.
inline void split_range(int64_t n, int k, int i, int64_t& begin, int64_t& end) {
  const int64_t base = n / k, rem = n % k;
  begin = i * base + (i < rem ? i : rem);
  end = begin + base + (i < rem ? 1 : 0);
}

}  // namespace strata
