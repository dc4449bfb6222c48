#include "storage/weight_streamer.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
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

WeightStreamer::WeightStreamer(const DirectFile& file, std::vector<Extent> sequence, int slots, bool verify,
                               size_t chunk_bytes)
    : file_(file),
      seq_(std::move(sequence)),
      sums_(seq_.size()),
      have_sum_(seq_.size()),
      checks_(seq_.size()),
      verify_(verify),
      chunk_((std::max<size_t>(chunk_bytes, 1) + kDirectAlign - 1) / kDirectAlign * kDirectAlign) {
  STRATA_ASSERT(slots >= 1 && !seq_.empty(), "WeightStreamer needs a sequence and at least one slot");
  // STRATA_STREAM_CHUNK_KIB: another read size, for A/B measurements.
  if (const char* env = std::getenv("STRATA_STREAM_CHUNK_KIB"); env && *env && chunk_bytes == kDefaultChunk)
    chunk_ = std::max<size_t>(kDirectAlign, std::strtoull(env, nullptr, 10) * 1024 / kDirectAlign * kDirectAlign);
  for (const Extent& e : seq_) slot_bytes_ = std::max(slot_bytes_, aligned_span(e.offset, e.bytes).bytes);
  slots_.resize(static_cast<size_t>(slots));
  for (Slot& s : slots_) s.buf = AlignedBuffer(slot_bytes_);
  fill_locked();  // the first tensors are read while the rest of the model loads
  // Two readers, so two reads are in flight: the disk never idles between requests (a request's return,
  // its wake-up and the next request's start take milliseconds on a loaded machine).
  for (int t = 0; t < kIoThreads; ++t) io_.emplace_back([this] { io_loop(); });
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
    const Extent& e = seq_[cursor_];
    s.chunks = static_cast<int>((aligned_span(e.offset, e.bytes).bytes + chunk_ - 1) / chunk_);
    s.started = s.done = 0;
    cursor_ = (cursor_ + 1) % seq_.size();
    queue_.push_back(static_cast<int>(k));
    order_.push_back(static_cast<int>(k));
    any = true;
  }
  if (any) cv_io_.notify_all();
}

bool WeightStreamer::in_flight_locked() const {
  return std::any_of(slots_.begin(), slots_.end(), [](const Slot& s) { return s.started > s.done; });
}

void WeightStreamer::drop_read_ahead_locked(std::unique_lock<std::mutex>& lk) {
  queue_.clear();  // no new chunk starts; wait for the ones in flight
  cv_done_.wait(lk, [&] { return !in_flight_locked(); });
  for (int k : order_) slots_[static_cast<size_t>(k)].state = State::kFree;
  order_.clear();
}

std::string WeightStreamer::verify_read(size_t idx, const uint8_t* data) {
  const Extent& e = seq_[idx];
  // Which windows to check: all at the first read, when the tensor is small, or once the file changed.
  const bool changed = file_.changed_since_open();
  bool all;
  int window;
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (changed) verify_all_ = true;
    all = !have_sum_[idx] || verify_all_ || e.bytes < kSampleMin;
    window = static_cast<int>(checks_[idx]++ % kWindows);
  }
  auto bound = [&](int w) { return w == kWindows ? e.bytes : e.bytes * static_cast<size_t>(w) / kWindows / 64 * 64; };
  std::array<uint64_t, kWindows> sum{};
  uint64_t checked = 0;
  for (int w = 0; w < kWindows; ++w) {
    if (!all && w != window) continue;
    sum[static_cast<size_t>(w)] = checksum(data + bound(w), bound(w + 1) - bound(w));
    checked += bound(w + 1) - bound(w);
  }
  std::lock_guard<std::mutex> lk(mu_);
  stats_.bytes_checked += checked;
  if (!have_sum_[idx]) {
    sums_[idx] = sum, have_sum_[idx] = true;  // (a first read checks every window)
    return "";
  }
  for (int w = 0; w < kWindows; ++w) {
    if ((all || w == window) && sums_[idx][static_cast<size_t>(w)] != sum[static_cast<size_t>(w)])
      return fmt::format("the streamed tensor '{}' (offset {}, {} bytes) of the model file '{}' reads "
                         "different bytes than at its first read: the file was modified while strata was "
                         "streaming it; do not modify a model file in use",
                         e.name, e.offset, e.bytes, file_.path());
  }
  return "";
}

void WeightStreamer::io_loop() {
  std::unique_lock<std::mutex> lk(mu_);
  for (;;) {
    cv_io_.wait(lk, [&] { return stop_ || !queue_.empty(); });
    if (stop_) return;
    // The next chunk of the earliest slot that has one: the tensor needed first is read first.
    const int k = queue_.front();
    Slot& s = slots_[static_cast<size_t>(k)];
    const int c = s.started++;
    if (s.started == s.chunks) queue_.pop_front();
    s.state = State::kReading;
    const size_t idx = s.ext;
    const Extent e = seq_[idx];
    const AlignedSpan span = aligned_span(e.offset, e.bytes);
    const bool skip = !s.error.empty();  // an earlier chunk failed: the read is lost anyway
    lk.unlock();
    std::string error;
    uint64_t got = 0;
    if (!skip) {
      // Chunk c: [c * chunk_, ...) of the aligned span; the last one ends at the tensor's last byte (the
      // read widens it back to the aligned end, and a file that ends before that byte is an error).
      const size_t from = static_cast<size_t>(c) * chunk_;
      const uint64_t want_end = e.offset + e.bytes;
      const uint64_t off = span.offset + from;
      const size_t len = static_cast<size_t>(std::min<uint64_t>(want_end, off + chunk_) - off);
      try {
        file_.read(off, len, s.buf.data() + from, "the streamed tensor '" + e.name + "'");
        got = aligned_span(off, len).bytes;
      } catch (const std::exception& ex) {
        error = ex.what();
      }
    }
    lk.lock();
    if (!error.empty() && s.error.empty()) s.error = std::move(error);
    stats_.bytes_read += got;
    if (s.done + 1 < s.chunks) {
      // Nothing of this slot in flight any more while chunks are left: its read-ahead was dropped and
      // drop_read_ahead_locked() waits for this.
      if (++s.done == s.started) cv_done_.notify_all();
      continue;
    }
    // The whole tensor is in: check it (this reader; the other one goes on reading). The last chunk counts
    // as in flight until then, so that a dropped read-ahead does not hand the slot to a new read meanwhile.
    const uint8_t* data = s.buf.data() + span.skip;
    if (s.error.empty() && verify_) {
      lk.unlock();
      std::string bad = verify_read(idx, data);
      lk.lock();
      s.error = std::move(bad);
    }
    ++s.done;
    s.data = data;
    s.state = State::kReady;
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
    // Out of order: drop the read-ahead (wait for the reads in progress), restart the sequence at i.
    ++stats_.resyncs;
    drop_read_ahead_locked(lk);
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
    drop_read_ahead_locked(lk);
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
