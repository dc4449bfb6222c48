// Chat templates rendered natively, byte for byte as llama.cpp's llm_chat_apply_template renders them
// (src/llama-chat.cpp), and detected from tokenizer.chat_template's Jinja text with the same marker
// substrings and the same precedence as llm_chat_detect_template, so a template llama.cpp would render as
// another family (phi4, zephyr, ...) is reported as unsupported instead of being rendered wrongly.
// BOS is not part of the rendered text: the tokenizer adds it (add_bos) when the prompt is encoded.
#include "tokenizer/chat_template.h"

#include <algorithm>
#include <string_view>

#include "core/error.h"

namespace strata {
namespace {

enum class Kind {
  kLlama2,           // Llama 2 chat: "[INST] <<SYS>>\n...\n<</SYS>>\n\n... [/INST]...</s>" (llama.cpp llama2-sys)
  kLlama2SysBos,     // ... with "<s>" before each later [INST]
  kLlama2SysStrip,   // ... with every message trimmed (the official Llama-2-chat template)
  kMistral,          // "[INST] sys\nuser [/INST]answer</s>" (Mistral v0.1/v0.2; llama.cpp's plain llama2)
  kMistralV1,        // " [INST] sys\n\nuser [/INST] answer</s>"
  kMistralV3,        // "[INST] sys\n\nuser[/INST] answer</s>" (answers trimmed)
  kMistralV3Tekken,  // "[INST]sys\n\nuser[/INST]answer</s>"
  kMistralV7,        // "[SYSTEM_PROMPT] sys[/SYSTEM_PROMPT][INST] user[/INST] answer</s>"
  kLlama3,           // "<|start_header_id|>role<|end_header_id|>\n\ncontent<|eot_id|>"
  kChatml,           // "<|im_start|>role\ncontent<|im_end|>\n" (Qwen)
  kGemma,            // "<start_of_turn>user\n...<end_of_turn>\n", system folded into the first user turn
  kPhi3,             // "<|role|>\ncontent<|end|>\n"
};

struct Family {
  const char* name;
  Kind kind;
  bool main;  // one of the six families (the others are variants of them)
};

constexpr Family kFamilies[] = {
    {"llama2", Kind::kLlama2, true},
    {"llama3", Kind::kLlama3, true},
    {"chatml", Kind::kChatml, true},
    {"mistral", Kind::kMistral, true},
    {"gemma", Kind::kGemma, true},
    {"phi3", Kind::kPhi3, true},
    {"llama2-sys-bos", Kind::kLlama2SysBos, false},
    {"llama2-sys-strip", Kind::kLlama2SysStrip, false},
    {"mistral-v1", Kind::kMistralV1, false},
    {"mistral-v3", Kind::kMistralV3, false},
    {"mistral-v3-tekken", Kind::kMistralV3Tekken, false},
    {"mistral-v7", Kind::kMistralV7, false},
};

// Other spellings accepted for --chat-template (llama.cpp's names where they differ from ours).
constexpr std::pair<const char*, const char*> kAliases[] = {
    {"llama2-sys", "llama2"}, {"llama-2", "llama2"}, {"llama-3", "llama3"}, {"qwen", "chatml"},
    {"qwen2", "chatml"},      {"phi-3", "phi3"},
};

const Family* by_name(std::string_view name) {
  for (const auto& [alias, target] : kAliases)
    if (name == alias) name = target;
  for (const auto& f : kFamilies)
    if (name == f.name) return &f;
  return nullptr;
}

std::string trim(std::string_view s) {
  auto space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; };
  size_t b = 0, e = s.size();
  while (b < e && space(s[b])) ++b;
  while (e > b && space(s[e - 1])) --e;
  return std::string(s.substr(b, e - b));
}

// The result of reading a Jinja template: one of our families, or the llama.cpp family it would be
// rendered as when strata does not render that one ("" when nothing matched at all).
struct Detected {
  const Family* family = nullptr;
  std::string other;
};

Detected detect_text(const std::string& t) {
  auto has = [&t](const char* s) { return t.find(s) != std::string::npos; };
  auto ours = [](const char* name) { return Detected{by_name(name), ""}; };
  auto theirs = [](const char* name) { return Detected{nullptr, name}; };
  if (has("<|im_start|>")) {
    if (has("<|im_sep|>")) return theirs("phi4");
    if (has("<end_of_utterance>")) return theirs("smolvlm");
    return ours("chatml");
  }
  if (t.rfind("mistral", 0) == 0 || has("[INST]")) {
    if (has("[SYSTEM_PROMPT]")) return ours("mistral-v7");
    if (has("' [INST] ' + system_message") || has("[AVAILABLE_TOOLS]")) {
      if (has(" [INST]")) return ours("mistral-v1");
      if (has("\"[INST]\"")) return ours("mistral-v3-tekken");
      return ours("mistral-v3");
    }
    if (has("content.strip()")) return ours("llama2-sys-strip");
    if (has("bos_token + '[INST]")) return ours("llama2-sys-bos");
    if (has("<<SYS>>")) return ours("llama2");
    return ours("mistral");
  }
  if (has("<|assistant|>") && has("<|end|>")) return ours("phi3");
  if (has("[gMASK]<sop>")) return theirs("chatglm4");
  if (has("<|assistant|>") && has("<|user|>")) return theirs(has("</s>") ? "falcon3" : "glmedge");
  if (has("<|user|>") && has("<|endoftext|>")) return theirs("zephyr");
  if (has("bos_token + message['role']")) return theirs("monarch");
  if (has("<start_of_turn>")) return ours("gemma");
  if (has("'\\n\\nAssistant: ' + eos_token")) return theirs("orion");
  if (has("GPT4 Correct ")) return theirs("openchat");
  if (has("USER: ") && has("ASSISTANT: ")) return theirs("vicuna");
  if (has("### Instruction:") && has("<|EOT|>")) return theirs("deepseek");
  if (has("<|START_OF_TURN_TOKEN|>") && has("<|USER_TOKEN|>")) return theirs("command-r");
  if (has("<|start_header_id|>") && has("<|end_header_id|>")) return ours("llama3");
  if (has("<|header_start|>") && has("<|header_end|>")) return theirs("llama4");
  return {};
}

std::string family_list() {
  std::string main, variants;
  for (const auto& f : kFamilies) {
    std::string& s = f.main ? main : variants;
    if (!s.empty()) s += ", ";
    s += f.name;
  }
  return main + "; variants: " + variants;
}

Kind kind_of(const std::string& name) {
  const Family* f = by_name(name);
  STRATA_ASSERT(f != nullptr, "ChatTemplate holds a name that is not in the family table");
  return f->kind;
}

// llama2 and its variants, and Mistral v0.1/v0.2 (the same template without <<SYS>>).
void render_llama2(std::string& out, const std::vector<ChatMessage>& msgs, Kind kind) {
  const bool sys_block = kind != Kind::kMistral;
  const bool bos_inside = kind == Kind::kLlama2SysBos;
  const bool strip = kind == Kind::kLlama2SysStrip;
  bool inside_turn = true;  // the first [INST] is written up front (BOS comes from the tokenizer)
  out += "[INST] ";
  for (const auto& m : msgs) {
    const std::string content = strip ? trim(m.content) : m.content;
    if (!inside_turn) {
      inside_turn = true;
      out += bos_inside ? "<s>[INST] " : "[INST] ";
    }
    if (m.role == "system") {
      out += sys_block ? "<<SYS>>\n" + content + "\n<</SYS>>\n\n" : content + "\n";
    } else if (m.role == "user") {
      out += content + " [/INST]";
    } else {
      out += content + "</s>";
      inside_turn = false;
    }
  }
}

void render_mistral_v1_v3(std::string& out, const std::vector<ChatMessage>& msgs, Kind kind) {
  const std::string lead = kind == Kind::kMistralV1 ? " " : "";
  const std::string trail = kind == Kind::kMistralV3Tekken ? "" : " ";
  const bool trim_answers = kind == Kind::kMistralV3;
  bool inside_turn = false;
  for (const auto& m : msgs) {
    if (!inside_turn) {
      out += lead + "[INST]" + trail;
      inside_turn = true;
    }
    if (m.role == "system") {
      out += m.content + "\n\n";
    } else if (m.role == "user") {
      out += m.content + lead + "[/INST]";
    } else {
      out += trail + (trim_answers ? trim(m.content) : m.content) + "</s>";
      inside_turn = false;
    }
  }
}

}  // namespace

const std::vector<std::string>& ChatTemplate::family_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> v;
    for (const auto& f : kFamilies)
      if (f.main) v.push_back(f.name);
    return v;
  }();
  return names;
}

const std::vector<std::string>& ChatTemplate::variant_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> v;
    for (const auto& f : kFamilies)
      if (!f.main) v.push_back(f.name);
    return v;
  }();
  return names;
}

ChatTemplate ChatTemplate::detect(const std::string& name_or_text) {
  ChatTemplate t;
  if (const Family* f = by_name(name_or_text)) {
    t.name_ = f->name;
    return t;
  }
  const bool looks_like_name = name_or_text.size() < 40 && name_or_text.find_first_of("{}% \n<>[]") == std::string::npos;
  if (name_or_text.empty())
    fail("the model has no chat template (tokenizer.chat_template is absent): pass --chat-template NAME "
         "(one of {})", family_list());
  if (looks_like_name)
    fail("unknown chat template '{}': pass --chat-template NAME (one of {})", name_or_text, family_list());
  const Detected d = detect_text(name_or_text);
  if (d.family) {
    t.name_ = d.family->name;
    return t;
  }
  if (!d.other.empty())
    fail("the model's chat template looks like llama.cpp's '{}' family, which strata does not render yet: "
         "pass --chat-template NAME (one of {}) if one of those fits the model",
         d.other, family_list());
  fail("the model's chat template ({} characters of Jinja) is not one strata recognises: pass "
       "--chat-template NAME (one of {})", name_or_text.size(), family_list());
}

std::string ChatTemplate::apply(const std::vector<ChatMessage>& msgs, bool add_generation_prompt) const {
  std::string out;
  const Kind kind = kind_of(name_);
  switch (kind) {
    case Kind::kChatml:
      for (const auto& m : msgs) out += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
      if (add_generation_prompt) out += "<|im_start|>assistant\n";
      break;
    case Kind::kLlama3:
      for (const auto& m : msgs)
        out += "<|start_header_id|>" + m.role + "<|end_header_id|>\n\n" + trim(m.content) + "<|eot_id|>";
      if (add_generation_prompt) out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
      break;
    case Kind::kPhi3:
      for (const auto& m : msgs) out += "<|" + m.role + "|>\n" + m.content + "<|end|>\n";
      if (add_generation_prompt) out += "<|assistant|>\n";
      break;
    case Kind::kGemma: {
      std::string system;
      for (const auto& m : msgs) {
        if (m.role == "system") {  // Gemma has no system turn: it is folded into the next user turn
          system += trim(m.content);
          continue;
        }
        const std::string role = m.role == "assistant" ? "model" : m.role;
        out += "<start_of_turn>" + role + "\n";
        if (!system.empty() && role != "model") {
          out += system + "\n\n";
          system.clear();
        }
        out += trim(m.content) + "<end_of_turn>\n";
      }
      if (add_generation_prompt) out += "<start_of_turn>model\n";
      break;
    }
    case Kind::kLlama2:
    case Kind::kLlama2SysBos:
    case Kind::kLlama2SysStrip:
    case Kind::kMistral:
      render_llama2(out, msgs, kind);  // the reply follows "[/INST]": no generation prompt to add
      break;
    case Kind::kMistralV1:
    case Kind::kMistralV3:
    case Kind::kMistralV3Tekken:
      render_mistral_v1_v3(out, msgs, kind);
      break;
    case Kind::kMistralV7:
      for (const auto& m : msgs) {
        if (m.role == "system") out += "[SYSTEM_PROMPT] " + m.content + "[/SYSTEM_PROMPT]";
        else if (m.role == "user") out += "[INST] " + m.content + "[/INST]";
        else out += " " + m.content + "</s>";
      }
      break;
  }
  return out;
}

std::vector<std::string> ChatTemplate::stop_strings() const {
  switch (kind_of(name_)) {
    case Kind::kChatml: return {"<|im_end|>"};
    case Kind::kLlama3: return {"<|eot_id|>"};
    case Kind::kPhi3: return {"<|end|>"};
    case Kind::kGemma: return {"<end_of_turn>"};
    case Kind::kLlama2:
    case Kind::kLlama2SysBos:
    case Kind::kLlama2SysStrip:
    case Kind::kMistral:
    case Kind::kMistralV1:
    case Kind::kMistralV3:
    case Kind::kMistralV3Tekken:
    case Kind::kMistralV7: return {"</s>"};
  }
  return {};
}

}  // namespace strata
