// Shared helpers for the tokenizer tests: loading (once) the vocabularies under ../shared, and reading
// llama.cpp's test-vector files.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "gguf/gguf.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"

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

// Whitespace-separated integers of a golden ids file, skipping '#' comment lines.
inline std::vector<int32_t> read_id_list(const std::string& path) {
  const std::vector<uint8_t> b = read_bytes(path);
  const std::string text(b.begin(), b.end());
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

inline std::string read_text(const std::string& path) {
  const std::vector<uint8_t> b = read_bytes(path);
  return std::string(b.begin(), b.end());
}

}  // namespace strata::test
