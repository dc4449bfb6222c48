// llama.cpp's own tokenizer test vectors (../shared/reference/tokenizer): every case must match exactly,
// with add_special = false and parse_special = false as in its test-tokenizer-0.
#include <gtest/gtest.h>

#include <cstdio>

#include "tok_test_util.h"

namespace strata {
namespace {

using test::read_suite_inputs;
using test::read_suite_outputs;

std::string ids_str(const std::vector<int32_t>& v) {
  std::string s;
  for (int32_t id : v) {
    if (!s.empty()) s += ' ';
    s += std::to_string(id);
  }
  return s;
}

// Runs the .inp/.out cases of one suite vocabulary against `tok`.
void check_suite(const Tokenizer& tok, const std::string& name) {
  STRATA_REQUIRE_SHARED(inp, ("reference/tokenizer/ggml-vocab-" + name + ".gguf.inp").c_str());
  STRATA_REQUIRE_SHARED(out, ("reference/tokenizer/ggml-vocab-" + name + ".gguf.out").c_str());
  const auto inputs = read_suite_inputs(inp);
  const auto expected = read_suite_outputs(out);
  ASSERT_EQ(inputs.size(), expected.size()) << name << ": .inp and .out disagree on the number of cases";
  ASSERT_GT(inputs.size(), 40u);
  size_t pass = 0;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const std::vector<TokenId> got = tok.encode(inputs[i], /*add_special=*/false, /*parse_special=*/false);
    if (got == expected[i]) {
      ++pass;
    } else {
      ADD_FAILURE() << name << " case " << i << " '" << inputs[i] << "'\n  expected: " << ids_str(expected[i])
                    << "\n  got:      " << ids_str(got);
    }
  }
  std::printf("[ vocab    ] %-14s %zu/%zu cases match llama.cpp\n", name.c_str(), pass, inputs.size());
  EXPECT_EQ(pass, inputs.size());
}

class LlamaCppSuite : public ::testing::TestWithParam<std::string> {};

TEST_P(LlamaCppSuite, EveryCaseMatches) {
  const std::string name = GetParam();
  STRATA_REQUIRE_SHARED(gguf_path, test::suite_gguf(name).c_str());
  const Tokenizer* tok = test::shared_tokenizer(test::suite_gguf(name));
  ASSERT_NE(tok, nullptr);
  check_suite(*tok, name);
}

std::string param_name(const ::testing::TestParamInfo<std::string>& p) {
  std::string s = p.param;
  for (char& c : s)
    if (c == '-') c = '_';
  return s;
}
INSTANTIATE_TEST_SUITE_P(Vocabs, LlamaCppSuite, ::testing::ValuesIn(test::suite_vocabs()), param_name);

// llama-2-tiny-random.gguf carries the same 32000-token Llama 2 vocabulary as ggml-vocab-llama-spm.gguf
// (PROVENANCE.md), so the llama-spm vectors hold for it too.
TEST(LlamaCppSuite, TinyRandomModelHasTheLlamaSpmVocabulary) {
  STRATA_REQUIRE_SHARED(model, "models/llama-2-tiny-random.gguf");
  const Tokenizer* tok = test::shared_tokenizer("models/llama-2-tiny-random.gguf");
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(tok->n_vocab(), 32000);
  check_suite(*tok, "llama-spm");
}

}  // namespace
}  // namespace strata
