#include "storage/weight_streamer.h"

#include <algorithm>
#include <chrono>
#include <cstring>

#include "core/error.h"

namespace strata::storage {

namespace {
constexpr int kIoThreads = 2;
}  // namespace

uint64_t checksum(const uint8_t* p, size_t n) {
  // Eight independent lanes of (sum, sum of prefix sums): the second makes the result depend on where each
  // word is, so swapped or shifted blocks change it too. 128-bit GCC vector types, which the baseline
  // x86-64 build (SSE2) keeps in registers: 8 vector adds per 64 bytes, several times the ~5 GB/s of the
  // scalar loop it replaces (10% of a streamed decode's profile).
  using V2 = uint64_t __attribute__((vector_size(16)));
  V2 a[4] = {}, b[4] = {};
  size_t i = 0;
  for (; i + 64 <= n; i += 64) {
    for (int k = 0; k < 4; ++k) {
      V2 w;
      std::memcpy(&w, p + i + 16 * k, 16);
      a[k] += w;
      b[k] += a[k];
    }
  }
  uint64_t tail = 0;
  for (; i < n; ++i) tail = tail * 131 + p[i];
  uint64_t h = n ^ tail * 0x9E3779B97F4A7C15ull;
  for (int k = 0; k < 4; ++k)
    for (int l = 0; l < 2; ++l) h = (h ^ a[k][l]) * 0x100000001B3ull ^ (b[k][l] + (h >> 29));
  return h;
}

WeightStreamer::WeightStreamer(const DirectFile& file, std::vector<Extent> sequence, int slots, bool verify)
    : file_(file), seq_(std::move(sequence)), sums_(seq_.size()), have_sum_(seq_.size()), verify_(verify) {
  STRATA_ASSERT(slots >= 1 && !seq_.empty(), "WeightStreamer needs a sequence and at least one slot");
  for (const Extent& e : seq_) slot_bytes_ = std::max(slot_bytes_, aligned_span(e.offset, e.bytes).bytes);
  slots_.resize(static_cast<size_t>(slots));
  for (Slot& s : slots_) s.buf = AlignedBuffer(slot_bytes_);
  fill_locked();  // the first tensors are read while the rest of the model loads
  // Two readers: when the compute releases a slot while the other slot's read is still in flight (the
  // compute is faster than the disk), the next read starts at once instead of after that read returns,
  // its checksum and a wake-up of the reader (milliseconds on a loaded machine): the disk never idles
  // between tensors. Completions may arrive out of order; acquire() waits for its own slot.
  const int n_io = std::min(kIoThreads, slots);
  for (int t = 0; t < n_io; ++t) io_.emplace_back([this] { io_loop(); });
}

WeightStreamer::~WeightStreamer() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = true;
  }
  cv_io_.notify_all();
  for (std::thread& t : io_) t.join();
}

void WeightStreamer::fill_locked() {
  bool any = false;
  for (size_t k = 0; k < slots_.size(); ++k) {
    Slot& s = slots_[k];
    if (s.state != State::kFree) continue;
    s.state = State::kQueued;
    s.ext = cursor_;
    s.error.clear();
    cursor_ = (cursor_ + 1) % seq_.size();
    queue_.push_back(static_cast<int>(k));
    order_.push_back(static_cast<int>(k));
    any = true;
  }
  if (any) cv_io_.notify_all();
}

void WeightStreamer::io_loop() {
  std::unique_lock<std::mutex> lk(mu_);
  for (;;) {
    cv_io_.wait(lk, [&] { return stop_ || !queue_.empty(); });
    if (stop_) return;
    const int k = queue_.front();
    queue_.pop_front();
    Slot& s = slots_[static_cast<size_t>(k)];
    s.state = State::kReading;
    const Extent e = seq_[s.ext];
    const size_t idx = s.ext;
    lk.unlock();
    std::string error;
    const uint8_t* data = nullptr;
    uint64_t sum = 0;
    try {
      data = file_.read(e.offset, e.bytes, s.buf.data(), "the streamed tensor '" + e.name + "'");
      if (verify_) sum = checksum(data, e.bytes);
    } catch (const std::exception& ex) {
      error = ex.what();
    }
    lk.lock();
    if (error.empty() && verify_) {
      if (!have_sum_[idx]) {
        sums_[idx] = sum, have_sum_[idx] = true;
      } else if (sums_[idx] != sum) {
        error = fmt::format("the streamed tensor '{}' (offset {}, {} bytes) of the model file '{}' reads "
                            "different bytes than at its first read: the file was modified while strata was "
                            "streaming it; do not modify a model file in use",
                            e.name, e.offset, e.bytes, file_.path());
      }
    }
    s.data = data;
    s.error = std::move(error);
    s.state = State::kReady;
    stats_.bytes_read += aligned_span(e.offset, e.bytes).bytes;
    stats_.reads += 1;
    cv_done_.notify_all();
  }
}

const uint8_t* WeightStreamer::acquire(size_t i) {
  STRATA_ASSERT(i < seq_.size(), "WeightStreamer::acquire: index out of range");
  // One tensor in use at a time: forward passes that share the model from several threads take turns per
  // matmul (correct, with resyncs) instead of racing for the ring. Unlocked by release() or on error.
  std::unique_lock<std::mutex> use(use_mu_);
  std::unique_lock<std::mutex> lk(mu_);
  if (i == 0) ++stats_.passes;
  if (order_.empty() || slots_[static_cast<size_t>(order_.front())].ext != i) {
    // Out of order: drop the read-ahead (wait for a read in progress), restart the sequence at i.
    ++stats_.resyncs;
    queue_.clear();
    cv_done_.wait(lk, [&] {
      return std::none_of(slots_.begin(), slots_.end(), [](const Slot& s) { return s.state == State::kReading; });
    });
    for (int k : order_) slots_[static_cast<size_t>(k)].state = State::kFree;
    order_.clear();
    cursor_ = i;
    fill_locked();
  }
  const int k = order_.front();
  Slot& s = slots_[static_cast<size_t>(k)];
  const auto t0 = std::chrono::steady_clock::now();
  cv_done_.wait(lk, [&] { return s.state == State::kReady; });
  stats_.wait_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  order_.pop_front();
  if (!s.error.empty()) {
    std::string msg = std::move(s.error);
    s.state = State::kFree;
    // Drop the read-ahead too: the next acquire starts over (and reports the error again if it persists).
    queue_.clear();
    cv_done_.wait(lk, [&] {
      return std::none_of(slots_.begin(), slots_.end(), [](const Slot& x) { return x.state == State::kReading; });
    });
    for (int o : order_) slots_[static_cast<size_t>(o)].state = State::kFree;
    order_.clear();
    fail("{}", msg);  // `use` unlocks
  }
  s.state = State::kInUse;
  fill_locked();
  use.release();  // stays locked until release(i)
  return s.data;
}

void WeightStreamer::release(size_t i) {
  std::lock_guard<std::mutex> lk(mu_);
  for (Slot& s : slots_) {
    if (s.state == State::kInUse && s.ext == i) {
      s.state = State::kFree;
      fill_locked();
      use_mu_.unlock();
      return;
    }
  }
  STRATA_ASSERT(false, "WeightStreamer::release of a tensor that was not acquired");
}

StreamStats WeightStreamer::stats() const {
  std::lock_guard<std::mutex> lk(mu_);
  return stats_;
}

}  // namespace strata::storage
