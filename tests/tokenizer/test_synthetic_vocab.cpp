// Small vocabularies built in memory: loading errors and the rules that the real vocabularies exercise
// only indirectly (merge priority, user-defined tokens, strip attributes, add_eos, no space prefix).
#include <gtest/gtest.h>

#include "core/error.h"
#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"

namespace strata {
namespace {

using gguf::Writer;

struct Vocab {
  std::vector<std::string> tokens;
  std::vector<float> scores;
  std::vector<int32_t> types;
  void add(const std::string& t, float score = 0, TokenAttr type = TokenAttr::kNormal) {
    tokens.push_back(t);
    scores.push_back(score);
    types.push_back(static_cast<int32_t>(type));
  }
};

// The GGUF bytes must outlive the File, so both live here.
struct Built {
  std::vector<uint8_t> bytes;
  std::unique_ptr<Tokenizer> tok;
};

Built build(Writer w) {
  Built b;
  b.bytes = w.to_bytes();
  b.tok = Tokenizer::from_gguf(gguf::File::parse(b.bytes, "synthetic.gguf"));
  return b;
}

Writer spm_writer(const Vocab& v) {
  Writer w;
  w.set("general.architecture", Writer::string("llama"));
  w.set("tokenizer.ggml.model", Writer::string("llama"));
  w.set("tokenizer.ggml.tokens", Writer::string_array(v.tokens));
  w.set("tokenizer.ggml.scores", Writer::f32_array(v.scores));
  w.set("tokenizer.ggml.token_type", Writer::i32_array(v.types));
  return w;
}

// <unk> <s> </s>, the 256 byte tokens, then the given pieces.
Vocab spm_base() {
  Vocab v;
  v.add("<unk>", 0, TokenAttr::kUnknown);
  v.add("<s>", 0, TokenAttr::kControl);
  v.add("</s>", 0, TokenAttr::kControl);
  static const char* hex = "0123456789ABCDEF";
  for (int b = 0; b < 256; ++b) v.add(std::string{'<', '0', 'x', hex[b >> 4], hex[b & 15], '>'}, 0, TokenAttr::kByte);
  return v;
}
constexpr TokenId kFirst = 259;  // first piece after the byte tokens

std::string error_of(Writer w) {
  try {
    build(std::move(w));
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(SyntheticVocab, SpmMergesHighestScoreFirstThenLeftmost) {
  Vocab v = spm_base();
  const std::string sp = "\xE2\x96\x81";
  v.add(sp, -1);          // 259
  v.add("a", -1);         // 260
  v.add("b", -1);         // 261
  v.add(sp + "a", -5);    // 262
  v.add("ab", -2);        // 263
  v.add(sp + "ab", -9);   // 264
  v.add("bb", -3);        // 265
  v.add(sp + "abb", 0);   // 266: only reachable through ▁ab + b, which never forms after bb
  const Built b = build(spm_writer(v));
  // ab (-2) merges before ▁a (-5); then ▁ + ab is the token ▁ab.
  EXPECT_EQ(b.tok->encode("ab", false, false), (std::vector<TokenId>{kFirst + 5}));
  // "abbb": ab, then the leftmost bb of the remaining b's, then ▁ab.
  EXPECT_EQ(b.tok->encode("abbb", false, false), (std::vector<TokenId>{kFirst + 5, kFirst + 6}));
  // Equal scores: the leftmost pair merges first ("bbb" -> bb + b).
  EXPECT_EQ(b.tok->encode("bbb", false, false), (std::vector<TokenId>{kFirst, kFirst + 6, kFirst + 2}));
  // A character outside the vocabulary falls back to its bytes.
  EXPECT_EQ(b.tok->encode("\xC3\xA9", false, false), (std::vector<TokenId>{kFirst, 3 + 0xC3, 3 + 0xA9}));
  EXPECT_EQ(b.tok->decode(b.tok->encode("ab \xC3\xA9 bb", true, false)), "ab \xC3\xA9 bb");
}

TEST(SyntheticVocab, SpmKeysOverrideDefaults) {
  Vocab v = spm_base();
  v.add("a", -1);
  v.add("\xE2\x96\x81" "a", -1);
  Writer w = spm_writer(v);
  w.set("tokenizer.ggml.add_space_prefix", Writer::boolean(false));
  w.set("tokenizer.ggml.add_eos_token", Writer::boolean(true));
  w.set("tokenizer.ggml.add_bos_token", Writer::boolean(false));
  w.set("tokenizer.ggml.padding_token_id", Writer::u32(0xFFFFFFFFu));
  const Built b = build(std::move(w));
  EXPECT_FALSE(b.tok->add_space_prefix());
  EXPECT_FALSE(b.tok->add_bos());
  EXPECT_TRUE(b.tok->add_eos());
  EXPECT_EQ(b.tok->encode("a", true, false), (std::vector<TokenId>{kFirst, 2}));
  EXPECT_EQ(b.tok->decode({kFirst + 1}), " a");  // no prefix space to remove
}

TEST(SyntheticVocab, UserDefinedTokensSplitEvenWithoutParseSpecial) {
  Vocab v = spm_base();
  v.add("x", -1);                                   // 259
  v.add("\xE2\x96\x81x", -1);                       // 260
  v.add("<|user|>", 0, TokenAttr::kControl);        // 261
  v.add("[MARK]", 0, TokenAttr::kUserDefined);      // 262
  const Built b = build(spm_writer(v));
  // User-defined: always a token of its own; the text after it gets the prefix space again.
  EXPECT_EQ(b.tok->encode("x[MARK]x", false, false), (std::vector<TokenId>{kFirst + 1, kFirst + 3, kFirst + 1}));
  // Control: only with parse_special.
  EXPECT_EQ(b.tok->encode("<|user|>x", false, true), (std::vector<TokenId>{kFirst + 2, kFirst + 1}));
  EXPECT_NE(b.tok->encode("<|user|>x", false, false).front(), kFirst + 2);
  EXPECT_EQ(b.tok->token_to_piece(kFirst + 3), "[MARK]");  // user-defined pieces always show
  EXPECT_EQ(b.tok->token_to_piece(kFirst + 2), "");
  EXPECT_EQ(b.tok->token_to_piece(kFirst + 2, true), "<|user|>");
}

TEST(SyntheticVocab, Phi3NameStripsWhitespaceAfterSpecialTokens) {
  Vocab v = spm_base();
  v.add("x", -1);
  v.add("\xE2\x96\x81x", -1);
  v.add("<|end|>", 0, TokenAttr::kControl);  // 261
  Writer w = spm_writer(v);
  w.set("general.name", Writer::string("Phi3"));
  const Built b = build(std::move(w));
  // RSTRIP: the spaces and newline after <|end|> are dropped before tokenizing the rest.
  EXPECT_EQ(b.tok->encode("x<|end|> \n x", false, true), (std::vector<TokenId>{kFirst + 1, kFirst + 2, kFirst + 1}));
  EXPECT_TRUE(b.tok->is_eog(kFirst + 2));
  EXPECT_EQ(b.tok->eot(), kFirst + 2);
}

TEST(SyntheticVocab, BpeMergeRanksAndByteMap) {
  // A byte-level alphabet (Ġ is the mapped space) and a few merges.
  Vocab v;
  v.add("<|endoftext|>", 0, TokenAttr::kControl);  // 0
  for (const char* t : {"h", "e", "l", "o", "\xC4\xA0", "he", "ll", "hell", "hello", "\xC4\xA0w", "w", "."}) v.add(t);
  Writer w;
  w.set("tokenizer.ggml.model", Writer::string("gpt2"));
  w.set("tokenizer.ggml.pre", Writer::string("gpt-2"));
  w.set("tokenizer.ggml.tokens", Writer::string_array(v.tokens));
  w.set("tokenizer.ggml.token_type", Writer::i32_array(v.types));
  w.set("tokenizer.ggml.merges", Writer::string_array({"l l", "h e", "he ll", "hell o", "\xC4\xA0 w"}));
  w.set("tokenizer.ggml.bos_token_id", Writer::u32(0));
  w.set("tokenizer.ggml.eos_token_id", Writer::u32(0));
  const Built b = build(std::move(w));
  EXPECT_EQ(b.tok->pre_name(), "gpt-2");
  EXPECT_FALSE(b.tok->add_bos());
  EXPECT_EQ(b.tok->encode("hello", true, false), (std::vector<TokenId>{9}));
  EXPECT_EQ(b.tok->encode("hello w", false, false), (std::vector<TokenId>{9, 10}));
  EXPECT_EQ(b.tok->encode("<|endoftext|>hello", false, true), (std::vector<TokenId>{0, 9}));
  EXPECT_EQ(b.tok->decode({9, 10}), "hello w");
  EXPECT_EQ(b.tok->token_to_piece(5), " ");
  EXPECT_TRUE(b.tok->is_eog(0));
  // clean_spaces (gpt-2): llama.cpp's detokenize drops the space before punctuation; decode() does not.
  EXPECT_EQ(b.tok->decode({9, 5, 12}), "hello .");
  EXPECT_EQ(b.tok->detokenize({9, 5, 12}, false, false), "hello.");
}

TEST(SyntheticVocab, ErrorsNameTheProblem) {
  Writer none;
  none.set("general.architecture", Writer::string("llama"));
  EXPECT_NE(error_of(none).find("tokenizer.ggml.model"), std::string::npos);

  Vocab v = spm_base();
  Writer bert = spm_writer(v);
  bert.set("tokenizer.ggml.model", Writer::string("bert"));
  const std::string e1 = error_of(bert);
  EXPECT_NE(e1.find("'bert'"), std::string::npos) << e1;
  EXPECT_NE(e1.find("llama"), std::string::npos) << e1;
  EXPECT_NE(e1.find("gpt2"), std::string::npos) << e1;

  Writer bpe;
  bpe.set("tokenizer.ggml.model", Writer::string("gpt2"));
  bpe.set("tokenizer.ggml.pre", Writer::string("martian"));
  bpe.set("tokenizer.ggml.tokens", Writer::string_array({"a", "b"}));
  bpe.set("tokenizer.ggml.merges", Writer::string_array({"a b"}));
  const std::string e2 = error_of(bpe);
  EXPECT_NE(e2.find("'martian'"), std::string::npos) << e2;
  EXPECT_NE(e2.find("llama-bpe"), std::string::npos) << e2;

  Writer nomerges;
  nomerges.set("tokenizer.ggml.model", Writer::string("gpt2"));
  nomerges.set("tokenizer.ggml.tokens", Writer::string_array({"a", "b"}));
  EXPECT_NE(error_of(nomerges).find("tokenizer.ggml.merges"), std::string::npos);

  Vocab dup = spm_base();
  dup.add("x");
  dup.add("x");
  EXPECT_NE(error_of(spm_writer(dup)).find("duplicate"), std::string::npos);

  Vocab short_scores = spm_base();
  Writer ws = spm_writer(short_scores);
  ws.set("tokenizer.ggml.scores", Writer::f32_array({0.0f}));
  EXPECT_NE(error_of(ws).find("tokenizer.ggml.scores"), std::string::npos);

  Writer empty;
  empty.set("tokenizer.ggml.model", Writer::string("llama"));
  EXPECT_NE(error_of(empty).find("tokenizer.ggml.tokens"), std::string::npos);
}

TEST(SyntheticVocab, OutOfRangeIdsAreErrors) {
  const Built b = build(spm_writer(spm_base()));
  EXPECT_THROW(b.tok->token_to_piece(-1), Error);
  EXPECT_THROW(b.tok->token_to_piece(b.tok->n_vocab()), Error);
}

}  // namespace
}  // namespace strata
