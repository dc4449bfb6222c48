// `strata inspect MODEL.gguf`: what a GGUF file holds (architecture, hyper-parameters, tokenizer, tensors)
// and the memory it needs to run at a context length. Human tables by default, --json for machines.
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "cli/command.h"
#include "core/error.h"
#include "gguf/gguf.h"
#include "kv/kv_format.h"
#include "tensor/dtype.h"

namespace strata::cli {
namespace {

using gguf::File;
using gguf::TensorInfo;
using gguf::Value;
using gguf::ValueType;
using json = nlohmann::ordered_json;

struct InspectOptions {
  std::string path, model;
  int64_t ctx = 0;     // 0: the model's context_length, capped at kDefaultCtxCap
  int64_t batch = 512; // tokens per prompt-processing batch (llama.cpp's default n_ubatch)
  bool json = false;
  bool tensors = true;
};

constexpr int64_t kDefaultCtxCap = 4096;

std::string human_bytes(double b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (b >= 1024 && u < 4) b /= 1024, ++u;
  return u == 0 ? fmt::format("{:.0f} B", b) : fmt::format("{:.2f} {}", b, units[u]);
}

std::string human_count(double n) {
  if (n >= 1e9) return fmt::format("{:.2f} B", n / 1e9);
  if (n >= 1e6) return fmt::format("{:.2f} M", n / 1e6);
  if (n >= 1e3) return fmt::format("{:.2f} K", n / 1e3);
  return fmt::format("{:.0f}", n);
}

// A value for a terminal line: strings cut at `max` bytes with newlines shown as \n, arrays abbreviated.
std::string short_value(const Value& v, size_t max = 72) {
  std::string s = v.type == ValueType::kArray
                      ? fmt::format("{}[{}] {}", gguf::value_type_name(v.elem_type), v.arr.size(), v.to_string(4))
                      : v.to_string();
  if (s.size() > max) s = s.substr(0, max) + fmt::format("... ({} bytes)", s.size());
  return s;
}

// A string value without quotes (other values as short_value).
std::string plain(const Value& v) { return v.type == ValueType::kString && v.str.size() < 64 ? v.str : short_value(v); }

json to_json(const Value& v, size_t max_elems = 8) {
  switch (v.type) {
    case ValueType::kU8: case ValueType::kU16: case ValueType::kU32: case ValueType::kU64: return v.u;
    case ValueType::kI8: case ValueType::kI16: case ValueType::kI32: case ValueType::kI64: return v.i;
    case ValueType::kF32: {  // the shortest decimal that reads back as the same f32 (1e-05, not 9.99999974e-06)
      const float x = static_cast<float>(v.f);
      return std::isfinite(x) ? json(std::stod(fmt::format("{}", x))) : json(nullptr);
    }
    case ValueType::kF64: return v.f;
    case ValueType::kBool: return v.u != 0;
    case ValueType::kString: return v.str;
    case ValueType::kArray: {
      json head = json::array();
      for (size_t k = 0; k < std::min(max_elems, v.arr.size()); ++k) head.push_back(to_json(v.arr[k], max_elems));
      return json{{"array", gguf::value_type_name(v.elem_type)}, {"count", v.arr.size()}, {"head", head}};
    }
  }
  return nullptr;
}

// llama.cpp's general.file_type (llama_ftype) names.
const char* file_type_name(int64_t ft) {
  static const std::map<int64_t, const char*> names = {
      {0, "ALL_F32"}, {1, "MOSTLY_F16"}, {2, "MOSTLY_Q4_0"}, {3, "MOSTLY_Q4_1"}, {7, "MOSTLY_Q8_0"},
      {8, "MOSTLY_Q5_0"}, {9, "MOSTLY_Q5_1"}, {10, "MOSTLY_Q2_K"}, {11, "MOSTLY_Q3_K_S"}, {12, "MOSTLY_Q3_K_M"},
      {13, "MOSTLY_Q3_K_L"}, {14, "MOSTLY_Q4_K_S"}, {15, "MOSTLY_Q4_K_M"}, {16, "MOSTLY_Q5_K_S"},
      {17, "MOSTLY_Q5_K_M"}, {18, "MOSTLY_Q6_K"}, {19, "MOSTLY_IQ2_XXS"}, {20, "MOSTLY_IQ2_XS"},
      {21, "MOSTLY_Q2_K_S"}, {22, "MOSTLY_IQ3_XS"}, {23, "MOSTLY_IQ3_XXS"}, {24, "MOSTLY_IQ1_S"},
      {25, "MOSTLY_IQ4_NL"}, {26, "MOSTLY_IQ3_S"}, {27, "MOSTLY_IQ3_M"}, {28, "MOSTLY_IQ2_S"},
      {29, "MOSTLY_IQ2_M"}, {30, "MOSTLY_IQ4_XS"}, {31, "MOSTLY_IQ1_M"}, {32, "MOSTLY_BF16"},
      {36, "MOSTLY_TQ1_0"}, {37, "MOSTLY_TQ2_0"}, {38, "MOSTLY_MXFP4_MOE"}};
  auto it = names.find(ft);
  return it == names.end() ? "unknown" : it->second;
}

// An architecture hyper-parameter: an integer, or the largest element of a per-layer array
// (some architectures store head counts or feed-forward sizes per layer). 0 when absent.
int64_t hp_int(const File& f, const std::string& key) {
  const Value* v = f.find(key);
  if (!v) return 0;
  if (v->type != ValueType::kArray) return v->is_int() ? v->as_int(key) : 0;
  int64_t m = 0;
  for (const Value& e : v->arr)
    if (e.is_int()) m = std::max(m, e.as_int(key));
  return m;
}

struct Shape {  // the hyper-parameters the memory estimate needs (0 = unknown)
  int64_t n_ctx_train = 0, n_embd = 0, n_layer = 0, n_ff = 0, n_head = 0, n_head_kv = 0, k_dim = 0, v_dim = 0,
          n_vocab = 0;
};

// KV bytes per cached token (K and V, all layers and KV heads) in the default f16 and the main -ctk/-ctv
// formats at the model's head sizes; a format whose blocks do not fit the head size is left out.
std::vector<std::pair<std::string, double>> kv_bytes_per_token(const Shape& s) {
  std::vector<std::pair<std::string, double>> out;
  if (s.n_layer <= 0 || s.n_head_kv <= 0 || s.k_dim <= 0 || s.v_dim <= 0) return out;
  using kv::KvFormat;
  for (KvFormat f : {KvFormat::F16, KvFormat::Q8_0, KvFormat::Q4_0, KvFormat::BFP8, KvFormat::BFP4, KvFormat::Q4H,
                     KvFormat::GEAR4, KvFormat::GEAR2}) {
    try {
      kv::check_head_dim(f, static_cast<int32_t>(s.k_dim));
      kv::check_head_dim(f, static_cast<int32_t>(s.v_dim));
    } catch (const Error&) {
      continue;
    }
    out.emplace_back(kv::format_name(f), (kv::bytes_per_token(f, static_cast<int32_t>(s.k_dim)) +
                                          kv::bytes_per_token(f, static_cast<int32_t>(s.v_dim))) *
                                             static_cast<double>(s.n_layer * s.n_head_kv));
  }
  return out;
}

Shape read_shape(const File& f, const std::string& arch) {
  Shape s;
  const std::string p = arch + ".";
  s.n_ctx_train = hp_int(f, p + "context_length");
  s.n_embd = hp_int(f, p + "embedding_length");
  s.n_layer = hp_int(f, p + "block_count");
  s.n_ff = hp_int(f, p + "feed_forward_length");
  s.n_head = hp_int(f, p + "attention.head_count");
  s.n_head_kv = f.has(p + "attention.head_count_kv") ? hp_int(f, p + "attention.head_count_kv") : s.n_head;
  const int64_t head_dim = s.n_head > 0 ? s.n_embd / s.n_head : 0;
  s.k_dim = f.has(p + "attention.key_length") ? hp_int(f, p + "attention.key_length") : head_dim;
  s.v_dim = f.has(p + "attention.value_length") ? hp_int(f, p + "attention.value_length") : head_dim;
  if (const Value* toks = f.find("tokenizer.ggml.tokens"); toks && toks->type == ValueType::kArray)
    s.n_vocab = static_cast<int64_t>(toks->arr.size());
  else if (f.has(p + "vocab_size"))
    s.n_vocab = hp_int(f, p + "vocab_size");
  else if (const TensorInfo* t = f.find_tensor("token_embd.weight"); t && t->ne.size() >= 2)
    s.n_vocab = t->ne[1];
  return s;
}

struct Memory {
  int64_t ctx = 0, batch = 0;
  uint64_t weights = 0, kv = 0, working = 0;
  std::string kv_formula, working_formula;
  uint64_t total() const { return weights + kv + working; }
};

// weights: the tensor bytes as stored.
// KV cache at f16: n_layer * ctx * n_head_kv * (k_dim + v_dim) * 2 bytes
//   (= 2 * n_layer * ctx * n_head_kv * head_dim * 2 when keys and values have the same head size).
// working buffers (f32): 4 * (n_vocab + B * (4*n_embd + 3*n_ff + (n_head + 2*n_head_kv)*head_dim + n_head*ctx))
//   bytes, B = min(batch, ctx) tokens per batch: logits of one position, and per token the hidden state,
//   residual, norm and attention outputs, the feed-forward gate/up/activation, q/k/v, and a row of
//   attention scores per head.
Memory estimate(const Shape& s, uint64_t weights, int64_t ctx, int64_t batch) {
  Memory m;
  m.ctx = ctx;
  m.batch = std::min(batch, ctx);
  m.weights = weights;
  const uint64_t kvh = static_cast<uint64_t>(s.n_head_kv) * static_cast<uint64_t>(s.k_dim + s.v_dim);
  m.kv = static_cast<uint64_t>(s.n_layer) * static_cast<uint64_t>(ctx) * kvh * 2;
  m.kv_formula = fmt::format("n_layer {} * ctx {} * n_head_kv {} * (k_dim {} + v_dim {}) * 2 B", s.n_layer, ctx,
                             s.n_head_kv, s.k_dim, s.v_dim);
  const uint64_t per_token = 4 * static_cast<uint64_t>(s.n_embd) + 3 * static_cast<uint64_t>(s.n_ff) +
                             static_cast<uint64_t>(s.n_head + 2 * s.n_head_kv) * static_cast<uint64_t>(s.k_dim) +
                             static_cast<uint64_t>(s.n_head) * static_cast<uint64_t>(ctx);
  m.working = 4 * (static_cast<uint64_t>(s.n_vocab) + static_cast<uint64_t>(m.batch) * per_token);
  m.working_formula = fmt::format(
      "4 B * (n_vocab {} + batch {} * (4*n_embd {} + 3*n_ff {} + (n_head {} + 2*n_head_kv {})*head_dim {} + "
      "n_head {} * ctx {}))",
      s.n_vocab, m.batch, s.n_embd, s.n_ff, s.n_head, s.n_head_kv, s.k_dim, s.n_head, ctx);
  return m;
}

struct TypeTotal {
  std::string name;
  bool supported = true;
  uint64_t tensors = 0, params = 0, bytes = 0;
};

std::string type_name(uint32_t id) {
  const TypeTraits* tr = find_traits(id);
  return tr ? tr->name : fmt::format("type{}", id);  // the reader rejects unknown ids: never reached
}

bool type_supported(uint32_t id) {
  const TypeTraits* tr = find_traits(id);
  return tr && tr->supported;
}

std::string shape_str(const std::vector<int64_t>& ne) { return fmt::format("[{}]", fmt::join(ne, ", ")); }

int run_inspect(InspectOptions o) {
  std::string path = !o.model.empty() ? o.model : o.path;
  if (path.empty()) path = default_model_path();
  if (path.empty()) fail("inspect: no GGUF file given: use `strata inspect MODEL.gguf`");
  if (o.ctx < 0) fail("inspect: --ctx {} is negative: give a context length in tokens, or 0 for the default", o.ctx);
  if (o.batch <= 0) fail("inspect: --batch {} must be at least 1", o.batch);

  const File f = File::open(path, {.mode = MappedFile::Mode::kMmap, .progress = !o.json});
  const std::string arch = f.has("general.architecture") ? f.get_string("general.architecture") : "";
  const bool has_tensors = !f.tensors().empty();

  // Tensor totals.
  std::map<uint32_t, TypeTotal> by_type;
  uint64_t params = 0, weight_bytes = 0;
  for (const TensorInfo& t : f.tensors()) {
    TypeTotal& tt = by_type[t.type];
    tt.name = type_name(t.type);
    tt.supported = type_supported(t.type);
    ++tt.tensors;
    tt.params += static_cast<uint64_t>(t.n_elements());
    tt.bytes += t.nbytes;
    params += static_cast<uint64_t>(t.n_elements());
    weight_bytes += t.nbytes;
  }
  const double bpw = params ? 8.0 * static_cast<double>(weight_bytes) / static_cast<double>(params) : 0;
  std::vector<std::string> unsupported;
  for (const auto& [id, tt] : by_type)
    if (!tt.supported) unsupported.push_back(tt.name);

  // Memory at the requested context (only for a model with an architecture and tensors).
  const Shape shape = read_shape(f, arch);
  std::optional<Memory> mem;
  std::string ctx_note;
  if (has_tensors && !arch.empty() && shape.n_layer > 0 && shape.n_embd > 0) {
    int64_t ctx = o.ctx;
    if (ctx == 0) ctx = shape.n_ctx_train > 0 ? std::min(shape.n_ctx_train, kDefaultCtxCap) : kDefaultCtxCap;
    if (shape.n_ctx_train > 0 && ctx > shape.n_ctx_train)
      ctx_note = fmt::format("beyond the trained context length {}", shape.n_ctx_train);
    mem = estimate(shape, weight_bytes, ctx, o.batch);
  }

  const auto kv_bpt = kv_bytes_per_token(shape);

  // Tokenizer.
  const std::vector<std::string> tokens =
      f.has("tokenizer.ggml.tokens") ? f.get_string_array("tokenizer.ggml.tokens") : std::vector<std::string>{};
  auto token_id = [&](const char* key) -> json {
    const int64_t id = f.get_id(std::string("tokenizer.ggml.") + key);
    return id < 0 ? json(nullptr) : json(id);
  };
  auto piece = [&](const char* key) {
    const int64_t id = f.get_id(std::string("tokenizer.ggml.") + key);
    if (id < 0) return std::string("none");
    if (static_cast<uint64_t>(id) >= tokens.size()) return fmt::format("{} (outside the vocabulary)", id);
    return fmt::format("{} {}", id, gguf::Writer::string(tokens[static_cast<size_t>(id)]).to_string());
  };
  const Value* merges = f.find("tokenizer.ggml.merges");
  const size_t n_merges = merges && merges->type == ValueType::kArray ? merges->arr.size() : 0;
  const std::string chat_template = f.has("tokenizer.chat_template") && f.find("tokenizer.chat_template")->type ==
                                                                            ValueType::kString
                                        ? f.get_string("tokenizer.chat_template")
                                        : "";
  auto opt_bool = [&](const char* key) -> json {
    const Value* v = f.find(std::string("tokenizer.ggml.") + key);
    return v && v->type == ValueType::kBool ? json(v->u != 0) : json(nullptr);
  };

  if (o.json) {
    json j;
    j["file"] = path;
    j["file_size"] = f.file_size();
    j["gguf_version"] = f.version();
    j["alignment"] = f.alignment();
    j["data_offset"] = f.data_offset();
    j["architecture"] = arch.empty() ? json(nullptr) : json(arch);
    j["name"] = f.has("general.name") ? json(to_json(*f.find("general.name"))) : json(nullptr);
    if (f.has("general.file_type") && f.find("general.file_type")->is_int())
      j["file_type"] = file_type_name(f.get_int("general.file_type", -1));
    json hp = json::object();
    for (const auto& [k, v] : f.metadata())
      if (!arch.empty() && k.rfind(arch + ".", 0) == 0) hp[k.substr(arch.size() + 1)] = to_json(v);
    j["hparams"] = hp;
    j["tokenizer"] = {{"model", f.has("tokenizer.ggml.model") ? to_json(*f.find("tokenizer.ggml.model")) : json()},
                      {"pre", f.has("tokenizer.ggml.pre") ? to_json(*f.find("tokenizer.ggml.pre")) : json()},
                      {"vocab_size", tokens.size()},
                      {"merges", n_merges},
                      {"bos_id", token_id("bos_token_id")},
                      {"eos_id", token_id("eos_token_id")},
                      {"unk_id", token_id("unknown_token_id")},
                      {"pad_id", token_id("padding_token_id")},
                      {"add_bos", opt_bool("add_bos_token")},
                      {"add_eos", opt_bool("add_eos_token")},
                      {"has_chat_template", !chat_template.empty()}};
    j["n_tensors"] = f.tensors().size();
    if (o.tensors) {
      json ts = json::array();
      for (const TensorInfo& t : f.tensors())
        ts.push_back({{"name", t.name}, {"type", type_name(t.type)}, {"shape", t.ne}, {"n_elements", t.n_elements()},
                      {"bytes", t.nbytes}, {"offset", t.offset}, {"supported", type_supported(t.type)}});
      j["tensors"] = ts;
    }
    json types = json::object();
    for (const auto& [id, tt] : by_type)
      types[tt.name] = {{"tensors", tt.tensors}, {"params", tt.params}, {"bytes", tt.bytes}, {"supported", tt.supported}};
    j["types"] = types;
    j["unsupported_types"] = unsupported;
    j["params"] = params;
    j["weights_bytes"] = weight_bytes;
    j["bits_per_weight"] = bpw;
    if (mem) {
      j["memory"] = {{"ctx", mem->ctx}, {"batch", mem->batch}, {"weights", mem->weights}, {"kv_cache_f16", mem->kv},
                     {"working", mem->working}, {"total", mem->total()}, {"kv_formula", mem->kv_formula},
                     {"working_formula", mem->working_formula}};
      if (!ctx_note.empty()) j["memory"]["note"] = ctx_note;
    } else {
      j["memory"] = nullptr;
    }
    json kvj = json::object();
    for (const auto& [name, b] : kv_bpt) kvj[name] = b;
    j["kv_bytes_per_token"] = kv_bpt.empty() ? json(nullptr) : kvj;
    json md = json::object();
    for (const auto& [k, v] : f.metadata()) md[k] = to_json(v);
    j["metadata"] = md;
    std::puts(j.dump(2, ' ', false, json::error_handler_t::replace).c_str());
    return 0;
  }

  // Human output.
  fmt::print("file          {} ({}, GGUF v{}, {} keys, {} tensors, alignment {}, {})\n", path,
             human_bytes(static_cast<double>(f.file_size())), f.version(), f.metadata().size(), f.tensors().size(),
             f.alignment(), has_tensors ? fmt::format("data at byte {}", f.data_offset()) : std::string("no tensor data"));
  if (!arch.empty()) {
    fmt::print("architecture  {}", arch);
    if (f.has("general.name")) fmt::print("  name {}", short_value(*f.find("general.name")));
    if (f.has("general.file_type") && f.find("general.file_type")->is_int())
      fmt::print("  file type {}", file_type_name(f.get_int("general.file_type", -1)));
    fmt::print("\n");
    for (const auto& [k, v] : f.metadata())
      if (k.rfind(arch + ".", 0) == 0) fmt::print("  {:<40} {}\n", k.substr(arch.size() + 1), short_value(v));
    if (shape.n_head > 0)
      fmt::print("  {:<40} {} (k) / {} (v), {} query heads per kv head\n", "(head_dim)", shape.k_dim, shape.v_dim,
                 shape.n_head_kv > 0 ? shape.n_head / shape.n_head_kv : 0);
  } else {
    fmt::print("architecture  none (no general.architecture: {})\n",
               has_tensors ? "not a model llama.cpp can run" : "a metadata-only file, e.g. a tokenizer vocabulary");
  }
  if (f.has("tokenizer.ggml.model")) {
    fmt::print("tokenizer     {}  pre {}  {} tokens  {} merges\n", plain(*f.find("tokenizer.ggml.model")),
               f.has("tokenizer.ggml.pre") ? plain(*f.find("tokenizer.ggml.pre")) : "(none)", tokens.size(),
               n_merges);
    fmt::print("  bos {}  eos {}  unk {}  pad {}\n", piece("bos_token_id"), piece("eos_token_id"),
               piece("unknown_token_id"), piece("padding_token_id"));
    auto b = [](const json& v) { return v.is_null() ? std::string("(default)") : std::string(v ? "yes" : "no"); };
    fmt::print("  add_bos {}  add_eos {}  chat template {}\n", b(opt_bool("add_bos_token")), b(opt_bool("add_eos_token")),
               chat_template.empty() ? std::string("no") : fmt::format("yes ({} bytes)", chat_template.size()));
  } else {
    fmt::print("tokenizer     none\n");
  }
  fmt::print("metadata{}\n", arch.empty() ? "" : fmt::format(" (besides {}.*)", arch));
  for (const auto& [k, v] : f.metadata())
    if (arch.empty() || k.rfind(arch + ".", 0) != 0) fmt::print("  {:<44} {:<6} {}\n", k, gguf::value_type_name(v.type), short_value(v));
  if (has_tensors && o.tensors) {
    size_t w = 4;
    for (const TensorInfo& t : f.tensors()) w = std::max(w, t.name.size());
    fmt::print("tensors\n  {:<{}}  {:<8} {:<22} {:>12}  {}\n", "name", w, "type", "shape", "bytes", "offset");
    for (const TensorInfo& t : f.tensors())
      fmt::print("  {:<{}}  {:<8} {:<22} {:>12}  {}{}\n", t.name, w, type_name(t.type), shape_str(t.ne), t.nbytes,
                 t.offset, type_supported(t.type) ? "" : "  (unsupported by strata)");
  }
  if (has_tensors) {
    fmt::print("by type\n");
    for (const auto& [id, tt] : by_type)
      fmt::print("  {:<8} {:>5} tensors {:>14} params {:>12}  {:5.1f}%{}\n", tt.name, tt.tensors,
                 human_count(static_cast<double>(tt.params)), human_bytes(static_cast<double>(tt.bytes)),
                 100.0 * static_cast<double>(tt.bytes) / static_cast<double>(std::max<uint64_t>(weight_bytes, 1)),
                 tt.supported ? "" : "  unsupported by strata yet");
    fmt::print("parameters    {} ({}), weights {}, {:.2f} bits per weight\n", human_count(static_cast<double>(params)),
               params, human_bytes(static_cast<double>(weight_bytes)), bpw);
  }
  if (!has_tensors) fmt::print("tensors       none: a metadata-only file (e.g. a tokenizer vocabulary)\n");
  if (!unsupported.empty())
    fmt::print("warning       tensor types strata cannot compute with yet: {} (supported: {})\n",
               fmt::join(unsupported, ", "), supported_type_list());
  if (mem) {
    fmt::print("memory at ctx {} (batch {}){}\n", mem->ctx, mem->batch, ctx_note.empty() ? "" : ", " + ctx_note);
    fmt::print("  weights         {:>12}\n", human_bytes(static_cast<double>(mem->weights)));
    fmt::print("  KV cache (f16)  {:>12}  = {}\n", human_bytes(static_cast<double>(mem->kv)), mem->kv_formula);
    fmt::print("  working buffers {:>12}  = {}\n", human_bytes(static_cast<double>(mem->working)), mem->working_formula);
    fmt::print("  total           {:>12}\n", human_bytes(static_cast<double>(mem->total())));
  } else if (has_tensors) {
    fmt::print("memory        weights {}; no KV estimate: the architecture's block_count/embedding_length are missing\n",
               human_bytes(static_cast<double>(weight_bytes)));
  }
  if (!kv_bpt.empty()) {
    fmt::print("KV bytes/token  (K+V, {} layers x {} KV heads; -ctk/-ctv)\n ", shape.n_layer, shape.n_head_kv);
    for (size_t i = 0; i < kv_bpt.size(); ++i)
      fmt::print("{} {} {}", i ? "," : "", kv_bpt[i].first, human_bytes(kv_bpt[i].second));
    fmt::print("\n");
  }
  return 0;
}

RunFn setup(CLI::App& sub) {
  auto o = std::make_shared<InspectOptions>();
  sub.add_option("model_path", o->path, "GGUF file (default: $STRATA_MODEL or the shared test model)");
  sub.add_option("-m,--model", o->model, "GGUF file (same as the positional argument)");
  sub.add_option("-c,--ctx", o->ctx, "context length for the memory estimate (default: the model's, at most 4096)");
  sub.add_option("-b,--batch", o->batch, "tokens per prompt batch in the working-buffer estimate")->capture_default_str();
  sub.add_flag("--json", o->json, "print JSON instead of tables");
  sub.add_flag("--tensors,!--no-tensors", o->tensors, "list every tensor (default: on)");
  return [o] { return run_inspect(*o); };
}

const Command kCmd{"inspect", "show a GGUF file's architecture, tokenizer, tensors and memory needs", setup};

}  // namespace
}  // namespace strata::cli
