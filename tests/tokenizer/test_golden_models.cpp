// The real models' tokenizers against the golden prompts and texts in ../shared/models/golden.
#include <gtest/gtest.h>

#include "tok_test_util.h"

namespace strata {
namespace {

using test::read_id_list;
using test::read_text;
using test::shared_tokenizer;

std::vector<TokenId> concat(std::vector<TokenId> a, const std::vector<TokenId>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

TEST(GoldenModels, Stories260KEncodesOnceUponATime) {
  STRATA_REQUIRE_SHARED(path, "models/stories260K.gguf");
  const Tokenizer* tok = shared_tokenizer("models/stories260K.gguf");
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(tok->model_name(), "llama");
  EXPECT_EQ(tok->n_vocab(), 512);
  EXPECT_EQ(tok->bos(), 1);
  EXPECT_EQ(tok->eos(), 2);
  EXPECT_EQ(tok->unk(), 0);
  EXPECT_TRUE(tok->add_bos());  // no add_bos key: the llama default
  EXPECT_FALSE(tok->add_eos());
  EXPECT_TRUE(tok->add_space_prefix());
  EXPECT_TRUE(tok->is_eog(2));
  EXPECT_FALSE(tok->is_eog(1));
  EXPECT_EQ(tok->encode("Once upon a time", true, false), (std::vector<TokenId>{1, 403, 407, 261, 378}));
  EXPECT_EQ(tok->encode("Once upon a time", false, false), (std::vector<TokenId>{403, 407, 261, 378}));
  EXPECT_EQ(tok->encode("", true, false), (std::vector<TokenId>{1}));
  EXPECT_TRUE(tok->encode("", false, false).empty());
}

// strata-tiny-256 shares stories260K's vocabulary; its golden files hold llama.cpp's prompt ids.
TEST(GoldenModels, PromptIdsMatchLlamaCpp) {
  STRATA_REQUIRE_SHARED(path, "models/strata-tiny-256.gguf");
  const Tokenizer* tok = shared_tokenizer("models/strata-tiny-256.gguf");
  ASSERT_NE(tok, nullptr);
  const std::pair<const char*, const char*> cases[] = {
      {"once-upon-a-time", "Once upon a time"},
      {"lily-and-tom", "Lily and Tom went to the park. They"},
      {"bos", ""},
  };
  for (const auto& [name, prompt] : cases) {
    const std::string rel = std::string("models/golden/strata-tiny-256.") + name + ".prompt-ids.txt";
    STRATA_REQUIRE_SHARED(ids_path, rel.c_str());
    EXPECT_EQ(tok->encode(prompt, true, false), read_id_list(ids_path)) << name;
  }
}

// Golden texts are prompt + generation decoded, the SPM prefix space dropped once at the start.
TEST(GoldenModels, DecodeReproducesTheGoldenTexts) {
  STRATA_REQUIRE_SHARED(path, "models/strata-tiny-256.gguf");
  const Tokenizer* tok = shared_tokenizer("models/strata-tiny-256.gguf");
  ASSERT_NE(tok, nullptr);
  for (const char* name : {"once-upon-a-time", "lily-and-tom", "bos"}) {
    const std::string base = std::string("models/golden/strata-tiny-256.") + name;
    STRATA_REQUIRE_SHARED(prompt_ids, (base + ".prompt-ids.txt").c_str());
    STRATA_REQUIRE_SHARED(gen_ids, (base + ".gen-ids.txt").c_str());
    STRATA_REQUIRE_SHARED(text, (base + ".txt").c_str());
    const std::vector<TokenId> ids = concat(read_id_list(prompt_ids), read_id_list(gen_ids));
    EXPECT_EQ(tok->decode(ids), read_text(text)) << name;
    // Streaming the same ids gives the same text.
    StreamDecoder sd(*tok);
    std::string streamed;
    for (TokenId id : ids) streamed += sd.push(id);
    streamed += sd.flush();
    EXPECT_EQ(streamed, read_text(text)) << name;
  }
}

TEST(GoldenModels, Stories260KDecodesLlama2cGoldens) {
  STRATA_REQUIRE_SHARED(path, "models/stories260K.gguf");
  STRATA_REQUIRE_SHARED(ids200, "models/golden/stories260K.greedy-from-bos.n200.ids.txt");
  STRATA_REQUIRE_SHARED(txt200, "models/golden/stories260K.greedy-from-bos.n200.txt");
  STRATA_REQUIRE_SHARED(ids128, "models/golden/stories260K.greedy-once-upon-a-time.n128.ids.txt");
  STRATA_REQUIRE_SHARED(txt128, "models/golden/stories260K.greedy-once-upon-a-time.n128.txt");
  const Tokenizer* tok = shared_tokenizer("models/stories260K.gguf");
  ASSERT_NE(tok, nullptr);
  // From BOS: the generated ids alone, or behind the BOS, decode to llama2.c's output.
  const std::vector<TokenId> gen200 = read_id_list(ids200);
  ASSERT_EQ(gen200.size(), 200u);
  EXPECT_EQ(tok->decode(gen200), read_text(txt200));
  EXPECT_EQ(tok->decode(concat({1}, gen200)), read_text(txt200));
  // The ids file of the prompted run lists only the generated ids; the prompt is "Once upon a time".
  const std::vector<TokenId> prompt = tok->encode("Once upon a time", true, false);
  ASSERT_EQ(prompt, (std::vector<TokenId>{1, 403, 407, 261, 378}));
  EXPECT_EQ(tok->decode(concat(prompt, read_id_list(ids128))), read_text(txt128));
  // The golden text re-encodes to the same ids (it was produced from them).
  EXPECT_EQ(tok->encode(read_text(txt200), false, false), gen200);
}

TEST(GoldenModels, TinyRandomLlama2Vocabulary) {
  STRATA_REQUIRE_SHARED(path, "models/llama-2-tiny-random.gguf");
  const Tokenizer* tok = shared_tokenizer("models/llama-2-tiny-random.gguf");
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(tok->encode("Hello world", true, false), (std::vector<TokenId>{1, 15043, 3186}));
  EXPECT_EQ(tok->encode("Once upon a time", true, false), (std::vector<TokenId>{1, 9038, 2501, 263, 931}));
  EXPECT_EQ(tok->decode({1, 15043, 3186}), "Hello world");
  EXPECT_EQ(tok->decode({1, 15043, 3186}, /*render_special=*/true), "<s> Hello world");
  EXPECT_EQ(tok->token_to_piece(15043), " Hello");
  EXPECT_EQ(tok->token_to_piece(13), "\n");  // <0x0A>
  EXPECT_EQ(tok->token_to_piece(1), "");
  EXPECT_EQ(tok->token_to_piece(1, true), "<s>");
  EXPECT_EQ(tok->token_attr(1), TokenAttr::kControl);
  EXPECT_EQ(tok->token_attr(13), TokenAttr::kByte);
  // Special-token parsing: "<s>" is BOS only when asked for; the text after it gets a space prefix again.
  EXPECT_EQ(tok->encode("<s>Hello", false, true), (std::vector<TokenId>{1, 15043}));
  EXPECT_NE(tok->encode("<s>Hello", false, false).front(), 1);
}

// ../shared/data/tinystories-heldout.md: 39,653 tokens for the whole file as one text with BOS.
TEST(GoldenModels, HeldOutStoriesTokenCount) {
  STRATA_REQUIRE_SHARED(path, "models/stories260K.gguf");
  STRATA_REQUIRE_SHARED(text, "data/tinystories-heldout.txt");
  const Tokenizer* tok = shared_tokenizer("models/stories260K.gguf");
  const std::string s = read_text(text);
  const std::vector<TokenId> ids = tok->encode(s, true, false);
  EXPECT_EQ(ids.size(), 39653u);
  EXPECT_EQ(tok->decode(ids), s);
}

// nanoGPT's shakespeare prepare.py reports 301,966 + 36,059 = 338,025 GPT-2 tokens (tiktoken) for this file.
TEST(GoldenModels, Gpt2TokenCountOfTinyShakespeareMatchesTiktoken) {
  STRATA_REQUIRE_SHARED(path, "reference/tokenizer/ggml-vocab-gpt-2.gguf");
  STRATA_REQUIRE_SHARED(text, "data/tinyshakespeare.txt");
  const Tokenizer* tok = shared_tokenizer("reference/tokenizer/ggml-vocab-gpt-2.gguf");
  const std::string s = read_text(text);
  const std::vector<TokenId> ids = tok->encode(s, false, false);
  EXPECT_EQ(ids.size(), 338025u);
  EXPECT_EQ(tok->decode(ids), s);
}

// ../shared/reference/llamacpp: llama.cpp's prompt ids (line 1) and its generated text, printed piece by piece
// after the prompt, so keeping the leading space of the first generated piece.
TEST(GoldenModels, LlamaCppPromptsAndContinuations) {
  const std::pair<const char*, const char*> prompts[] = {
      {"once", "Once upon a time"}, {"lily", "Lily and Tom went to the park. They"}};
  for (const char* model : {"stories260K", "strata-tiny-256-Q8_0"}) {
    const std::string gguf = std::string(model == std::string("stories260K") ? "models/" : "models/quant/") + model +
                             ".gguf";
    STRATA_REQUIRE_SHARED(path, gguf.c_str());
    const Tokenizer* tok = shared_tokenizer(gguf);
    for (const auto& [name, prompt] : prompts) {
      const std::string base = std::string("reference/llamacpp/") + model + "." + name;
      STRATA_REQUIRE_SHARED(ids_path, (base + ".ids.txt").c_str());
      STRATA_REQUIRE_SHARED(txt_path, (base + ".txt").c_str());
      const std::string ids_text = read_text(ids_path);
      const size_t nl = ids_text.find('\n');
      ASSERT_NE(nl, std::string::npos);
      const std::vector<TokenId> prompt_ids = test::parse_ids(ids_text.substr(0, nl));
      const std::vector<TokenId> gen_ids = test::parse_ids(ids_text.substr(nl + 1));
      EXPECT_EQ(tok->encode(prompt, true, false), prompt_ids) << model << " " << name;
      ASSERT_EQ(gen_ids.size(), 32u);
      StreamDecoder sd(*tok, /*render_special=*/false, /*at_text_start=*/false);
      std::string text;
      for (TokenId id : gen_ids) text += sd.push(id);
      text += sd.flush();
      EXPECT_EQ(text, read_text(txt_path)) << model << " " << name;
      EXPECT_EQ(tok->decode(concat(prompt_ids, gen_ids)), prompt + read_text(txt_path)) << model << " " << name;
    }
  }
}

}  // namespace
}  // namespace strata
