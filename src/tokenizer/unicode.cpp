// UTF-8 decoding/encoding, category lookup and the GPT-2 byte map (see unicode.h).
#include "tokenizer/unicode.h"

#include <algorithm>
#include <array>

namespace strata::unicode {

uint16_t flags(uint32_t cpt) {
  static const std::array<uint16_t, 128> ascii = [] {
    std::array<uint16_t, 128> t{};
    size_t r = 0;
    for (uint32_t c = 0; c < 128; ++c) {
      while (r + 1 < kCodepointRangeCount && kCodepointRanges[r + 1].start <= c) ++r;
      t[c] = kCodepointRanges[r].flags;
    }
    return t;
  }();
  if (cpt < 128) return ascii[cpt];
  if (cpt >= 0x110000) return kUndefined;
  const CodepointRange* end = kCodepointRanges + kCodepointRangeCount;
  const CodepointRange* it = std::upper_bound(kCodepointRanges, end, cpt,
                                              [](uint32_t c, const CodepointRange& r) { return c < r.start; });
  return (it - 1)->flags;
}

std::vector<uint32_t> decode_utf8(std::string_view s) {
  std::vector<uint32_t> out;
  out.reserve(s.size());
  const size_t n = s.size();
  auto b = [&](size_t i) { return static_cast<uint8_t>(s[i]); };
  auto cont = [&](size_t i) { return i < n && (b(i) & 0xC0) == 0x80; };
  size_t i = 0;
  while (i < n) {
    const uint8_t c = b(i);
    if (!(c & 0x80)) {
      out.push_back(c);
      i += 1;
    } else if (!(c & 0x40)) {  // stray continuation byte
      out.push_back(kReplacement);
      i += 1;
    } else if (!(c & 0x20)) {
      if (cont(i + 1)) {
        out.push_back((uint32_t(c & 0x1F) << 6) | (b(i + 1) & 0x3F));
        i += 2;
      } else {
        out.push_back(kReplacement);
        i += 1;
      }
    } else if (!(c & 0x10)) {
      if (cont(i + 1) && cont(i + 2)) {
        out.push_back((uint32_t(c & 0x0F) << 12) | (uint32_t(b(i + 1) & 0x3F) << 6) | (b(i + 2) & 0x3F));
        i += 3;
      } else {
        out.push_back(kReplacement);
        i += 1;
      }
    } else if (!(c & 0x08)) {
      if (cont(i + 1) && cont(i + 2) && cont(i + 3)) {
        out.push_back((uint32_t(c & 0x07) << 18) | (uint32_t(b(i + 1) & 0x3F) << 12) |
                      (uint32_t(b(i + 2) & 0x3F) << 6) | (b(i + 3) & 0x3F));
        i += 4;
      } else {
        out.push_back(kReplacement);
        i += 1;
      }
    } else {  // F8..FF never start a sequence
      out.push_back(kReplacement);
      i += 1;
    }
  }
  return out;
}

void append_utf8(std::string& out, uint32_t cpt) {
  if (cpt <= 0x7F) {
    out.push_back(static_cast<char>(cpt));
  } else if (cpt <= 0x7FF) {
    out.push_back(static_cast<char>(0xC0 | (cpt >> 6)));
    out.push_back(static_cast<char>(0x80 | (cpt & 0x3F)));
  } else if (cpt <= 0xFFFF) {
    out.push_back(static_cast<char>(0xE0 | (cpt >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cpt >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cpt & 0x3F)));
  } else if (cpt <= 0x10FFFF) {
    out.push_back(static_cast<char>(0xF0 | (cpt >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cpt >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cpt >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cpt & 0x3F)));
  } else {
    append_utf8(out, kReplacement);
  }
}

std::string to_utf8(uint32_t cpt) {
  std::string s;
  append_utf8(s, cpt);
  return s;
}

namespace {

// Printable bytes map to themselves; the other 68 bytes map to U+0100.. in byte order.
struct ByteMap {
  std::array<std::string, 256> to_unicode;
  std::array<int16_t, 324> to_byte;  // indexed by code point; the map's largest is U+0143
  ByteMap() {
    to_byte.fill(-1);
    uint32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      const uint32_t cpt = printable ? uint32_t(b) : next++;
      to_unicode[b] = to_utf8(cpt);
      to_byte[cpt] = static_cast<int16_t>(b);
    }
  }
};

const ByteMap& byte_map() {
  static const ByteMap m;
  return m;
}

}  // namespace

const std::string& byte_to_unicode(uint8_t b) { return byte_map().to_unicode[b]; }

int unicode_to_byte(uint32_t cpt) {
  const auto& m = byte_map().to_byte;
  return cpt < m.size() ? m[cpt] : -1;
}

size_t complete_utf8_prefix(std::string_view s) {
  const size_t n = s.size();
  for (size_t back = 1; back <= 3 && back <= n; ++back) {
    const uint8_t c = static_cast<uint8_t>(s[n - back]);
    if ((c & 0xC0) == 0x80) continue;  // continuation byte: keep looking for its lead
    size_t need = 1;
    if (c >= 0xC2 && c <= 0xDF) need = 2;
    else if (c >= 0xE0 && c <= 0xEF) need = 3;
    else if (c >= 0xF0 && c <= 0xF4) need = 4;
    return back < need ? n - back : n;
  }
  return n;
}

}  // namespace strata::unicode
