// KV bytes per token in `strata inspect` and `strata bench` (issue 6, item 6), through the binary: the
// figures are the formats' block sizes written out by hand at the model's shape (f16: 2 bytes a value; q8_0:
// 34 bytes per 32; q4_0: 18 per 32; bfp4: 9 per 16, an exponent byte and 16 nibbles), and bench accepts
// strata's own formats for -ctk/-ctv.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "runtime/process.h"
#include "test_util.h"

namespace strata::kv {
namespace {

using json = nlohmann::json;

struct CliRun {
  int code;
  std::string out, err;
};

CliRun strata(const std::vector<std::string>& args) {
  test::Process p(test::strata_binary(), args, {"STRATA_NO_PROGRESS=1"});
  p.close_stdin();
  const int code = p.wait_exit(300);
  return {code, p.out_text, p.err_text};
}

// strata-tiny-256: 4 layers, 2 KV heads, head_dim 64 (K and V).
constexpr double kHeads = 4 * 2;

TEST(KvCli, InspectShowsKvBytesPerToken) {
  if (test::strata_binary().empty()) GTEST_SKIP() << "the strata binary is not built beside the tests";
  const std::string model = test::shared_file("models/strata-tiny-256-f16.gguf");
  if (model.empty()) GTEST_SKIP() << "../shared/models/strata-tiny-256-f16.gguf is absent";
  const CliRun r = strata({"inspect", model, "--json", "--no-tensors"});
  ASSERT_EQ(r.code, 0) << r.err;
  const json j = json::parse(r.out)["kv_bytes_per_token"];
  ASSERT_TRUE(j.is_object()) << r.out.substr(0, 500);
  EXPECT_DOUBLE_EQ(j["f16"].get<double>(), kHeads * 2 * 64 * 2);        // K and V, 2 bytes a value
  EXPECT_DOUBLE_EQ(j["q8_0"].get<double>(), kHeads * 2 * 2 * 34);       // 34 bytes per 32 values
  EXPECT_DOUBLE_EQ(j["q4_0"].get<double>(), kHeads * 2 * 2 * 18);       // 18 bytes per 32 values
  EXPECT_DOUBLE_EQ(j["bfp4"].get<double>(), kHeads * 2 * 4 * 9);        // 9 bytes per 16 values (exponent + nibbles)
  EXPECT_LT(j["gear2"].get<double>(), j["q4_0"].get<double>());         // 2 bits + low rank + outliers
  const CliRun h = strata({"inspect", model, "--no-tensors"});
  ASSERT_EQ(h.code, 0) << h.err;
  EXPECT_NE(h.out.find("KV bytes/token"), std::string::npos) << h.out;
  EXPECT_NE(h.out.find("f16 2.00 KiB, q8_0 1.06 KiB, q4_0 576 B"), std::string::npos) << h.out;
}

TEST(KvCli, BenchRowsCarryKvBytesPerTokenAndAcceptStrataFormats) {
  if (test::strata_binary().empty()) GTEST_SKIP() << "the strata binary is not built beside the tests";
  const std::string model = test::shared_file("models/strata-tiny-256-f16.gguf");
  if (model.empty()) GTEST_SKIP() << "../shared/models/strata-tiny-256-f16.gguf is absent";
  const CliRun r = strata({"bench", "-m", model, "-p", "8", "-n", "4", "-d", "64", "-r", "1", "-t", "1", "-ctk",
                        "f16,bfp4", "-ctv", "gear2", "-o", "json", "--profile", "/nonexistent/p.json"});
  ASSERT_EQ(r.code, 0) << r.err;
  const json arr = json::parse(r.out);
  ASSERT_EQ(arr.size(), 4u);
  for (const json& j : arr) {
    const std::string k = j["type_k"];
    EXPECT_EQ(j["type_v"], "gear2");
    ASSERT_TRUE(k == "f16" || k == "bfp4") << k;
    const double k_bytes = k == "f16" ? 128 : 36;  // one head's K row
    const double bpt = j["kv_bytes_per_token"].get<double>();
    EXPECT_GT(bpt, kHeads * k_bytes);
    EXPECT_LT(bpt, kHeads * (k_bytes + 36));  // gear2's V costs less than a q4_0 row
  }
  // The decode roofline counts the KV bytes of the depth in the test's formats: the tg rows' bytes per
  // token differ by exactly 64 (the depth) times the difference of their KV bytes per token.
  std::vector<json> tg;
  for (const json& j : arr)
    if (j["n_gen"].get<int>() > 0) tg.push_back(j);
  ASSERT_EQ(tg.size(), 2u);
  const double d_bytes = tg[0]["bytes_per_token"].get<double>() - tg[1]["bytes_per_token"].get<double>();
  const double d_kv = tg[0]["kv_bytes_per_token"].get<double>() - tg[1]["kv_bytes_per_token"].get<double>();
  EXPECT_NEAR(d_bytes, 64 * d_kv, 1.0);
  EXPECT_NEAR(d_kv, kHeads * (128 - 36), 1e-9);  // f16 vs bfp4 keys
  // The markdown table shows the formats and the bytes, CSV carries the field.
  const CliRun md = strata({"bench", "-m", model, "-p", "8", "-n", "0", "-r", "1", "-t", "1", "-ctk", "q4h", "-ctv", "q4h",
                         "--profile", "/nonexistent/p.json"});
  ASSERT_EQ(md.code, 0) << md.err;
  EXPECT_NE(md.out.find("KV B/tok"), std::string::npos) << md.out;
  EXPECT_NE(md.out.find("| q4h    | q4h    |      576 |"), std::string::npos) << md.out;
  const CliRun csv = strata({"bench", "-m", model, "-p", "8", "-n", "0", "-r", "1", "-t", "1", "-o", "csv",
                          "--profile", "/nonexistent/p.json"});
  ASSERT_EQ(csv.code, 0) << csv.err;
  EXPECT_NE(csv.out.find("kv_bytes_per_token"), std::string::npos) << csv.out;
  EXPECT_NE(csv.out.find("\"2048.0\""), std::string::npos) << csv.out;  // f16 by default
  const CliRun bad = strata({"bench", "-m", model, "-ctk", "q3_x"});
  EXPECT_EQ(bad.code, 1);
  EXPECT_NE(bad.err.find("gear2"), std::string::npos) << bad.err;  // the message lists the formats
}

}  // namespace
}  // namespace strata::kv
