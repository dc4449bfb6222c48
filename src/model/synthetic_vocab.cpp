// Synthetic vocabularies. Pieces are generated breadth first over a small alphabet ("▁"/"Ġ" for a leading
// space, then letters), each new piece being an existing piece plus one letter, so:
//  - SentencePiece: every piece's bigram splits exist, scores descend with the id (earlier = merged first),
//    and the 256 <0xNN> byte tokens cover whatever the pieces do not;
//  - BPE: every new token comes with the merge "prefix letter", whose two halves are tokens.
// Special tokens follow the real models' layout (Llama 3: 256 specials at the end; Qwen2: 3 specials, then
// padding) so end-of-turn handling can be exercised.
#include "model/synthetic_vocab.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <map>

#include "core/error.h"

namespace strata::model::detail {
namespace {

using gguf::Writer;

constexpr const char* kSpmSpace = "\xe2\x96\x81";  // U+2581, SentencePiece's space
constexpr const char* kBpeSpace = "\xc4\xa0";      // U+0120 "Ġ", GPT-2's byte map of ' '

// tokenizer.ggml.token_type values (the model layer does not depend on the tokenizer layer).
enum class TokenAttr : int32_t { kNormal = 1, kUnknown = 2, kControl = 3, kUnused = 5, kByte = 6 };
int32_t attr(TokenAttr a) { return static_cast<int32_t>(a); }

// GPT-2's bytes_to_unicode: printable Latin-1 bytes map to themselves, the rest to U+0100 + n.
std::string byte_to_unicode(int b) {
  static const std::vector<std::string> table = [] {
    std::vector<int> cp(256, -1);
    for (int c = '!'; c <= '~'; ++c) cp[c] = c;
    for (int c = 0xA1; c <= 0xAC; ++c) cp[c] = c;
    for (int c = 0xAE; c <= 0xFF; ++c) cp[c] = c;
    int n = 0;
    std::vector<std::string> t(256);
    for (int c = 0; c < 256; ++c) {
      const int u = cp[c] >= 0 ? cp[c] : 256 + n++;
      std::string s;
      if (u < 0x80) {
        s += static_cast<char>(u);
      } else {
        s += static_cast<char>(0xC0 | (u >> 6));
        s += static_cast<char>(0x80 | (u & 0x3F));
      }
      t[c] = s;
    }
    return t;
  }();
  return table[static_cast<size_t>(b)];
}

// Breadth-first pieces: roots (space marker, then letters), each popped piece extended by every letter.
// Calls emit(prefix, letter) for each new piece until it returns false.
template <class Emit>
void grow_pieces(const std::string& space, Emit emit) {
  static const std::string letters = "etaoinshrdlcumwfgypbvkjxqz";
  std::deque<std::string> queue{space};
  for (char c : letters) queue.emplace_back(1, c);
  while (!queue.empty()) {
    const std::string p = queue.front();
    queue.pop_front();
    for (char c : letters) {
      if (!emit(p, std::string(1, c))) return;
      queue.push_back(p + c);
    }
  }
}

void add_spm(Writer& w, const SyntheticSpec& spec) {
  const int64_t n = spec.n_vocab;
  if (n < 3 + 256 + 1)
    fail("gen-model: a SentencePiece vocabulary needs at least 260 tokens (<unk>, <s>, </s>, 256 byte tokens "
         "and one piece): raise --n-vocab (got {})", n);
  std::vector<std::string> tokens{"<unk>", "<s>", "</s>"};
  std::vector<float> scores(3, 0.0f);
  std::vector<int32_t> types{attr(TokenAttr::kUnknown), attr(TokenAttr::kControl), attr(TokenAttr::kControl)};
  for (int b = 0; b < 256; ++b) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "<0x%02X>", b);
    tokens.emplace_back(buf);
    scores.push_back(0.0f);
    types.push_back(attr(TokenAttr::kByte));
  }
  auto add_piece = [&](const std::string& s) {
    scores.push_back(-static_cast<float>(tokens.size() - 259));
    tokens.push_back(s);
    types.push_back(attr(TokenAttr::kNormal));
    return static_cast<int64_t>(tokens.size()) < n;
  };
  // Single characters first: the space marker, letters, digits, punctuation.
  std::vector<std::string> singles{kSpmSpace};
  for (const char* set : {"etaoinshrdlcumwfgypbvkjxqz", "ETAOINSHRDLCUMWFGYPBVKJXQZ", "0123456789", ".,!?'\"-:;()"})
    for (const char* c = set; *c; ++c) singles.emplace_back(1, *c);
  for (const auto& s : singles)
    if (static_cast<int64_t>(tokens.size()) >= n || !add_piece(s)) break;
  if (static_cast<int64_t>(tokens.size()) < n)
    grow_pieces(kSpmSpace, [&](const std::string& p, const std::string& c) { return add_piece(p + c); });
  STRATA_ASSERT(static_cast<int64_t>(tokens.size()) == n, "synthetic SentencePiece vocabulary has the wrong size");

  w.set("tokenizer.ggml.model", Writer::string("llama"));
  w.set("tokenizer.ggml.tokens", Writer::string_array(tokens));
  w.set("tokenizer.ggml.scores", Writer::f32_array(scores));
  w.set("tokenizer.ggml.token_type", Writer::i32_array(types));
  w.set("tokenizer.ggml.bos_token_id", Writer::u32(1));
  w.set("tokenizer.ggml.eos_token_id", Writer::u32(2));
  w.set("tokenizer.ggml.unknown_token_id", Writer::u32(0));
  w.set("tokenizer.ggml.add_bos_token", Writer::boolean(true));
  w.set("tokenizer.ggml.add_eos_token", Writer::boolean(false));
}

// Copies the tokenizer.* keys of the real Llama 2 vocabulary (32000 tokens).
bool copy_llama2_vocab(Writer& w) {
  const std::string path = llama2_vocab_path();
  if (path.empty()) return false;
  const auto f = gguf::File::open(path);
  if (f.get_string_array("tokenizer.ggml.tokens").size() != 32000) return false;
  for (const auto& [key, value] : f.metadata())
    if (key.rfind("tokenizer.", 0) == 0) w.set(key, value);
  w.set("tokenizer.ggml.add_bos_token", Writer::boolean(true));
  return true;
}

struct Special {
  std::string text;
  TokenAttr attr;
};

void add_bpe(Writer& w, const SyntheticSpec& spec) {
  const int64_t n = spec.n_vocab;
  const bool qwen = spec.tokenizer_pre == "qwen2";
  // Specials at the end, as the real vocabularies have them.
  std::vector<Special> specials;
  std::string bos, eos, eot;
  if (qwen) {
    specials = {{"<|endoftext|>", TokenAttr::kControl}, {"<|im_start|>", TokenAttr::kControl},
                {"<|im_end|>", TokenAttr::kControl}};
    const int64_t pads = n - 151643 - 3;  // Qwen2.5: 151643 tokens, 3 specials... padding to 151936
    for (int64_t i = 0; i < std::max<int64_t>(0, pads); ++i)
      specials.push_back({"[PAD" + std::to_string(n - std::max<int64_t>(0, pads) + i) + "]", TokenAttr::kUnused});
    bos = "<|endoftext|>", eos = "<|im_end|>", eot = "<|im_end|>";
  } else {  // Llama 3
    const char* named[] = {"<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>",
                           "<|reserved_special_token_1|>", "<|reserved_special_token_2|>",
                           "<|reserved_special_token_3|>", "<|start_header_id|>", "<|end_header_id|>",
                           "<|reserved_special_token_4|>", "<|eot_id|>"};
    for (const char* s : named) specials.push_back({s, TokenAttr::kControl});
    for (int i = 5; static_cast<int64_t>(specials.size()) < 256 && n - 256 >= 256 + 1; ++i)
      specials.push_back({"<|reserved_special_token_" + std::to_string(i) + "|>", TokenAttr::kControl});
    bos = "<|begin_of_text|>", eos = "<|end_of_text|>", eot = "<|eot_id|>";
  }
  const int64_t n_regular = n - static_cast<int64_t>(specials.size());
  if (n_regular < 256 + 1)
    fail("gen-model: a byte-level BPE vocabulary needs 256 byte tokens, at least one merge and {} special tokens: "
         "raise --n-vocab to at least {} (got {})", specials.size(), 257 + specials.size(), n);

  std::vector<std::string> tokens;
  std::vector<int32_t> types;
  std::vector<std::string> merges;
  for (int b = 0; b < 256; ++b) {
    tokens.push_back(byte_to_unicode(b));
    types.push_back(attr(TokenAttr::kNormal));
  }
  grow_pieces(kBpeSpace, [&](const std::string& p, const std::string& c) {
    if (static_cast<int64_t>(tokens.size()) >= n_regular) return false;
    merges.push_back(p + " " + c);
    tokens.push_back(p + c);
    types.push_back(attr(TokenAttr::kNormal));
    return true;
  });
  std::map<std::string, int64_t> id;
  for (const auto& s : specials) {
    id[s.text] = static_cast<int64_t>(tokens.size());
    tokens.push_back(s.text);
    types.push_back(attr(s.attr));
  }
  STRATA_ASSERT(static_cast<int64_t>(tokens.size()) == n, "synthetic BPE vocabulary has the wrong size");

  w.set("tokenizer.ggml.model", Writer::string("gpt2"));
  w.set("tokenizer.ggml.pre", Writer::string(spec.tokenizer_pre.empty() ? "llama-bpe" : spec.tokenizer_pre));
  w.set("tokenizer.ggml.tokens", Writer::string_array(tokens));
  w.set("tokenizer.ggml.token_type", Writer::i32_array(types));
  w.set("tokenizer.ggml.merges", Writer::string_array(merges));
  w.set("tokenizer.ggml.bos_token_id", Writer::u32(static_cast<uint32_t>(id.at(bos))));
  w.set("tokenizer.ggml.eos_token_id", Writer::u32(static_cast<uint32_t>(id.at(eos))));
  w.set("tokenizer.ggml.eot_token_id", Writer::u32(static_cast<uint32_t>(id.at(eot))));
  if (qwen) w.set("tokenizer.ggml.padding_token_id", Writer::u32(static_cast<uint32_t>(id.at(bos))));
  w.set("tokenizer.ggml.add_bos_token", Writer::boolean(!qwen));
}

// Chat templates as the models ship them (tokenizer_config.json).
const std::map<std::string, std::string>& templates() {
  static const std::map<std::string, std::string> t = {
      {"llama2",  // meta-llama/Llama-2-7b-chat-hf
       "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = "
       "messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}"
       "{% endif %}{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) "
       "%}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
       "{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\\n' + system_message + "
       "'\\n<</SYS>>\\n\\n' + message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}"
       "{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif "
       "message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}"},
      {"mistral",  // mistralai/Mistral-7B-Instruct-v0.2
       "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) "
       "%}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
       "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif "
       "message['role'] == 'assistant' %}{{ message['content'] + eos_token}}{% else %}{{ raise_exception('Only "
       "user and assistant roles are supported!') }}{% endif %}{% endfor %}"},
      {"llama3",  // meta-llama/Meta-Llama-3-8B-Instruct
       "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
       "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + "
       "'<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}"
       "{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}"
       "{% endif %}"},
      {"chatml",  // Qwen/Qwen2-0.5B-Instruct
       "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ "
       "'<|im_start|>system\nYou are a helpful assistant<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + "
       "message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if "
       "add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"},
  };
  return t;
}

}  // namespace

std::vector<std::string> chat_template_families() {
  std::vector<std::string> v;
  for (const auto& [k, _] : templates()) v.push_back(k);
  return v;
}

const std::string& chat_template_text(const std::string& family) {
  const auto& t = templates();
  const auto it = t.find(family);
  if (it == t.end()) {
    std::string names;
    for (const auto& [k, _] : t) names += (names.empty() ? "" : ", ") + k;
    fail("gen-model: no chat template '{}' to write: use one of {}", family, names);
  }
  return it->second;
}

std::string llama2_vocab_path() {
  namespace fs = std::filesystem;
  std::vector<fs::path> dirs;
  if (const char* e = std::getenv("STRATA_SHARED"); e && *e) dirs.emplace_back(e);
  dirs.emplace_back(STRATA_SHARED_DIR);
  for (const auto& d : dirs) {
    std::error_code ec;
    const fs::path p = d / "models" / "llama-2-tiny-random.gguf";
    if (fs::exists(p, ec)) return p.string();
  }
  return "";
}

void add_tokenizer(Writer& w, const SyntheticSpec& spec) {
  if (spec.tokenizer == "llama") {
    if (spec.n_vocab != 32000 || !copy_llama2_vocab(w)) add_spm(w, spec);
  } else if (spec.tokenizer == "gpt2") {
    add_bpe(w, spec);
  } else {
    fail("gen-model: unknown tokenizer '{}': use llama (SentencePiece) or gpt2 (byte-level BPE)", spec.tokenizer);
  }
  if (!spec.chat_template.empty())
    w.set("tokenizer.chat_template", Writer::string(chat_template_text(spec.chat_template)));
}

}  // namespace strata::model::detail
