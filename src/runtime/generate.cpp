#include "runtime/generate.h"

#include <chrono>
#include <cstdio>
#include <cstring>
#include <utility>

#include "core/error.h"
#include "runtime/stop_filter.h"

namespace strata::runtime {

const char* stop_reason_name(StopReason r) {
  switch (r) {
    case StopReason::kEndOfGeneration: return "end of generation";
    case StopReason::kLength: return "length";
    case StopReason::kContextFull: return "context full";
    case StopReason::kStopString: return "stop string";
    case StopReason::kInterrupted: return "interrupted";
  }
  return "?";
}

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

}  // namespace

GenerateResult generate(Session& session, const Tokenizer& tok, Sampler& sampler, std::span<const int32_t> prompt,
                        const GenerateParams& params, const std::function<void(std::string_view)>& on_text) {
  GenerateResult r;
  r.n_prompt = static_cast<int64_t>(prompt.size());
  // Prompt: only the tokens after the prefix already in the cache are computed (at least the last one).
  size_t common = 0;
  const std::vector<int32_t>& cached = session.tokens();
  while (common + 1 < prompt.size() && common < cached.size() && cached[common] == prompt[common]) ++common;
  auto t0 = Clock::now();
  std::span<const float> logits = session.set_tokens(prompt);
  r.prompt_seconds = seconds_since(t0);
  r.n_prompt_fed = r.n_prompt - static_cast<int64_t>(common);
  for (size_t i = common; i < prompt.size(); ++i) sampler.accept(prompt[i]);

  StreamDecoder dec(tok, /*render_special=*/false, params.text_start);
  StopFilter filter(params.stop_strings);
  auto emit = [&](const std::string& s) {
    if (s.empty()) return;
    r.text += s;
    if (on_text) on_text(s);
  };

  t0 = Clock::now();
  bool stopped = false;
  for (;;) {
    if (params.interrupt && params.interrupt->load()) { r.stop = StopReason::kInterrupted; break; }
    if (params.n_predict >= 0 && r.n_generated >= params.n_predict) { r.stop = StopReason::kLength; break; }
    const int32_t id = sampler.sample(logits);
    sampler.accept(id);
    ++r.n_generated;
    r.ids.push_back(id);
    if (!params.ignore_eos && tok.is_eog(id)) { r.stop = StopReason::kEndOfGeneration; break; }
    emit(filter.push(dec.push(id), stopped));
    if (stopped) { r.stop = StopReason::kStopString; break; }
    if (params.n_predict >= 0 && r.n_generated >= params.n_predict) { r.stop = StopReason::kLength; break; }
    if (session.n_past() >= session.n_ctx()) { r.stop = StopReason::kContextFull; break; }
    const int32_t one[1] = {id};
    logits = session.append(one);
  }
  if (!stopped) emit(filter.push(dec.flush(), stopped));
  if (!stopped) emit(filter.flush());
  r.gen_seconds = seconds_since(t0);
  return r;
}

uint64_t peak_rss_bytes() {
  FILE* f = std::fopen("/proc/self/status", "r");
  if (!f) return 0;
  char line[256];
  uint64_t kb = 0;
  while (std::fgets(line, sizeof line, f))
    if (std::strncmp(line, "VmHWM:", 6) == 0) {
      kb = std::strtoull(line + 6, nullptr, 10);
      break;
    }
  std::fclose(f);
  return kb * 1024;
}

}  // namespace strata::runtime
