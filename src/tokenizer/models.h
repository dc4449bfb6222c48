// The two tokenizer models (internal to the tokenizer layer; callers use Tokenizer::from_gguf).
#pragma once
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "tokenizer/pretokenize.h"
#include "tokenizer/tokenizer.h"

namespace strata {

// tokenizer.ggml.model = "llama": SentencePiece-style BPE over scores (llama.cpp's llm_tokenizer_spm).
class SpmTokenizer final : public Tokenizer {
 public:
  static std::unique_ptr<Tokenizer> load(const gguf::File& f);
  std::vector<TokenId> encode(std::string_view text, bool add_special, bool parse_special) const override;
  std::string token_to_piece(TokenId id, bool render_special = false) const override;

 private:
  std::string make_piece(TokenId id) const override;
  // Tokenizes one text fragment (spaces already escaped to U+2581) and appends the ids.
  void tokenize_fragment(const std::string& text, std::vector<TokenId>& out) const;
  TokenId byte_token(uint8_t b) const;  // <0xNN>, else the byte itself as a token, else unk
};

// tokenizer.ggml.model = "gpt2": byte-level BPE with merge ranks (llama.cpp's llm_tokenizer_bpe).
class BpeTokenizer final : public Tokenizer {
 public:
  static std::unique_ptr<Tokenizer> load(const gguf::File& f);
  std::vector<TokenId> encode(std::string_view text, bool add_special, bool parse_special) const override;
  std::string token_to_piece(TokenId id, bool render_special = false) const override;

 private:
  std::string make_piece(TokenId id) const override;
  void tokenize_word(const std::string& word, std::vector<TokenId>& out) const;
  int rank(std::string_view left, std::string_view right) const;  // -1 when the pair never merges

  pretok::PreTokenizer pre_tok_;
  std::unordered_map<std::string, int> ranks_;  // "left right" -> merge rank (tokenizer.ggml.merges order)
};

// Token id of byte `b` written as an SPM byte token, e.g. "<0x0A>".
std::string byte_token_text(uint8_t b);
// The byte value of an SPM-style byte token ("<0xNN>"), as llama.cpp's token_to_byte reads it.
uint8_t byte_token_value(const std::string& text);

}  // namespace strata
