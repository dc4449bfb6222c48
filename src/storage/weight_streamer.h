// Weights that do not fit the memory budget, read from the model file each token into a fixed ring of
// aligned buffers by two background reader threads (two reads in flight, so the disk does not idle between
// tensors), the next tensors read while the current one computes.
//
// The streamer knows the order in which the forward pass uses the streamed tensors (the sequence, which
// repeats every token): whenever a ring slot is free it starts reading the next tensor of the sequence
// into it, so the disk never waits for the compute. acquire(i) waits until tensor i is in a slot;
// release(i) frees the slot, which starts the next read. Asking for a tensor out of order (a pass that
// skips the output matrix) drops the read-ahead and resumes from there: slower, never wrong.
//
// Every tensor's bytes are checksummed at their first read and checked at every later one: a model file
// changed while strata streams it is a clear error, not garbage logits. A truncated file is too.
#pragma once
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "storage/direct_file.h"

namespace strata::storage {

struct Extent {
  std::string name;     // for error messages
  uint64_t offset = 0;  // absolute file offset
  size_t bytes = 0;
};

struct StreamStats {
  uint64_t bytes_read = 0;     // bytes read from the file by the ring (aligned spans)
  uint64_t reads = 0;          // tensors read
  double wait_seconds = 0;     // time acquire() waited for the disk
  uint64_t resyncs = 0;        // out-of-order acquires (read-ahead dropped)
  uint64_t passes = 0;         // acquires of the first tensor: forward passes (tokens, in decode)
};

class WeightStreamer {
 public:
  // `file` must outlive the streamer. `sequence`: the streamed tensors in the order they are used.
  // `slots` >= 1 buffers, each as large as the largest tensor's aligned span.
  WeightStreamer(const DirectFile& file, std::vector<Extent> sequence, int slots, bool verify = true);
  ~WeightStreamer();
  WeightStreamer(const WeightStreamer&) = delete;
  WeightStreamer& operator=(const WeightStreamer&) = delete;

  // The bytes of sequence[i], valid until release(i), which the same thread must call before its next
  // acquire (one tensor is in use at a time; other threads' acquires wait). Throws strata::Error when the
  // read failed (the file is truncated, unreadable, or its bytes changed since the first read).
  const uint8_t* acquire(size_t i);
  void release(size_t i);

  size_t size() const { return seq_.size(); }
  const Extent& extent(size_t i) const { return seq_[i]; }
  size_t ring_bytes() const { return slot_bytes_ * slots_.size(); }
  size_t slot_bytes() const { return slot_bytes_; }
  StreamStats stats() const;

 private:
  enum class State { kFree, kQueued, kReading, kReady, kInUse };
  struct Slot {
    AlignedBuffer buf;
    State state = State::kFree;
    size_t ext = 0;
    const uint8_t* data = nullptr;
    std::string error;
  };
  void fill_locked();  // starts reads into every free slot
  void io_loop();

  const DirectFile& file_;
  std::vector<Extent> seq_;
  std::vector<uint64_t> sums_;
  std::vector<bool> have_sum_;
  bool verify_;
  size_t slot_bytes_ = 0;
  std::vector<Slot> slots_;
  std::deque<int> queue_;  // slots waiting for the I/O thread, in sequence order
  std::deque<int> order_;  // slots queued, reading or ready, in sequence order (the read-ahead)
  size_t cursor_ = 0;      // next sequence index to read
  bool stop_ = false;
  mutable std::mutex mu_;
  std::mutex use_mu_;      // held from acquire() to release(): one tensor in use at a time
  std::condition_variable cv_io_, cv_done_;
  StreamStats stats_;
  std::vector<std::thread> io_;  // kIoThreads readers of the same queue
};

// A fast checksum of a buffer (64-bit words mixed by position; detects changed, moved or zeroed bytes).
uint64_t checksum(const uint8_t* p, size_t n);

}  // namespace strata::storage
