// The decode loop: feed a prompt, then sample and feed one token at a time, streaming the text.
#pragma once
#include <atomic>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/session.h"
#include "sample/sampler.h"
#include "tokenizer/tokenizer.h"

namespace strata::runtime {

struct GenerateParams {
  int64_t n_predict = -1;                 // tokens to generate; < 0: until end of generation or context full
  bool ignore_eos = false;                // keep going past end-of-generation tokens
  std::vector<std::string> stop_strings;  // stop when the text contains one (it is not printed)
  const std::atomic<bool>* interrupt = nullptr;  // checked before each token: true stops generation
  // The generated text starts the output (SPM's prefix space is dropped from the first piece), as after a
  // BOS-only prompt; false when it continues text already shown (the prompt, earlier turns).
  bool text_start = false;
};

enum class StopReason { kEndOfGeneration, kLength, kContextFull, kStopString, kInterrupted };
const char* stop_reason_name(StopReason r);

struct GenerateResult {
  int64_t n_prompt = 0;      // prompt tokens
  int64_t n_prompt_fed = 0;  // of those, fed to the model (the rest were already cached)
  int64_t n_generated = 0;   // tokens sampled (including a final end-of-generation token)
  double prompt_seconds = 0; // time to feed the prompt
  double gen_seconds = 0;    // time from the first sample to the end
  std::vector<int32_t> ids;  // the generated tokens
  std::string text;          // the generated text (without stop strings)
  StopReason stop = StopReason::kLength;
};

// Runs the prompt (reusing the session's cached prefix), then generates. Every prompt token not yet seen by
// the sampler is accepted into it (for the repetition penalties). on_text receives the text as it becomes
// complete UTF-8 (it may be null).
GenerateResult generate(Session& session, const Tokenizer& tok, Sampler& sampler,
                        std::span<const int32_t> prompt, const GenerateParams& params,
                        const std::function<void(std::string_view)>& on_text);

// Peak resident memory of this process (VmHWM in /proc/self/status), in bytes; 0 when unknown.
uint64_t peak_rss_bytes();

}  // namespace strata::runtime
