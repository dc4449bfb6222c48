// The probe's SSD streaming figure (plan/probe.h: SsdProfile::stream_read_gbps): saved and loaded with the
// profile, preferred by the planner over the first-read sequential figure, and measured over an existing
// file (`strata probe --ssd-file`).
#include <gtest/gtest.h>

#include <fstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "plan/probe.h"
#include "plan/roofline.h"

namespace strata::plan {
namespace {

MachineProfile with_ssd(double seq, double stream) {
  MachineProfile p;
  p.cpu_model = "test";
  p.logical_cpus = 2;
  p.dram_read_gbps = {{1, 10.0}, {2, 18.0}};
  p.has_ssd = true;
  p.ssd.path = "/tmp";
  p.ssd.direct_io = true;
  p.ssd.seq_read_gbps = seq;
  p.ssd.stream_read_gbps = stream;
  p.ssd.rand4k_qd1_iops = 20000;
  return p;
}

TEST(ProbeSsd, StreamingFigureRoundTripsAndIsWhatThePlannerUses) {
  MachineProfile p = with_ssd(0.99, 1.47);
  p.ssd.stream_file = "/models/m.gguf";
  const MachineProfile q = MachineProfile::from_json(p.to_json());
  EXPECT_DOUBLE_EQ(q.ssd.seq_read_gbps, 0.99);
  EXPECT_DOUBLE_EQ(q.ssd.stream_read_gbps, 1.47);
  EXPECT_EQ(q.ssd.stream_file, "/models/m.gguf");
  EXPECT_DOUBLE_EQ(rates_at(q, 2).ssd_seq_gbps, 1.47);
  // A profile written before the streaming figure existed: the sequential one.
  EXPECT_DOUBLE_EQ(rates_at(with_ssd(0.99, 0.0), 2).ssd_seq_gbps, 0.99);
}

TEST(ProbeSsd, MeasuresStreamingReadsOverAnExistingFile) {
  const std::string path = ::testing::TempDir() + "probe-stream.bin";
  {
    std::vector<char> b(size_t{6} << 20, 'x');
    std::ofstream(path, std::ios::binary).write(b.data(), static_cast<std::streamsize>(b.size()));
  }
  const double gbps = measure_stream_read_gbps(path, int64_t{1} << 30, 0.01);
  EXPECT_GT(gbps, 0.0);
  EXPECT_LT(gbps, 1000.0);  // 6 MiB: the streamer's first pass, one 6 MiB "tensor" in three 2 MiB reads
  const std::string tiny = ::testing::TempDir() + "probe-tiny.bin";
  std::ofstream(tiny, std::ios::binary).write("abc", 3);
  EXPECT_THROW(measure_stream_read_gbps(tiny, int64_t{1} << 30, 0.01), Error);
  EXPECT_THROW(measure_stream_read_gbps(::testing::TempDir() + "no-such-file.bin", int64_t{1} << 30, 0.01), Error);
}

}  // namespace
}  // namespace strata::plan
