// Loading a tokenizer from GGUF metadata, special-token partitioning and decoding. The rules follow
// llama.cpp's llama_vocab (src/llama-vocab.cpp) so that strata and llama.cpp agree token for token.
#include "tokenizer/tokenizer.h"

#include <algorithm>
#include <cctype>

#include "core/error.h"
#include "gguf/gguf.h"
#include "tokenizer/models.h"
#include "tokenizer/pretokenize.h"
#include "tokenizer/unicode.h"

namespace strata {
namespace {

// Token texts llama.cpp recognises by name (its "auto-detect special tokens by text" lists), in the order
// used here to pick one when a vocabulary holds several.
const std::vector<std::string> kEotTexts = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|end_of_text|>", "<EOT>", "_<EOT>",
    "[EOT]", "<\xEF\xBD\x9C" "end\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>", "<end_of_utterance>"};
const std::vector<std::string> kEomTexts = {"<|eom_id|>"};
const std::vector<std::string> kFimPreTexts = {
    "<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<\xEF\xBD\x9C" "fim\xE2\x96\x81" "begin\xEF\xBD\x9C>", "<PRE>",
    "\xE2\x96\x81<PRE>", "<|code_prefix|>", "<|prefix|>"};
const std::vector<std::string> kFimSufTexts = {
    "<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<\xEF\xBD\x9C" "fim\xE2\x96\x81hole\xEF\xBD\x9C>", "<SUF>",
    "\xE2\x96\x81<SUF>", "<|code_suffix|>", "<|suffix|>"};
const std::vector<std::string> kFimMidTexts = {
    "<|fim_middle|>", "<fim-middle>", "<fim_middle>", "<\xEF\xBD\x9C" "fim\xE2\x96\x81" "end\xEF\xBD\x9C>", "<MID>",
    "\xE2\x96\x81<MID>", "<|code_middle|>", "<|middle|>"};
const std::vector<std::string> kFimPadTexts = {"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"};
const std::vector<std::string> kFimRepTexts = {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>"};
const std::vector<std::string> kFimSepTexts = {"<|file_sep|>"};
const std::vector<std::string> kEogTexts = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>", "<|calls|>", "<end_of_turn>",
    "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]", "<|end_of_text|>",
    "<end_of_utterance>", "<eos>", "<turn|>", "<|tool_response>",
    "<\xEF\xBD\x9C" "end\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>", "[e~["};

uint32_t attr_from_type(int32_t type) {
  switch (static_cast<TokenAttr>(type)) {
    case TokenAttr::kUnknown: return 1u << 0;
    case TokenAttr::kUnused: return 1u << 1;
    case TokenAttr::kNormal: return 1u << 2;
    case TokenAttr::kControl: return 1u << 3;
    case TokenAttr::kUserDefined: return 1u << 4;
    case TokenAttr::kByte: return 1u << 5;
    case TokenAttr::kUndefined: return 0;
  }
  return 0;  // unknown type values count as undefined, as in llama.cpp
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

bool is_space(char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; }

}  // namespace

std::string Tokenizer::supported_models() { return "llama (SentencePiece BPE), gpt2 (byte-level BPE)"; }
std::string Tokenizer::supported_pre_tokenizers() { return pretok::supported_names(); }

std::unique_ptr<Tokenizer> Tokenizer::from_gguf(const gguf::File& f) {
  const std::string model = f.get_string("tokenizer.ggml.model");
  if (model.empty())
    fail("{} has no tokenizer (tokenizer.ggml.model is missing): use a GGUF converted with its vocabulary",
         f.path());
  if (model == "llama") return SpmTokenizer::load(f);
  if (model == "gpt2") return BpeTokenizer::load(f);
  fail("unsupported tokenizer model '{}' (tokenizer.ggml.model) in {}: supported: {}", model, f.path(),
       supported_models());
}

void Tokenizer::load_vocab(const gguf::File& f, const Defaults& d) {
  model_ = f.get_string("tokenizer.ggml.model");
  pre_ = f.get_string("tokenizer.ggml.pre");
  tokens_ = f.get_string_array("tokenizer.ggml.tokens");
  const size_t n = tokens_.size();
  if (n == 0) fail("{}: tokenizer.ggml.tokens is missing or empty", f.path());
  if (n > size_t(INT32_MAX)) fail("{}: tokenizer.ggml.tokens has {} entries, too many", f.path(), n);

  scores_.assign(n, 0.0f);
  if (const gguf::Value* v = f.find("tokenizer.ggml.scores")) {  // f32, or i32 in some converters
    if (v->type != gguf::ValueType::kArray) fail("{}: tokenizer.ggml.scores is not an array", f.path());
    if (v->arr.size() < n)
      fail("{}: tokenizer.ggml.scores has {} entries for {} tokens", f.path(), v->arr.size(), n);
    for (size_t i = 0; i < n; ++i) scores_[i] = static_cast<float>(v->arr[i].as_float("tokenizer.ggml.scores"));
  }
  attrs_.assign(n, static_cast<int32_t>(TokenAttr::kNormal));
  if (f.has("tokenizer.ggml.token_type")) {
    std::vector<int32_t> types = f.get_i32_array("tokenizer.ggml.token_type");
    if (types.size() < n)
      fail("{}: tokenizer.ggml.token_type has {} entries for {} tokens", f.path(), types.size(), n);
    types.resize(n);
    attrs_ = std::move(types);
  }

  text_to_id_.clear();
  text_to_id_.reserve(n);
  attr_bits_.resize(n);
  for (size_t i = 0; i < n; ++i) {
    if (tokens_[i].empty()) tokens_[i] = "[EMPTY_" + std::to_string(i) + "]";
    const auto [it, inserted] = text_to_id_.emplace(tokens_[i], static_cast<TokenId>(i));
    if (!inserted)
      fail("{}: duplicate token in tokenizer.ggml.tokens: '{}' has ids {} and {}", f.path(), tokens_[i], it->second,
           i);
    attr_bits_[i] = attr_from_type(attrs_[i]);
  }

  // Special ids: the model's defaults (dropped when out of range), then the GGUF keys when in range.
  bos_ = d.bos, eos_ = d.eos, unk_ = d.unk, eot_ = -1;
  TokenId eom = -1, fim_pre = -1, fim_suf = -1, fim_mid = -1, fim_pad = -1, fim_rep = -1, fim_sep = -1;
  const std::pair<const char*, TokenId*> keys[] = {
      {"tokenizer.ggml.bos_token_id", &bos_}, {"tokenizer.ggml.eos_token_id", &eos_},
      {"tokenizer.ggml.eot_token_id", &eot_}, {"tokenizer.ggml.eom_token_id", &eom},
      {"tokenizer.ggml.unknown_token_id", &unk_}, {"tokenizer.ggml.fim_pre_token_id", &fim_pre},
      {"tokenizer.ggml.fim_suf_token_id", &fim_suf}, {"tokenizer.ggml.fim_mid_token_id", &fim_mid},
      {"tokenizer.ggml.fim_pad_token_id", &fim_pad}, {"tokenizer.ggml.fim_rep_token_id", &fim_rep},
      {"tokenizer.ggml.fim_sep_token_id", &fim_sep}, {"tokenizer.ggml.prefix_token_id", &fim_pre},
      {"tokenizer.ggml.suffix_token_id", &fim_suf}, {"tokenizer.ggml.middle_token_id", &fim_mid}};
  for (const auto& [key, id] : keys) {
    if (*id >= 0 && size_t(*id) >= n) *id = -1;
    const int64_t v = f.get_int(key, -1);
    if (v >= 0 && size_t(v) < n) *id = static_cast<TokenId>(v);  // out of range (e.g. u32 -1 = none): keep
  }

  add_bos_ = f.get_bool("tokenizer.ggml.add_bos_token", d.add_bos);
  add_eos_ = f.get_bool("tokenizer.ggml.add_eos_token", d.add_eos);
  add_space_prefix_ = f.get_bool("tokenizer.ggml.add_space_prefix", d.add_space_prefix);
  clean_spaces_ = d.clean_spaces;
  if (add_bos_ && bos_ < 0)
    fail("{}: tokenizer.ggml.add_bos_token is true, but tokenizer.ggml.bos_token_id is not set", f.path());
  if (add_eos_ && eos_ < 0)
    fail("{}: tokenizer.ggml.add_eos_token is true, but tokenizer.ggml.eos_token_id is not set", f.path());

  // Tokens recognised by their text become control tokens (llama.cpp's workaround for incomplete metadata).
  auto detect = [&](TokenId& id, const std::vector<std::string>& texts) {
    if (id >= 0) return;
    for (const std::string& t : texts) {
      if (TokenId found = find_token(t); found >= 0) {
        id = found;
        attr_bits_[size_t(found)] |= kAttrControl;
        return;
      }
    }
  };
  detect(eot_, kEotTexts);
  detect(eom, kEomTexts);
  detect(fim_pre, kFimPreTexts);
  detect(fim_suf, kFimSufTexts);
  detect(fim_mid, kFimMidTexts);
  detect(fim_pad, kFimPadTexts);
  detect(fim_rep, kFimRepTexts);
  detect(fim_sep, kFimSepTexts);

  for (size_t i = 0; i < n; ++i)  // control tokens named "unused" are unused
    if ((attr_bits_[i] & kAttrControl) && tokens_[i].find("unused") != std::string::npos)
      attr_bits_[i] |= kAttrUnused;

  eog_ids_.clear();
  auto add_eog = [&](TokenId id) {
    if (id >= 0 && std::find(eog_ids_.begin(), eog_ids_.end(), id) == eog_ids_.end()) eog_ids_.push_back(id);
  };
  for (TokenId id : {fim_pad, fim_rep, fim_sep}) add_eog(id);
  for (const std::string& t : kEogTexts) {
    if (TokenId id = find_token(t); id >= 0) {
      add_eog(id);
      attr_bits_[size_t(id)] |= kAttrControl;
    }
  }
  for (const char* t : {"<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"})  // gpt-oss: always shown
    if (TokenId id = find_token(t); id >= 0) attr_bits_[size_t(id)] = kAttrUserDefined;
  for (TokenId id : {eos_, eot_, eom}) add_eog(id);

  special_by_length_.clear();
  for (size_t i = 0; i < n; ++i)
    if (attr_bits_[i] & (kAttrControl | kAttrUserDefined | kAttrUnknown))
      special_by_length_.push_back(static_cast<TokenId>(i));
  std::stable_sort(special_by_length_.begin(), special_by_length_.end(),
                   [&](TokenId a, TokenId b) { return tokens_[size_t(a)].size() > tokens_[size_t(b)].size(); });

  // Per-model strip attributes llama.cpp sets by name (whitespace around these tokens is dropped).
  const std::string name = lower(f.get_string("general.name"));
  const std::string arch = f.get_string("general.architecture");
  auto set_bit = [&](const std::string& text, uint32_t bit, bool on) {
    if (TokenId id = find_token(text); id >= 0) attr_bits_[size_t(id)] = on ? attr_bits_[size_t(id)] | bit
                                                                              : attr_bits_[size_t(id)] & ~bit;
  };
  auto has_any = [](const std::string& s, std::initializer_list<const char*> subs) {
    return std::any_of(subs.begin(), subs.end(), [&](const char* x) { return s.find(x) != std::string::npos; });
  };
  if (has_any(pre_, {"jina-v2-de", "jina-v2-es", "jina-v2-code"}) || has_any(arch, {"nomic-bert-moe", "jina-bert-v3"})) {
    set_bit("<mask>", kAttrLstrip, true);
  } else if (has_any(name, {"phi-3", "phi3"})) {
    for (TokenId id : special_by_length_) attr_bits_[size_t(id)] |= kAttrRstrip;
    set_bit("</s>", kAttrRstrip, true);
    for (const char* t : {"<unk>", "<s>", "<|endoftext|>"}) set_bit(t, kAttrRstrip, false);
  } else if (has_any(name, {"modern-bert"})) {
    set_bit("[MASK]", kAttrLstrip, true);
  }

  pieces_.resize(n);
  for (size_t i = 0; i < n; ++i) pieces_[i] = make_piece(static_cast<TokenId>(i));
}

TokenId Tokenizer::find_token(std::string_view text) const {
  const auto it = text_to_id_.find(text);
  return it == text_to_id_.end() ? -1 : it->second;
}

TokenAttr Tokenizer::token_attr(TokenId id) const {
  if (id < 0 || id >= n_vocab()) fail("token id {} is out of range: the vocabulary has {} tokens", id, n_vocab());
  const int32_t t = attrs_[static_cast<size_t>(id)];
  return (t >= 0 && t <= 6) ? static_cast<TokenAttr>(t) : TokenAttr::kUndefined;
}

bool Tokenizer::is_eog(TokenId id) const {
  return id >= 0 && std::find(eog_ids_.begin(), eog_ids_.end(), id) != eog_ids_.end();
}

std::string Tokenizer::cached_piece(TokenId id, bool render_special) const {
  if (id < 0 || id >= n_vocab()) fail("token id {} is out of range: the vocabulary has {} tokens", id, n_vocab());
  if (!render_special && (attr_bits_[size_t(id)] & (kAttrUnknown | kAttrControl))) return "";
  return pieces_[size_t(id)];
}

std::vector<Tokenizer::Fragment> Tokenizer::partition(std::string_view text, bool parse_special) const {
  std::vector<Fragment> frags;
  if (text.empty()) return frags;
  frags.push_back({-1, 0, text.size()});
  std::vector<Fragment> next;
  for (TokenId sid : special_by_length_) {
    const uint32_t a = attr_bits_[size_t(sid)];
    if (!parse_special && (a & (kAttrControl | kAttrUnknown))) continue;  // user-defined ones always apply
    const std::string& stext = tokens_[size_t(sid)];
    next.clear();
    for (const Fragment& fr : frags) {
      if (fr.token >= 0) {
        next.push_back(fr);
        continue;
      }
      size_t off = fr.offset, len = fr.length;
      bool matched = false;
      while (true) {
        const size_t m = text.substr(0, off + len).find(stext, off);
        if (m == std::string_view::npos) break;
        matched = true;
        size_t left = m - off;
        if (a & kAttrLstrip)
          while (left > 0 && is_space(text[off + left - 1])) --left;
        if (left > 0) next.push_back({-1, off, left});
        next.push_back({sid, 0, 0});
        size_t roff = m + stext.size(), rlen = off + len - roff;
        if (a & kAttrRstrip)
          while (rlen > 0 && is_space(text[roff])) ++roff, --rlen;
        off = roff, len = rlen;
      }
      if (!matched) next.push_back(fr);
      else if (len > 0) next.push_back({-1, off, len});
    }
    frags.swap(next);
  }
  return frags;
}

std::string Tokenizer::decode(const std::vector<TokenId>& ids, bool render_special) const {
  std::string out;
  bool strip = add_space_prefix_;
  for (TokenId id : ids) {
    std::string piece = token_to_piece(id, render_special);
    if (piece.empty()) continue;
    if (strip && piece[0] == ' ') piece.erase(0, 1);
    strip = false;
    out += piece;
  }
  return out;
}

std::string Tokenizer::detokenize(const std::vector<TokenId>& ids, bool remove_special, bool unparse_special) const {
  size_t first = 0, last = ids.size();
  bool remove_space = add_space_prefix_;
  if (remove_special && add_bos_ && last > first && ids[first] == bos_) {
    remove_space = false;
    ++first;
  }
  if (remove_special && add_eos_ && last > first && ids[last - 1] == eos_) --last;
  std::string t;
  for (size_t i = first; i < last; ++i) {
    std::string piece = token_to_piece(ids[i], unparse_special);
    if (remove_space && !piece.empty() && piece[0] == ' ') piece.erase(0, 1);
    remove_space = false;
    t += piece;
  }
  if (!clean_spaces_ || t.empty()) return t;

  // llama_detokenize's three clean-up passes over the bytes.
  std::string a(1, t[0]);  // " ?", " !", " .", " ," lose the space
  for (size_t i = 1; i < t.size(); ++i) {
    if (t[i - 1] == ' ' && (t[i] == '?' || t[i] == '!' || t[i] == '.' || t[i] == ',')) a.pop_back();
    a += t[i];
  }
  std::string b(1, a[0]);  // " ' " becomes "'"
  for (size_t i = 1; i < a.size(); ++i) {
    const char x = a[i];
    if (x == '\'' && i + 1 < a.size() && a[i - 1] == ' ' && a[i + 1] == ' ') {
      b.pop_back();
      a[++i] = '\0';  // skip the next space; llama.cpp blanks it in place, which the next test sees
    }
    b += x;
  }
  std::string c(1, b[0]);  // " 's", " 'm", " 're", " 've" lose the space
  for (size_t i = 1; i < b.size(); ++i) {
    const char x = b[i];
    if (b[i - 1] == ' ' && x == '\'' && i + 1 < b.size()) {
      const char x1 = b[i + 1];
      if (x1 == 's' || x1 == 'm') {
        c.pop_back();
      } else if (i + 2 < b.size() && x1 != 't' && x1 != 'd') {
        const char x2 = b[i + 2];
        if ((x1 == 'r' && x2 == 'e') || (x1 == 'v' && x2 == 'e')) c.pop_back();
      }
    }
    c += x;
  }
  return c;
}

std::string StreamDecoder::push(TokenId id) {
  std::string piece = tok_.token_to_piece(id, render_special_);
  if (piece.empty()) return "";
  if (first_ && tok_.add_space_prefix() && piece[0] == ' ') piece.erase(0, 1);
  first_ = false;
  pending_ += piece;
  const size_t k = unicode::complete_utf8_prefix(pending_);
  std::string out = pending_.substr(0, k);
  pending_.erase(0, k);
  return out;
}

std::string StreamDecoder::flush() {
  std::string out;
  out.swap(pending_);
  return out;
}

}  // namespace strata
