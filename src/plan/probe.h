// `strata probe`: measures the machine the roofline and the memory planner reason about, and saves it as a
// JSON profile that `strata bench`, the planner and the microbenchmarks read.
//   - DRAM read bandwidth with 1..N threads: a streaming read-only sum over a buffer several times the
//     last-level cache, best of a few passes;
//   - peak f32 FMA and int8 dot-product rates, per thread and with all threads;
//   - cache sizes (/sys/devices/system/cpu/cpu0/cache);
//   - SSD sequential and 4 KiB random read throughput with O_DIRECT, on a file the probe creates (and
//     removes) in a given directory.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace strata::plan {

struct CacheInfo {
  int level = 0;
  std::string type;        // "Data", "Instruction", "Unified"
  int64_t size_bytes = 0;
  int line_bytes = 0;
  int shared_cpus = 0;     // logical CPUs sharing it
};

struct RatePoint {
  int threads = 0;
  double value = 0;  // GB/s, GFLOP/s or GOP/s
};

// The re-read rate of a set of `set_bytes` of the file: whole passes over the same bytes again and again, as
// the weight streamer reads its streamed set every token. A host that caches the virtual disk (a VM) or a
// device cache serves a set that fits it faster than a first read; a set larger than such an LRU cache gets
// ~no hits on cyclic passes, i.e. the first-read rate.
struct RereadPoint {
  int64_t set_bytes = 0;
  double gbps = 0;
};

struct SsdProfile {
  std::string path;          // the directory the test file was created in
  bool direct_io = false;    // O_DIRECT worked; otherwise the reads went through the page cache (evicted first)
  int64_t file_bytes = 0;
  double seq_read_gbps = 0;  // 4 MiB reads, one at a time, the first read of a freshly written file
  // What the weight streamer gets (storage/weight_streamer.h): 2 MiB reads, two in flight, the same file
  // read again and again (the streamer reads the same bytes every token; on a VM the host may cache the
  // virtual disk, so repeated reads can run faster than a first one). The median of the whole passes after
  // the first; 0 in profiles written before 2026-11-29 15:00 (the planner then uses seq_read_gbps).
  // Since session 5 (profiles with `reread`): the FIRST pass of that pattern over the measured region
  // (cold, or as cold as a file recently read can be), the rate for streamed sets larger than any re-read set.
  double stream_read_gbps = 0;
  // Re-read rates, largest set first (suffixes of the region, see measure_stream_rates); empty in profiles
  // written before session 5 (the planner then prices every streamed set at stream_read_gbps).
  std::vector<RereadPoint> reread;
  std::string stream_file;   // when set (`--ssd-file`): stream_read_gbps was measured over this file (a model)
  double rand4k_qd1_iops = 0;  // 4 KiB reads at random offsets, one at a time
  double rand4k_qd8_iops = 0;  // the same with 8 reads in flight
};

struct MachineProfile {
  int version = 1;
  std::string created;       // UTC, ISO 8601
  std::string cpu_model;
  int logical_cpus = 0;
  std::string simd_target;   // the kernels' SIMD target on this CPU ("AVX3_DL", "AVX2", ...)
  double load_average = 0;   // 1-minute load average when the probe started: above logical_cpus, other
                             // programs competed for the CPUs and the rates are lower than the hardware's
  std::vector<CacheInfo> caches;
  int64_t dram_buffer_bytes = 0;
  std::vector<RatePoint> dram_read_gbps;  // by thread count
  std::vector<RatePoint> fma_f32_gflops;  // 1 thread and all threads
  std::vector<RatePoint> int8_dot_gops;   // 1 thread and all threads
  bool has_ssd = false;
  SsdProfile ssd;

  // The rate measured with the largest thread count <= threads (0 when nothing was measured).
  static double at(const std::vector<RatePoint>& v, int threads);
  double dram_gbps(int threads) const { return at(dram_read_gbps, threads); }

  std::string to_json() const;  // pretty-printed
  // Throws strata::Error on malformed JSON or a missing field.
  static MachineProfile from_json(const std::string& text);
};

struct ProbeOptions {
  bool quick = false;        // smaller buffers and shorter runs (a few seconds in all)
  bool ssd = true;
  std::string ssd_path = "/tmp";  // directory for the SSD test file
  std::string ssd_file;      // when set: the streaming rate is measured over this existing file (read only)
  int max_threads = 0;       // 0: every logical CPU
  // Status lines while measuring (the CLI shows them on a terminal only); may be empty.
  std::function<void(const std::string&)> status;
};

MachineProfile probe_machine(const ProbeOptions& opt);

// Parts of the probe, usable on their own.
std::vector<CacheInfo> read_cache_info();
// Bytes of the last-level cache (0 when unknown).
int64_t last_level_cache_bytes(const std::vector<CacheInfo>& caches);
// Best-of-`passes` read bandwidth in GB/s of a streaming pass over `bytes` with `threads` threads.
double measure_dram_read_gbps(int64_t bytes, int threads, int passes);
SsdProfile measure_ssd(const std::string& dir, int64_t file_bytes, double seconds_per_test);
// The weight streamer itself (storage::WeightStreamer: 2 MiB reads, two in flight, a ring of 2 slots) over the
// first max_bytes of an existing file (read only, O_DIRECT if it can), cut into 12 MiB "tensors": one first
// pass over the whole region, then two timed passes over each set: the region's suffixes of 4/4, 3/4, 2/4
// and 1/4 of it (after a pass over the region an LRU cache holds its suffix, so no warm-up pass is needed).
struct StreamReadRates {
  double first_gbps = 0;            // the first pass
  std::vector<RereadPoint> reread;  // largest set first
};
StreamReadRates measure_stream_rates(const std::string& file, int64_t max_bytes);

// $STRATA_PROFILE, else $HOME/.cache/strata/profile.json.
std::string default_profile_path();
// Throws strata::Error when the file is missing or malformed.
MachineProfile load_profile(const std::string& path);
// Creates the parent directories. Throws strata::Error on I/O errors.
void save_profile(const MachineProfile& p, const std::string& path);

}  // namespace strata::plan
