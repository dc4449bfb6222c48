// Shared helpers for the tokenizer tests: loading (once) the vocabularies under ../shared, and reading
// llama.cpp's test-vector files.
#pragma once
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "gguf/gguf.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

namespace strata::test {

// Tokenizer of a GGUF under ../shared (path relative to it), loaded once per test binary; nullptr if absent.
inline const Tokenizer* shared_tokenizer(const std::string& rel) {
  static std::map<std::string, std::unique_ptr<Tokenizer>> cache;
  auto it = cache.find(rel);
  if (it != cache.end()) return it->second.get();
  const std::string path = shared_file(rel);
  std::unique_ptr<Tokenizer> tok;
  if (!path.empty()) tok = Tokenizer::from_gguf(gguf::File::open(path));
  return cache.emplace(rel, std::move(tok)).first->second.get();
}

// The vocabularies of llama.cpp's tokenizer suite in ../shared/reference/tokenizer.
inline const std::vector<std::string>& suite_vocabs() {
  static const std::vector<std::string> v = {"llama-spm", "phi-3", "gpt-2", "falcon", "starcoder", "deepseek-llm"};
  return v;
}
inline std::string suite_gguf(const std::string& name) { return "reference/tokenizer/ggml-vocab-" + name + ".gguf"; }

// .inp: test strings, each followed by "\n__ggml_vocab_test__\n".
inline std::vector<std::string> read_suite_inputs(const std::string& path) {
  const std::vector<uint8_t> b = read_bytes(path);
  const std::string text(b.begin(), b.end());
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<std::string> out;
  size_t pos = 0;
  for (size_t hit; (hit = text.find(sep, pos)) != std::string::npos; pos = hit + sep.size())
    out.push_back(text.substr(pos, hit - pos));
  return out;
}

// .out: one line of space-separated ids per test string.
inline std::vector<std::vector<int32_t>> read_suite_outputs(const std::string& path) {
  const std::vector<uint8_t> b = read_bytes(path);
  const std::string text(b.begin(), b.end());
  std::vector<std::vector<int32_t>> out;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) nl = text.size();
    std::vector<int32_t> ids;
    const std::string line = text.substr(pos, nl - pos);
    for (size_t i = 0; i < line.size();) {
      while (i < line.size() && line[i] == ' ') ++i;
      size_t j = i;
      while (j < line.size() && line[j] != ' ') ++j;
      if (j > i) ids.push_back(std::stoi(line.substr(i, j - i)));
      i = j;
    }
    out.push_back(std::move(ids));
    pos = nl + 1;
  }
  return out;
}

// Whitespace-separated integers, skipping lines that start with '#'.
inline std::vector<int32_t> parse_ids(const std::string& text) {
  std::vector<int32_t> ids;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) nl = text.size();
    const std::string line = text.substr(pos, nl - pos);
    if (!line.empty() && line[0] != '#') {
      for (size_t i = 0; i < line.size();) {
        while (i < line.size() && (line[i] == ' ' || line[i] == '\r')) ++i;
        size_t j = i;
        while (j < line.size() && line[j] != ' ' && line[j] != '\r') ++j;
        if (j > i) ids.push_back(std::stoi(line.substr(i, j - i)));
        i = j;
      }
    }
    pos = nl + 1;
  }
  return ids;
}

// The ids of a golden ids file.
inline std::vector<int32_t> read_id_list(const std::string& path) {
  const std::vector<uint8_t> b = read_bytes(path);
  return parse_ids(std::string(b.begin(), b.end()));
}

inline std::string read_text(const std::string& path) {
  const std::vector<uint8_t> b = read_bytes(path);
  return std::string(b.begin(), b.end());
}

// Random valid UTF-8 mixing ASCII words and punctuation, whitespace runs (spaces, tabs, newlines, CR,
// non-ASCII spaces), accented Latin, Cyrillic, CJK, Hangul, emoji (with ZWJ and variation selectors),
// combining marks and a few rarely seen planes.
inline std::string random_text(std::mt19937& rng, size_t n_pieces) {
  static const std::vector<std::string> pieces = {
      "the", "Hello", "world", "I'm", "don't", "we'll", "it's", "'S", "'Ve", "x", "Q", "3", "42", "2024", "3.14",
      "1234567", ".", ",", "!", "?", "...", "(", ")", "[", "]", "{", "}", "<", ">", "=", "+", "-", "_", "*", "/",
      "\\", "\"", "'", "`", "~", "^", "$", "#", "@", "%", "&", "|", ";", ":", " ", " ", "  ", "   ", "\t", "\n",
      "\n\n", "\r\n", " \n ", "\t\t", "\xC2\xA0", "\xE3\x80\x80", "\xE2\x80\x83", "\xC3\xA9", "\xC3\xBC",
      "\xC3\x84pfel", "\xC3\xB8", "\xD0\xBF\xD1\x80\xD0\xB8\xD0\xB2\xD0\xB5\xD1\x82", "\xE4\xBD\xA0\xE5\xA5\xBD",
      "\xE4\xB8\x96\xE7\x95\x8C", "\xED\x95\x9C\xEA\xB5\xAD", "\xE3\x81\x93\xE3\x82\x93", "\xF0\x9F\xA6\x99",
      "\xF0\x9F\x98\x81", "\xF0\x9F\x91\xA8\xE2\x80\x8D\xF0\x9F\x91\xA9", "\xE2\x9D\xA4\xEF\xB8\x8F",
      "e\xCC\x81", "a\xCC\x8A\xCC\x81", "\xCC\x81", "\xE0\xA4\xA8\xE0\xA4\xAE\xE0\xA4\xB8\xE0\xA5\x8D\xE0\xA4\xA4\xE0\xA5\x87",
      "\xD8\xB3\xD9\x84\xD8\xA7\xD9\x85", "\xE1\x80\x80", "\xF0\x90\x8D\x88", "\xF0\x9D\x95\x8F", "\xEF\xBF\xBD",
      "\xE2\x82\xAC", "\xC2\xBD", "\xE2\x85\xA7", "\xD9\xA3", "\x01", "\x7F",
  };
  std::uniform_int_distribution<size_t> pick(0, pieces.size() - 1);
  std::uniform_int_distribution<uint32_t> any_cpt(0x20, 0x2FFFF);
  std::string s;
  for (size_t i = 0; i < n_pieces; ++i) {
    if (rng() % 8 == 0) {  // now and then any code point (not a surrogate)
      uint32_t c = any_cpt(rng);
      if (c >= 0xD800 && c < 0xE000) c -= 0x1000;
      unicode::append_utf8(s, c);
    } else {
      s += pieces[pick(rng)];
    }
  }
  return s;
}

// What llama.cpp tokenizes in place of arbitrary bytes: each undecodable byte becomes U+FFFD.
inline std::string sanitized(const std::string& bytes) {
  std::string s;
  for (uint32_t c : unicode::decode_utf8(bytes)) unicode::append_utf8(s, c);
  return s;
}

}  // namespace strata::test
