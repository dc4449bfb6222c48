// Byte-level BPE (tokenizer.ggml.model = "gpt2"), as llama.cpp's llm_tokenizer_bpe: the pre-tokenizer splits
// the text into words (bytes mapped to printable code points), then inside each word the adjacent pair with the
// lowest merge rank is merged (leftmost on ties) until no listed merge applies.
#include <queue>

#include "core/error.h"
#include "gguf/gguf.h"
#include "tokenizer/models.h"
#include "tokenizer/unicode.h"

namespace strata {

std::unique_ptr<Tokenizer> BpeTokenizer::load(const gguf::File& f) {
  auto t = std::unique_ptr<BpeTokenizer>(new BpeTokenizer());
  const std::string pre = f.get_string("tokenizer.ggml.pre");
  const auto found = pretok::find(pre);
  if (!found)
    fail("unsupported pre-tokenizer '{}' (tokenizer.ggml.pre) in {}: supported: {}", pre, f.path(),
         pretok::supported_names());
  t->pre_tok_ = *found;

  const std::vector<std::string> merges = f.get_string_array("tokenizer.ggml.merges");
  if (merges.empty())
    fail("{}: tokenizer.ggml.merges is missing or empty: a gpt2 (BPE) tokenizer needs its merge list", f.path());
  t->ranks_.reserve(merges.size());
  for (size_t i = 0; i < merges.size(); ++i) {
    const std::string& m = merges[i];
    const size_t sp = m.find(' ', 1);  // as llama.cpp: the first space after the first byte separates the pair
    if (sp == std::string::npos) continue;
    t->ranks_.emplace(m, static_cast<int>(i));  // the first listing of a pair keeps its rank
  }

  Defaults d{11, 11, -1, t->pre_tok_.add_bos, false, /*add_space_prefix=*/false, t->pre_tok_.clean_spaces};
  if (t->pre_tok_.no_bos) d.bos = -1;
  t->load_vocab(f, d);
  return t;
}

int BpeTokenizer::rank(std::string_view left, std::string_view right) const {
  thread_local std::string key;
  key.assign(left).append(1, ' ').append(right);
  const auto it = ranks_.find(key);
  return it == ranks_.end() ? -1 : it->second;
}

void BpeTokenizer::tokenize_word(const std::string& word, std::vector<TokenId>& out) const {
  if (pre_tok_.ignore_merges) {
    if (TokenId id = find_token(word); id >= 0) {
      out.push_back(id);
      return;
    }
  }
  struct Symbol {
    int prev, next;
    size_t begin, n;  // byte range in word
  };
  struct Bigram {
    int left, right;
    int rank;
    size_t size;  // bytes of the merged text
  };
  struct Greater {  // priority: lowest rank first, then the leftmost pair
    bool operator()(const Bigram& l, const Bigram& r) const {
      return l.rank > r.rank || (l.rank == r.rank && l.left > r.left);
    }
  };

  std::vector<Symbol> sym;
  for (size_t offs = 0; offs < word.size();) {
    const size_t n = std::min(unicode::utf8_len(word[offs]), word.size() - offs);
    const int index = static_cast<int>(sym.size());
    sym.push_back({index - 1, offs + n == word.size() ? -1 : index + 1, offs, n});
    offs += n;
  }
  const std::string_view w(word);
  auto str = [&](const Symbol& s) { return w.substr(s.begin, s.n); };

  std::priority_queue<Bigram, std::vector<Bigram>, Greater> queue;
  auto try_add = [&](int left, int right) {
    if (left == -1 || right == -1) return;
    const int rk = rank(str(sym[left]), str(sym[right]));
    if (rk < 0) return;
    queue.push({left, right, rk, sym[left].n + sym[right].n});
  };
  for (int i = 1; i < static_cast<int>(sym.size()); ++i) try_add(i - 1, i);

  while (!queue.empty()) {
    const Bigram b = queue.top();
    queue.pop();
    Symbol& l = sym[b.left];
    Symbol& r = sym[b.right];
    if (l.n == 0 || r.n == 0) continue;
    // Stale when the pair no longer spells what was queued (llama.cpp compares the texts; the left symbol
    // keeps its start, so the same start, adjacency and length mean the same text).
    if (l.n + r.n != b.size || r.begin != l.begin + l.n) continue;
    l.n += r.n;
    r.n = 0;
    l.next = r.next;
    if (r.next >= 0) sym[r.next].prev = b.left;
    try_add(l.prev, b.left);
    try_add(b.left, l.next);
  }

  if (sym.empty()) return;
  for (int i = 0; i != -1; i = sym[i].next) {
    const std::string_view s = str(sym[i]);
    if (TokenId id = find_token(s); id >= 0) {
      out.push_back(id);
      continue;
    }
    // Not a token (only with a vocabulary that lacks some merge result): llama.cpp looks each byte up alone
    // and drops the ones that are not tokens.
    for (char ch : s)
      if (TokenId id = find_token(std::string_view(&ch, 1)); id >= 0) out.push_back(id);
  }
}

std::vector<TokenId> BpeTokenizer::encode(std::string_view text, bool add_special, bool parse_special) const {
  std::vector<TokenId> out;
  if (add_special && add_bos_) out.push_back(bos_);
  for (const Fragment& fr : partition(text, parse_special)) {
    if (fr.token >= 0) {
      out.push_back(fr.token);
      continue;
    }
    for (const std::string& word : pretok::split(pre_tok_.kind, text.substr(fr.offset, fr.length)))
      tokenize_word(word, out);
  }
  if (add_special && add_eos_) out.push_back(eos_);
  return out;
}

std::string BpeTokenizer::make_piece(TokenId id) const {
  const uint32_t a = attr_bits_[size_t(id)];
  const std::string& text = tokens_[size_t(id)];
  if (a & (kAttrUnknown | kAttrControl | kAttrUserDefined)) return text;
  if (a & kAttrNormal) {  // undo the byte map (llama_decode_text)
    std::string out;
    for (uint32_t cpt : unicode::decode_utf8(text)) {
      const int b = unicode::unicode_to_byte(cpt);
      if (b >= 0) {
        out.push_back(static_cast<char>(b));
        continue;
      }
      out += "[UNK_BYTE_0x";
      for (char ch : unicode::to_utf8(cpt)) out += fmt::format("{:02x}", static_cast<uint8_t>(ch));
      out += text + "]";
    }
    return out;
  }
  if (a & kAttrByte) return std::string(1, static_cast<char>(byte_token_value(text)));
  return "";
}

std::string BpeTokenizer::token_to_piece(TokenId id, bool render_special) const {
  return cached_piece(id, render_special);
}

}  // namespace strata
