// Demand-committed KV memory, end to end through the `strata run` binary: the peak resident memory after
// 100 tokens is the same (within a few MiB) whether the context is 1024 or 131072 tokens, although the
// 131072-token f16 cache of strata-tiny-256 would be 256 MiB if it were allocated up front.
#include <gtest/gtest.h>

#include <regex>
#include <string>

#include "runtime/process.h"
#include "test_util.h"

namespace strata::kv {
namespace {

// The "peak memory X MiB" of a `strata run` report, in MiB.
double peak_mib(const std::string& err) {
  std::smatch m;
  if (!std::regex_search(err, m, std::regex(R"(peak memory ([0-9.]+) (KiB|MiB|GiB))"))) return -1;
  const double v = std::stod(m[1]);
  return m[2] == "KiB" ? v / 1024 : m[2] == "GiB" ? v * 1024 : v;
}

double run_peak(const std::string& bin, const std::string& model, const std::string& ctx, const std::string& ctk) {
  test::Process p(bin, {"run", "-m", model, "-p", "Once upon a time", "-n", "100", "--ignore-eos", "--temp", "0",
                        "-t", "1", "-c", ctx, "-ctk", ctk, "-ctv", ctk, "--no-display-prompt"});
  EXPECT_EQ(p.wait_exit(120), 0) << p.err_text;
  const double mib = peak_mib(p.err_text);
  EXPECT_GT(mib, 0) << p.err_text;
  return mib;
}

TEST(KvMemory, ResidentMemoryFollowsTokensNotContext) {
  const std::string bin = test::strata_binary();
  if (bin.empty()) GTEST_SKIP() << "the strata binary is not built beside the tests";
  const std::string model = test::shared_file("models/strata-tiny-256-f16.gguf");
  if (model.empty()) GTEST_SKIP() << "../shared/models/strata-tiny-256-f16.gguf is absent";
  for (const char* ctk : {"f16", "q4_0"}) {
    const double small = run_peak(bin, model, "1024", ctk);
    const double large = run_peak(bin, model, "131072", ctk);
    std::printf("  %s: peak RSS --ctx 1024 %.1f MiB, --ctx 131072 %.1f MiB\n", ctk, small, large);
    EXPECT_LT(large - small, 4.0) << ctk;
  }
}

}  // namespace
}  // namespace strata::kv
