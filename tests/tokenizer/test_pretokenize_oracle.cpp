// The hand-written pre-tokenizers against an oracle that splits text the way llama.cpp's
// unicode_regex_split does with std::regex: every non-ASCII code point collapsed to one byte naming its
// category (whitespace to \v), \p{..} in the regex replaced by that byte plus the ASCII members, and
// std::wregex on the code points for regexes without \p{..}. The regex strings are llama.cpp's.
// (std::regex is only the oracle here: it is far too slow for the tokenizer itself.)
#include <gtest/gtest.h>

// libstdc++ 12's <regex> trips -Wmaybe-uninitialized inside std::function when optimised; not our code.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <regex>

#include "tok_test_util.h"
#include "tokenizer/pretokenize.h"

namespace strata {
namespace {

using pretok::Kind;
namespace u = unicode;

char collapsed_char(uint32_t cpt) {
  if (cpt < 128) return static_cast<char>(cpt);
  const uint16_t f = u::flags(cpt);
  if (f & u::kWhitespace) return 0x0B;
  if (f & u::kNumber) return static_cast<char>(0xD1);
  if (f & u::kLetter) return static_cast<char>(0xD2);
  if (f & u::kPunct) return static_cast<char>(0xD3);
  if (f & u::kMark) return static_cast<char>(0xD4);
  if (f & u::kSymbol) return static_cast<char>(0xD5);
  return static_cast<char>(0xD0);
}

// llama.cpp's rewrite of \p{N}, \p{L}, \p{P}, \p{M}, \p{S} for the collapsed text.
std::string collapse_regex(const std::string& re) {
  struct Cat {
    const char* name;
    char byte;
    const char* ascii;
  };
  static const Cat cats[] = {
      {"\\p{N}", char(0xD1), "\x30-\x39"},
      {"\\p{L}", char(0xD2), "\x41-\x5A\x61-\x7A"},
      {"\\p{P}", char(0xD3), "\x21-\x23\x25-\x2A\x2C-\x2F\x3A-\x3B\x3F-\x40\\\x5B-\\\x5D\x5F\\\x7B\\\x7D"},
      {"\\p{M}", char(0xD4), ""},
      {"\\p{S}", char(0xD5), "\\\x24\\\x2B\x3C-\x3E\x5E\x60\\\x7C"},
  };
  std::string out;
  bool inside = false;
  for (size_t i = 0; i < re.size(); ++i) {
    if (re[i] == '[' && (i == 0 || re[i - 1] != '\\')) {
      out += '[';
      inside = true;
      continue;
    }
    if (inside && re[i] == ']' && re[i - 1] != '\\') {
      out += ']';
      inside = false;
      continue;
    }
    bool replaced = false;
    for (const Cat& c : cats) {
      if (re.compare(i, 5, c.name) == 0) {
        if (!inside) out += '[';
        out += c.byte;
        out += c.ascii;
        if (!inside) out += ']';
        i += 4;
        replaced = true;
        break;
      }
    }
    if (!replaced) out += re[i];
  }
  return out;
}

template <class CharT>
std::vector<size_t> stl_split(const std::basic_string<CharT>& text, const std::basic_regex<CharT>& expr,
                              const std::vector<size_t>& offsets) {
  std::vector<size_t> out;
  size_t start = 0;
  for (size_t offset : offsets) {
    std::regex_iterator<const CharT*> it(text.data() + start, text.data() + start + offset, expr), end;
    int64_t start_idx = 0;
    for (; it != end; ++it) {
      const auto& m = *it;
      if (m.position() > start_idx) out.push_back(size_t(m.position() - start_idx));
      out.push_back(size_t(m.length()));
      start_idx = m.position() + m.length();
    }
    if (start_idx < int64_t(offset)) out.push_back(offset - size_t(start_idx));
    start += offset;
  }
  return out;
}

std::wstring to_wide(const std::string& utf8) {
  std::wstring w;
  for (uint32_t c : u::decode_utf8(utf8)) w.push_back(static_cast<wchar_t>(c));
  return w;
}

std::vector<std::string> oracle_split(const std::vector<std::string>& regexes, const std::string& text) {
  const std::vector<uint32_t> cpts = u::decode_utf8(text);
  std::string collapsed;
  std::wstring wtext;
  for (uint32_t c : cpts) {
    collapsed += collapsed_char(c);
    wtext.push_back(static_cast<wchar_t>(c > 0x7F && (u::flags(c) & u::kWhitespace) ? 0x0B : c));
  }
  constexpr auto flags = std::regex_constants::optimize | std::regex_constants::nosubs;
  std::vector<size_t> offsets{cpts.size()};
  for (const std::string& re : regexes) {
    if (re.find("\\p{") != std::string::npos) {
      offsets = stl_split(collapsed, std::regex(collapse_regex(re), flags), offsets);
    } else {
      offsets = stl_split(wtext, std::wregex(to_wide(re), flags), offsets);
    }
  }
  std::vector<std::string> words;
  size_t start = 0;
  for (size_t len : offsets) {
    std::string utf8, w;
    for (size_t i = start; i < start + len; ++i) u::append_utf8(utf8, cpts[i]);
    for (char ch : utf8) w += u::byte_to_unicode(static_cast<uint8_t>(ch));
    words.push_back(w);
    start += len;
  }
  return words;
}

const std::string kGpt2 = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)";
const std::string kLlama3 =
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const std::string kQwen2 =
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const std::string kBloom = " ?[^(\\s|.,!?\xE2\x80\xA6\xE3\x80\x82\xEF\xBC\x8C\xE3\x80\x81\xE0\xA5\xA4\xDB\x94\xD8\x8C)]+";
const std::string kCjk = "[\xE4\xB8\x80-\xE9\xBE\xA5\xE0\xA0\x80-\xE4\xB8\x80\xEA\xB0\x80-\xED\x9F\xBF]+";

// deepseek-llm's letter class, written out as code points (llama.cpp has the characters themselves).
std::string deepseek_letters_regex() {
  static const uint32_t r[][2] = {
      {0x41, 0x5A}, {0x61, 0x7A}, {0xB5, 0xB5}, {0xC0, 0xD6}, {0xD8, 0xF6}, {0xF8, 0x1BA}, {0x1BC, 0x1BF},
      {0x1C4, 0x293}, {0x295, 0x2AF}, {0x370, 0x373}, {0x376, 0x377}, {0x37B, 0x37D}, {0x37F, 0x37F},
      {0x386, 0x386}, {0x388, 0x38A}, {0x38C, 0x38C}, {0x38E, 0x3A1}, {0x3A3, 0x3F5}, {0x3F7, 0x481},
      {0x48A, 0x52F}, {0x531, 0x556}, {0x10A0, 0x10C5}, {0x13A0, 0x13F5}, {0x13F8, 0x13FD}, {0x1C90, 0x1CBA},
      {0x1CBD, 0x1CBF}, {0x1D00, 0x1D2B}, {0x1D6B, 0x1D77}, {0x1D79, 0x1D9A}, {0x1E00, 0x1F15}, {0x1F18, 0x1F1D},
      {0x1F20, 0x1F45}, {0x1F48, 0x1F4D}, {0x1F50, 0x1F57}, {0x1F59, 0x1F59}, {0x1F5B, 0x1F5B}, {0x1F5D, 0x1F5D},
      {0x1F5F, 0x1F7D}, {0x1F80, 0x1FB4}, {0x1FB6, 0x1FBC}, {0x1FBE, 0x1FBE}, {0x1FC2, 0x1FC4}, {0x1FC6, 0x1FCC},
      {0x1FD0, 0x1FD3}, {0x1FD6, 0x1FDB}, {0x1FE0, 0x1FEC}, {0x1FF2, 0x1FF4}, {0x1FF6, 0x1FFC}, {0x2102, 0x2102},
      {0x2107, 0x2107}, {0x210A, 0x2113}, {0x2115, 0x2115}, {0x2119, 0x211D}, {0x2124, 0x2124}, {0x2126, 0x2126},
      {0x2128, 0x2128}, {0x212A, 0x212D}, {0x212F, 0x2134}, {0x2139, 0x2139}, {0x213C, 0x213F}, {0x2145, 0x2149},
      {0x214E, 0x214E}, {0x2183, 0x2184}, {0x2C00, 0x2C7B}, {0x2C7E, 0x2CE4}, {0x2CEB, 0x2CEE}, {0x2CF2, 0x2CF3},
      {0xA640, 0xA66D}, {0xA680, 0xA69B}, {0xA722, 0xA76F}, {0xA771, 0xA787}, {0xA78B, 0xA78E}, {0xAB70, 0xABBF},
      {0xFB00, 0xFB06}, {0xFB13, 0xFB17}, {0xFF21, 0xFF3A}, {0xFF41, 0xFF5A}, {0x10400, 0x1044F},
      {0x104B0, 0x104D3}, {0x104D8, 0x104FB}, {0x10C80, 0x10CB2}, {0x10CC0, 0x10CF2}, {0x118A0, 0x118DF},
      {0x1E900, 0x1E943}};
  std::string s = "\\s?[";
  for (const auto& [lo, hi] : r) {
    u::append_utf8(s, lo);
    if (hi != lo) {
      s += '-';
      u::append_utf8(s, hi);
    }
  }
  return s + "]+";
}

std::vector<std::string> regexes_of(Kind k) {
  switch (k) {
    case Kind::kGpt2: return {kGpt2};
    case Kind::kLlama3: return {kLlama3};
    case Kind::kQwen2: return {kQwen2};
    case Kind::kStarcoder: return {"\\p{N}", kGpt2};
    case Kind::kFalcon: return {"[\\p{P}\\$\\+<=>\\^~\\|`]+", kGpt2, "[0-9][0-9][0-9]"};
    case Kind::kDefault: return {"[\\p{P}\\$\\+<=>\\^~\\|]+", kGpt2, "\\p{N}+", "[0-9][0-9][0-9]"};
    case Kind::kDeepseekLlm:
      return {"[\r\n]", deepseek_letters_regex(),
              "\\s?[!-/:-~\xEF\xBC\x81-\xEF\xBC\x8F\xEF\xBC\x9A-\xEF\xBD\x9E\xE2\x80\x98-\xE2\x80\x9F\xE3\x80\x80-\xE3\x80\x82]+",
              "\\s+$", kCjk, "\\p{N}+"};
    case Kind::kDeepseekCoder: return {"[\r\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", kCjk, "\\p{N}"};
    case Kind::kBloom: return {kBloom};
    case Kind::kViking: return {kBloom, "\\p{N}"};
  }
  return {};
}

class PretokOracle : public ::testing::TestWithParam<const char*> {};

TEST_P(PretokOracle, MatchesLlamaCppRegexSplit) {
  const auto pre = pretok::find(GetParam());
  ASSERT_TRUE(pre.has_value());
  const std::vector<std::string> regexes = regexes_of(pre->kind);
  std::mt19937 rng(2024);
  const std::vector<std::string> fixed = {
      "", " ", "  ", "\n", " \n\n \t x", "Hello world", "  Hello", "don't  stop", "I'VE 'll", "a\tb", "x \r\n y",
      "3.14159 12345678", "\xC3\x84pfel \xE4\xBD\xA0\xE5\xA5\xBD\xEF\xBC\x81 \xE3\x80\x80 ok", "   \xF0\x9F\xA6\x99  ",
      "end   ", "!!! ???\n", "\xC2\xA0x\xE2\x80\x83" "y",
  };
  for (size_t i = 0; i < fixed.size() + 400; ++i) {
    const std::string s = i < fixed.size() ? fixed[i] : test::random_text(rng, 1 + rng() % 24);
    ASSERT_EQ(pretok::split(pre->kind, s), oracle_split(regexes, s)) << GetParam() << " text '" << s << "'";
  }
}

INSTANTIATE_TEST_SUITE_P(Kinds, PretokOracle,
                         ::testing::Values("gpt-2", "llama-bpe", "qwen2", "starcoder", "falcon", "default",
                                           "deepseek-llm", "deepseek-coder", "bloom", "viking"),
                         [](const ::testing::TestParamInfo<const char*>& p) {
                           std::string s = p.param;
                           for (char& c : s)
                             if (c == '-') c = '_';
                           return s;
                         });

}  // namespace
}  // namespace strata
