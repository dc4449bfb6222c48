// The decode pipeline of a streamed plan (plan/stream_pipeline.h) on hand-checked cases: the ring lets
// reads overlap compute only as far as its slots reach.
#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

#include "model/synthetic.h"
#include "plan/hardware_profiles.h"
#include "plan/planner.h"
#include "plan/stream_pipeline.h"

namespace strata::plan {
namespace {

PipelineOp cpu(double s) { return {s, false, 0}; }
PipelineOp streamed(double read, double c) { return {c, true, read}; }

TEST(StreamPipeline, DiskBoundIsTheSumOfReads) {
  const std::vector<PipelineOp> ops = {streamed(1, 0.1), streamed(2, 0.1), streamed(1, 0.1)};
  EXPECT_NEAR(simulate_stream_pipeline(ops, 2).seconds, 4.0, 1e-9);
}

TEST(StreamPipeline, ComputeBoundIsTheSumOfCompute) {
  const std::vector<PipelineOp> ops = {streamed(0.1, 1), cpu(2), streamed(0.1, 1)};
  EXPECT_NEAR(simulate_stream_pipeline(ops, 2).seconds, 4.0, 1e-9);
}

TEST(StreamPipeline, ReadAheadCrossesIntoTheNextTokenOnlyAsFarAsTheRing) {
  // A resident step of 3 s, then 4 streamed tensors of 1 s reads. Two slots: 2 reads overlap the resident
  // step, 2 follow it: 5 s (max(3, 4) = 4 would over-predict speed, 3 + 4 = 7 under-predict it).
  const std::vector<PipelineOp> ops = {cpu(3), streamed(1, 0), streamed(1, 0), streamed(1, 0), streamed(1, 0)};
  EXPECT_NEAR(simulate_stream_pipeline(ops, 2).seconds, 5.0, 1e-9);
  // Four slots: every read overlaps; the disk (4 s) is the bound.
  EXPECT_NEAR(simulate_stream_pipeline(ops, 4).seconds, 4.0, 1e-9);
  // One slot: a read waits for the previous tensor's compute; only the first overlaps the resident step.
  EXPECT_NEAR(simulate_stream_pipeline(ops, 1).seconds, 6.0, 1e-9);
  const PipelineTime t = simulate_stream_pipeline(ops, 2);
  EXPECT_NEAR(t.disk_busy, 4.0, 1e-9);
  EXPECT_NEAR(t.cpu_busy, 3.0, 1e-9);
}

TEST(StreamPipeline, PackRatesCoverTheSimdPackedTypes) {
  for (DType t : {DType::Q4_0, DType::Q4_1, DType::Q8_0, DType::Q4_K}) EXPECT_GT(stream_pack_gbps_per_thread(t), 5.0);
  EXPECT_EQ(stream_pack_gbps_per_thread(DType::F16), 0.0);
}

}  // namespace
}  // namespace strata::plan

namespace strata::plan {
namespace {

// The planner's side: streamed FFN layers are spread over the pass, and the decode prediction of a streamed
// plan lies between the full-overlap roofline and the no-overlap sum.
TEST(StreamPipeline, PlannerSpreadsStreamedFfnLayersAndPredictsBetweenTheBounds) {
  model::SyntheticSpec s = model::synthetic_shape("tinyllama-1.1b");
  s.weight_type = DType::Q8_0;
  s.output_type = static_cast<int32_t>(DType::Q8_0);
  const ModelDesc m = describe_spec(s);
  const MachineRates r = rates_at(find_builtin_profile("epyc-zen3-2c")->profile, 2);
  PlanOptions o;
  o.ctx = 16;
  o.kv = {kv::KvFormat::F16, kv::KvFormat::F16, 0};
  o.mem_bytes = static_cast<int64_t>(m.weight_bytes() * 3 / 4);
  const Plan p = make_plan(m, r, o);
  ASSERT_TRUE(p.fits);
  ASSERT_GT(p.streamed_bytes, 0u);
  // One streamed FFN matrix per layer before any layer streams two (all the downs, layers spread, then the
  // ups, then the gates): streamed counts per layer differ by at most one, and a kind streams only once
  // every matrix of the kinds before it does. (At 75% of TinyLlama Q8_0: the 22 downs and some ups.)
  std::vector<int> per_layer(static_cast<size_t>(m.n_layer), 0);
  int n_kind[3] = {0, 0, 0};  // down, up, gate
  for (size_t i = 0; i < m.tensors.size(); ++i) {
    const TensorDesc& t = m.tensors[i];
    if (t.role != TensorRole::kFfn || t.is_vector() || p.where[i] != Where::kStreamed) continue;
    ++per_layer[static_cast<size_t>(t.layer)];
    ++n_kind[t.name.find("ffn_down") != std::string::npos ? 0 : t.name.find("ffn_up") != std::string::npos ? 1 : 2];
  }
  EXPECT_GT(n_kind[0], 0);
  if (n_kind[1] > 0) {
    EXPECT_EQ(n_kind[0], m.n_layer);
  }
  if (n_kind[2] > 0) {
    EXPECT_EQ(n_kind[1], m.n_layer);
  }
  EXPECT_LE(*std::max_element(per_layer.begin(), per_layer.end()) - *std::min_element(per_layer.begin(), per_layer.end()), 1);
  // Spread: streamed layers in both halves of the pass, not its last layers.
  EXPECT_GT(per_layer[1] + per_layer[2] + per_layer[3] + per_layer[4] + per_layer[5], 0);
  EXPECT_GT(per_layer[16] + per_layer[17] + per_layer[18] + per_layer[19] + per_layer[20], 0);
  // Between max(t_dram, t_ssd, t_compute) (full overlap) and their sum (none).
  const StepTime& st = p.decode.step;
  EXPECT_GE(st.seconds, std::max({st.t_dram, st.t_ssd, st.t_compute}) - 1e-12);
  EXPECT_LE(st.seconds, st.t_dram + st.t_ssd + st.t_compute);
}

}  // namespace
}  // namespace strata::plan
