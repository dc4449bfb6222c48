// UTF-8 and Unicode helpers for the tokenizers, with llama.cpp's exact conventions (its src/unicode.cpp):
// the same lenient UTF-8 decoder, the same category flags and the GPT-2 byte <-> unicode map.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace strata::unicode {

// General-category class of a code point (exactly one of the first eight) plus the White_Space property.
enum Flag : uint16_t {
  kUndefined = 0x001,   // unassigned (Cn), or beyond U+10FFFF
  kNumber = 0x002,      // \p{N}
  kLetter = 0x004,      // \p{L}
  kSeparator = 0x008,   // \p{Z}
  kMark = 0x010,        // \p{M}
  kPunct = 0x020,       // \p{P}
  kSymbol = 0x040,      // \p{S}
  kControl = 0x080,     // \p{C} except Cn
  kWhitespace = 0x100,  // White_Space (PropList.txt): 09-0D, 20, 85, A0, 1680, 2000-200A, 2028/9, 202F, 205F, 3000
};

struct CodepointRange {
  uint32_t start;
  uint16_t flags;
};
extern const CodepointRange kCodepointRanges[];  // unicode_data.cpp (generated)
extern const size_t kCodepointRangeCount;

inline constexpr uint32_t kReplacement = 0xFFFD;

uint16_t flags(uint32_t cpt);
inline bool is_whitespace(uint32_t c) { return flags(c) & kWhitespace; }
inline bool is_letter(uint32_t c) { return flags(c) & kLetter; }
inline bool is_number(uint32_t c) { return flags(c) & kNumber; }

// Bytes in the UTF-8 sequence a lead byte announces, from its high nibble (continuation bytes count 1).
inline size_t utf8_len(char lead) {
  static constexpr uint8_t kLen[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
  return kLen[static_cast<uint8_t>(lead) >> 4];
}

// Decodes like llama.cpp's unicode_cpts_from_utf8: a byte that does not start a complete sequence becomes
// U+FFFD and decoding resumes at the next byte. Overlong forms and surrogates are decoded, not rejected.
std::vector<uint32_t> decode_utf8(std::string_view s);
// Appends the UTF-8 form of cpt; code points past U+10FFFF (only F5..F7 lead bytes produce them) become U+FFFD.
void append_utf8(std::string& out, uint32_t cpt);
std::string to_utf8(uint32_t cpt);

// GPT-2's reversible byte <-> printable-unicode map (bytes_to_unicode in OpenAI's encoder.py).
const std::string& byte_to_unicode(uint8_t b);
int unicode_to_byte(uint32_t cpt);  // -1 when cpt is not in the map

// Byte length of the longest prefix of s that does not end inside a UTF-8 sequence that the next bytes could
// still complete (bytes that can never be completed are not held back).
size_t complete_utf8_prefix(std::string_view s);

}  // namespace strata::unicode
