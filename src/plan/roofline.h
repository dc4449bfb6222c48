// The roofline (LLM-Viewer's "LLM Inference Unveiled"): a step of work takes as long as its slowest
// resource. A step is described by what it moves and computes; a machine by the rates it sustains.
//
//   t_dram    = dram_bytes / DRAM read bandwidth (at the thread count used)
//   t_ssd     = ssd_bytes / SSD sequential throughput + ssd_random_reads / 4 KiB random IOPS
//   t_compute = int8_ops / (int8 dot rate * efficiency) + f32_flops / (f32 FMA rate * efficiency)
//   overlapped step:  max(t_dram, t_compute, t_ssd)   (SSD reads land in a ring of buffers while the
//                     CPU works on what is already there: the streaming design of docs/PLANNING.md)
//   serial step:      max(t_dram, t_compute) + t_ssd  (no prefetch: a lower bound on speed)
// The probe's DRAM figure is a real streaming read, so it is used as is; its compute figures are bare
// instruction loops, which matmul kernels (loads, dequantization, activation quantization) never reach,
// hence the efficiency factor.
#pragma once
#include <string>
#include <vector>

#include "plan/probe.h"

namespace strata::plan {

// The rates one thread count sustains on a machine: what the roofline needs from a MachineProfile.
struct MachineRates {
  int threads = 1;
  double dram_gbps = 0;         // GB/s (1e9 bytes/s)
  double f32_gflops = 0;        // peak f32 FMA rate, GFLOP/s
  double int8_gops = 0;         // peak int8 dot-product rate, GOP/s
  double ssd_seq_gbps = 0;      // streaming read, GB/s: the probe's first-read streaming rate (or its older
                                // streaming / sequential figure); a plan replaces it by the rate it chose
                                // (choose_ssd_rate) for its streamed set
  std::vector<RereadPoint> ssd_reread;  // re-read rates by set size, largest set first (empty: not measured)
  double ssd_rand_iops = 0;     // 4 KiB random reads per second (queue depth 1)
  double compute_efficiency = 0.5;  // fraction of the peak compute rates that matmul kernels reach
  bool ssd_assumed = false;     // the profile had no SSD measurement: ssd_* are kAssumedSsd*
};

inline constexpr double kAssumedSsdSeqGbps = 0.5;
inline constexpr double kAssumedSsdRandIops = 5000;

// The rates at `threads` (0: the largest thread count the profile measured). Missing compute rates fall
// back to 1 thread's rate times the thread count; a missing SSD to the assumed figures above.
// Throws strata::Error when the profile has no DRAM bandwidth.
MachineRates rates_at(const MachineProfile& p, int threads, double compute_efficiency = 0.5);

// The largest thread count the profile measured DRAM bandwidth at (at least 1).
int max_threads(const MachineProfile& p);

// Which SSD rate prices a plan's streamed bytes. The streamer reads the same streamed set every token, so:
//   - the profile measured re-read rates (ssd_reread) and some measured set holds the streamed set: the
//     re-read rate of the smallest such set ("reread");
//   - it measured them but the streamed set is larger than every measured set: ssd_seq_gbps, the first-read
//     rate ("first_read") — cyclic passes over a set larger than an LRU cache get no hits;
//   - no re-read rates (profiles before session 5, hand-written ones): ssd_seq_gbps as is ("stream", or
//     "assumed" without an SSD measurement).
struct SsdRateChoice {
  double gbps = 0;
  const char* source = "stream";  // "reread", "first_read", "stream", "assumed"
  int64_t set_bytes = 0;          // the measured re-read set used (0 unless "reread")
};
SsdRateChoice choose_ssd_rate(const MachineRates& m, double streamed_bytes_per_token);

enum class Bound { kCompute, kDram, kSsd };
const char* bound_name(Bound b);  // "compute", "dram", "ssd"

// One step of work (a decode token, a prefill micro-batch).
struct StepWork {
  double dram_bytes = 0;        // bytes the CPU reads from DRAM (weights, KV, streamed weights in the ring)
  double ssd_bytes = 0;         // bytes read sequentially from the model file
  double ssd_random_reads = 0;  // small random reads (embedding rows on disk)
  double int8_ops = 0;          // 2 per multiply-add with quantized weights
  double f32_flops = 0;         // 2 per multiply-add with float weights, and attention
};

struct StepTime {
  double seconds = 0;           // the overlapped time (max of the three)
  double serial_seconds = 0;    // max(t_dram, t_compute) + t_ssd
  double t_dram = 0, t_ssd = 0, t_compute = 0;
  Bound bound = Bound::kDram;   // the largest term
};

StepTime roofline(const StepWork& w, const MachineRates& m);

}  // namespace strata::plan
