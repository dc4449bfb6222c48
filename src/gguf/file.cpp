// A parsed GGUF file: lookups and typed getters over its metadata and tensor index.
#include <limits>

#include "core/error.h"
#include "gguf/gguf.h"
#include "gguf/internal.h"

namespace strata::gguf {

int64_t TensorInfo::n_elements() const {
  int64_t n = 1;
  for (int64_t d : ne) n *= d;  // the reader checked that this product does not overflow
  return n;
}

int64_t TensorInfo::n_rows() const { return ne.empty() ? 0 : n_elements() / ne[0]; }

namespace {
std::string key_what(const std::string& path, const std::string& key) {
  return fmt::format("gguf: {}: key '{}'", path, detail::printable(key));
}
}  // namespace

const Value* File::find(const std::string& key) const {
  auto it = kv_index_.find(key);
  return it == kv_index_.end() ? nullptr : &kv_[it->second].second;
}

const TensorInfo* File::find_tensor(const std::string& name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

int64_t File::get_int(const std::string& key, int64_t def) const {
  const Value* v = find(key);
  return v ? v->as_int(key_what(path_, key)) : def;
}

double File::get_float(const std::string& key, double def) const {
  const Value* v = find(key);
  return v ? v->as_float(key_what(path_, key)) : def;
}

bool File::get_bool(const std::string& key, bool def) const {
  const Value* v = find(key);
  return v ? v->as_bool(key_what(path_, key)) : def;
}

std::string File::get_string(const std::string& key, const std::string& def) const {
  const Value* v = find(key);
  return v ? v->as_string(key_what(path_, key)) : def;
}

int64_t File::get_id(const std::string& key, int64_t def) const {
  const Value* v = find(key);
  if (!v) return def;
  if (!v->is_int()) (void)v->as_int(key_what(path_, key));  // throws: not an integer
  if (detail::is_signed_type(v->type)) return v->i == -1 ? def : v->i;
  if ((v->type == ValueType::kU32 && v->u == 0xFFFFFFFFu) || v->u == std::numeric_limits<uint64_t>::max() ||
      (v->type == ValueType::kU16 && v->u == 0xFFFFu) || (v->type == ValueType::kU8 && v->u == 0xFFu))
    return def;
  return v->as_int(key_what(path_, key));
}

int64_t File::require_int(const std::string& key) const {
  const Value* v = find(key);
  if (!v) fail("gguf: {}: missing required key '{}' (an integer)", path_, detail::printable(key));
  return v->as_int(key_what(path_, key));
}

std::string File::require_string(const std::string& key) const {
  const Value* v = find(key);
  if (!v) fail("gguf: {}: missing required key '{}' (a string)", path_, detail::printable(key));
  return v->as_string(key_what(path_, key));
}

namespace {

// The array under `key`, or nullptr when absent; error when present and not an array.
const Value* find_array(const File& f, const std::string& key, const char* expected) {
  const Value* v = f.find(key);
  if (v && v->type != ValueType::kArray)
    fail("{}: expected an array of {}, found {}", key_what(f.path(), key), expected, value_type_name(v->type));
  return v;
}

[[noreturn]] void wrong_elems(const File& f, const std::string& key, const Value& v, const char* expected) {
  fail("{}: expected an array of {}, found an array of {}", key_what(f.path(), key), expected,
       value_type_name(v.elem_type));
}

}  // namespace

std::vector<std::string> File::get_string_array(const std::string& key) const {
  const Value* v = find_array(*this, key, "string");
  if (!v) return {};
  if (v->elem_type != ValueType::kString) wrong_elems(*this, key, *v, "string");
  std::vector<std::string> out;
  out.reserve(v->arr.size());
  for (const Value& e : v->arr) out.push_back(e.str);
  return out;
}

std::vector<float> File::get_f32_array(const std::string& key) const {
  const Value* v = find_array(*this, key, "f32");
  if (!v) return {};
  if (v->elem_type != ValueType::kF32 && v->elem_type != ValueType::kF64) wrong_elems(*this, key, *v, "f32");
  std::vector<float> out;
  out.reserve(v->arr.size());
  for (const Value& e : v->arr) out.push_back(static_cast<float>(e.f));
  return out;
}

std::vector<int32_t> File::get_i32_array(const std::string& key) const {
  const Value* v = find_array(*this, key, "i32");
  if (!v) return {};
  if (!detail::is_signed_type(v->elem_type) && !detail::is_unsigned_type(v->elem_type)) wrong_elems(*this, key, *v, "i32");
  std::vector<int32_t> out;
  out.reserve(v->arr.size());
  for (size_t k = 0; k < v->arr.size(); ++k) {
    const Value& e = v->arr[k];
    const bool is_signed = detail::is_signed_type(e.type);
    const bool fits = is_signed ? (e.i >= INT32_MIN && e.i <= INT32_MAX) : e.u <= static_cast<uint64_t>(INT32_MAX);
    if (!fits)
      fail("{}[{}]: value {} does not fit in i32", key_what(path_, key), k,
           is_signed ? fmt::format("{}", e.i) : fmt::format("{}", e.u));
    out.push_back(static_cast<int32_t>(is_signed ? e.i : static_cast<int64_t>(e.u)));
  }
  return out;
}

}  // namespace strata::gguf
