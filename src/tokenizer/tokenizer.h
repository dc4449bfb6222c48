// Tokenizers built from GGUF metadata: SentencePiece-style ("llama") and byte-level BPE ("gpt2").
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
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
  // Whole sequence: the pieces concatenated, where for SPM (add_space_prefix) the first non-empty piece loses
  // its leading space, so decode(encode(s, true, false)) == s and a leading BOS does not leave a space.
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

  TokenId unk() const { return unk_; }
  // SPM: a space is put before the text (tokenizer.ggml.add_space_prefix, default true) and decode() drops it.
  bool add_space_prefix() const { return add_space_prefix_; }
  // The id of the token whose vocabulary text is exactly `text` (raw, e.g. "\u2581the" or "\u0120the"), or -1.
  TokenId find_token(std::string_view text) const;
  // llama.cpp's llama_detokenize, byte for byte: remove_special drops a leading BOS / trailing EOS (when the
  // model adds them), the first piece loses one leading space unless a BOS was removed, and for models that
  // ask for it the " ." / " ' " / " 's" clean-up is applied. decode() is what a reader expects instead.
  std::string detokenize(const std::vector<TokenId>& ids, bool remove_special, bool unparse_special) const;

  // All supported tokenizer.ggml.model / tokenizer.ggml.pre values, comma-separated (for messages).
  static std::string supported_models();
  static std::string supported_pre_tokenizers();

 protected:
  // llama.cpp's token attribute bits (llama_token_attr): the GGUF token type plus what loading adds.
  enum AttrBit : uint32_t {
    kAttrUnknown = 1u << 0, kAttrUnused = 1u << 1, kAttrNormal = 1u << 2, kAttrControl = 1u << 3,
    kAttrUserDefined = 1u << 4, kAttrByte = 1u << 5, kAttrLstrip = 1u << 7, kAttrRstrip = 1u << 8,
  };
  // A piece of the input after special-token partitioning: a token (id >= 0) or raw text [offset, +length).
  struct Fragment {
    TokenId token;
    size_t offset, length;
  };
  struct Defaults {  // per tokenizer model, before the GGUF keys override them
    TokenId bos, eos, unk;
    bool add_bos, add_eos, add_space_prefix, clean_spaces;
  };
  void load_vocab(const gguf::File& f, const Defaults& d);  // everything but the model-specific data
  // Splits text around special-token texts (llama.cpp's tokenizer_st_partition). Without parse_special only
  // user-defined tokens are recognised (control and unknown ones are left as text).
  std::vector<Fragment> partition(std::string_view text, bool parse_special) const;
  virtual std::string make_piece(TokenId id) const { return tokens_.at(size_t(id)); }  // render_special form
  std::string cached_piece(TokenId id, bool render_special) const;  // token_to_piece from pieces_

  struct StringHash {  // lets text_to_id_ be searched with a string_view, without a copy
    using is_transparent = void;
    size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };
  std::unordered_map<std::string, TokenId, StringHash, std::equal_to<>> text_to_id_;
  std::vector<uint32_t> attr_bits_;          // AttrBit per token
  std::vector<TokenId> special_by_length_;   // control/user-defined/unknown ids, longest text first
  std::vector<std::string> pieces_;          // make_piece() per token
  bool add_space_prefix_ = false, clean_spaces_ = false;

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
  // at_text_start: the first piece is the start of the text, so SPM's prefix space is dropped from it, as
  // decode() does; pass false when continuing text already shown (e.g. the reply after a printed prompt).
  StreamDecoder(const Tokenizer& tok, bool render_special, bool at_text_start = true)
      : tok_(tok), first_(at_text_start), render_special_(render_special) {}
  std::string push(TokenId id);  // text that became complete with this token
  std::string flush();           // whatever remains (invalid bytes as-is)
 private:
  const Tokenizer& tok_;
  std::string pending_;
  bool first_ = true;
  bool render_special_ = false;
};

}  // namespace strata
