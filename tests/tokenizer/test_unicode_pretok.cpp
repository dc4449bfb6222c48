// Unit tests of the Unicode helpers and of pre-tokenizer splits worked out by hand from the regexes.
#include <gtest/gtest.h>

#include "tokenizer/pretokenize.h"
#include "tokenizer/unicode.h"

namespace strata {
namespace {

namespace u = unicode;

TEST(Unicode, CategoryFlags) {
  EXPECT_EQ(u::flags('A'), u::kLetter);
  EXPECT_EQ(u::flags('z'), u::kLetter);
  EXPECT_EQ(u::flags('7'), u::kNumber);
  EXPECT_EQ(u::flags(' '), u::kSeparator | u::kWhitespace);
  EXPECT_EQ(u::flags('\n'), u::kControl | u::kWhitespace);
  EXPECT_EQ(u::flags(0x1C), u::kControl);  // not White_Space, unlike Python's str.isspace
  EXPECT_EQ(u::flags('!'), u::kPunct);
  EXPECT_EQ(u::flags('$'), u::kSymbol);
  EXPECT_EQ(u::flags('~'), u::kSymbol);
  EXPECT_EQ(u::flags(0x85), u::kControl | u::kWhitespace);
  EXPECT_EQ(u::flags(0xA0), u::kSeparator | u::kWhitespace);
  EXPECT_EQ(u::flags(0xBD), u::kNumber);     // ½
  EXPECT_EQ(u::flags(0x0301), u::kMark);     // combining acute
  EXPECT_EQ(u::flags(0x0378), u::kUndefined);
  EXPECT_EQ(u::flags(0x3000), u::kSeparator | u::kWhitespace);
  EXPECT_EQ(u::flags(0x4E00), u::kLetter);   // CJK, inside a First/Last range of UnicodeData.txt
  EXPECT_EQ(u::flags(0xAC01), u::kLetter);   // Hangul syllable
  EXPECT_EQ(u::flags(0x200B), u::kControl);  // zero width space is Cf, not whitespace
  EXPECT_EQ(u::flags(0xE000), u::kControl);  // private use
  EXPECT_EQ(u::flags(0x1F999), u::kSymbol);  // emoji
  EXPECT_EQ(u::flags(0x10FFFF), u::kUndefined);
  EXPECT_EQ(u::flags(0x110000), u::kUndefined);
  EXPECT_EQ(u::flags(0x1FFFFF), u::kUndefined);
}

TEST(Unicode, DecodesLikeLlamaCpp) {
  using V = std::vector<uint32_t>;
  EXPECT_EQ(u::decode_utf8("a\xC3\xA9\xE2\x82\xAC\xF0\x9F\xA6\x99"), (V{'a', 0xE9, 0x20AC, 0x1F999}));
  EXPECT_EQ(u::decode_utf8("\xE2\x82"), (V{0xFFFD, 0xFFFD}));        // truncated: one U+FFFD per byte
  EXPECT_EQ(u::decode_utf8("\xE2\x82x"), (V{0xFFFD, 0xFFFD, 'x'}));
  EXPECT_EQ(u::decode_utf8("\x80\xBF"), (V{0xFFFD, 0xFFFD}));        // stray continuations
  EXPECT_EQ(u::decode_utf8("\xF8\xFF"), (V{0xFFFD, 0xFFFD}));        // never lead bytes
  EXPECT_EQ(u::decode_utf8("\xC0\x80"), (V{0}));                     // overlong forms are not rejected
  EXPECT_EQ(u::decode_utf8("\xED\xA0\x80"), (V{0xD800}));            // nor surrogates
  EXPECT_EQ(u::decode_utf8("\xF7\xBF\xBF\xBF"), (V{0x1FFFFF}));
  EXPECT_EQ(u::to_utf8(0x1FFFFF), "\xEF\xBF\xBD");                    // past U+10FFFF: re-encoded as U+FFFD
  EXPECT_EQ(u::to_utf8(0x10FFFF), "\xF4\x8F\xBF\xBF");
  EXPECT_EQ(u::utf8_len('\xF0'), 4u);
  EXPECT_EQ(u::utf8_len('\x80'), 1u);
}

TEST(Unicode, Gpt2ByteMap) {
  EXPECT_EQ(u::byte_to_unicode(' '), "\xC4\xA0");  // Ġ
  EXPECT_EQ(u::byte_to_unicode('\n'), "\xC4\x8A");  // Ċ
  EXPECT_EQ(u::byte_to_unicode('A'), "A");
  EXPECT_EQ(u::byte_to_unicode(0xAD), "\xC5\x83");  // the last unprintable byte: U+0143
  for (int b = 0; b < 256; ++b) {
    const auto cpts = u::decode_utf8(u::byte_to_unicode(static_cast<uint8_t>(b)));
    ASSERT_EQ(cpts.size(), 1u);
    EXPECT_EQ(u::unicode_to_byte(cpts[0]), b);
  }
  EXPECT_EQ(u::unicode_to_byte(0x20), -1);
  EXPECT_EQ(u::unicode_to_byte(0x144), -1);
}

TEST(Unicode, CompletePrefixHoldsBackOnlyCompletableTails) {
  EXPECT_EQ(u::complete_utf8_prefix(""), 0u);
  EXPECT_EQ(u::complete_utf8_prefix("abc"), 3u);
  EXPECT_EQ(u::complete_utf8_prefix("a\xF0\x9F\xA6"), 1u);
  EXPECT_EQ(u::complete_utf8_prefix("a\xF0\x9F\xA6\x99"), 5u);
  EXPECT_EQ(u::complete_utf8_prefix("a\xE2"), 1u);
  EXPECT_EQ(u::complete_utf8_prefix("a\xC3"), 1u);
  EXPECT_EQ(u::complete_utf8_prefix("a\xFF"), 2u);        // can never complete: let it out
  EXPECT_EQ(u::complete_utf8_prefix("a\xC0"), 2u);        // overlong lead
  EXPECT_EQ(u::complete_utf8_prefix("a\x80\x80\x80"), 4u);  // stray continuations
  EXPECT_EQ(u::complete_utf8_prefix("a\xC3\xA9\xE2\x82"), 3u);
}

std::vector<std::string> split(const char* pre, const std::string& text) {
  return pretok::split(pretok::find(pre)->kind, text);
}
using W = std::vector<std::string>;

TEST(Pretokenize, Gpt2) {
  EXPECT_EQ(split("gpt-2", "Hello world"), (W{"Hello", "\xC4\xA0world"}));
  EXPECT_EQ(split("gpt-2", "  Hello"), (W{"\xC4\xA0", "\xC4\xA0Hello"}));  // \s+(?!\S) leaves one space
  EXPECT_EQ(split("gpt-2", "I'm 're 'RE"), (W{"I", "'m", "\xC4\xA0'", "re", "\xC4\xA0'", "RE"}));
  EXPECT_EQ(split("gpt-2", "a\tb"), (W{"a", "\xC4\x89", "b"}));
  EXPECT_EQ(split("gpt-2", "x  "), (W{"x", "\xC4\xA0\xC4\xA0"}));  // trailing whitespace stays together
  EXPECT_EQ(split("gpt-2", "12345!?"), (W{"12345", "!?"}));
  EXPECT_TRUE(split("gpt-2", "").empty());
}

TEST(Pretokenize, Llama3AndQwen2) {
  EXPECT_EQ(split("llama-bpe", "12345"), (W{"123", "45"}));
  EXPECT_EQ(split("qwen2", "12345"), (W{"1", "2", "3", "4", "5"}));
  EXPECT_EQ(split("llama-bpe", "I'VE seen"), (W{"I", "'VE", "\xC4\xA0seen"}));  // case-insensitive
  EXPECT_EQ(split("llama-bpe", "Hello\n\nworld"), (W{"Hello", "\xC4\x8A\xC4\x8A", "world"}));
  EXPECT_EQ(split("llama-bpe", "a  \n b"), (W{"a", "\xC4\xA0\xC4\xA0\xC4\x8A", "\xC4\xA0" "b"}));  // \s*[\r\n]+
  EXPECT_EQ(split("llama-bpe", "(hello)"), (W{"(hello", ")"}));  // [^\r\n\p{L}\p{N}]?\p{L}+
  EXPECT_EQ(split("llama-bpe", " ...\n\nx"), (W{"\xC4\xA0...\xC4\x8A\xC4\x8A", "x"}));  // [\r\n]* after punct
}

TEST(Pretokenize, FalconStarcoderDeepseek) {
  EXPECT_EQ(split("falcon", "x 12345"), (W{"x", "\xC4\xA0", "123", "45"}));
  EXPECT_EQ(split("falcon", "a+=b"), (W{"a", "+=", "b"}));
  EXPECT_EQ(split("starcoder", "x 123"), (W{"x", "\xC4\xA0", "1", "2", "3"}));
  EXPECT_EQ(split("deepseek-llm", "Hello world"), (W{"Hello", "\xC4\xA0world"}));
  EXPECT_EQ(split("deepseek-llm", "ab\r\ncd  "), (W{"ab", "\xC4\x8D", "\xC4\x8A", "cd", "\xC4\xA0\xC4\xA0"}));
  EXPECT_EQ(split("deepseek-llm", "x 2024"), (W{"x", "\xC4\xA0", "2024"}));
}

TEST(Pretokenize, NamesAndErrors) {
  EXPECT_TRUE(pretok::find("").has_value());  // missing key: llama.cpp's default
  EXPECT_EQ(pretok::find("")->kind, pretok::Kind::kDefault);
  EXPECT_TRUE(pretok::find("llama-bpe")->ignore_merges);
  EXPECT_TRUE(pretok::find("llama-bpe")->add_bos);
  EXPECT_FALSE(pretok::find("deepseek-llm")->clean_spaces);
  EXPECT_FALSE(pretok::find("no-such-pre").has_value());
  const std::string names = pretok::supported_names();
  for (const char* n : {"default", "gpt-2", "llama-bpe", "qwen2", "deepseek-llm", "falcon", "starcoder"})
    EXPECT_NE(names.find(n), std::string::npos) << n;
}

}  // namespace
}  // namespace strata
