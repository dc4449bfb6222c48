// The tokenizer keys of a synthetic model: a valid SentencePiece ("llama") or byte-level BPE ("gpt2")
// vocabulary of exactly n_vocab tokens, and a chat template. Internal to the synthetic-model writer.
#pragma once
#include <string>
#include <vector>

#include "gguf/gguf.h"
#include "model/synthetic.h"

namespace strata::model::detail {

// Adds every tokenizer.* key for the spec to w (throws strata::Error when n_vocab is too small for the
// tokenizer's fixed tokens). A SentencePiece vocabulary of 32000 tokens is copied from the shared
// llama-2-tiny-random.gguf (the real Llama 2 vocabulary) when that file exists; otherwise, and for every
// other size, synthetic pieces fill the vocabulary.
void add_tokenizer(gguf::Writer& w, const SyntheticSpec& spec);

// Jinja text of tokenizer.chat_template for a family ("llama2", "mistral", "llama3", "chatml"), as the
// models' tokenizer_config.json ship it. Throws strata::Error for another name.
const std::string& chat_template_text(const std::string& family);
std::vector<std::string> chat_template_families();

// Path of the shared Llama 2 vocabulary file, or "" when it is absent.
std::string llama2_vocab_path();

}  // namespace strata::model::detail
