// SentencePiece-style BPE (tokenizer.ggml.model = "llama"), as llama.cpp's llm_tokenizer_spm: start from
// UTF-8 characters and repeatedly merge the adjacent pair whose concatenation is the highest-scoring token
// (leftmost on ties); what remains unmatched falls back to <0xNN> byte tokens.
#include <cstdlib>
#include <queue>

#include "core/error.h"
#include "gguf/gguf.h"
#include "tokenizer/models.h"
#include "tokenizer/unicode.h"

namespace strata {
namespace {

const std::string kSpaceMarker = "\xE2\x96\x81";  // U+2581, SentencePiece's visible space

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  std::string out;
  out.reserve(s.size());
  size_t pos = 0;
  for (size_t hit; (hit = s.find(from, pos)) != std::string::npos; pos = hit + from.size()) {
    out.append(s, pos, hit - pos);
    out += to;
  }
  out.append(s, pos, std::string::npos);
  return out;
}

}  // namespace

std::string byte_token_text(uint8_t b) {
  static const char* hex = "0123456789ABCDEF";
  return std::string{'<', '0', 'x', hex[b >> 4], hex[b & 15], '>'};
}

uint8_t byte_token_value(const std::string& text) {
  const std::string digits = text.size() >= 5 ? text.substr(3, 2) : std::string();
  return static_cast<uint8_t>(std::strtol(digits.c_str(), nullptr, 16));
}

std::unique_ptr<Tokenizer> SpmTokenizer::load(const gguf::File& f) {
  auto t = std::unique_ptr<SpmTokenizer>(new SpmTokenizer());
  t->load_vocab(f, Defaults{1, 2, 0, /*add_bos=*/true, /*add_eos=*/false, /*add_space_prefix=*/true,
                            /*clean_spaces=*/false});
  return t;
}

TokenId SpmTokenizer::byte_token(uint8_t b) const {
  if (TokenId id = find_token(byte_token_text(b)); id >= 0) return id;
  if (TokenId id = find_token(std::string(1, static_cast<char>(b))); id >= 0) return id;
  return unk_;  // llama.cpp throws here; a vocabulary without byte tokens degrades to <unk>
}

void SpmTokenizer::tokenize_fragment(const std::string& text, std::vector<TokenId>& out) const {
  struct Symbol {
    int prev, next;
    const char* text;
    size_t n;
  };
  struct Bigram {
    int left, right;
    float score;
    size_t size;
  };
  struct Lower {  // priority: higher score first, then the leftmost pair
    bool operator()(const Bigram& l, const Bigram& r) const {
      return l.score < r.score || (l.score == r.score && l.left > r.left);
    }
  };

  // UTF-8 characters by lead byte (a truncated or invalid sequence is taken as is).
  std::vector<Symbol> sym;
  sym.reserve(text.size());
  for (size_t offs = 0; offs < text.size();) {
    const size_t n = std::min(unicode::utf8_len(text[offs]), text.size() - offs);
    const int index = static_cast<int>(sym.size());
    sym.push_back({index - 1, offs + n == text.size() ? -1 : index + 1, text.data() + offs, n});
    offs += n;
  }

  std::priority_queue<Bigram, std::vector<Bigram>, Lower> queue;
  // Which pair last formed a given text (views into `text`, which outlives this call).
  std::unordered_map<std::string_view, std::pair<int, int>> rev_merge;
  auto try_add = [&](int left, int right) {
    if (left == -1 || right == -1) return;
    const std::string_view s(sym[left].text, sym[left].n + sym[right].n);  // the two are adjacent in text
    const TokenId id = find_token(s);
    if (id < 0) return;
    queue.push({left, right, scores_[size_t(id)], s.size()});
    rev_merge[s] = {left, right};
  };
  for (int i = 1; i < static_cast<int>(sym.size()); ++i) try_add(i - 1, i);

  while (!queue.empty()) {
    const Bigram b = queue.top();
    queue.pop();
    Symbol& l = sym[b.left];
    Symbol& r = sym[b.right];
    if (l.n == 0 || r.n == 0 || l.n + r.n != b.size) continue;  // stale: one side already merged
    l.n += r.n;
    r.n = 0;
    l.next = r.next;
    if (r.next >= 0) sym[r.next].prev = b.left;
    try_add(l.prev, b.left);
    try_add(b.left, l.next);
  }

  // A final symbol is a token, or splits back along the merge that made it, or becomes bytes.
  auto resegment = [&](auto&& self, const Symbol& s, int depth) -> void {
    const std::string_view str(s.text, s.n);
    if (TokenId id = find_token(str); id >= 0) {
      out.push_back(id);
      return;
    }
    const auto p = rev_merge.find(str);
    if (p == rev_merge.end() || depth > 64) {
      for (size_t j = 0; j < s.n; ++j) {
        const TokenId id = byte_token(static_cast<uint8_t>(s.text[j]));
        if (id >= 0) out.push_back(id);
      }
      return;
    }
    self(self, sym[p->second.first], depth + 1);
    self(self, sym[p->second.second], depth + 1);
  };
  if (sym.empty()) return;
  for (int i = 0; i != -1; i = sym[i].next) resegment(resegment, sym[i], 0);
}

std::vector<TokenId> SpmTokenizer::encode(std::string_view text, bool add_special, bool parse_special) const {
  std::vector<TokenId> out;
  if (add_special && add_bos_) out.push_back(bos_);
  bool prev_special = true;  // the text start counts as after a special token: prefix a space
  for (const Fragment& fr : partition(text, parse_special)) {
    if (fr.token >= 0) {
      out.push_back(fr.token);
      prev_special = true;
      continue;
    }
    std::string s = (add_space_prefix_ && prev_special) ? " " : "";
    s.append(text.substr(fr.offset, fr.length));
    tokenize_fragment(replace_all(std::move(s), " ", kSpaceMarker), out);
    prev_special = false;
  }
  if (add_special && add_eos_) out.push_back(eos_);
  return out;
}

std::string SpmTokenizer::make_piece(TokenId id) const {
  const uint32_t a = attr_bits_[size_t(id)];
  const std::string& text = tokens_[size_t(id)];
  if (a & (kAttrUnknown | kAttrControl | kAttrUserDefined)) return text;
  if (a & kAttrNormal) return replace_all(text, kSpaceMarker, " ");
  if (a & kAttrByte) return std::string(1, static_cast<char>(byte_token_value(text)));
  return "";  // unused / undefined tokens print nothing
}

std::string SpmTokenizer::token_to_piece(TokenId id, bool render_special) const {
  return cached_piece(id, render_special);
}

}  // namespace strata
