// `strata probe [--ssd-path DIR] [-o FILE] [--quick]`: measures this machine (DRAM read bandwidth by
// thread count, f32 FMA and int8 dot-product peaks, caches, SSD reads) and saves the profile that
// `strata bench`, the planner and the microbenchmarks read (default ~/.cache/strata/profile.json).
#include <fmt/format.h>

#include <cstdio>
#include <memory>
#include <string>

#include "cli/command.h"
#include "core/progress.h"
#include "plan/probe.h"

namespace strata::cli {
namespace {

std::string human_bytes(int64_t b) {
  if (b >= (int64_t{1} << 30)) return fmt::format("{:.1f} GiB", static_cast<double>(b) / (1 << 30));
  if (b >= (int64_t{1} << 20)) return fmt::format("{} MiB", b >> 20);
  return fmt::format("{} KiB", b >> 10);
}

void print_summary(const plan::MachineProfile& p, const std::string& path) {
  fmt::print("cpu        {} ({} logical CPUs, kernels on {})\n", p.cpu_model, p.logical_cpus, p.simd_target);
  if (p.load_average > 0.5 * p.logical_cpus)
    fmt::print("warning    the machine was busy (load average {:.1f} on {} CPUs): the rates below are what strata "
               "got, not what the hardware can do; probe again when it is idle\n",
               p.load_average, p.logical_cpus);
  for (const auto& c : p.caches)
    fmt::print("cache      L{} {:<11} {:>9}  shared by {} CPU{}\n", c.level, c.type, human_bytes(c.size_bytes),
               c.shared_cpus, c.shared_cpus == 1 ? "" : "s");
  for (const auto& r : p.dram_read_gbps)
    fmt::print("dram read  {:>6.1f} GB/s   {} thread{}  ({} buffer)\n", r.value, r.threads, r.threads == 1 ? "" : "s",
               human_bytes(p.dram_buffer_bytes));
  for (const auto& r : p.fma_f32_gflops)
    fmt::print("f32 fma    {:>6.1f} GFLOP/s {} thread{}\n", r.value, r.threads, r.threads == 1 ? "" : "s");
  for (const auto& r : p.int8_dot_gops)
    fmt::print("int8 dot   {:>6.1f} GOP/s   {} thread{}\n", r.value, r.threads, r.threads == 1 ? "" : "s");
  if (p.has_ssd) {
    fmt::print("ssd        {}{}: sequential {:.2f} GB/s (first read, 4 MiB, QD1), streaming {:.2f} GB/s "
               "(first pass, 2 MiB, QD2{}), 4 KiB random {:.0f} IOPS (QD1), {:.0f} IOPS (QD8)\n",
               p.ssd.path, p.ssd.direct_io ? " (O_DIRECT)" : " (buffered: O_DIRECT not supported here)",
               p.ssd.seq_read_gbps, p.ssd.stream_read_gbps,
               p.ssd.stream_file.empty() ? "" : ", over " + p.ssd.stream_file, p.ssd.rand4k_qd1_iops,
               p.ssd.rand4k_qd8_iops);
    for (const auto& r : p.ssd.reread)
      fmt::print("ssd reread {:>6.2f} GB/s   passes over the same {} (the planner's rate for streamed sets up to it)\n",
                 r.gbps, human_bytes(r.set_bytes));
  }
  fmt::print("saved      {}\n", path);
}

const Command kCmd{
    "probe",
    "Measure this machine (DRAM bandwidth, compute peaks, caches, SSD) and save its profile",
    [](CLI::App& sub) -> RunFn {
      struct Opts {
        std::string ssd_path = "/tmp";
        std::string ssd_file;
        std::string out;
        bool quick = false;
        bool no_ssd = false;
        bool json = false;
        int threads = 0;
      };
      auto o = std::make_shared<Opts>();
      sub.add_option("--ssd-path", o->ssd_path,
                     "Directory on the disk to test (a temporary file of up to 512 MiB is created and removed)")
          ->capture_default_str();
      sub.add_option("--ssd-file", o->ssd_file,
                     "Measure the streaming rate over this file instead (read only: e.g. the model to stream; on a "
                     "VM whose host caches the disk, its rate differs from a fresh file's)");
      sub.add_option("-o,--output", o->out, "Where to save the profile (default: $STRATA_PROFILE or "
                                            "~/.cache/strata/profile.json)");
      sub.add_flag("--quick", o->quick, "Smaller buffers and shorter runs (a few seconds)");
      sub.add_flag("--no-ssd", o->no_ssd, "Skip the disk test");
      sub.add_flag("--json", o->json, "Print the profile as JSON instead of the summary");
      sub.add_option("-t,--threads", o->threads, "Highest thread count to measure (default: every logical CPU)");
      return [o]() {
        plan::ProbeOptions opt;
        opt.quick = o->quick;
        opt.ssd = !o->no_ssd;
        opt.ssd_path = o->ssd_path;
        opt.ssd_file = o->ssd_file;
        opt.max_threads = o->threads;
        const bool tty = Progress::enabled();
        if (tty) opt.status = [](const std::string& s) { std::fprintf(stderr, "\r\033[Kprobe: %s...", s.c_str()); };
        const plan::MachineProfile p = plan::probe_machine(opt);
        if (tty) std::fprintf(stderr, "\r\033[K");
        const std::string path = o->out.empty() ? plan::default_profile_path() : o->out;
        plan::save_profile(p, path);
        if (o->json) {
          fmt::print("{}\n", p.to_json());
        } else {
          print_summary(p, path);
        }
        return 0;
      };
    }};

}  // namespace
}  // namespace strata::cli
