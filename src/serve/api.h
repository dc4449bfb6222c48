// The OpenAI-compatible API's requests and responses: parsing and validating a request body into a
// CompletionRequest (every wrong field gives an ApiError with the status, type and a message that says how to
// fix it), and building the JSON of responses, stream chunks and errors.
#pragma once
#include <nlohmann/json.hpp>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "sample/sampler.h"
#include "tokenizer/chat_template.h"

namespace strata::serve {

// An error the client caused (4xx) or the server's (5xx), sent as {"error":{"message","type","code"}}.
class ApiError : public std::runtime_error {
 public:
  ApiError(int status, std::string type, std::string code, const std::string& message)
      : std::runtime_error(message), status_(status), type_(std::move(type)), code_(std::move(code)) {}
  int status() const { return status_; }
  const std::string& type() const { return type_; }
  const std::string& code() const { return code_; }

 private:
  int status_;
  std::string type_, code_;
};

// 400 invalid_request_error with the offending parameter as the code.
[[noreturn]] void bad_request(const std::string& param, const std::string& message);

// {"error":{"message","type","code"}}; code null when empty.
nlohmann::json error_json(const std::string& message, const std::string& type, const std::string& code);
// The type OpenAI uses for an HTTP status (400 invalid_request_error, 401 authentication_error, ...).
const char* error_type_for_status(int status);

enum class Endpoint { kCompletions, kChat };

struct CompletionRequest {
  Endpoint endpoint = Endpoint::kCompletions;
  std::string model;                   // "" when absent
  std::string prompt;                  // completions: the prompt text (when prompt_ids is empty)
  std::vector<int32_t> prompt_ids;     // completions: a prompt given as token ids
  std::vector<ChatMessage> messages;   // chat: at least one
  int64_t max_tokens = -1;             // -1: until end of generation or the context is full
  SamplerParams sampling;              // OpenAI names mapped to the sampler chain
  bool has_seed = false;
  std::vector<std::string> stop;       // up to kMaxStop strings
  bool stream = false;
  bool include_usage = false;          // stream_options.include_usage: a last chunk with usage
  int32_t logprobs = -1;               // top alternatives per token to report; -1: no logprobs
  bool ignore_eos = false;             // extension (llama-server's name)
};

inline constexpr size_t kMaxStop = 16;
inline constexpr int32_t kMaxLogprobs = 20;

// Parses a request body. Throws ApiError (400) for bad JSON, wrong types and values out of range.
CompletionRequest parse_request(std::string_view body, Endpoint endpoint);

// A token's log-probability and the most likely alternatives, for responses with logprobs.
struct TokenLogprob {
  std::string token;                                    // the token's text (its piece)
  float logprob = 0;
  std::vector<std::pair<std::string, float>> top;       // most likely first
};

struct Usage {
  int64_t prompt_tokens = 0, completion_tokens = 0, cached_tokens = 0;
};
nlohmann::json usage_json(const Usage& u);

// Whole (non-streamed) responses.
nlohmann::json completion_response(const std::string& id, int64_t created, const std::string& model,
                                   const std::string& text, const std::string& finish_reason, const Usage& usage,
                                   const std::vector<TokenLogprob>* logprobs);
nlohmann::json chat_response(const std::string& id, int64_t created, const std::string& model,
                             const std::string& text, const std::string& finish_reason, const Usage& usage,
                             const std::vector<TokenLogprob>* logprobs);
// One stream chunk: text and/or finish_reason ("" for none); for chat, role_chunk gives the first chunk
// (delta.role = "assistant").
nlohmann::json completion_chunk(const std::string& id, int64_t created, const std::string& model,
                                const std::string& text, const std::string& finish_reason,
                                const std::vector<TokenLogprob>* logprobs);
nlohmann::json chat_chunk(const std::string& id, int64_t created, const std::string& model, const std::string& text,
                          const std::string& finish_reason, bool role_chunk, const std::vector<TokenLogprob>* logprobs);
// The last chunk of a stream with stream_options.include_usage: empty choices and the usage.
nlohmann::json usage_chunk(Endpoint endpoint, const std::string& id, int64_t created, const std::string& model,
                           const Usage& usage);

}  // namespace strata::serve
