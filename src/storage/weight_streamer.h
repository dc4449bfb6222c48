// Weights that do not fit the memory budget, read from the model file each token into a fixed ring of
// aligned buffers by two background reader threads, the next tensors read while the current one computes.
//
// The streamer knows the order in which the forward pass uses the streamed tensors (the sequence, which
// repeats every token): whenever a ring slot is free it starts reading the next tensor of the sequence
// into it, so the disk never waits for the compute. acquire(i) waits until tensor i is in a slot;
// release(i) frees the slot, which starts the next read. Asking for a tensor out of order (a pass that
// skips the output matrix) drops the read-ahead and resumes from there: slower, never wrong.
//
// Reads are split into chunks (2 MiB) and the two readers always take the next chunk of the EARLIEST
// tensor in the sequence: two reads stay in flight (the disk does not idle between requests), and the
// tensor the compute needs next arrives at the disk's whole rate instead of sharing it with a read-ahead
// that is not needed yet (with one whole-tensor read per reader, the urgent read could get half the rate;
// side by side at 90-100% of TinyLlama Q8_0 on a loaded machine the difference was within the noise).
//
// Every tensor's bytes are checksummed at their first read (in 8 windows); later reads check one window
// each, in turn (every byte again within 8 reads), and the file's size and times (fstat) at every read:
// once they changed, every window of every read is checked. A model file changed while strata streams it
// is a clear error, not garbage logits; a truncated one too. (Checking every byte at every read cost 7-16%
// of the CPU: it reads each streamed tensor from DRAM once more.)
#pragma once
#include <array>
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
  uint64_t bytes_checked = 0;  // bytes checksummed (first reads whole, later ones a window)
};

class WeightStreamer {
 public:
  static constexpr size_t kDefaultChunk = size_t{2} << 20;
  static constexpr int kWindows = 8;                   // checksum windows per tensor
  static constexpr size_t kSampleMin = size_t{1} << 20;  // smaller tensors: every window at every read

  // `file` must outlive the streamer. `sequence`: the streamed tensors in the order they are used.
  // `slots` >= 1 buffers, each as large as the largest tensor's aligned span. `chunk_bytes`: the size of
  // one read (rounded up to kDirectAlign).
  WeightStreamer(const DirectFile& file, std::vector<Extent> sequence, int slots, bool verify = true,
                 size_t chunk_bytes = kDefaultChunk);
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
    int chunks = 0, started = 0, done = 0;  // chunks of this read: in all, handed to a reader, finished
  };
  void fill_locked();  // starts reads into every free slot
  bool in_flight_locked() const;  // a reader is reading into some slot
  void drop_read_ahead_locked(std::unique_lock<std::mutex>& lk);
  void io_loop();
  std::string verify_read(size_t idx, const uint8_t* data);  // "" or the error; takes mu_ itself

  const DirectFile& file_;
  std::vector<Extent> seq_;
  std::vector<std::array<uint64_t, kWindows>> sums_;
  std::vector<bool> have_sum_;
  std::vector<uint32_t> checks_;  // reads checked per tensor (which window is next)
  bool verify_;
  bool verify_all_ = false;       // the file changed since it was opened: check every window
  size_t chunk_ = kDefaultChunk;
  size_t slot_bytes_ = 0;
  std::vector<Slot> slots_;
  std::deque<int> queue_;  // slots with chunks not yet handed to a reader, in sequence order
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
