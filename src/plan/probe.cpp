// The machine probe (probe.h): bandwidth, compute peaks, caches, SSD; the profile's JSON form.
#include "plan/probe.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <thread>
#include <vector>

#include "core/error.h"
#include "core/thread_pool.h"
#include "kernels/matmul.h"
#include "kernels/stream_read.h"
#include "plan/probe_loops.h"
#include "storage/direct_file.h"
#include "storage/weight_streamer.h"

namespace strata::plan {

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

std::string read_line(const fs::path& p) {
  std::ifstream f(p);
  std::string s;
  std::getline(f, s);
  return s;
}

// "48K", "2048K", "300M", "1G" -> bytes.
int64_t parse_size(const std::string& s) {
  if (s.empty()) return 0;
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  int64_t mult = 1;
  if (end && *end) {
    switch (*end) {
      case 'K': case 'k': mult = int64_t{1} << 10; break;
      case 'M': case 'm': mult = int64_t{1} << 20; break;
      case 'G': case 'g': mult = int64_t{1} << 30; break;
      default: break;
    }
  }
  return static_cast<int64_t>(v * static_cast<double>(mult));
}

// "0-1,4,6-7" -> 5.
int count_cpu_list(const std::string& s) {
  int n = 0;
  std::stringstream ss(s);
  std::string part;
  while (std::getline(ss, part, ',')) {
    if (part.empty()) continue;
    const auto dash = part.find('-');
    if (dash == std::string::npos) {
      ++n;
    } else {
      n += std::atoi(part.c_str() + dash + 1) - std::atoi(part.c_str()) + 1;
    }
  }
  return n;
}

std::string cpu_model_name() {
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("model name", 0) == 0 || line.rfind("Model", 0) == 0) {
      const auto colon = line.find(':');
      if (colon != std::string::npos) return line.substr(line.find_first_not_of(" \t", colon + 1));
    }
  }
  return "unknown";
}

std::string utc_now() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// Anonymous memory, huge pages when the kernel allows, touched (so that the timed passes do not fault).
class BigBuffer {
 public:
  explicit BigBuffer(int64_t bytes) : n_(static_cast<size_t>(bytes)) {
    void* p = ::mmap(nullptr, n_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) fail("probe: cannot allocate {} MiB for the bandwidth test: {}", n_ >> 20, std::strerror(errno));
    p_ = static_cast<uint8_t*>(p);
#ifdef MADV_HUGEPAGE
    ::madvise(p_, n_, MADV_HUGEPAGE);
#endif
    std::memset(p_, 1, n_);
  }
  ~BigBuffer() { ::munmap(p_, n_); }
  BigBuffer(const BigBuffer&) = delete;
  BigBuffer& operator=(const BigBuffer&) = delete;
  const uint8_t* data() const { return p_; }
  size_t size() const { return n_; }

 private:
  uint8_t* p_ = nullptr;
  size_t n_ = 0;
};

std::atomic<uint64_t> g_sink{0};

double read_gbps(const BigBuffer& buf, int threads, int passes) {
  ThreadPool pool(threads);
  const int64_t chunks = static_cast<int64_t>(buf.size() / 256);
  auto pass = [&] {
    pool.run([&](int w) {
      int64_t b, e;
      split_range(chunks, threads, w, b, e);
      g_sink += kernels::stream_read_sum(buf.data() + b * 256, static_cast<size_t>(e - b) * 256);
    });
  };
  pass();  // warm up: threads awake, TLB
  double best = 0;
  for (int i = 0; i < passes; ++i) {
    const auto t0 = Clock::now();
    pass();
    best = std::max(best, static_cast<double>(buf.size()) / seconds_since(t0) / 1e9);
  }
  return best;
}

// Rate of a loop run for about `seconds` on each of `threads` threads at once (units per second / 1e9).
template <class Loop>
double peak_rate(int threads, double seconds, Loop loop) {
  // Calibrate: iterations for ~seconds on one thread.
  int64_t iters = 1 << 16;
  for (;;) {
    double units;
    const auto t0 = Clock::now();
    loop(iters, &units);
    const double dt = seconds_since(t0);
    if (dt > seconds / 8 || iters > (int64_t{1} << 40)) {
      iters = static_cast<int64_t>(static_cast<double>(iters) * seconds / std::max(dt, 1e-9));
      break;
    }
    iters *= 4;
  }
  ThreadPool pool(threads);
  std::vector<double> units(threads, 0.0);
  const auto t0 = Clock::now();
  pool.run([&](int w) { loop(iters, &units[w]); });
  const double dt = seconds_since(t0);
  double total = 0;
  for (double u : units) total += u;
  return total / dt / 1e9;
}

// The probe's test file, removed when this goes out of scope.
struct TempFile {
  std::string path;
  ~TempFile() {
    if (!path.empty()) ::unlink(path.c_str());
  }
};

struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

void* aligned_block(size_t bytes) {
  void* p = nullptr;
  if (posix_memalign(&p, 4096, bytes) != 0) throw std::bad_alloc();
  return p;
}

}  // namespace

double MachineProfile::at(const std::vector<RatePoint>& v, int threads) {
  double best = 0;
  int best_t = 0;
  for (const auto& p : v)
    if (p.threads <= threads && p.threads > best_t) best_t = p.threads, best = p.value;
  return best;
}

std::vector<CacheInfo> read_cache_info() {
  std::vector<CacheInfo> out;
  const fs::path base = "/sys/devices/system/cpu/cpu0/cache";
  std::error_code ec;
  if (!fs::exists(base, ec)) return out;
  for (int i = 0; i < 16; ++i) {
    const fs::path d = base / ("index" + std::to_string(i));
    if (!fs::exists(d, ec)) break;
    CacheInfo c;
    c.level = std::atoi(read_line(d / "level").c_str());
    c.type = read_line(d / "type");
    c.size_bytes = parse_size(read_line(d / "size"));
    c.line_bytes = std::atoi(read_line(d / "coherency_line_size").c_str());
    c.shared_cpus = count_cpu_list(read_line(d / "shared_cpu_list"));
    out.push_back(c);
  }
  return out;
}

int64_t last_level_cache_bytes(const std::vector<CacheInfo>& caches) {
  int level = 0;
  int64_t bytes = 0;
  for (const auto& c : caches)
    if (c.type != "Instruction" && c.level >= level) level = c.level, bytes = c.size_bytes;
  return bytes;
}

double measure_dram_read_gbps(int64_t bytes, int threads, int passes) {
  const BigBuffer buf(bytes);
  return read_gbps(buf, threads, passes);
}

namespace {
constexpr int64_t kStreamChunk = int64_t{2} << 20;

// The probe's "tensors": the set is cut into pieces of this size (a TinyLlama-1.1B FFN matrix in Q8_0 is
// 11.7 MiB, Llama-2-7B's in Q4_0 24.2 MiB), which the ring's slots are as large as.
constexpr int64_t kProbeTensor = int64_t{12} << 20;

// Bytes [from, to) of the file as a streamed sequence.
std::vector<storage::Extent> probe_sequence(int64_t from, int64_t to) {
  std::vector<storage::Extent> seq;
  for (int64_t o = from; o < to; o += kProbeTensor)
    seq.push_back({"probe bytes", static_cast<uint64_t>(o), static_cast<size_t>(std::min(kProbeTensor, to - o))});
  return seq;
}

// One pass of the weight streamer itself over its sequence, nothing computed: GB/s. The same reader code
// as a streamed decode (two readers, 2 MiB chunks, a ring of 2 huge-page slots, the hand-offs): side by side
// at load 6.5 (2026-11-29 18:35) it read 1.25-1.47 GB/s where plain 2 MiB preads by two threads into huge
// pages read 1.45-1.79 and a streamed decode at 50% got 1.24.
double streamer_pass_gbps(storage::WeightStreamer& s) {
  double bytes = 0;
  const auto t0 = Clock::now();
  for (size_t i = 0; i < s.size(); ++i) {
    s.acquire(i);
    s.release(i);
    bytes += static_cast<double>(s.extent(i).bytes);
  }
  return bytes / seconds_since(t0) / 1e9;
}
}  // namespace

StreamReadRates measure_stream_rates(const std::string& file, int64_t max_bytes) {
  const storage::DirectFile f = storage::DirectFile::open(file);
  const int64_t bytes = std::min<int64_t>(max_bytes, static_cast<int64_t>(f.size_at_open())) / kStreamChunk * kStreamChunk;
  if (bytes <= 0) fail("probe: --ssd-file {} is smaller than one 2 MiB read", file);
  const int64_t n_chunks = bytes / kStreamChunk;
  StreamReadRates r;
  {  // The first pass checksums every byte, as a decode's first token does.
    storage::WeightStreamer s(f, probe_sequence(0, bytes), 2, /*verify=*/true);
    r.first_gbps = streamer_pass_gbps(s);
  }
  for (int quarters = 4; quarters >= 1; --quarters) {
    const int64_t n = std::max<int64_t>(1, n_chunks * quarters / 4);
    if (!r.reread.empty() && n * kStreamChunk >= r.reread.back().set_bytes) continue;  // tiny files
    // Two timed passes over the suffix of n chunks (no checksums: a decode checks an eighth of each read,
    // ~1% of the read time): bytes over the total time.
    storage::WeightStreamer s(f, probe_sequence(bytes - n * kStreamChunk, bytes), 2, /*verify=*/false);
    const double t = 1 / streamer_pass_gbps(s) + 1 / streamer_pass_gbps(s);
    r.reread.push_back({n * kStreamChunk, 2 / t});
  }
  return r;
}

SsdProfile measure_ssd(const std::string& dir, int64_t file_bytes, double seconds_per_test) {
  SsdProfile r;
  r.path = dir;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) fail("probe: --ssd-path {} is not a directory", dir);
  struct statvfs sv {};
  if (::statvfs(dir.c_str(), &sv) == 0) {
    const auto avail = static_cast<int64_t>(sv.f_bavail) * static_cast<int64_t>(sv.f_frsize);
    file_bytes = std::min(file_bytes, avail / 10);  // never take more than a tenth of the free space
  }
  constexpr int64_t kChunk = int64_t{4} << 20;
  file_bytes = std::max<int64_t>(kChunk, file_bytes / kChunk * kChunk);
  r.file_bytes = file_bytes;

  TempFile tmp;
  tmp.path = (fs::path(dir) / ("strata-probe-" + std::to_string(::getpid()) + ".tmp")).string();
  // Huge pages, as the streamer reads into: an O_DIRECT read of 4 MiB into 4 KiB pages is 1024 segments, which
  // this VM's virtio disk (max_segments 254) splits into several requests; side by side (2026-11-29 18:30,
  // load 7.5) 2 MiB preads ran at 0.8-1.0 GB/s into 4 KiB pages and 1.6-1.8 GB/s into huge pages.
  const storage::AlignedBuffer block_mem(kChunk);
  uint8_t* const block = block_mem.data();
  {  // Write incompressible data, then flush it to the device.
    Fd w;
    w.fd = ::open(tmp.path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (w.fd < 0) fail("probe: cannot create {}: {}", tmp.path, std::strerror(errno));
    std::mt19937_64 rng(42);
    auto* words = reinterpret_cast<uint64_t*>(block);
    for (int64_t off = 0; off < file_bytes; off += kChunk) {
      for (size_t i = 0; i < kChunk / 8; ++i) words[i] = rng();
      if (::pwrite(w.fd, block, kChunk, off) != kChunk)
        fail("probe: writing {} failed: {}", tmp.path, std::strerror(errno));
    }
    if (::fsync(w.fd) != 0) fail("probe: fsync {} failed: {}", tmp.path, std::strerror(errno));
  }
  Fd f;
  f.fd = ::open(tmp.path.c_str(), O_RDONLY | O_DIRECT);
  r.direct_io = f.fd >= 0;
  if (f.fd < 0) {  // e.g. tmpfs: buffered reads of evicted pages
    f.fd = ::open(tmp.path.c_str(), O_RDONLY);
    if (f.fd < 0) fail("probe: cannot open {}: {}", tmp.path, std::strerror(errno));
    ::posix_fadvise(f.fd, 0, 0, POSIX_FADV_DONTNEED);
  }

  {  // Sequential: whole file (or as much as fits in the time), one 4 MiB read at a time.
    int64_t done = 0;
    const auto t0 = Clock::now();
    for (int64_t off = 0; off < file_bytes; off += kChunk) {
      if (::pread(f.fd, block, kChunk, off) != kChunk) fail("probe: reading {} failed: {}", tmp.path, std::strerror(errno));
      done += kChunk;
      if (seconds_since(t0) > 2 * seconds_per_test) break;
    }
    r.seq_read_gbps = static_cast<double>(done) / seconds_since(t0) / 1e9;
  }
  {
    StreamReadRates sr = measure_stream_rates(tmp.path, file_bytes);
    r.stream_read_gbps = sr.first_gbps;  // the file was read once above: not cold on a caching host
    r.reread = std::move(sr.reread);
  }
  const int64_t n_pages = file_bytes / 4096;
  auto random_reads = [&](int queue_depth) {
    if (!r.direct_io) ::posix_fadvise(f.fd, 0, 0, POSIX_FADV_DONTNEED);
    ThreadPool pool(queue_depth);
    std::vector<int64_t> count(queue_depth, 0);
    const auto t0 = Clock::now();
    pool.run([&](int w) {
      std::unique_ptr<void, decltype(&std::free)> page(aligned_block(4096), &std::free);
      std::mt19937_64 rng(1234 + w);
      std::uniform_int_distribution<int64_t> pick(0, n_pages - 1);
      while (seconds_since(t0) < seconds_per_test) {
        for (int i = 0; i < 16; ++i) {
          if (::pread(f.fd, page.get(), 4096, pick(rng) * 4096) != 4096) return;
          ++count[w];
        }
      }
    });
    const double dt = seconds_since(t0);
    int64_t total = 0;
    for (int64_t c : count) total += c;
    return static_cast<double>(total) / dt;
  };
  r.rand4k_qd1_iops = random_reads(1);
  r.rand4k_qd8_iops = random_reads(8);
  return r;
}

MachineProfile probe_machine(const ProbeOptions& opt) {
  auto status = [&](const std::string& s) {
    if (opt.status) opt.status(s);
  };
  MachineProfile p;
  p.created = utc_now();
  p.cpu_model = cpu_model_name();
  p.logical_cpus = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  p.simd_target = kernels::simd_target_name(kernels::simd_target());
  {
    std::ifstream la("/proc/loadavg");
    la >> p.load_average;
  }
  p.caches = read_cache_info();
  const int max_threads = opt.max_threads > 0 ? opt.max_threads : p.logical_cpus;

  // DRAM: a buffer several times the last-level cache, capped by a quarter of the memory.
  const int64_t llc = last_level_cache_bytes(p.caches);
  const int64_t mem = static_cast<int64_t>(::sysconf(_SC_PHYS_PAGES)) * ::sysconf(_SC_PAGESIZE);
  const int64_t lo = opt.quick ? int64_t{256} << 20 : int64_t{1} << 30;
  const int64_t hi = std::min<int64_t>(opt.quick ? int64_t{1} << 30 : int64_t{4} << 30, mem / 4);
  p.dram_buffer_bytes = std::max<int64_t>(int64_t{64} << 20, std::min(hi, std::max(lo, (opt.quick ? 2 : 4) * llc)));
  p.dram_buffer_bytes &= ~((int64_t{1} << 20) - 1);
  {
    status(fmt::format("allocating {} MiB for the DRAM read test", p.dram_buffer_bytes >> 20));
    const BigBuffer buf(p.dram_buffer_bytes);
    std::vector<int> counts;
    for (int t = 1; t < max_threads; t *= 2) counts.push_back(t);
    counts.push_back(max_threads);
    for (int t : counts) {
      status(fmt::format("DRAM read bandwidth, {} thread{}", t, t > 1 ? "s" : ""));
      p.dram_read_gbps.push_back({t, read_gbps(buf, t, opt.quick ? 3 : 5)});
    }
  }
  const double secs = opt.quick ? 0.1 : 0.3;
  status("peak f32 FMA rate");
  auto fma = [](int64_t iters, double* flops) { g_sink += static_cast<uint64_t>(probe_fma_loop(iters, flops)); };
  p.fma_f32_gflops.push_back({1, peak_rate(1, secs, fma)});
  if (max_threads > 1) p.fma_f32_gflops.push_back({max_threads, peak_rate(max_threads, secs, fma)});
  status("peak int8 dot-product rate");
  auto dot = [](int64_t iters, double* ops) { g_sink += static_cast<uint64_t>(probe_int8_loop(iters, ops)); };
  p.int8_dot_gops.push_back({1, peak_rate(1, secs, dot)});
  if (max_threads > 1) p.int8_dot_gops.push_back({max_threads, peak_rate(max_threads, secs, dot)});

  if (opt.ssd) {
    status(fmt::format("SSD reads (O_DIRECT) under {}", opt.ssd_path));
    p.ssd = measure_ssd(opt.ssd_path, opt.quick ? int64_t{256} << 20 : int64_t{1} << 30, opt.quick ? 0.3 : 1.0);
    if (!opt.ssd_file.empty()) {  // the streaming rate over the file strata will stream (a model)
      status(fmt::format("streaming reads of {}", opt.ssd_file));
      StreamReadRates sr = measure_stream_rates(opt.ssd_file, int64_t{2} << 30);
      p.ssd.stream_read_gbps = sr.first_gbps;
      p.ssd.reread = std::move(sr.reread);
      p.ssd.stream_file = opt.ssd_file;
    }
    p.has_ssd = true;
  }
  return p;
}

// ---- JSON ----

namespace {
using json = nlohmann::ordered_json;

json rates_to_json(const std::vector<RatePoint>& v, const char* unit) {
  json a = json::array();
  for (const auto& r : v) a.push_back({{"threads", r.threads}, {unit, r.value}});
  return a;
}

std::vector<RatePoint> rates_from_json(const json& a, const char* unit) {
  std::vector<RatePoint> v;
  for (const auto& e : a) v.push_back({e.at("threads").get<int>(), e.at(unit).get<double>()});
  return v;
}
}  // namespace

std::string MachineProfile::to_json() const {
  json j;
  j["version"] = version;
  j["created"] = created;
  j["cpu"] = {{"model", cpu_model}, {"logical_cpus", logical_cpus}, {"simd_target", simd_target}};
  j["load_average_1m"] = load_average;
  json caches_j = json::array();
  for (const auto& c : caches)
    caches_j.push_back({{"level", c.level}, {"type", c.type}, {"size_bytes", c.size_bytes},
                        {"line_bytes", c.line_bytes}, {"shared_cpus", c.shared_cpus}});
  j["caches"] = caches_j;
  j["dram_buffer_bytes"] = dram_buffer_bytes;
  j["dram_read_gbps"] = rates_to_json(dram_read_gbps, "gbps");
  j["fma_f32_gflops"] = rates_to_json(fma_f32_gflops, "gflops");
  j["int8_dot_gops"] = rates_to_json(int8_dot_gops, "gops");
  if (has_ssd) {
    json reread_j = json::array();
    for (const auto& r : ssd.reread) reread_j.push_back({{"set_bytes", r.set_bytes}, {"gbps", r.gbps}});
    j["ssd"] = {{"path", ssd.path},
                {"direct_io", ssd.direct_io},
                {"file_bytes", ssd.file_bytes},
                {"seq_read_gbps", ssd.seq_read_gbps},
                {"stream_read_gbps", ssd.stream_read_gbps},
                {"stream_file", ssd.stream_file},
                {"reread", reread_j},
                {"rand4k_qd1_iops", ssd.rand4k_qd1_iops},
                {"rand4k_qd8_iops", ssd.rand4k_qd8_iops}};
  }
  return j.dump(2);
}

MachineProfile MachineProfile::from_json(const std::string& text) {
  MachineProfile p;
  try {
    const json j = json::parse(text);
    p.version = j.at("version").get<int>();
    if (p.version != 1) fail("machine profile version {} is not supported (expected 1): run `strata probe` again", p.version);
    p.created = j.value("created", "");
    const json& cpu = j.at("cpu");
    p.cpu_model = cpu.value("model", "");
    p.logical_cpus = cpu.value("logical_cpus", 0);
    p.simd_target = cpu.value("simd_target", "");
    p.load_average = j.value("load_average_1m", 0.0);
    for (const auto& c : j.value("caches", json::array()))
      p.caches.push_back({c.at("level").get<int>(), c.at("type").get<std::string>(), c.at("size_bytes").get<int64_t>(),
                          c.value("line_bytes", 0), c.value("shared_cpus", 0)});
    p.dram_buffer_bytes = j.value("dram_buffer_bytes", int64_t{0});
    p.dram_read_gbps = rates_from_json(j.at("dram_read_gbps"), "gbps");
    p.fma_f32_gflops = rates_from_json(j.value("fma_f32_gflops", json::array()), "gflops");
    p.int8_dot_gops = rates_from_json(j.value("int8_dot_gops", json::array()), "gops");
    if (j.contains("ssd")) {
      const json& s = j.at("ssd");
      p.has_ssd = true;
      p.ssd.path = s.value("path", "");
      p.ssd.direct_io = s.value("direct_io", false);
      p.ssd.file_bytes = s.value("file_bytes", int64_t{0});
      p.ssd.seq_read_gbps = s.value("seq_read_gbps", 0.0);
      p.ssd.stream_read_gbps = s.value("stream_read_gbps", 0.0);
      p.ssd.stream_file = s.value("stream_file", "");
      for (const auto& e : s.value("reread", json::array())) {
        const RereadPoint r{e.at("set_bytes").get<int64_t>(), e.at("gbps").get<double>()};
        if (r.set_bytes <= 0 || !(r.gbps > 0)) fail("malformed machine profile: every ssd.reread entry needs set_bytes > 0 and gbps > 0 (run `strata probe` again)");
        p.ssd.reread.push_back(r);
      }
      std::sort(p.ssd.reread.begin(), p.ssd.reread.end(),
                [](const RereadPoint& a, const RereadPoint& b) { return a.set_bytes > b.set_bytes; });
      p.ssd.rand4k_qd1_iops = s.value("rand4k_qd1_iops", 0.0);
      p.ssd.rand4k_qd8_iops = s.value("rand4k_qd8_iops", 0.0);
    }
  } catch (const json::exception& e) {
    fail("malformed machine profile ({}): run `strata probe` again", e.what());
  }
  return p;
}

std::string default_profile_path() {
  if (const char* e = std::getenv("STRATA_PROFILE"); e && *e) return e;
  const char* home = std::getenv("HOME");
  return (fs::path(home && *home ? home : ".") / ".cache/strata/profile.json").string();
}

MachineProfile load_profile(const std::string& path) {
  std::ifstream f(path);
  if (!f) fail("no machine profile at {}: run `strata probe` first", path);
  std::stringstream ss;
  ss << f.rdbuf();
  return MachineProfile::from_json(ss.str());
}

void save_profile(const MachineProfile& p, const std::string& path) {
  std::error_code ec;
  const fs::path parent = fs::path(path).parent_path();
  if (!parent.empty()) fs::create_directories(parent, ec);
  if (ec) fail("cannot create {}: {}", parent.string(), ec.message());
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::trunc);
    if (!f) fail("cannot write {}", tmp);
    f << p.to_json() << "\n";
    if (!f) fail("cannot write {}", tmp);
  }
  fs::rename(tmp, path, ec);
  if (ec) fail("cannot write {}: {}", path, ec.message());
}

}  // namespace strata::plan
