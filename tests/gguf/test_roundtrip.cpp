// Writer -> reader round trips: in memory, through files (mmap and pread), and for every GGUF in ../shared.
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>

#include "gguf/gguf.h"
#include "gguf_test_helpers.h"
#include "test_util.h"

namespace strata::gguf::test {
namespace {

// Metadata equal (types preserved, nested arrays included) and every tensor's shape, type and bytes equal.
void expect_same(const File& a, const File& b) {
  ASSERT_EQ(a.metadata().size(), b.metadata().size());
  for (size_t k = 0; k < a.metadata().size(); ++k) {
    EXPECT_EQ(a.metadata()[k].first, b.metadata()[k].first);
    EXPECT_TRUE(a.metadata()[k].second == b.metadata()[k].second) << "key " << a.metadata()[k].first;
  }
  ASSERT_EQ(a.tensors().size(), b.tensors().size());
  for (size_t k = 0; k < a.tensors().size(); ++k) {
    const TensorInfo& x = a.tensors()[k];
    const TensorInfo& y = b.tensors()[k];
    EXPECT_EQ(x.name, y.name);
    EXPECT_EQ(x.type, y.type);
    EXPECT_EQ(x.ne, y.ne);
    ASSERT_EQ(x.nbytes, y.nbytes) << x.name;
    EXPECT_EQ(std::memcmp(x.data, y.data, x.nbytes), 0) << x.name;
  }
}

// Writes every tensor and key of `f` again, in order.
Writer rewrite(const File& f) {
  Writer w;
  for (const auto& [k, v] : f.metadata()) w.set(k, v);
  for (const TensorInfo& t : f.tensors()) w.add_tensor(t.name, t.type, t.ne, {t.data, t.nbytes});
  return w;
}

TEST(GgufRoundTrip, SampleInMemory) {
  Sample s;
  const std::vector<uint8_t> bytes = s.bytes();
  const File f = parse(bytes);
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.alignment(), 32u);
  EXPECT_EQ(f.data_offset() % 32, 0u);
  ASSERT_EQ(f.metadata().size(), 19u);
  // Every value comes back with its exact type and value.
  Writer expected = s.w;
  const File g = parse(expected.to_bytes());
  for (const auto& [k, v] : g.metadata()) ASSERT_TRUE(f.find(k) && *f.find(k) == v) << k;
  EXPECT_EQ(f.find("t.u8")->type, ValueType::kU8);
  EXPECT_EQ(f.find("t.u8")->u, 200u);
  EXPECT_EQ(f.find("t.i8")->i, -100);
  EXPECT_EQ(f.find("t.u16")->u, 60000u);
  EXPECT_EQ(f.find("t.i16")->i, -30000);
  EXPECT_EQ(f.find("t.u32")->u, 4000000000u);
  EXPECT_EQ(f.find("t.i32")->i, -2000000000);
  EXPECT_EQ(f.find("t.f32")->f, static_cast<double>(1e-5f));
  EXPECT_EQ(f.find("t.u64")->u, UINT64_MAX);
  EXPECT_EQ(f.find("t.i64")->i, INT64_MIN);
  EXPECT_EQ(f.find("t.f64")->f, 3.141592653589793);
  EXPECT_EQ(f.find("t.f64")->type, ValueType::kF64);
  const std::vector<std::string> strs = f.get_string_array("t.strings");
  ASSERT_EQ(strs.size(), 4u);
  EXPECT_EQ(strs[2], "héllo");
  EXPECT_EQ(strs[3], std::string("a\0b", 3));  // embedded NUL kept
  const Value& nested = *f.find("t.nested");
  ASSERT_EQ(nested.elem_type, ValueType::kArray);
  ASSERT_EQ(nested.arr.size(), 3u);
  EXPECT_EQ(nested.arr[0].elem_type, ValueType::kI16);
  EXPECT_EQ(nested.arr[0].arr[1].i, -2);
  EXPECT_TRUE(nested.arr[1].arr.empty());
  EXPECT_EQ(f.find("t.empty")->elem_type, ValueType::kString);
  EXPECT_TRUE(f.find("t.empty")->arr.empty());
  // -0.0 keeps its sign bit.
  EXPECT_TRUE(std::signbit(f.get_f32_array("t.f32s")[1]));
  // Tensors: data aligned, bytes identical to what was added.
  ASSERT_EQ(f.tensors().size(), 4u);
  for (size_t k = 0; k < 4; ++k) {
    const TensorInfo& t = f.tensors()[k];
    EXPECT_EQ(t.name, s.names[k]);
    EXPECT_EQ(t.offset % 32, 0u);
    EXPECT_EQ(static_cast<size_t>(t.data - bytes.data()), f.data_offset() + t.offset);
    ASSERT_EQ(t.nbytes, s.data[k].size());
    EXPECT_EQ(std::memcmp(t.data, s.data[k].data(), t.nbytes), 0);
  }
  EXPECT_EQ(f.find_tensor("c")->n_elements(), 128);
  EXPECT_EQ(f.find_tensor("c")->n_rows(), 2);
  EXPECT_EQ(f.find_tensor("zz"), nullptr);
  // read -> write -> read is identical, and the writer is deterministic.
  const std::vector<uint8_t> again = rewrite(f).to_bytes();
  expect_same(f, parse(again));
  EXPECT_EQ(again, bytes);
}

TEST(GgufRoundTrip, CustomAlignmentAndVersion2) {
  Sample s;
  s.w.set("general.alignment", Writer::u32(64));
  const std::vector<uint8_t> bytes = s.bytes();
  const File f = parse(bytes);
  EXPECT_EQ(f.alignment(), 64u);
  EXPECT_EQ(f.data_offset() % 64, 0u);
  for (const TensorInfo& t : f.tensors()) EXPECT_EQ(t.offset % 64, 0u) << t.name;
  // Version 2 has the same little-endian layout: patch the version field and read it again.
  std::vector<uint8_t> v2 = bytes;
  v2[4] = 2;
  const File g = parse(v2);
  EXPECT_EQ(g.version(), 2u);
  expect_same(f, g);
}

TEST(GgufRoundTrip, MetadataOnlyFileHasNoDataSection) {
  Writer w;
  w.set("tokenizer.ggml.model", Writer::string("gpt2"));
  const std::vector<uint8_t> bytes = w.to_bytes();
  EXPECT_EQ(bytes.size(), 4u + 4 + 8 + 8 + (8 + 20 + 4 + 8 + 4));  // no padding after the header
  const File f = parse(bytes);
  EXPECT_TRUE(f.tensors().empty());
  EXPECT_EQ(f.get_string("tokenizer.ggml.model"), "gpt2");
}

TEST(GgufRoundTrip, ThroughFilesWithMmapAndPread) {
  Sample s;
  const auto path = (std::filesystem::temp_directory_path() /
                     ("strata_gguf_rt_" + std::to_string(::getpid()) + ".gguf")).string();
  s.w.write(path);
  for (auto mode : {MappedFile::Mode::kMmap, MappedFile::Mode::kRead}) {
    File f = File::open(path, {.mode = mode, .progress = true});
    EXPECT_EQ(f.path(), path);
    EXPECT_EQ(f.file_size(), s.bytes().size());
    expect_same(f, parse(s.bytes()));
    const File moved = std::move(f);  // tensor pointers stay valid across moves
    EXPECT_EQ(moved.find_tensor("d")->data[0], s.data[3][0]);
  }
  std::filesystem::remove(path);
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp" + std::to_string(::getpid())));
}

TEST(GgufRoundTrip, OpenErrorsNameThePath) {
  try {
    (void)File::open("/nonexistent/dir/model.gguf");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/dir/model.gguf"), std::string::npos) << e.what();
  }
  Writer w;
  EXPECT_THROW(w.write("/nonexistent/dir/out.gguf"), Error);
}

// Every GGUF under ../shared: read, write, read gives identical metadata and tensor bytes.
TEST(GgufRoundTrip, EverySharedFile) {
  STRATA_REQUIRE_SHARED(models, "models");
  std::vector<std::string> files;
  for (const char* dir : {"models", "models/quant", "reference/tokenizer"}) {
    const std::string d = ::strata::test::shared_file(dir);
    if (d.empty()) continue;
    for (const auto& e : std::filesystem::directory_iterator(d))
      if (e.path().extension() == ".gguf") files.push_back(e.path().string());
  }
  std::sort(files.begin(), files.end());
  ASSERT_GE(files.size(), 20u) << "expected the models, quant models and tokenizer vocabularies";
  size_t with_tensors = 0;
  for (const std::string& path : files) {
    SCOPED_TRACE(path);
    const File f = File::open(path);
    EXPECT_TRUE(f.version() == 2 || f.version() == 3);
    EXPECT_TRUE(f.has("general.architecture") || f.has("tokenizer.ggml.model"));
    uint64_t end = 0;
    for (const TensorInfo& t : f.tensors()) end = std::max(end, f.data_offset() + t.offset + t.nbytes);
    EXPECT_LE(end, f.file_size());
    with_tensors += !f.tensors().empty();
    const std::vector<uint8_t> bytes = rewrite(f).to_bytes();
    expect_same(f, parse(bytes));
  }
  EXPECT_GE(with_tensors, 17u);
}

// Facts about stories260K from ../shared/models/PROVENANCE.md and gguf-metadata.txt.
TEST(GgufRoundTrip, Stories260KMatchesItsDump) {
  STRATA_REQUIRE_SHARED(path, "models/stories260K.gguf");
  const File f = File::open(path);
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.metadata().size(), 19u);
  EXPECT_EQ(f.tensors().size(), 48u);
  EXPECT_EQ(f.alignment(), 32u);
  EXPECT_EQ(f.data_offset(), 14176u);
  EXPECT_EQ(f.get_string("general.architecture"), "llama");
  EXPECT_EQ(f.get_int("llama.context_length", 0), 2048);
  EXPECT_EQ(f.get_int("llama.embedding_length", 0), 64);
  EXPECT_EQ(f.get_int("llama.feed_forward_length", 0), 172);
  EXPECT_EQ(f.get_int("llama.attention.head_count_kv", 0), 4);
  EXPECT_FLOAT_EQ(static_cast<float>(f.get_float("llama.attention.layer_norm_rms_epsilon", 0)), 1e-5f);
  EXPECT_EQ(f.get_float("llama.rope.freq_base", 10000.0), 10000.0);  // absent: default
  EXPECT_EQ(f.get_id("tokenizer.ggml.bos_token_id"), 1);
  EXPECT_EQ(f.get_id("tokenizer.ggml.padding_token_id"), -1);     // u32 0xFFFFFFFF = none
  EXPECT_EQ(f.get_int("tokenizer.ggml.padding_token_id", 0), 4294967295);
  EXPECT_EQ(f.get_string_array("tokenizer.ggml.tokens").size(), 512u);
  EXPECT_EQ(f.get_string_array("tokenizer.ggml.tokens")[1], "<s>");
  const std::vector<float> scores = f.get_f32_array("tokenizer.ggml.scores");
  ASSERT_EQ(scores.size(), 512u);
  EXPECT_EQ(scores[260], -1.f);
  EXPECT_EQ(f.get_i32_array("tokenizer.ggml.token_type")[3], 6);
  const TensorInfo* t = f.find_tensor("blk.0.ffn_down.weight");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->ne, (std::vector<int64_t>{172, 64}));
  EXPECT_EQ(t->offset, 355840u);
  EXPECT_EQ(t->nbytes, 172u * 64 * 4);
}

}  // namespace
}  // namespace strata::gguf::test
