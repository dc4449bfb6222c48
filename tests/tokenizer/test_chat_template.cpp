// Chat templates: exact renderings (written out by hand, following llama.cpp's llm_chat_apply_template and
// the expected strings of its tests/test-chat-template.cpp) and detection from real Jinja template texts.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/error.h"
#include "gguf/gguf.h"
#include "test_util.h"
#include "tokenizer/chat_template.h"

namespace strata {
namespace {

const std::vector<ChatMessage> kThree = {
    {"system", "You are a helpful assistant"},
    {"user", "Hello"},
    {"assistant", "Hi there"},
};

// llama.cpp's test conversation: note the assistant answer padded with spaces (some families trim it).
const std::vector<ChatMessage> kSix = {
    {"system", "You are a helpful assistant"},
    {"user", "Hello"},
    {"assistant", "Hi there"},
    {"user", "Who are you"},
    {"assistant", "   I am an assistant   "},
    {"user", "Another question"},
};

std::string render(const std::string& family, const std::vector<ChatMessage>& msgs, bool gen) {
  return ChatTemplate::detect(family).apply(msgs, gen);
}

TEST(ChatTemplate, EachFamilyRendersThreeMessagesExactly) {
  EXPECT_EQ(render("llama2", kThree, false),
            "[INST] <<SYS>>\nYou are a helpful assistant\n<</SYS>>\n\nHello [/INST]Hi there</s>");
  EXPECT_EQ(render("llama3", kThree, false),
            "<|start_header_id|>system<|end_header_id|>\n\nYou are a helpful assistant<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\nHi there<|eot_id|>");
  EXPECT_EQ(render("chatml", kThree, false),
            "<|im_start|>system\nYou are a helpful assistant<|im_end|>\n"
            "<|im_start|>user\nHello<|im_end|>\n"
            "<|im_start|>assistant\nHi there<|im_end|>\n");
  EXPECT_EQ(render("mistral", kThree, false), "[INST] You are a helpful assistant\nHello [/INST]Hi there</s>");
  EXPECT_EQ(render("gemma", kThree, false),
            "<start_of_turn>user\nYou are a helpful assistant\n\nHello<end_of_turn>\n"
            "<start_of_turn>model\nHi there<end_of_turn>\n");
  EXPECT_EQ(render("phi3", kThree, false),
            "<|system|>\nYou are a helpful assistant<|end|>\n<|user|>\nHello<|end|>\n<|assistant|>\nHi there<|end|>\n");
}

TEST(ChatTemplate, GenerationPromptEndsWhereTheReplyBegins) {
  const std::vector<ChatMessage> two(kThree.begin(), kThree.begin() + 2);
  EXPECT_EQ(render("chatml", two, true),
            "<|im_start|>system\nYou are a helpful assistant<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n"
            "<|im_start|>assistant\n");
  EXPECT_EQ(render("llama3", two, true),
            "<|start_header_id|>system<|end_header_id|>\n\nYou are a helpful assistant<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
  EXPECT_EQ(render("gemma", two, true),
            "<start_of_turn>user\nYou are a helpful assistant\n\nHello<end_of_turn>\n<start_of_turn>model\n");
  EXPECT_EQ(render("phi3", two, true),
            "<|system|>\nYou are a helpful assistant<|end|>\n<|user|>\nHello<|end|>\n<|assistant|>\n");
  // [INST] families: the reply follows [/INST] with or without the flag.
  EXPECT_EQ(render("llama2", two, true), render("llama2", two, false));
  EXPECT_EQ(render("llama2", two, true), "[INST] <<SYS>>\nYou are a helpful assistant\n<</SYS>>\n\nHello [/INST]");
}

// The expected strings of llama.cpp's tests/test-chat-template.cpp for its six-message conversation.
TEST(ChatTemplate, MatchesLlamaCppOnItsTestConversation) {
  EXPECT_EQ(render("chatml", kSix, true),
            "<|im_start|>system\nYou are a helpful assistant<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n"
            "<|im_start|>assistant\nHi there<|im_end|>\n<|im_start|>user\nWho are you<|im_end|>\n"
            "<|im_start|>assistant\n   I am an assistant   <|im_end|>\n<|im_start|>user\nAnother question<|im_end|>\n"
            "<|im_start|>assistant\n");
  EXPECT_EQ(render("mistral", kSix, true),
            "[INST] You are a helpful assistant\nHello [/INST]Hi there</s>[INST] Who are you [/INST]   I am an "
            "assistant   </s>[INST] Another question [/INST]");
  EXPECT_EQ(render("llama2", kSix, true),
            "[INST] <<SYS>>\nYou are a helpful assistant\n<</SYS>>\n\nHello [/INST]Hi there</s>[INST] Who are you "
            "[/INST]   I am an assistant   </s>[INST] Another question [/INST]");
  EXPECT_EQ(render("llama2-sys-bos", kSix, true),
            "[INST] <<SYS>>\nYou are a helpful assistant\n<</SYS>>\n\nHello [/INST]Hi there</s><s>[INST] Who are "
            "you [/INST]   I am an assistant   </s><s>[INST] Another question [/INST]");
  EXPECT_EQ(render("llama2-sys-strip", kSix, true),
            "[INST] <<SYS>>\nYou are a helpful assistant\n<</SYS>>\n\nHello [/INST]Hi there</s>[INST] Who are you "
            "[/INST]I am an assistant</s>[INST] Another question [/INST]");
  EXPECT_EQ(render("gemma", kSix, true),
            "<start_of_turn>user\nYou are a helpful assistant\n\nHello<end_of_turn>\n<start_of_turn>model\nHi "
            "there<end_of_turn>\n<start_of_turn>user\nWho are you<end_of_turn>\n<start_of_turn>model\nI am an "
            "assistant<end_of_turn>\n<start_of_turn>user\nAnother question<end_of_turn>\n<start_of_turn>model\n");
  EXPECT_EQ(render("llama3", kSix, true),
            "<|start_header_id|>system<|end_header_id|>\n\nYou are a helpful assistant<|eot_id|><|start_header_id|>"
            "user<|end_header_id|>\n\nHello<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nHi "
            "there<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nWho are you<|eot_id|><|start_header_id|>"
            "assistant<|end_header_id|>\n\nI am an assistant<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n"
            "Another question<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n");
  EXPECT_EQ(render("phi3", kSix, true),
            "<|system|>\nYou are a helpful assistant<|end|>\n<|user|>\nHello<|end|>\n<|assistant|>\nHi "
            "there<|end|>\n<|user|>\nWho are you<|end|>\n<|assistant|>\n   I am an assistant   <|end|>\n<|user|>\n"
            "Another question<|end|>\n<|assistant|>\n");
  EXPECT_EQ(render("mistral-v1", kSix, true),
            " [INST] You are a helpful assistant\n\nHello [/INST] Hi there</s> [INST] Who are you [/INST]    I am "
            "an assistant   </s> [INST] Another question [/INST]");
  EXPECT_EQ(render("mistral-v3", kSix, true),
            "[INST] You are a helpful assistant\n\nHello[/INST] Hi there</s>[INST] Who are you[/INST] I am an "
            "assistant</s>[INST] Another question[/INST]");
  EXPECT_EQ(render("mistral-v3-tekken", kSix, true),
            "[INST]You are a helpful assistant\n\nHello[/INST]Hi there</s>[INST]Who are you[/INST]   I am an "
            "assistant   </s>[INST]Another question[/INST]");
  EXPECT_EQ(render("mistral-v7", kSix, true),
            "[SYSTEM_PROMPT] You are a helpful assistant[/SYSTEM_PROMPT][INST] Hello[/INST] Hi there</s>[INST] Who "
            "are you[/INST]    I am an assistant   </s>[INST] Another question[/INST]");
}

TEST(ChatTemplate, GemmaWithoutSystemAndSystemOnly) {
  EXPECT_EQ(render("gemma", {{"user", " Hi "}}, true), "<start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n");
  EXPECT_EQ(render("gemma", {{"system", "S"}}, false), "");  // folded into a user turn that never came
}

// Real tokenizer.chat_template texts (Hugging Face tokenizer_config.json), as in llama.cpp's tests.
const char* kQwen2 =
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\n"
    "You are a helpful assistant<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + "
    "message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' "
    "}}{% endif %}";
const char* kLlama3 =
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + "
    "message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
    "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ "
    "'<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}";
const char* kLlama2Chat =
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = "
    "messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}"
    "{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ "
    "raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if "
    "loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\\n' + system_message + "
    "'\\n<</SYS>>\\n\\n' + message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}{% if "
    "message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] "
    "== 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}";
const char* kMistral02 =
    "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ "
    "raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if "
    "message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == "
    "'assistant' %}{{ message['content'] + eos_token}}{% else %}{{ raise_exception('Only user and assistant roles "
    "are supported!') }}{% endif %}{% endfor %}";
const char* kMistralV1 =
    "{{- bos_token }}\n{%- for message in loop_messages %}\n    {%- if message['role'] == 'user' %}\n        {%- if "
    "loop.first and system_message is defined %}\n            {{- ' [INST] ' + system_message + '\\n\\n' + "
    "message['content'] + ' [/INST]' }}\n        {%- else %}\n            {{- ' [INST] ' + message['content'] + ' "
    "[/INST]' }}\n        {%- endif %}\n    {%- elif message['role'] == 'assistant' %}\n        {{- ' ' + "
    "message['content'] + eos_token}}\n    {%- endif %}\n{%- endfor %}\n";
const char* kMistralV7 =
    "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] "
    "+ '[/INST]' }}{% elif message['role'] == 'system' %}{{ '[SYSTEM_PROMPT] ' + message['content'] + "
    "'[/SYSTEM_PROMPT]' }}{% elif message['role'] == 'assistant' %}{{ ' ' + message['content'] + eos_token }}{% else "
    "%}{{ raise_exception('Only user, system and assistant roles are supported!') }}{% endif %}{% endfor %}";
const char* kGemma =
    "{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}{% for "
    "message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ "
    "raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if "
    "(message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif %}"
    "{{ '<start_of_turn>' + role + '\\n' + message['content'] | trim + '<end_of_turn>\\n' }}{% endfor %}{% if "
    "add_generation_prompt %}{{'<start_of_turn>model\\n'}}{% endif %}";
const char* kPhi3Small =
    "{{ bos_token }}{% for message in messages %}{{'<|' + message['role'] + '|>' + '\n' + message['content'] + "
    "'<|end|>\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %}";

TEST(ChatTemplate, DetectsFamiliesFromRealTemplates) {
  EXPECT_EQ(ChatTemplate::detect(kQwen2).name(), "chatml");
  EXPECT_EQ(ChatTemplate::detect(kLlama3).name(), "llama3");
  EXPECT_EQ(ChatTemplate::detect(kLlama2Chat).name(), "llama2-sys-strip");  // as llama.cpp: strip wins
  EXPECT_EQ(ChatTemplate::detect(kMistral02).name(), "mistral");
  EXPECT_EQ(ChatTemplate::detect(kMistralV1).name(), "mistral-v1");
  EXPECT_EQ(ChatTemplate::detect(kMistralV7).name(), "mistral-v7");
  EXPECT_EQ(ChatTemplate::detect(kGemma).name(), "gemma");
  EXPECT_EQ(ChatTemplate::detect(kPhi3Small).name(), "phi3");
  // The official Llama-2-chat template, rendered as llama.cpp renders it: trimmed messages.
  EXPECT_EQ(ChatTemplate::detect(kLlama2Chat).apply(kSix, true),
            "[INST] <<SYS>>\nYou are a helpful assistant\n<</SYS>>\n\nHello [/INST]Hi there</s>[INST] Who are you "
            "[/INST]I am an assistant</s>[INST] Another question [/INST]");
}

TEST(ChatTemplate, DetectsTheTemplateStoredInAGguf) {
  STRATA_REQUIRE_SHARED(path, "reference/tokenizer/ggml-vocab-phi-3.gguf");
  const auto f = gguf::File::open(path);
  const std::string text = f.get_string("tokenizer.chat_template");
  ASSERT_FALSE(text.empty());
  EXPECT_EQ(ChatTemplate::detect(text).name(), "phi3");
}

TEST(ChatTemplate, NamesAndAliases) {
  for (const auto& n : ChatTemplate::family_names()) EXPECT_EQ(ChatTemplate::detect(n).name(), n);
  for (const auto& n : ChatTemplate::variant_names()) EXPECT_EQ(ChatTemplate::detect(n).name(), n);
  EXPECT_EQ(ChatTemplate::family_names(),
            (std::vector<std::string>{"llama2", "llama3", "chatml", "mistral", "gemma", "phi3"}));
  EXPECT_EQ(ChatTemplate::detect("qwen").name(), "chatml");
  EXPECT_EQ(ChatTemplate::detect("llama2-sys").name(), "llama2");  // llama.cpp's name for it
}

std::string error_of(const std::string& s) {
  try {
    ChatTemplate::detect(s);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(ChatTemplate, UnknownTemplatesSayHowToPassOne) {
  for (const std::string& s : {std::string("vicuna"), std::string("{{ messages | tojson }}"), std::string()}) {
    const std::string e = error_of(s);
    ASSERT_FALSE(e.empty()) << "no error for '" << s << "'";
    EXPECT_NE(e.find("--chat-template NAME"), std::string::npos) << e;
    for (const auto& n : ChatTemplate::family_names()) EXPECT_NE(e.find(n), std::string::npos) << e;
  }
  EXPECT_NE(error_of("vicuna").find("unknown chat template 'vicuna'"), std::string::npos);
  // Templates llama.cpp renders as a family strata does not: named, not rendered as a lookalike.
  const char* phi4 =
      "{% for message in messages %}{% if (message['role'] == 'system') %}{{'<|im_start|>system<|im_sep|>' + "
      "message['content'] + '<|im_end|>'}}{% endif %}{% endfor %}";
  EXPECT_NE(error_of(phi4).find("'phi4'"), std::string::npos) << error_of(phi4);
  const char* zephyr = "{% for message in messages %}{{ '<|user|>\n' + message['content'] + '<|endoftext|>' }}{% endfor %}";
  EXPECT_NE(error_of(zephyr).find("'zephyr'"), std::string::npos) << error_of(zephyr);
}

TEST(ChatTemplate, StopStrings) {
  EXPECT_EQ(ChatTemplate::detect("chatml").stop_strings(), std::vector<std::string>{"<|im_end|>"});
  EXPECT_EQ(ChatTemplate::detect("llama3").stop_strings(), std::vector<std::string>{"<|eot_id|>"});
  EXPECT_EQ(ChatTemplate::detect("gemma").stop_strings(), std::vector<std::string>{"<end_of_turn>"});
  EXPECT_EQ(ChatTemplate::detect("phi3").stop_strings(), std::vector<std::string>{"<|end|>"});
  EXPECT_EQ(ChatTemplate::detect("llama2").stop_strings(), std::vector<std::string>{"</s>"});
  EXPECT_EQ(ChatTemplate::detect("mistral").stop_strings(), std::vector<std::string>{"</s>"});
}

}  // namespace
}  // namespace strata
