// Chat templates: the common families rendered natively (no Jinja engine). The family is detected from
// tokenizer.chat_template's text, or named explicitly (--chat-template NAME).
#pragma once
#include <string>
#include <vector>

namespace strata {

struct ChatMessage {
  std::string role;     // "system", "user", "assistant"
  std::string content;
};

class ChatTemplate {
 public:
  // Families: "llama2", "llama3", "chatml" (Qwen), "mistral", "gemma", "phi3".
  // name_or_text: a family name, or a Jinja template text to detect the family from.
  // Throws strata::Error when unknown: "unknown chat template ...: pass --chat-template NAME (one of ...)".
  static ChatTemplate detect(const std::string& name_or_text);
  static const std::vector<std::string>& family_names();
  // Variants llama.cpp renders differently and detect() recognises: "llama2-sys-bos", "llama2-sys-strip"
  // (the official Llama-2-chat template), "mistral-v1", "mistral-v3", "mistral-v3-tekken", "mistral-v7".
  static const std::vector<std::string>& variant_names();

  // Renders the conversation; with add_generation_prompt the text ends where the assistant's reply begins.
  std::string apply(const std::vector<ChatMessage>& msgs, bool add_generation_prompt) const;
  const std::string& name() const { return name_; }
  // Text that ends a turn for this family (e.g. "<|im_end|>"), to stop generation on.
  std::vector<std::string> stop_strings() const;

 private:
  std::string name_;
};

}  // namespace strata
