// `strata run` and `strata chat` end to end: the built binary, its stdout, stderr and exit status.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include "cli/generation_flags.h"
#include "model/model.h"
#include "runtime/process.h"
#include "test_util.h"

namespace strata::test {
namespace {

std::string read_text(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

#define STRATA_REQUIRE_BINARY(var)                                                            \
  const std::string var = strata_binary();                                                    \
  if (var.empty()) GTEST_SKIP() << "the strata binary is not built beside the tests (build target strata)";

struct Result {
  int code;
  std::string out, err;
};

Result run(const std::vector<std::string>& args, const std::string& input = "", double timeout = 60) {
  Process p(strata_binary(), args);
  p.write_stdin(input);
  p.close_stdin();
  const int code = p.wait_exit(timeout);
  EXPECT_FALSE(p.timed_out) << "strata did not finish in " << timeout << " s";
  return {code, p.out_text, p.err_text};
}

TEST(CliRun, StoriesOnceUponATimeEqualsLlamaCpp) {
  STRATA_REQUIRE_BINARY(bin);
  STRATA_REQUIRE_SHARED(model, "models/stories260K.gguf");
  STRATA_REQUIRE_SHARED(ref, "reference/llamacpp/stories260K.once.txt");
  const Result r = run({"run", "-m", model, "-p", "Once upon a time", "-n", "32", "--temp", "0"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "Once upon a time" + read_text(ref) + "\n");
  // The closing statistics.
  EXPECT_TRUE(std::regex_search(r.err, std::regex(R"(load [0-9.]+ ms)"))) << r.err;
  EXPECT_TRUE(std::regex_search(r.err, std::regex(R"(prompt 5 tokens, [0-9.]+ tok/s)"))) << r.err;
  EXPECT_TRUE(std::regex_search(r.err, std::regex(R"(generation 32 tokens, [0-9.]+ tok/s)"))) << r.err;
  EXPECT_TRUE(std::regex_search(r.err, std::regex(R"(peak memory [0-9.]+ MiB)"))) << r.err;
}

TEST(CliRun, StoriesFromBosEqualsLlama2c) {
  STRATA_REQUIRE_BINARY(bin);
  STRATA_REQUIRE_SHARED(model, "models/stories260K.gguf");
  STRATA_REQUIRE_SHARED(golden, "models/golden/stories260K.greedy-from-bos.n200.txt");
  const Result r = run({"run", "-m", model, "-n", "200", "--temp", "0", "--ignore-eos", "-t", "1", "-c", "256",
                        "-ctk", "f32", "-ctv", "f32"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, read_text(golden) + "\n");
}

TEST(CliRun, PromptFileAndTinyModel) {
  STRATA_REQUIRE_BINARY(bin);
  STRATA_REQUIRE_SHARED(model, "models/strata-tiny-256-f16.gguf");
  STRATA_REQUIRE_SHARED(golden, "models/golden/strata-tiny-256.lily-and-tom.txt");
  const std::string prompt_file = ::testing::TempDir() + "strata_prompt.txt";
  std::ofstream(prompt_file) << "Lily and Tom went to the park. They";
  const Result r = run({"run", "-m", model, "-f", prompt_file, "-n", "64", "--temp", "0", "-c", "128"});
  std::remove(prompt_file.c_str());
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, read_text(golden) + "\n");  // the F16 file gives the F32 golden's ids (model card)
}

TEST(CliRun, SamplingIsDeterministicForASeed) {
  STRATA_REQUIRE_BINARY(bin);
  STRATA_REQUIRE_SHARED(model, "models/stories260K.gguf");
  const std::vector<std::string> args = {"run", "-m", model, "-p", "Once", "-n", "40", "--temp", "1.0", "-s", "7",
                                         "--top-k", "0", "--top-p", "0.95", "--min-p", "0.02", "--repeat-penalty",
                                         "1.1", "--repeat-last-n", "32", "--presence-penalty", "0.1",
                                         "--frequency-penalty", "0.1"};
  const Result a = run(args), b = run(args);
  ASSERT_EQ(a.code, 0) << a.err;
  EXPECT_EQ(a.out, b.out);
  std::vector<std::string> other = args;
  other[10] = "8";  // another seed
  EXPECT_NE(run(other).out, a.out);
}

TEST(CliRun, ClearErrors) {
  STRATA_REQUIRE_BINARY(bin);
  STRATA_REQUIRE_SHARED(model, "models/stories260K.gguf");
  Result r = run({"run", "-m", model, "-p", "Once upon a time", "-c", "4"});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("prompt is 5 tokens: raise --ctx to at least 5"), std::string::npos) << r.err;
  r = run({"run", "-m", model, "-ctk", "q4_0"});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("--cache-type-k q4_0"), std::string::npos) << r.err;
  r = run({"run", "-m", "/nonexistent/model.gguf"});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("/nonexistent/model.gguf"), std::string::npos) << r.err;
}

TEST(CliChat, ScriptedSessionReusesTheCache) {
  STRATA_REQUIRE_BINARY(bin);
  STRATA_REQUIRE_SHARED(model, "models/stories260K.gguf");
  const Result r = run({"chat", "-m", model, "--chat-template", "chatml", "--temp", "0", "-n", "16", "-v",
                        "--system-prompt", "You tell stories."},
                       "Tell me a story.\n\nWhat happened next?\n");
  ASSERT_EQ(r.code, 0) << r.err;
  // Two replies (the blank line is skipped), each ending with a newline.
  EXPECT_NE(r.err.find("turn 1: prompt"), std::string::npos) << r.err;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(r.err, m, std::regex(R"(turn 2: prompt ([0-9]+) tokens \(([0-9]+) new\))"))) << r.err;
  EXPECT_LT(std::stoi(m[2]), std::stoi(m[1]) / 2) << "the second turn should feed only the new tokens";
  EXPECT_EQ(r.err.find("turn 3"), std::string::npos);
  EXPECT_GE(std::count(r.out.begin(), r.out.end(), '\n'), 2) << r.out;
  EXPECT_GT(r.out.size(), 10u);
}

TEST(CliChat, NoTemplateIsAClearError) {
  STRATA_REQUIRE_BINARY(bin);
  STRATA_REQUIRE_SHARED(model, "models/stories260K.gguf");
  Result r = run({"chat", "-m", model}, "hi\n");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("pass --chat-template NAME"), std::string::npos) << r.err;
  r = run({"chat", "-m", model, "--chat-template", "nonsense"}, "hi\n");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("--chat-template"), std::string::npos) << r.err;
}

TEST(CliChat, CtrlCStopsTheReplyNotTheProgram) {
  STRATA_REQUIRE_BINARY(bin);
  STRATA_REQUIRE_SHARED(model, "models/stories260K.gguf");
  // A reply that would run for minutes: no token limit, no end of text, a large context.
  Process p(bin, {"chat", "-m", model, "--chat-template", "chatml", "--temp", "0", "--ignore-eos", "-c", "1000000",
                  "-v", "-t", "1"});
  p.write_stdin("Tell me a story.\n");
  ASSERT_TRUE(p.wait_for([](const std::string& out, const std::string&) { return out.size() > 20; }, 60)) << p.err_text;
  p.signal_process(SIGINT);
  ASSERT_TRUE(p.wait_for([](const std::string&, const std::string& err) { return err.find("stop: interrupted") != std::string::npos; }, 30))
      << p.err_text;
  // Still running: a second turn is answered; Ctrl-C stops that reply too.
  const size_t before = p.out_text.size();
  p.write_stdin("More?\n");
  ASSERT_TRUE(p.wait_for([&](const std::string& out, const std::string&) { return out.size() > before + 20; }, 60))
      << p.err_text;
  p.signal_process(SIGINT);
  ASSERT_TRUE(p.wait_for([](const std::string&, const std::string& err) {
    const size_t t2 = err.find("turn 2:");
    return t2 != std::string::npos && err.find("stop: interrupted", t2) != std::string::npos;
  }, 30)) << p.err_text;
  // Ctrl-C at the prompt exits, normally.
  p.signal_process(SIGINT);
  EXPECT_EQ(p.wait_exit(30), 0) << p.err_text;
}

TEST(CliChat, EndOfInputExits) {
  STRATA_REQUIRE_BINARY(bin);
  STRATA_REQUIRE_SHARED(model, "models/stories260K.gguf");
  const Result r = run({"chat", "-m", model, "--chat-template", "llama2"}, "");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "");
}

TEST(DefaultModel, DemoModelIsGeneratedWhenNothingElseExists) {
  const std::string cache = ::testing::TempDir() + "strata_xdg_" + std::to_string(::getpid());
  setenv("XDG_CACHE_HOME", cache.c_str(), 1);
  testing::internal::CaptureStderr();
  const std::string path = cli::resolve_model("", "");
  const std::string err = testing::internal::GetCapturedStderr();
  unsetenv("XDG_CACHE_HOME");
  EXPECT_EQ(path, cache + "/strata/demo.gguf");
  EXPECT_NE(err.find("RANDOM weights"), std::string::npos) << err;
  EXPECT_NE(err.find("gibberish"), std::string::npos) << err;
  auto m = model::Model::load(path);
  EXPECT_GT(m->hparams().n_layer, 0);
  // -m and an existing default win over the demo.
  EXPECT_EQ(cli::resolve_model("x.gguf", ""), "x.gguf");
  EXPECT_EQ(cli::resolve_model("", "default.gguf"), "default.gguf");
  std::filesystem::remove_all(cache);
}

}  // namespace
}  // namespace strata::test
