// libFuzzer target for the GGUF reader: parse arbitrary bytes; malformed input must end in strata::Error,
// never a crash, an out-of-bounds read, a hang or an unbounded allocation. When a file parses, every
// metadata value and every tensor byte is touched (so ASan sees any span outside the input), the typed
// getters run on every key, and the file is written again and must read back identical.
//
// fuzz/CMakeLists.txt instruments only this file, not the strata_* libraries, so the reader's sources are
// compiled into this translation unit to give libFuzzer coverage and ASan/UBSan checks inside the parser.
// Their definitions take precedence over libstrata_gguf.a (an archive member is only pulled in for a
// symbol that is still undefined). Keep this list in step with src/gguf/*.cpp.
#include "../src/gguf/file.cpp"
#include "../src/gguf/reader.cpp"
#include "../src/gguf/value.cpp"
#include "../src/gguf/writer.cpp"

#include <cstddef>
#include <cstdint>
#include <cstdlib>

namespace {

using strata::gguf::File;
using strata::gguf::Value;
using strata::gguf::ValueType;

uint64_t touch(const Value& v) {
  uint64_t h = static_cast<uint64_t>(v.type) + v.u + static_cast<uint64_t>(v.i) + v.str.size();
  for (unsigned char c : v.str) h = h * 31 + c;
  for (const Value& e : v.arr) h += touch(e);
  (void)v.to_string(4);
  return h;
}

void exercise_getters(const File& f, const std::string& key) {
  // Each getter either returns or throws strata::Error for the wrong type.
  auto guard = [](auto&& fn) {
    try {
      fn();
    } catch (const strata::Error&) {
    }
  };
  guard([&] { (void)f.get_int(key, 0); });
  guard([&] { (void)f.get_id(key); });
  guard([&] { (void)f.get_float(key, 0); });
  guard([&] { (void)f.get_bool(key, false); });
  guard([&] { (void)f.get_string(key); });
  guard([&] { (void)f.get_string_array(key); });
  guard([&] { (void)f.get_f32_array(key); });
  guard([&] { (void)f.get_i32_array(key); });
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const uint8_t> bytes(data, size);
  File f;
  try {
    f = File::parse(bytes, "fuzz");
  } catch (const strata::Error&) {
    return 0;
  }
  volatile uint64_t sink = 0;
  for (const auto& [key, v] : f.metadata()) {
    sink = sink + touch(v) + key.size();
    if (f.find(key) != &v) std::abort();  // the index agrees with the list
    exercise_getters(f, key);
  }
  for (const strata::gguf::TensorInfo& t : f.tensors()) {
    if (t.data < data || t.data + t.nbytes > data + size) std::abort();
    for (uint64_t k = 0; k < t.nbytes; ++k) sink = sink + t.data[k];
    if (f.find_tensor(t.name) != &t) std::abort();
    sink = sink + static_cast<uint64_t>(t.n_elements() + t.n_rows());
  }
  // read -> write -> read gives the same metadata and tensor bytes.
  strata::gguf::Writer w;
  for (const auto& [key, v] : f.metadata()) w.set(key, v);
  for (const auto& t : f.tensors()) w.add_tensor(t.name, t.type, t.ne, {t.data, t.nbytes});
  const std::vector<uint8_t> again = w.to_bytes();
  const File g = File::parse(again, "fuzz-rewrite");
  if (g.metadata().size() != f.metadata().size() || g.tensors().size() != f.tensors().size()) std::abort();
  for (size_t k = 0; k < f.metadata().size(); ++k)
    if (!(g.metadata()[k] == f.metadata()[k])) std::abort();
  for (size_t k = 0; k < f.tensors().size(); ++k) {
    const auto &a = f.tensors()[k], &b = g.tensors()[k];
    if (a.name != b.name || a.type != b.type || a.ne != b.ne || a.nbytes != b.nbytes ||
        std::memcmp(a.data, b.data, a.nbytes) != 0)
      std::abort();
  }
  return 0;
}
