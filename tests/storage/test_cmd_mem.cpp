// `strata run --mem` and `strata bench --mem` end to end: the built binary streams under a budget and gives
// the same greedy text as without one; a budget below the minimum is a refusal that says what would fit.
#include <gtest/gtest.h>

#include "runtime/process.h"
#include "test_util.h"

namespace strata::test {
namespace {

struct Result {
  int code;
  std::string out, err;
};

Result run_strata(const std::vector<std::string>& args) {
  Process p(strata_binary(), args, {"STRATA_PROFILE=/nonexistent/profile.json"});
  p.close_stdin();
  const int code = p.wait_exit(120);
  return {code, p.out_text, p.err_text};
}

TEST(CmdMem, RunStreamsAndGivesTheSameText) {
  if (strata_binary().empty()) GTEST_SKIP() << "the strata binary is not built beside the tests (target strata)";
  STRATA_REQUIRE_SHARED(model, "models/strata-tiny-256.gguf");
  const std::vector<std::string> base{"run", "-m", model, "-p", "Once upon a time", "-n", "24", "--temp", "0",
                                      "--ctx", "64", "-t", "2"};
  const Result plain = run_strata(base);
  ASSERT_EQ(plain.code, 0) << plain.err;
  // strata-tiny-256 is 13 MiB: at 60M (48 MiB runtime overhead allowed, 512-token activations, --ctx 64) the
  // planner keeps attention resident and streams the FFN, the output matrix and the embeddings (10 MiB).
  auto with_mem = base;
  with_mem.insert(with_mem.end(), {"--mem", "60M"});
  const Result mem = run_strata(with_mem);
  ASSERT_EQ(mem.code, 0) << mem.err;
  EXPECT_NE(mem.err.find("--mem 60M:"), std::string::npos) << mem.err;
  EXPECT_EQ(mem.out, plain.out);

  auto tiny = base;
  tiny.insert(tiny.end(), {"--mem", "1M"});
  const Result refused = run_strata(tiny);
  EXPECT_NE(refused.code, 0);
  EXPECT_NE(refused.err.find("--mem 1M"), std::string::npos) << refused.err;
  EXPECT_NE(refused.err.find("What would fit"), std::string::npos) << refused.err;

  const Result bench = run_strata({"bench", "-m", model, "-p", "0", "-n", "4", "-r", "1", "-t", "2", "--mem", "60M"});
  ASSERT_EQ(bench.code, 0) << bench.err;
  EXPECT_NE(bench.out.find("tg4"), std::string::npos) << bench.out;
}

}  // namespace
}  // namespace strata::test
