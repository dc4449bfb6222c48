// The built-in machine profiles (hardware_profiles.h). Each is a probe-schema profile written by hand.
#include "plan/hardware_profiles.h"

#include <filesystem>
#include <vector>

#include "core/error.h"

namespace strata::plan {

namespace {

constexpr int64_t kGiB = int64_t{1} << 30;

MachineProfile make(std::string cpu, int cpus, std::string simd, std::vector<RatePoint> dram,
                    std::vector<RatePoint> fma, std::vector<RatePoint> int8, double ssd_gbps, double iops_qd1,
                    double iops_qd8) {
  MachineProfile p;
  p.created = "hand-written";
  p.cpu_model = std::move(cpu);
  p.logical_cpus = cpus;
  p.simd_target = std::move(simd);
  p.dram_read_gbps = std::move(dram);
  p.fma_f32_gflops = std::move(fma);
  p.int8_dot_gops = std::move(int8);
  p.has_ssd = true;
  p.ssd.path = "(hand-written)";
  p.ssd.direct_io = true;
  p.ssd.seq_read_gbps = ssd_gbps;
  p.ssd.rand4k_qd1_iops = iops_qd1;
  p.ssd.rand4k_qd8_iops = iops_qd8;
  return p;
}

std::vector<HardwareProfile> make_all() {
  std::vector<HardwareProfile> v;
  // The project's reference machine (../shared/reference/llamacpp-baseline.md): DRAM read bandwidth
  // measured (17.8 GB/s 1 thread, 29.8 GB/s 2 threads), direct sequential disk reads measured at
  // 0.6-0.9 GB/s (0.75 here). Compute: Zen 3 at ~3 GHz, 2x256-bit FMA (96 GFLOP/s per core peak), int8
  // through pmaddubsw+pmaddwd (~2x the f32 rate).
  v.push_back({"epyc-zen3-2c", "AMD EPYC Zen 3, 2 cores, AVX2, 24 GiB (the project's reference machine)",
               24 * kGiB,
               make("AMD EPYC Zen 3 (hand-written)", 2, "AVX2", {{1, 17.8}, {2, 29.8}}, {{1, 96}, {2, 190}},
                    {{1, 190}, {2, 375}}, 0.75, 8000, 40000)});
  // Apple M2 (4 performance + 4 efficiency cores), LPDDR5 100 GB/s peak; one core streams ~55 GB/s, the
  // CPU cluster ~65 GB/s. Performance cores: 4x128-bit FMA at 3.5 GHz (112 GFLOP/s), SDOT at 4x the f32
  // rate in ops; efficiency cores add ~25%. Internal SSD ~2.5 GB/s (256 GB models are slower, ~1.5).
  v.push_back({"m2-air-16g", "Apple MacBook Air M2, 4P+4E cores, NEON+dotprod, 16 GiB LPDDR5", 16 * kGiB,
               make("Apple M2 (hand-written)", 8, "NEON", {{1, 55}, {4, 65}, {8, 66}},
                    {{1, 112}, {4, 440}, {8, 540}}, {{1, 440}, {4, 1750}, {8, 2100}}, 2.5, 12000, 60000)});
  // Raspberry Pi 5 8 GB: 4x Cortex-A76 at 2.4 GHz, 32-bit LPDDR4X-4267 (17 GB/s peak; ~5.5 GB/s from one
  // core, ~8.5 GB/s from four). 2x128-bit FMA per core (38 GFLOP/s), SDOT at 4x in ops. Disk: an NVMe
  // SSD on the PCIe 2.0 x1 HAT, ~0.45 GB/s (a microSD card: ~0.09 GB/s).
  v.push_back({"rpi5-8g", "Raspberry Pi 5, 4x Cortex-A76 2.4 GHz, 8 GiB LPDDR4X, NVMe HAT", 8 * kGiB,
               make("Cortex-A76 (hand-written)", 4, "NEON", {{1, 5.5}, {2, 7.5}, {4, 8.5}},
                    {{1, 38}, {2, 76}, {4, 150}}, {{1, 150}, {2, 300}, {4, 600}}, 0.45, 6000, 25000)});
  return v;
}

}  // namespace

std::span<const HardwareProfile> builtin_profiles() {
  static const std::vector<HardwareProfile> v = make_all();
  return v;
}

const HardwareProfile* find_builtin_profile(std::string_view name) {
  for (const auto& h : builtin_profiles())
    if (h.name == name) return &h;
  return nullptr;
}

std::string builtin_profile_names() {
  std::string s;
  for (const auto& h : builtin_profiles()) s += (s.empty() ? "" : ", ") + h.name;
  return s;
}

ResolvedProfile resolve_profile(const std::string& arg) {
  ResolvedProfile r;
  auto from_builtin = [&](const HardwareProfile& h) {
    r.profile = h.profile;
    r.name = h.name;
    r.source = "built-in";
    r.mem_bytes = h.mem_bytes;
  };
  std::error_code ec;
  if (arg.empty()) {
    const std::string path = default_profile_path();
    if (std::filesystem::exists(path, ec)) {
      r.profile = load_profile(path);
      r.name = path;
      r.source = "probed";
      r.this_machine = true;
      return r;
    }
    from_builtin(*find_builtin_profile(kDefaultBuiltinProfile));
    r.note = fmt::format("no probed profile at {}: predictions use the built-in {} profile; `strata probe` "
                         "measures this machine", path, kDefaultBuiltinProfile);
    return r;
  }
  if (const HardwareProfile* h = find_builtin_profile(arg)) {
    from_builtin(*h);
    return r;
  }
  if (!std::filesystem::exists(arg, ec))
    fail("--profile {}: neither a built-in profile ({}) nor a profile file (write one with `strata probe -o "
         "FILE`)", arg, builtin_profile_names());
  r.profile = load_profile(arg);
  r.name = arg;
  r.source = "file";
  return r;
}

}  // namespace strata::plan
