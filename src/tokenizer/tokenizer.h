// Tokenizers built from GGUF metadata: SentencePiece-style ("llama") and byte-level BPE ("gpt2").
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace strata::gguf { class File; }

namespace strata {

using TokenId = int32_t;

enum class TokenAttr : int32_t {  // tokenizer.ggml.token_type values
  kUndefined = 0, kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6,
};

class Tokenizer {
 public:
  // Builds from tokenizer.ggml.* keys; strata::Error naming the key when something is missing or bad,
  // or naming the model/pre-tokenizer when it is not supported.
  static std::unique_ptr<Tokenizer> from_gguf(const gguf::File& f);
  virtual ~Tokenizer() = default;

  // add_special: prepend BOS (and append EOS) per the model's add_bos/add_eos defaults.
  // parse_special: recognise control/user-defined token texts (e.g. "<s>", "<|im_start|>") in the text.
  virtual std::vector<TokenId> encode(std::string_view text, bool add_special, bool parse_special) const = 0;
  // Raw bytes of one token's text as it should be printed (U+2581 -> space, <0xNN> -> byte, BPE byte map
  // undone). Control tokens give "" unless render_special.
  virtual std::string token_to_piece(TokenId id, bool render_special = false) const = 0;
  // Whole sequence; with remove_leading_space the SPM add-space-prefix space is dropped at the start.
  std::string decode(const std::vector<TokenId>& ids, bool render_special = false) const;

  int32_t n_vocab() const { return static_cast<int32_t>(tokens_.size()); }
  const std::string& token_text(TokenId id) const { return tokens_.at(static_cast<size_t>(id)); }
  TokenAttr token_attr(TokenId id) const;
  TokenId bos() const { return bos_; }
  TokenId eos() const { return eos_; }
  TokenId eot() const { return eot_; }      // end-of-turn (e.g. <|eot_id|>, <|im_end|>), -1 if none
  bool add_bos() const { return add_bos_; }
  bool add_eos() const { return add_eos_; }
  bool is_eog(TokenId id) const;             // eos, eot, or another end-of-generation token
  const std::string& model_name() const { return model_; }  // "llama" / "gpt2"
  const std::string& pre_name() const { return pre_; }

 protected:
  std::vector<std::string> tokens_;
  std::vector<float> scores_;
  std::vector<int32_t> attrs_;
  TokenId bos_ = -1, eos_ = -1, eot_ = -1, unk_ = -1;
  bool add_bos_ = false, add_eos_ = false;
  std::string model_, pre_;
  std::vector<TokenId> eog_ids_;
};

// Streaming decoder: feeds token pieces and returns only complete UTF-8 sequences, holding back a
// partial code point until the next token completes it (so a terminal never shows broken characters).
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tok) : tok_(tok) {}
  std::string push(TokenId id);  // text that became complete with this token
  std::string flush();           // whatever remains (invalid bytes as-is)
 private:
  const Tokenizer& tok_;
  std::string pending_;
  bool first_ = true;
};

}  // namespace strata
