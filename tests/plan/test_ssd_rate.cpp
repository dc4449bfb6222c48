// Which SSD rate prices streamed bytes (plan/roofline.h: choose_ssd_rate): the re-read rate when a set the
// probe re-read holds the streamed set, the first-read rate when none does, and profiles without re-read
// rates keep their single streaming figure; the probe's re-read sets and their JSON form.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/error.h"
#include "model/synthetic.h"
#include "plan/hardware_profiles.h"
#include "plan/planner.h"
#include "plan/probe.h"
#include "plan/roofline.h"
#include "plan/ssd_profile_util.h"

namespace strata::plan {
namespace {

constexpr int64_t kMiB = int64_t{1} << 20, kGiB = int64_t{1} << 30;

MachineRates rates_with(double first, std::vector<RereadPoint> reread) {
  MachineRates r = rates_at(find_builtin_profile("epyc-zen3-2c")->profile, 2);
  r.ssd_seq_gbps = first;
  r.ssd_reread = std::move(reread);
  return r;
}

TEST(SsdRate, SmallestMeasuredSetHoldingTheStreamedSet) {
  // Sets as the probe writes them, largest first (the session-4 model: 1.17 GB in quarters).
  const MachineRates r = rates_with(1.06, {{876 * kMiB, 1.50}, {584 * kMiB, 1.60}, {292 * kMiB, 1.70}});
  SsdRateChoice c = choose_ssd_rate(r, 61.0 * kMiB);  // the 100% budget: fits every set, the smallest wins
  EXPECT_STREQ(c.source, "reread");
  EXPECT_DOUBLE_EQ(c.gbps, 1.70);
  EXPECT_EQ(c.set_bytes, 292 * kMiB);
  c = choose_ssd_rate(r, 584.0 * kMiB);  // exactly a set's size: that set
  EXPECT_STREQ(c.source, "reread");
  EXPECT_DOUBLE_EQ(c.gbps, 1.60);
  c = choose_ssd_rate(r, 834.0 * kMiB);  // the 30% budget
  EXPECT_DOUBLE_EQ(c.gbps, 1.50);
  EXPECT_EQ(c.set_bytes, 876 * kMiB);
  c = choose_ssd_rate(r, 877.0 * kMiB);  // one MiB over the largest set: the first-read rate
  EXPECT_STREQ(c.source, "first_read");
  EXPECT_DOUBLE_EQ(c.gbps, 1.06);
  EXPECT_EQ(c.set_bytes, 0);
}

TEST(SsdRate, ProfilesWithoutRereadRatesKeepTheirStreamingFigure) {
  EXPECT_STREQ(choose_ssd_rate(rates_with(0.99, {}), 1.0 * kMiB).source, "stream");
  EXPECT_DOUBLE_EQ(choose_ssd_rate(rates_with(0.99, {}), 1.0 * kMiB).gbps, 0.99);
  MachineProfile none;
  none.dram_read_gbps = {{1, 10.0}};
  const MachineRates assumed = rates_at(none, 1);
  ASSERT_TRUE(assumed.ssd_assumed);
  EXPECT_STREQ(choose_ssd_rate(assumed, 1.0 * kMiB).source, "assumed");
  EXPECT_DOUBLE_EQ(choose_ssd_rate(assumed, 1.0 * kMiB).gbps, kAssumedSsdSeqGbps);
}

ModelDesc llama2_7b_q4_0() {
  model::SyntheticSpec s = model::synthetic_shape("llama2-7b");
  s.weight_type = DType::Q4_0;
  s.output_type = static_cast<int32_t>(DType::Q6_K);
  return describe_spec(s);
}

PlanOptions streaming_opts() {
  PlanOptions o;
  o.mem_bytes = 2 * kGiB;  // llama2-7b Q4_0 (3.6 GiB): ~2 GiB streams
  o.ctx = 4096;
  o.kv = {kv::KvFormat::Q8_0, kv::KvFormat::Q8_0, 0};
  return o;
}

TEST(SsdRate, PlannerPricesTheStreamedSetAtTheChosenRate) {
  const ModelDesc m = llama2_7b_q4_0();
  const PlanOptions o = streaming_opts();
  const Plan first = make_plan(m, rates_with(0.8, {}), o);    // old profile: 0.8 GB/s for everything
  const Plan fast = make_plan(m, rates_with(1.6, {}), o);
  ASSERT_GT(first.streamed_bytes, uint64_t{kGiB});
  ASSERT_EQ(first.decode.step.bound, Bound::kSsd);
  EXPECT_STREQ(first.ssd_rate.source, "stream");

  // A measured set of 8 GiB holds the streamed set: priced at its re-read rate, 1.6 GB/s.
  const Plan held = make_plan(m, rates_with(0.8, {{8 * kGiB, 1.6}}), o);
  EXPECT_STREQ(held.ssd_rate.source, "reread");
  EXPECT_DOUBLE_EQ(held.rates.ssd_seq_gbps, 1.6);
  EXPECT_DOUBLE_EQ(held.decode.tokens_per_s, fast.decode.tokens_per_s);
  EXPECT_DOUBLE_EQ(held.prefill.tokens_per_s, fast.prefill.tokens_per_s);
  // A 256 MiB set does not: the first-read rate, as an old profile with that figure.
  const Plan spilled = make_plan(m, rates_with(0.8, {{256 * kMiB, 1.6}}), o);
  EXPECT_STREQ(spilled.ssd_rate.source, "first_read");
  EXPECT_DOUBLE_EQ(spilled.decode.tokens_per_s, first.decode.tokens_per_s);
  // The SSD-bound token scales with the rate: twice the rate, about twice the speed.
  EXPECT_NEAR(held.decode.tokens_per_s / spilled.decode.tokens_per_s, 2.0, 0.05);

  const auto j = nlohmann::json::parse(plan_to_json(m, held));
  EXPECT_DOUBLE_EQ(j["ssd_gbps_used"].get<double>(), 1.6);
  EXPECT_EQ(j["ssd_rate_source"].get<std::string>(), "reread");
  EXPECT_EQ(j["ssd_reread_set_bytes"].get<int64_t>(), 8 * kGiB);
  EXPECT_DOUBLE_EQ(j["machine"]["ssd_seq_gbps"].get<double>(), 1.6);
  const auto k = nlohmann::json::parse(plan_to_json(m, spilled));
  EXPECT_EQ(k["ssd_rate_source"].get<std::string>(), "first_read");
  EXPECT_EQ(k["ssd_reread_set_bytes"].get<int64_t>(), 0);
}

TEST(SsdRate, RereadPointsRoundTripAndOldProfilesLoad) {
  MachineProfile p = test::profile_with_ssd(0.99, 1.06);
  p.ssd.reread = {{876 * kMiB, 1.5}, {292 * kMiB, 1.7}};
  const MachineProfile q = MachineProfile::from_json(p.to_json());
  ASSERT_EQ(q.ssd.reread.size(), 2u);
  EXPECT_EQ(q.ssd.reread[0].set_bytes, 876 * kMiB);
  EXPECT_DOUBLE_EQ(q.ssd.reread[0].gbps, 1.5);
  EXPECT_EQ(q.ssd.reread[1].set_bytes, 292 * kMiB);
  EXPECT_DOUBLE_EQ(q.ssd.reread[1].gbps, 1.7);
  EXPECT_EQ(rates_at(q, 2).ssd_reread.size(), 2u);

  // A hand-written profile: sets in any order (sorted largest first), or none at all.
  auto j = nlohmann::json::parse(p.to_json());
  j["ssd"]["reread"] = nlohmann::json::array({{{"set_bytes", 100}, {"gbps", 2.0}}, {{"set_bytes", 300}, {"gbps", 1.0}}});
  const MachineProfile h = MachineProfile::from_json(j.dump());
  ASSERT_EQ(h.ssd.reread.size(), 2u);
  EXPECT_EQ(h.ssd.reread[0].set_bytes, 300);
  j["ssd"].erase("reread");
  const MachineProfile old = MachineProfile::from_json(j.dump());
  EXPECT_TRUE(old.ssd.reread.empty());
  EXPECT_DOUBLE_EQ(rates_at(old, 2).ssd_seq_gbps, 1.06);
  j["ssd"]["reread"] = nlohmann::json::array({{{"set_bytes", 0}, {"gbps", 2.0}}});
  EXPECT_THROW(MachineProfile::from_json(j.dump()), Error);
}

TEST(SsdRate, ProbeRereadsSuffixSetsOfTheFile) {
  const std::string path = ::testing::TempDir() + "probe-reread.bin";
  {
    std::vector<char> b(size_t{6} << 20, 'x');
    std::ofstream(path, std::ios::binary).write(b.data(), static_cast<std::streamsize>(b.size()));
  }
  // Three 2 MiB chunks: quarters 4, 3, 2 -> 3, 2, 1 chunks; quarter 1 -> 1 chunk again, not repeated.
  const StreamReadRates r = measure_stream_rates(path, int64_t{1} << 30);
  EXPECT_GT(r.first_gbps, 0.0);
  ASSERT_EQ(r.reread.size(), 3u);
  EXPECT_EQ(r.reread[0].set_bytes, 6 * kMiB);
  EXPECT_EQ(r.reread[1].set_bytes, 4 * kMiB);
  EXPECT_EQ(r.reread[2].set_bytes, 2 * kMiB);
  for (const auto& p : r.reread) EXPECT_GT(p.gbps, 0.0);
  // Capped at max_bytes: 4 MiB of the file, two chunks -> sets of 4 and 2 MiB.
  const StreamReadRates c = measure_stream_rates(path, 5 * kMiB);
  ASSERT_EQ(c.reread.size(), 2u);
  EXPECT_EQ(c.reread[0].set_bytes, 4 * kMiB);
  EXPECT_EQ(c.reread[1].set_bytes, 2 * kMiB);
}

}  // namespace
}  // namespace strata::plan
