// The roofline over a machine's measured rates (roofline.h).
#include "plan/roofline.h"

#include <algorithm>

#include "core/error.h"

namespace strata::plan {

int max_threads(const MachineProfile& p) {
  int t = 1;
  for (const auto& r : p.dram_read_gbps) t = std::max(t, r.threads);
  return t;
}

namespace {
// The rate at `threads`, or 1 thread's rate scaled by the thread count when only that was measured.
double compute_rate(const std::vector<RatePoint>& v, int threads) {
  if (v.empty()) return 0;
  const double r = MachineProfile::at(v, threads);
  if (r > 0) return r;
  return MachineProfile::at(v, 1) * threads;
}
}  // namespace

MachineRates rates_at(const MachineProfile& p, int threads, double compute_efficiency) {
  MachineRates m;
  m.threads = threads > 0 ? threads : max_threads(p);
  m.dram_gbps = p.dram_gbps(m.threads);
  if (!(m.dram_gbps > 0)) m.dram_gbps = p.dram_gbps(max_threads(p));
  if (!(m.dram_gbps > 0)) fail("the machine profile has no DRAM bandwidth (dram_read_gbps): run `strata probe` again");
  m.f32_gflops = compute_rate(p.fma_f32_gflops, m.threads);
  m.int8_gops = compute_rate(p.int8_dot_gops, m.threads);
  // A profile without compute figures: assume the memory-bound machines this planner is for (a Zen 3
  // core's peaks per thread), so that prefill is not predicted as free.
  if (!(m.f32_gflops > 0)) m.f32_gflops = 90.0 * m.threads;
  if (!(m.int8_gops > 0)) m.int8_gops = 2 * m.f32_gflops;
  m.compute_efficiency = compute_efficiency > 0 ? compute_efficiency : 0.5;
  if (p.has_ssd && p.ssd.seq_read_gbps > 0) {
    // What the streamer gets (its read size, two in flight; since session 5 its first pass) when the profile
    // has it; a plan may replace it by a re-read rate (choose_ssd_rate).
    m.ssd_seq_gbps = p.ssd.stream_read_gbps > 0 ? p.ssd.stream_read_gbps : p.ssd.seq_read_gbps;
    m.ssd_rand_iops = p.ssd.rand4k_qd1_iops > 0 ? p.ssd.rand4k_qd1_iops : kAssumedSsdRandIops;
    m.ssd_reread = p.ssd.reread;
  } else {
    m.ssd_seq_gbps = kAssumedSsdSeqGbps;
    m.ssd_rand_iops = kAssumedSsdRandIops;
    m.ssd_assumed = true;
  }
  return m;
}

SsdRateChoice choose_ssd_rate(const MachineRates& m, double streamed_bytes_per_token) {
  SsdRateChoice c;
  c.gbps = m.ssd_seq_gbps;
  c.source = m.ssd_assumed ? "assumed" : "stream";
  if (m.ssd_assumed || m.ssd_reread.empty()) return c;
  c.source = "first_read";
  for (const RereadPoint& r : m.ssd_reread)  // the smallest measured set that holds the streamed set
    if (static_cast<double>(r.set_bytes) >= streamed_bytes_per_token && (c.set_bytes == 0 || r.set_bytes < c.set_bytes))
      c = {r.gbps, "reread", r.set_bytes};
  return c;
}

const char* bound_name(Bound b) {
  switch (b) {
    case Bound::kCompute: return "compute";
    case Bound::kDram: return "dram";
    case Bound::kSsd: return "ssd";
  }
  return "?";
}

StepTime roofline(const StepWork& w, const MachineRates& m) {
  StepTime t;
  t.t_dram = w.dram_bytes / (m.dram_gbps * 1e9);
  t.t_ssd = w.ssd_bytes / (m.ssd_seq_gbps * 1e9) + w.ssd_random_reads / m.ssd_rand_iops;
  t.t_compute = w.int8_ops / (m.int8_gops * 1e9 * m.compute_efficiency) +
                w.f32_flops / (m.f32_gflops * 1e9 * m.compute_efficiency);
  t.seconds = std::max({t.t_dram, t.t_ssd, t.t_compute});
  t.serial_seconds = std::max(t.t_dram, t.t_compute) + t.t_ssd;
  if (t.seconds == t.t_compute && t.t_compute > 0) t.bound = Bound::kCompute;
  if (t.seconds == t.t_dram) t.bound = Bound::kDram;
  if (t.seconds == t.t_ssd && t.t_ssd > 0) t.bound = Bound::kSsd;
  return t;
}

}  // namespace strata::plan
