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
#include "plan/ssd_profile_util.h"

namespace strata::plan {
namespace {

TEST(ProbeSsd, StreamingFigureRoundTripsAndIsWhatThePlannerUses) {
  MachineProfile p = test::profile_with_ssd(0.99, 1.47);
  p.ssd.stream_file = "/models/m.gguf";
  const MachineProfile q = MachineProfile::from_json(p.to_json());
  EXPECT_DOUBLE_EQ(q.ssd.seq_read_gbps, 0.99);
  EXPECT_DOUBLE_EQ(q.ssd.stream_read_gbps, 1.47);
  EXPECT_EQ(q.ssd.stream_file, "/models/m.gguf");
  EXPECT_DOUBLE_EQ(rates_at(q, 2).ssd_seq_gbps, 1.47);
  // A profile written before the streaming figure existed: the sequential one.
  EXPECT_DOUBLE_EQ(rates_at(test::profile_with_ssd(0.99, 0.0), 2).ssd_seq_gbps, 0.99);
}

TEST(ProbeSsd, MeasuresStreamingReadsOverAnExistingFile) {
  const std::string path = ::testing::TempDir() + "probe-stream.bin";
  {
    std::vector<char> b(size_t{6} << 20, 'x');
    std::ofstream(path, std::ios::binary).write(b.data(), static_cast<std::streamsize>(b.size()));
  }
  const double gbps = measure_stream_rates(path, int64_t{1} << 30).first_gbps;
  EXPECT_GT(gbps, 0.0);
  EXPECT_LT(gbps, 1000.0);  // 6 MiB: the streamer's first pass, one 6 MiB "tensor" in three 2 MiB reads
  const std::string tiny = ::testing::TempDir() + "probe-tiny.bin";
  std::ofstream(tiny, std::ios::binary).write("abc", 3);
  EXPECT_THROW(measure_stream_rates(tiny, int64_t{1} << 30), Error);
  EXPECT_THROW(measure_stream_rates(::testing::TempDir() + "no-such-file.bin", int64_t{1} << 30), Error);
}

}  // namespace
}  // namespace strata::plan
