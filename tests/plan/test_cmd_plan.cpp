// `strata plan` end to end: the built binary's JSON, table and refusal.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "runtime/process.h"
#include "test_util.h"

namespace strata::test {
namespace {

struct Result {
  int code;
  std::string out, err;
};

Result run_plan(const std::vector<std::string>& args) {
  std::vector<std::string> a{"plan"};
  a.insert(a.end(), args.begin(), args.end());
  Process p(strata_binary(), a, {"STRATA_PROFILE=/nonexistent/profile.json"});
  p.close_stdin();
  const int code = p.wait_exit(60);
  return {code, p.out_text, p.err_text};
}

TEST(CmdPlan, JsonTableAndRefusal) {
  if (strata_binary().empty()) GTEST_SKIP() << "the strata binary is not built beside the tests (target strata)";
  const std::string model = shared_file("models/strata-tiny-256.gguf");
  if (model.empty()) GTEST_SKIP() << "../shared/models/strata-tiny-256.gguf is absent";

  const Result j = run_plan({"-m", model, "--mem", "1G", "--profile", "epyc-zen3-2c", "--json"});
  ASSERT_EQ(j.code, 0) << j.err;
  const auto o = nlohmann::json::parse(j.out);
  for (const char* k : {"fits", "resident_bytes", "streamed_bytes", "kv_bytes", "peak_bytes", "predicted_tg_ts",
                        "predicted_pp_ts", "ttft_s", "bound"})
    EXPECT_TRUE(o.contains(k)) << k;
  EXPECT_TRUE(o["fits"].get<bool>());
  EXPECT_GT(o["predicted_tg_ts"].get<double>(), 0);

  // Without --profile and without a probed profile: the built-in default, and a note saying so.
  const Result t = run_plan({"-m", model, "--mem", "1G"});
  ASSERT_EQ(t.code, 0) << t.err;
  EXPECT_NE(t.out.find("epyc-zen3-2c"), std::string::npos);
  EXPECT_NE(t.out.find("strata probe"), std::string::npos);
  EXPECT_NE(t.out.find("decode tg"), std::string::npos);

  // A model shape without its file, on another machine, refused with advice.
  const Result r = run_plan({"--shape", "llama2-7b", "--profile", "rpi5-8g", "--mem", "1.5G", "--ctx", "32768"});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("--ctx "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("--mem "), std::string::npos) << r.err;
}

}  // namespace
}  // namespace strata::test
