// Byte-level BPE pre-tokenizers selected by tokenizer.ggml.pre. Each reproduces, without std::regex, the
// regex list llama.cpp applies for that type (src/llama-vocab.cpp llm_tokenizer_bpe, split by
// src/unicode.cpp unicode_regex_split): regexes run in order, each one splitting every chunk the previous
// one produced into its matches and the text between them.
#pragma once
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace strata::pretok {

enum class Kind {
  kDefault,        // llama.cpp's fallback list
  kGpt2,           // 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)
  kLlama3,         // (?i:'s|...)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
  kQwen2,          // as kLlama3 with \p{N} (one digit per word)
  kDeepseekLlm,    // [\r\n], \s?[cased letters]+, \s?[punct]+, \s+$, [CJK]+, \p{N}+
  kDeepseekCoder,  // [\r\n], \s?\p{L}+, \s?\p{P}+, [CJK]+, \p{N}
  kFalcon,         // [\p{P}$+<=>^~|`]+, then gpt2, then [0-9][0-9][0-9]
  kStarcoder,      // \p{N}, then gpt2
  kBloom,          //  ?[^(\s|.,!?…。，、।۔،)]+
  kViking,         // bloom's, then \p{N}
};

struct PreTokenizer {
  Kind kind = Kind::kDefault;
  bool ignore_merges = false;  // a word that is itself a token is emitted without BPE merges (llama3 family)
  bool clean_spaces = true;    // llama_detokenize's " ." -> "." cleanup applies
  bool add_bos = false;        // default of tokenizer.ggml.add_bos_token
  bool no_bos = false;         // the family has no BOS token (chatglm)
};

// The pre-tokenizer named by tokenizer.ggml.pre ("" = llama.cpp's default), or nullopt when unsupported.
std::optional<PreTokenizer> find(std::string_view name);
// Comma-separated supported names, for error messages.
std::string supported_names();

// Splits text into words and maps each word's UTF-8 bytes through the GPT-2 byte map. Invalid UTF-8 becomes
// U+FFFD first, as in llama.cpp.
std::vector<std::string> split(Kind kind, std::string_view text);

}  // namespace strata::pretok
