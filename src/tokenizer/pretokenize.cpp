// Hand-written equivalents of llama.cpp's pre-tokenizer regexes (see pretokenize.h).
//
// llama.cpp runs two kinds of splitter, and both are reproduced here chunk by chunk:
//  - its own code for the gpt2 and llama3 patterns (unicode_regex_split_custom_*): ported step for step;
//  - std::regex (ECMAScript) for every other pattern, over text where each non-ASCII code point is
//    "collapsed" to one byte naming its category (or over the code points, for patterns without \p{..}).
//    A regex_iterator yields the leftmost match, then searches again after it; text between matches is a
//    chunk of its own. Here a matcher returns the length of the ECMAScript match at a position (0 = none)
//    and run_regex_stage() does the iteration. In both forms \s is the White_Space property (non-ASCII
//    whitespace is collapsed to \v), \p{L}/\p{N}/\p{P} are the general categories for non-ASCII code
//    points and A-Za-z / 0-9 / !"#%&'()*,-./:;?@[\]_{} for ASCII.
#include "tokenizer/pretokenize.h"

#include <utility>

#include "tokenizer/unicode.h"

namespace strata::pretok {
namespace {

using unicode::kLetter;
using unicode::kNumber;
using unicode::kPunct;
using unicode::kWhitespace;

constexpr uint32_t kOut = 0xFFFFFFFF;  // "no code point": before or after the chunk

// One chunk of the text: code points and their flags. Reads outside it give kOut / 0, as llama.cpp's
// _get_cpt/_get_flags do, so a pattern never looks across a chunk boundary.
struct Chunk {
  const uint32_t* cp;
  const uint16_t* fl;
  size_t n;
  uint32_t cpt(size_t i) const { return i < n ? cp[i] : kOut; }
  uint16_t flags(size_t i) const { return i < n ? fl[i] : 0; }
  bool ws(size_t i) const { return flags(i) & kWhitespace; }
};

// Collects word lengths; contiguous by construction.
struct Emitter {
  std::vector<size_t>& out;
  size_t prev = 0;
  size_t add(size_t end) {
    const size_t len = end - prev;
    if (len > 0) out.push_back(len);
    prev = end;
    return len;
  }
};

uint32_t ascii_lower(uint32_t c) { return (c >= 'A' && c <= 'Z') ? c + 32 : c; }

// 's|'t|'re|'ve|'m|'ll|'d (lower_case: the (?i:...) form). Returns the length matched at pos, or 0.
size_t match_contraction(const Chunk& c, size_t pos, bool any_case) {
  if (c.cpt(pos) != '\'' || pos + 1 >= c.n) return 0;
  const uint32_t c1 = any_case ? ascii_lower(c.cpt(pos + 1)) : c.cpt(pos + 1);
  if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') return 2;
  if (pos + 2 >= c.n) return 0;
  const uint32_t c2 = any_case ? ascii_lower(c.cpt(pos + 2)) : c.cpt(pos + 2);
  if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l')) return 3;
  return 0;
}

// llama.cpp unicode_regex_split_custom_gpt2:
// 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
void split_gpt2(const Chunk& c, std::vector<size_t>& out) {
  Emitter e{out};
  constexpr uint16_t kWLN = kWhitespace | kLetter | kNumber;
  for (size_t pos = 0; pos < c.n;) {
    const uint32_t cpt = c.cpt(pos);
    if (size_t len = match_contraction(c, pos, false)) {
      pos += e.add(pos + len);
      continue;
    }
    uint16_t f2 = cpt == ' ' ? c.flags(pos + 1) : c.flags(pos);
    if (f2 & (kLetter | kNumber)) {  // <space>?\p{L}+ or <space>?\p{N}+
      const uint16_t cls = f2 & kLetter ? kLetter : kNumber;
      pos += (cpt == ' ');
      while (f2 & cls) f2 = c.flags(++pos);
      e.add(pos);
      continue;
    }
    if (!(f2 & kWLN) && f2) {  // <space>?[^\s\p{L}\p{N}]+
      pos += (cpt == ' ');
      while (!(f2 & kWLN) && f2) f2 = c.flags(++pos);
      e.add(pos);
      continue;
    }
    size_t nws = 0;
    while (c.ws(pos + nws)) ++nws;
    if (nws > 1 && c.cpt(pos + nws) != kOut) {  // \s+(?!\S): leave the last one for the next word
      pos += nws - 1;
      e.add(pos);
      continue;
    }
    if (nws > 0) {  // \s+
      pos += nws;
      e.add(pos);
      continue;
    }
    e.add(++pos);  // no match: a word of its own
  }
}

// llama.cpp unicode_regex_split_custom_llama3 (max_digits 3). With max_digits 1 it is the qwen2 pattern,
// which llama.cpp runs through std::regex; the two agree on every input.
// (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|
// \s+(?!\S)|\s+
void split_llama3(const Chunk& c, size_t max_digits, std::vector<size_t>& out) {
  Emitter e{out};
  constexpr uint16_t kWLN = kWhitespace | kLetter | kNumber;
  for (size_t pos = 0; pos < c.n;) {
    const uint32_t cpt = c.cpt(pos);
    const uint16_t f = c.flags(pos);
    if (size_t len = match_contraction(c, pos, true)) {
      pos += e.add(pos + len);
      continue;
    }
    if (!(cpt == '\r' || cpt == '\n' || (f & kNumber))) {  // [^\r\n\p{L}\p{N}]?\p{L}+
      if ((f & kLetter) || (c.flags(pos + 1) & kLetter)) {
        ++pos;
        while (c.flags(pos) & kLetter) ++pos;
        e.add(pos);
        continue;
      }
    }
    if (f & kNumber) {  // \p{N}{1,max_digits}
      size_t ini = pos;
      while (c.flags(pos) & kNumber) {
        if (++pos - ini >= max_digits) {
          e.add(pos);
          ini = pos;
        }
      }
      e.add(pos);
      continue;
    }
    uint16_t f2 = cpt == ' ' ? c.flags(pos + 1) : f;
    if (!(f2 & kWLN) && f) {  // <space>?[^\s\p{L}\p{N}]+[\r\n]*
      pos += (cpt == ' ');
      while (!(f2 & kWLN) && f2) f2 = c.flags(++pos);
      for (uint32_t c2 = c.cpt(pos); c2 == '\r' || c2 == '\n'; c2 = c.cpt(++pos)) {
      }
      e.add(pos);
      continue;
    }
    size_t nws = 0, last_rn_end = 0;
    while (c.ws(pos + nws)) {
      const uint32_t c2 = c.cpt(pos + nws);
      if (c2 == '\r' || c2 == '\n') last_rn_end = pos + nws + 1;
      ++nws;
    }
    if (last_rn_end > 0) {  // \s*[\r\n]+
      pos = last_rn_end;
      e.add(pos);
      continue;
    }
    if (nws > 1 && c.cpt(pos + nws) != kOut) {  // \s+(?!\S)
      pos += nws - 1;
      e.add(pos);
      continue;
    }
    if (nws > 0) {  // \s+
      pos += nws;
      e.add(pos);
      continue;
    }
    e.add(++pos);
  }
}

// ---- std::regex-style stages ----------------------------------------------------------------------------

// Predicates on a code point with its flags, as the collapsed-text regexes see it.
bool ascii_punct(uint32_t c) {  // Unicode P among ASCII: !"#%&'()*,-./:;?@[\]_{}
  return (c >= 0x21 && c <= 0x23) || (c >= 0x25 && c <= 0x2A) || (c >= 0x2C && c <= 0x2F) || c == 0x3A ||
         c == 0x3B || c == 0x3F || c == 0x40 || (c >= 0x5B && c <= 0x5D) || c == 0x5F || c == 0x7B || c == 0x7D;
}
bool is_punct(uint32_t c, uint16_t f) { return c < 128 ? ascii_punct(c) : (f & kPunct) && !(f & kWhitespace); }
bool is_letter(uint32_t, uint16_t f) { return (f & kLetter) && !(f & kWhitespace); }
bool is_number(uint32_t, uint16_t f) { return (f & kNumber) && !(f & kWhitespace); }
bool is_crlf(uint32_t c, uint16_t) { return c == '\r' || c == '\n'; }

// [\p{P}\$\+<=>\^~\|`] (falcon) and [\p{P}\$\+<=>\^~\|] (default)
bool is_falcon_punct(uint32_t c, uint16_t f) {
  return is_punct(c, f) || c == '$' || c == '+' || c == '<' || c == '=' || c == '>' || c == '^' || c == '~' ||
         c == '|' || c == '`';
}
bool is_default_punct(uint32_t c, uint16_t f) { return c != '`' && is_falcon_punct(c, f); }

// Classes written with literal code points (no \p{..}): llama.cpp matches them with std::wregex on the code
// points, non-ASCII whitespace replaced by \v, so whitespace is never in them.
template <size_t N>
bool in_ranges(uint32_t c, const std::pair<uint32_t, uint32_t> (&r)[N]) {
  for (const auto& [lo, hi] : r)
    if (c >= lo && c <= hi) return true;
  return false;
}

// deepseek-llm's letter class: cased letters (Lu/Ll/Lt) of selected scripts, transcribed from llama.cpp.
constexpr std::pair<uint32_t, uint32_t> kDeepseekLetters[] = {
    {0x0041, 0x005A}, {0x0061, 0x007A}, {0x00B5, 0x00B5}, {0x00C0, 0x00D6}, {0x00D8, 0x00F6},
    {0x00F8, 0x01BA}, {0x01BC, 0x01BF}, {0x01C4, 0x0293}, {0x0295, 0x02AF}, {0x0370, 0x0373},
    {0x0376, 0x0377}, {0x037B, 0x037D}, {0x037F, 0x037F}, {0x0386, 0x0386}, {0x0388, 0x038A},
    {0x038C, 0x038C}, {0x038E, 0x03A1}, {0x03A3, 0x03F5}, {0x03F7, 0x0481}, {0x048A, 0x052F},
    {0x0531, 0x0556}, {0x10A0, 0x10C5}, {0x13A0, 0x13F5}, {0x13F8, 0x13FD}, {0x1C90, 0x1CBA},
    {0x1CBD, 0x1CBF}, {0x1D00, 0x1D2B}, {0x1D6B, 0x1D77}, {0x1D79, 0x1D9A}, {0x1E00, 0x1F15},
    {0x1F18, 0x1F1D}, {0x1F20, 0x1F45}, {0x1F48, 0x1F4D}, {0x1F50, 0x1F57}, {0x1F59, 0x1F59},
    {0x1F5B, 0x1F5B}, {0x1F5D, 0x1F5D}, {0x1F5F, 0x1F7D}, {0x1F80, 0x1FB4}, {0x1FB6, 0x1FBC},
    {0x1FBE, 0x1FBE}, {0x1FC2, 0x1FC4}, {0x1FC6, 0x1FCC}, {0x1FD0, 0x1FD3}, {0x1FD6, 0x1FDB},
    {0x1FE0, 0x1FEC}, {0x1FF2, 0x1FF4}, {0x1FF6, 0x1FFC}, {0x2102, 0x2102}, {0x2107, 0x2107},
    {0x210A, 0x2113}, {0x2115, 0x2115}, {0x2119, 0x211D}, {0x2124, 0x2124}, {0x2126, 0x2126},
    {0x2128, 0x2128}, {0x212A, 0x212D}, {0x212F, 0x2134}, {0x2139, 0x2139}, {0x213C, 0x213F},
    {0x2145, 0x2149}, {0x214E, 0x214E}, {0x2183, 0x2184}, {0x2C00, 0x2C7B}, {0x2C7E, 0x2CE4},
    {0x2CEB, 0x2CEE}, {0x2CF2, 0x2CF3}, {0xA640, 0xA66D}, {0xA680, 0xA69B}, {0xA722, 0xA76F},
    {0xA771, 0xA787}, {0xA78B, 0xA78E}, {0xAB70, 0xABBF}, {0xFB00, 0xFB06}, {0xFB13, 0xFB17},
    {0xFF21, 0xFF3A}, {0xFF41, 0xFF5A}, {0x10400, 0x1044F}, {0x104B0, 0x104D3}, {0x104D8, 0x104FB},
    {0x10C80, 0x10CB2}, {0x10CC0, 0x10CF2}, {0x118A0, 0x118DF}, {0x1E900, 0x1E943},
};
// [!-/:-~！-／：-～‘-‟　-。]
constexpr std::pair<uint32_t, uint32_t> kDeepseekPunct[] = {
    {0x21, 0x2F}, {0x3A, 0x7E}, {0xFF01, 0xFF0F}, {0xFF1A, 0xFF5E}, {0x2018, 0x201F}, {0x3000, 0x3002},
};
// [一-龥ࠀ-一가-퟿]
constexpr std::pair<uint32_t, uint32_t> kDeepseekCjk[] = {
    {0x4E00, 0x9FA5}, {0x0800, 0x4E00}, {0xAC00, 0xD7FF},
};

bool is_ds_letter(uint32_t c, uint16_t f) { return !(f & kWhitespace) && in_ranges(c, kDeepseekLetters); }
bool is_ds_punct(uint32_t c, uint16_t f) { return !(f & kWhitespace) && in_ranges(c, kDeepseekPunct); }
bool is_cjk(uint32_t c, uint16_t f) { return !(f & kWhitespace) && in_ranges(c, kDeepseekCjk); }

// [^(\s|.,!?…。，、।۔،)] of the bloom family.
bool is_bloom_word(uint32_t c, uint16_t f) {
  if (f & kWhitespace) return false;
  switch (c) {
    case '(': case ')': case '|': case '.': case ',': case '!': case '?':
    case 0x2026: case 0x3002: case 0xFF0C: case 0x3001: case 0x0964: case 0x06D4: case 0x060C:
      return false;
    default:
      return true;
  }
}

using Pred = bool (*)(uint32_t, uint16_t);

size_t run_length(const Chunk& c, size_t pos, Pred p) {
  size_t i = pos;
  while (i < c.n && p(c.cp[i], c.fl[i])) ++i;
  return i - pos;
}

// Matchers: the length of the ECMAScript match of one regex at pos (0 = no match there).
struct Matcher {
  enum Op { kOne, kRun, kWsOptRun, kTrailingWs, kThreeDigits, kSpaceOptRun } op;
  Pred pred = nullptr;
  size_t operator()(const Chunk& c, size_t pos) const {
    switch (op) {
      case kOne:  // [class]
        return pred(c.cp[pos], c.fl[pos]) ? 1 : 0;
      case kRun:  // [class]+
        return run_length(c, pos, pred);
      case kWsOptRun:  // \s?[class]+ (the class never holds whitespace)
        if (c.ws(pos) && pos + 1 < c.n && pred(c.cp[pos + 1], c.fl[pos + 1]))
          return 1 + run_length(c, pos + 1, pred);
        return run_length(c, pos, pred);
      case kSpaceOptRun:  // " ?[class]+"
        if (c.cp[pos] == ' ' && pos + 1 < c.n && pred(c.cp[pos + 1], c.fl[pos + 1]))
          return 1 + run_length(c, pos + 1, pred);
        return run_length(c, pos, pred);
      case kTrailingWs: {  // \s+$
        size_t i = pos;
        while (i < c.n && c.ws(i)) ++i;
        return i == c.n ? c.n - pos : 0;
      }
      case kThreeDigits:  // [0-9][0-9][0-9]
        for (size_t k = 0; k < 3; ++k)
          if (pos + k >= c.n || c.cp[pos + k] < '0' || c.cp[pos + k] > '9') return 0;
        return 3;
    }
    return 0;
  }
};

// regex_iterator over one chunk: matches and the text between them become words.
void run_regex_stage(const Chunk& c, const Matcher& m, std::vector<size_t>& out) {
  size_t gap_start = 0, pos = 0;
  while (pos < c.n) {
    const size_t len = m(c, pos);
    if (len == 0) {
      ++pos;
      continue;
    }
    if (pos > gap_start) out.push_back(pos - gap_start);
    out.push_back(len);
    pos += len;
    gap_start = pos;
  }
  if (c.n > gap_start) out.push_back(c.n - gap_start);
}

struct Stage {
  enum { kGpt2, kLlama3, kQwen2, kRegex } kind;
  Matcher m{Matcher::kOne};
};

std::vector<Stage> stages(Kind kind) {
  auto rx = [](Matcher::Op op, Pred p = nullptr) { return Stage{Stage::kRegex, Matcher{op, p}}; };
  const Stage gpt2{Stage::kGpt2};
  switch (kind) {
    case Kind::kGpt2: return {gpt2};
    case Kind::kLlama3: return {Stage{Stage::kLlama3}};
    case Kind::kQwen2: return {Stage{Stage::kQwen2}};
    case Kind::kStarcoder: return {rx(Matcher::kOne, is_number), gpt2};
    case Kind::kFalcon: return {rx(Matcher::kRun, is_falcon_punct), gpt2, rx(Matcher::kThreeDigits)};
    case Kind::kDefault:
      return {rx(Matcher::kRun, is_default_punct), gpt2, rx(Matcher::kRun, is_number), rx(Matcher::kThreeDigits)};
    case Kind::kDeepseekLlm:
      return {rx(Matcher::kOne, is_crlf), rx(Matcher::kWsOptRun, is_ds_letter), rx(Matcher::kWsOptRun, is_ds_punct),
              rx(Matcher::kTrailingWs), rx(Matcher::kRun, is_cjk), rx(Matcher::kRun, is_number)};
    case Kind::kDeepseekCoder:
      return {rx(Matcher::kOne, is_crlf), rx(Matcher::kWsOptRun, is_letter), rx(Matcher::kWsOptRun, is_punct),
              rx(Matcher::kRun, is_cjk), rx(Matcher::kOne, is_number)};
    case Kind::kBloom: return {rx(Matcher::kSpaceOptRun, is_bloom_word)};
    case Kind::kViking: return {rx(Matcher::kSpaceOptRun, is_bloom_word), rx(Matcher::kOne, is_number)};
  }
  return {gpt2};
}

struct Entry {
  const char* name;
  PreTokenizer pre;
};

// tokenizer.ggml.pre names and the settings llama.cpp's llama_vocab::impl::load gives them.
const std::vector<Entry>& registry() {
  auto p = [](Kind k, bool clean = true, bool ignore_merges = false, bool add_bos = false, bool no_bos = false) {
    return PreTokenizer{k, ignore_merges, clean, add_bos, no_bos};
  };
  static const std::vector<Entry> r = {
      {"default", p(Kind::kDefault)},
      {"llama3", p(Kind::kLlama3, true, true, true)}, {"llama-v3", p(Kind::kLlama3, true, true, true)},
      {"llama-bpe", p(Kind::kLlama3, true, true, true)}, {"falcon3", p(Kind::kLlama3, true, true, true)},
      {"falcon-h1", p(Kind::kLlama3, true, true, true)}, {"pixtral", p(Kind::kLlama3, true, true, true)},
      {"midm-2.0", p(Kind::kLlama3, true, true, true)}, {"lfm2", p(Kind::kLlama3, true, true, true)},
      {"jina-v5-nano", p(Kind::kLlama3, true, true, true)},
      {"dbrx", p(Kind::kLlama3)}, {"smaug-bpe", p(Kind::kLlama3)},
      {"chatglm-bpe", p(Kind::kLlama3, true, false, false, true)}, {"glm4", p(Kind::kLlama3, true, false, false, true)},
      {"deepseek-llm", p(Kind::kDeepseekLlm, false)}, {"deepseek-coder", p(Kind::kDeepseekCoder, false)},
      {"falcon", p(Kind::kFalcon)},
      {"gpt-2", p(Kind::kGpt2)}, {"phi-2", p(Kind::kGpt2)}, {"jina-es", p(Kind::kGpt2)}, {"jina-de", p(Kind::kGpt2)},
      {"gigachat", p(Kind::kGpt2)}, {"jina-v2-es", p(Kind::kGpt2)}, {"jina-v2-de", p(Kind::kGpt2)},
      {"a.x-4.0", p(Kind::kGpt2)}, {"mellum", p(Kind::kGpt2)}, {"modern-bert", p(Kind::kGpt2)},
      {"exaone4", p(Kind::kGpt2)}, {"jina-v1-en", p(Kind::kGpt2)}, {"jina-v2-code", p(Kind::kGpt2)},
      {"roberta-bpe", p(Kind::kGpt2)}, {"mpt", p(Kind::kGpt2)}, {"olmo", p(Kind::kGpt2)}, {"jais", p(Kind::kGpt2)},
      {"trillion", p(Kind::kGpt2, false)}, {"granite-docling", p(Kind::kGpt2, false)},
      {"starcoder", p(Kind::kStarcoder)}, {"refact", p(Kind::kStarcoder)}, {"command-r", p(Kind::kStarcoder, false)},
      {"smollm", p(Kind::kStarcoder, false)}, {"codeshell", p(Kind::kStarcoder)}, {"exaone", p(Kind::kStarcoder)},
      {"minerva-7b", p(Kind::kStarcoder)}, {"mellum2", p(Kind::kStarcoder)},
      {"qwen2", p(Kind::kQwen2, false)}, {"deepseek-r1-qwen", p(Kind::kQwen2, false)}, {"kormo", p(Kind::kQwen2, false)},
      {"f2llmv2", p(Kind::kQwen2, false)}, {"megrez", p(Kind::kQwen2)}, {"stablelm2", p(Kind::kQwen2)},
      {"hunyuan", p(Kind::kQwen2, false)}, {"solar-open", p(Kind::kQwen2, false)}, {"grok-2", p(Kind::kQwen2, false)},
      {"bloom", p(Kind::kBloom)}, {"gpt3-finnish", p(Kind::kBloom)}, {"poro-chat", p(Kind::kBloom, false)},
      {"viking", p(Kind::kViking, false)},
  };
  return r;
}

}  // namespace

std::optional<PreTokenizer> find(std::string_view name) {
  if (name.empty()) name = "default";
  for (const auto& e : registry())
    if (name == e.name) return e.pre;
  return std::nullopt;
}

std::string supported_names() {
  std::string s;
  for (const auto& e : registry()) {
    if (!s.empty()) s += ", ";
    s += e.name;
  }
  return s;
}

std::vector<std::string> split(Kind kind, std::string_view text) {
  const std::vector<uint32_t> cpts = unicode::decode_utf8(text);
  std::vector<uint16_t> fl(cpts.size());
  for (size_t i = 0; i < cpts.size(); ++i) fl[i] = unicode::flags(cpts[i]);

  std::vector<size_t> offsets{cpts.size()}, next;
  for (const Stage& st : stages(kind)) {
    next.clear();
    size_t start = 0;
    for (size_t len : offsets) {
      const Chunk c{cpts.data() + start, fl.data() + start, len};
      switch (st.kind) {
        case Stage::kGpt2: split_gpt2(c, next); break;
        case Stage::kLlama3: split_llama3(c, 3, next); break;
        case Stage::kQwen2: split_llama3(c, 1, next); break;
        case Stage::kRegex: run_regex_stage(c, st.m, next); break;
      }
      start += len;
    }
    offsets.swap(next);
  }

  std::vector<std::string> words;
  words.reserve(offsets.size());
  std::string utf8;
  size_t start = 0;
  for (size_t len : offsets) {
    utf8.clear();
    for (size_t i = start; i < start + len; ++i) unicode::append_utf8(utf8, cpts[i]);
    std::string& w = words.emplace_back();
    for (char ch : utf8) w += unicode::byte_to_unicode(static_cast<uint8_t>(ch));
    start += len;
  }
  return words;
}

}  // namespace strata::pretok
