#include "serve/api.h"

#include <fmt/format.h>

#include <cmath>
#include <limits>

namespace strata::serve {

using nlohmann::json;

void bad_request(const std::string& param, const std::string& message) {
  throw ApiError(400, "invalid_request_error", param, message);
}

json error_json(const std::string& message, const std::string& type, const std::string& code) {
  json e = {{"message", message}, {"type", type}, {"code", nullptr}, {"param", nullptr}};
  if (!code.empty()) e["code"] = code;
  return json{{"error", e}};
}

const char* error_type_for_status(int status) {
  switch (status) {
    case 400: return "invalid_request_error";
    case 401: return "authentication_error";
    case 403: return "permission_error";
    case 404: return "not_found_error";
    case 413: return "invalid_request_error";
    case 429: return "rate_limit_error";
    case 503: return "server_busy";
    case 504: return "timeout_error";
    default: return status >= 500 ? "server_error" : "invalid_request_error";
  }
}

namespace {

const char* kind_name(const json& v) {
  switch (v.type()) {
    case json::value_t::null: return "null";
    case json::value_t::boolean: return "a boolean";
    case json::value_t::string: return "a string";
    case json::value_t::array: return "an array";
    case json::value_t::object: return "an object";
    case json::value_t::number_float: return "a number";
    default: return "an integer";
  }
}

// The field, or null when absent (a JSON null counts as absent, as in OpenAI's API).
const json* field(const json& body, const char* name) {
  auto it = body.find(name);
  if (it == body.end() || it->is_null()) return nullptr;
  return &*it;
}

double get_number(const json& body, const char* name, double lo, double hi, double def) {
  const json* v = field(body, name);
  if (!v) return def;
  if (!v->is_number()) bad_request(name, fmt::format("'{}' must be a number, got {}", name, kind_name(*v)));
  const double d = v->get<double>();
  if (!(d >= lo && d <= hi)) bad_request(name, fmt::format("'{}' is {}: it must be between {} and {}", name, d, lo, hi));
  return d;
}

int64_t get_int(const json& body, const char* name, int64_t lo, int64_t hi, int64_t def) {
  const json* v = field(body, name);
  if (!v) return def;
  // 5.0 is accepted as 5 (JavaScript clients send numbers), 5.5 is not.
  if (v->is_number_float()) {
    const double d = v->get<double>();
    if (d != std::floor(d) || !std::isfinite(d))
      bad_request(name, fmt::format("'{}' must be an integer, got {}", name, d));
    if (d < static_cast<double>(lo) || d > static_cast<double>(hi))
      bad_request(name, fmt::format("'{}' is {}: it must be between {} and {}", name, d, lo, hi));
    return static_cast<int64_t>(d);
  }
  if (!v->is_number_integer()) bad_request(name, fmt::format("'{}' must be an integer, got {}", name, kind_name(*v)));
  if (v->is_number_unsigned() && v->get<uint64_t>() > static_cast<uint64_t>(hi))
    bad_request(name, fmt::format("'{}' is {}: it must be at most {}", name, v->get<uint64_t>(), hi));
  const int64_t i = v->get<int64_t>();
  if (i < lo || i > hi) bad_request(name, fmt::format("'{}' is {}: it must be between {} and {}", name, i, lo, hi));
  return i;
}

bool get_bool(const json& body, const char* name, bool def) {
  const json* v = field(body, name);
  if (!v) return def;
  if (!v->is_boolean()) bad_request(name, fmt::format("'{}' must be true or false, got {}", name, kind_name(*v)));
  return v->get<bool>();
}

// Message content: a string, or an array of parts {"type":"text","text":...} (joined).
std::string content_text(const json& c, size_t i) {
  const std::string where = fmt::format("messages[{}].content", i);
  if (c.is_string()) return c.get<std::string>();
  if (c.is_array()) {
    std::string s;
    for (const json& part : c) {
      if (!part.is_object() || part.value("type", "") != "text" || !part.contains("text") || !part["text"].is_string())
        bad_request(where, fmt::format("{}: only text parts {{\"type\":\"text\",\"text\":...}} are supported", where));
      s += part["text"].get<std::string>();
    }
    return s;
  }
  bad_request(where, fmt::format("{} must be a string or an array of text parts, got {}", where, kind_name(c)));
}

}  // namespace

CompletionRequest parse_request(std::string_view body_text, Endpoint endpoint) {
  json body = json::parse(body_text, nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded())
    throw ApiError(400, "invalid_request_error", "invalid_json",
                   "the request body is not valid JSON: send a JSON object such as {\"prompt\": \"Hello\"}");
  if (!body.is_object())
    throw ApiError(400, "invalid_request_error", "invalid_json",
                   fmt::format("the request body must be a JSON object, got {}", kind_name(body)));
  CompletionRequest r;
  r.endpoint = endpoint;
  if (const json* m = field(body, "model")) {
    if (!m->is_string()) bad_request("model", fmt::format("'model' must be a string, got {}", kind_name(*m)));
    r.model = m->get<std::string>();
  }

  if (endpoint == Endpoint::kCompletions) {
    const json* p = field(body, "prompt");
    if (!p) bad_request("prompt", "'prompt' is required: a string, or an array of token ids");
    if (p->is_string()) {
      r.prompt = p->get<std::string>();
    } else if (p->is_array() && p->size() == 1 && (*p)[0].is_string()) {
      r.prompt = (*p)[0].get<std::string>();
    } else if (p->is_array() && !p->empty() && (*p)[0].is_number_integer()) {
      for (const json& t : *p) {
        if (!t.is_number_integer() || t.get<int64_t>() < 0 || t.get<int64_t>() > std::numeric_limits<int32_t>::max())
          bad_request("prompt", "'prompt' as an array must hold token ids (non-negative integers)");
        r.prompt_ids.push_back(static_cast<int32_t>(t.get<int64_t>()));
      }
    } else {
      bad_request("prompt", fmt::format("'prompt' must be a string, an array of one string or an array of token "
                                        "ids, got {}", p->is_array() ? "another array" : kind_name(*p)));
    }
  } else {
    const json* ms = field(body, "messages");
    if (!ms) bad_request("messages", "'messages' is required: an array of {\"role\", \"content\"} objects");
    if (!ms->is_array()) bad_request("messages", fmt::format("'messages' must be an array, got {}", kind_name(*ms)));
    if (ms->empty()) bad_request("messages", "'messages' is empty: give at least one message");
    for (size_t i = 0; i < ms->size(); ++i) {
      const json& m = (*ms)[i];
      if (!m.is_object()) bad_request("messages", fmt::format("messages[{}] must be an object", i));
      const json* role = field(m, "role");
      if (!role || !role->is_string())
        bad_request("messages", fmt::format("messages[{}].role must be a string", i));
      std::string rs = role->get<std::string>();
      if (rs == "developer") rs = "system";
      if (rs != "system" && rs != "user" && rs != "assistant")
        bad_request("messages", fmt::format("messages[{}].role '{}' is not supported: use system, user or assistant",
                                            i, rs));
      const json* c = field(m, "content");
      if (!c) bad_request("messages", fmt::format("messages[{}].content is required", i));
      r.messages.push_back({rs, content_text(*c, i)});
    }
  }

  // max_completion_tokens is the newer name of max_tokens.
  const char* mt = field(body, "max_completion_tokens") ? "max_completion_tokens" : "max_tokens";
  r.max_tokens = get_int(body, mt, 1, std::numeric_limits<int32_t>::max(), -1);
  if (field(body, "n") && get_int(body, "n", 1, 1, 1) != 1) bad_request("n", "only n = 1 is supported");

  SamplerParams& s = r.sampling;
  s.temperature = static_cast<float>(get_number(body, "temperature", 0, 2, 1.0));
  s.top_p = static_cast<float>(get_number(body, "top_p", 0, 1, 1.0));
  if (field(body, "top_p") && s.top_p <= 0) bad_request("top_p", "'top_p' must be greater than 0");
  s.top_k = static_cast<int32_t>(get_int(body, "top_k", 0, std::numeric_limits<int32_t>::max(), 0));
  s.min_p = static_cast<float>(get_number(body, "min_p", 0, 1, 0.0));
  s.presence_penalty = static_cast<float>(get_number(body, "presence_penalty", -2, 2, 0));
  s.frequency_penalty = static_cast<float>(get_number(body, "frequency_penalty", -2, 2, 0));
  s.repeat_penalty = static_cast<float>(get_number(body, "repeat_penalty", 0, 10, 1.0));
  if (field(body, "seed")) {
    r.has_seed = true;
    s.seed = static_cast<uint64_t>(get_int(body, "seed", std::numeric_limits<int64_t>::min(),
                                           std::numeric_limits<int64_t>::max(), 0));
    if (s.seed == 0xFFFFFFFFu) s.seed = 0xFFFFFFFEu;  // 0xFFFFFFFF means "random" to the sampler
  } else {
    s.seed = 0xFFFFFFFFu;  // random
  }

  if (const json* st = field(body, "stop")) {
    if (st->is_string()) {
      r.stop.push_back(st->get<std::string>());
    } else if (st->is_array()) {
      if (st->size() > kMaxStop) bad_request("stop", fmt::format("'stop' has {} strings: at most {}", st->size(), kMaxStop));
      for (const json& x : *st) {
        if (!x.is_string()) bad_request("stop", "'stop' must be a string or an array of strings");
        r.stop.push_back(x.get<std::string>());
      }
    } else {
      bad_request("stop", fmt::format("'stop' must be a string or an array of strings, got {}", kind_name(*st)));
    }
    for (const std::string& x : r.stop)
      if (x.empty()) bad_request("stop", "'stop' strings must not be empty");
  }
  r.stream = get_bool(body, "stream", false);
  if (const json* so = field(body, "stream_options")) {
    if (!so->is_object()) bad_request("stream_options", "'stream_options' must be an object");
    r.include_usage = get_bool(*so, "include_usage", false);
  }
  r.ignore_eos = get_bool(body, "ignore_eos", false);

  if (endpoint == Endpoint::kCompletions) {
    if (field(body, "logprobs")) r.logprobs = static_cast<int32_t>(get_int(body, "logprobs", 0, kMaxLogprobs, -1));
  } else {
    if (get_bool(body, "logprobs", false))
      r.logprobs = static_cast<int32_t>(get_int(body, "top_logprobs", 0, kMaxLogprobs, 0));
    else if (field(body, "top_logprobs"))
      bad_request("top_logprobs", "'top_logprobs' needs \"logprobs\": true");
  }
  return r;
}

json usage_json(const Usage& u) {
  return {{"prompt_tokens", u.prompt_tokens},
          {"completion_tokens", u.completion_tokens},
          {"total_tokens", u.prompt_tokens + u.completion_tokens},
          {"prompt_tokens_details", {{"cached_tokens", u.cached_tokens}}}};
}

namespace {

json bytes_of(const std::string& s) {
  json b = json::array();
  for (unsigned char c : s) b.push_back(static_cast<int>(c));
  return b;
}

json completion_logprobs(const std::vector<TokenLogprob>& lps) {
  json tokens = json::array(), token_lps = json::array(), tops = json::array(), offsets = json::array();
  int64_t off = 0;
  for (const TokenLogprob& t : lps) {
    tokens.push_back(t.token);
    token_lps.push_back(t.logprob);
    json top = json::object();
    for (const auto& [s, lp] : t.top) top[s] = lp;
    tops.push_back(top);
    offsets.push_back(off);
    off += static_cast<int64_t>(t.token.size());
  }
  return {{"tokens", tokens}, {"token_logprobs", token_lps}, {"top_logprobs", tops}, {"text_offset", offsets}};
}

json chat_logprobs(const std::vector<TokenLogprob>& lps) {
  json content = json::array();
  for (const TokenLogprob& t : lps) {
    json top = json::array();
    for (const auto& [s, lp] : t.top) top.push_back({{"token", s}, {"logprob", lp}, {"bytes", bytes_of(s)}});
    content.push_back({{"token", t.token}, {"logprob", t.logprob}, {"bytes", bytes_of(t.token)}, {"top_logprobs", top}});
  }
  return {{"content", content}};
}

json finish(const std::string& reason) { return reason.empty() ? json(nullptr) : json(reason); }

}  // namespace

json completion_response(const std::string& id, int64_t created, const std::string& model, const std::string& text,
                         const std::string& finish_reason, const Usage& usage,
                         const std::vector<TokenLogprob>* logprobs) {
  json choice = {{"index", 0}, {"text", text}, {"logprobs", nullptr}, {"finish_reason", finish(finish_reason)}};
  if (logprobs) choice["logprobs"] = completion_logprobs(*logprobs);
  return {{"id", id},         {"object", "text_completion"},  {"created", created},
          {"model", model},   {"choices", json::array({choice})}, {"usage", usage_json(usage)}};
}

json chat_response(const std::string& id, int64_t created, const std::string& model, const std::string& text,
                   const std::string& finish_reason, const Usage& usage, const std::vector<TokenLogprob>* logprobs) {
  json choice = {{"index", 0},
                 {"message", {{"role", "assistant"}, {"content", text}}},
                 {"logprobs", nullptr},
                 {"finish_reason", finish(finish_reason)}};
  if (logprobs) choice["logprobs"] = chat_logprobs(*logprobs);
  return {{"id", id},       {"object", "chat.completion"},      {"created", created},
          {"model", model}, {"choices", json::array({choice})}, {"usage", usage_json(usage)}};
}

json completion_chunk(const std::string& id, int64_t created, const std::string& model, const std::string& text,
                      const std::string& finish_reason, const std::vector<TokenLogprob>* logprobs) {
  json choice = {{"index", 0}, {"text", text}, {"logprobs", nullptr}, {"finish_reason", finish(finish_reason)}};
  if (logprobs && !logprobs->empty()) choice["logprobs"] = completion_logprobs(*logprobs);
  return {{"id", id}, {"object", "text_completion"}, {"created", created}, {"model", model},
          {"choices", json::array({choice})}};
}

json chat_chunk(const std::string& id, int64_t created, const std::string& model, const std::string& text,
                const std::string& finish_reason, bool role_chunk, const std::vector<TokenLogprob>* logprobs) {
  json delta = json::object();
  if (role_chunk) delta["role"] = "assistant";
  if (!text.empty() || (role_chunk && finish_reason.empty())) delta["content"] = text;
  json choice = {{"index", 0}, {"delta", delta}, {"logprobs", nullptr}, {"finish_reason", finish(finish_reason)}};
  if (logprobs && !logprobs->empty()) choice["logprobs"] = chat_logprobs(*logprobs);
  return {{"id", id}, {"object", "chat.completion.chunk"}, {"created", created}, {"model", model},
          {"choices", json::array({choice})}};
}

json usage_chunk(Endpoint endpoint, const std::string& id, int64_t created, const std::string& model,
                 const Usage& usage) {
  return {{"id", id},
          {"object", endpoint == Endpoint::kChat ? "chat.completion.chunk" : "text_completion"},
          {"created", created},
          {"model", model},
          {"choices", json::array()},
          {"usage", usage_json(usage)}};
}

}  // namespace strata::serve
