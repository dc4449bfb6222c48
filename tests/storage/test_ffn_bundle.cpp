// `strata convert --bundle` (storage/ffn_bundle.h): the bundle rows hold the original up rows and down
// columns (bit-exact for F32; re-quantized down columns within the type's rounding for Q8_0), every other
// tensor and metadata value is copied byte for byte, and bad inputs are clear errors.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "core/error.h"
#include "gguf/gguf.h"
#include "model/model.h"
#include "model/synthetic.h"
#include "storage/ffn_bundle.h"
#include "test_util.h"

namespace strata::storage {
namespace {

std::string tmp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("strata-bundle-" + std::to_string(getpid()) + "-" + name)).string();
}

struct Files {
  std::string in, out;
  ~Files() {
    std::error_code ec;
    std::filesystem::remove(in, ec);
    std::filesystem::remove(out, ec);
  }
};

Files make_pair(const std::string& tag, DType type, int64_t n_embd, int64_t n_ff) {
  Files f{tmp_path(tag + "-in.gguf"), tmp_path(tag + "-out.gguf")};
  model::SyntheticSpec s = model::synthetic_shape("demo");
  s.weight_type = type;
  s.n_embd = n_embd;
  s.n_ff = n_ff;
  s.n_layer = 2;
  s.progress = false;
  s.exact = true;
  model::write_synthetic_gguf(s, f.in);
  BundleOptions o;
  o.progress = false;
  write_ffn_bundle(f.in, f.out, o);
  return f;
}

std::vector<float> deq(DType t, const uint8_t* p, int64_t n) {
  std::vector<float> v(static_cast<size_t>(n));
  dequantize_row(t, p, v.data(), n);
  return v;
}

// Checks every bundle row against the original up row and down column; returns the largest down error
// relative to the largest |value| of its 32-value block.
double check_layout(const Files& f, double down_tol_rel) {
  const gguf::File in = gguf::File::open(f.in), out = gguf::File::open(f.out);
  EXPECT_TRUE(out.get_bool(kFfnBundleKey, false));
  const int64_t n_layer = in.require_int("llama.block_count");
  double worst = 0;
  for (int64_t l = 0; l < n_layer; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    const gguf::TensorInfo* up = in.find_tensor(p + "ffn_up.weight");
    const gguf::TensorInfo* down = in.find_tensor(p + "ffn_down.weight");
    const gguf::TensorInfo* b = out.find_tensor(ffn_bundle_tensor(l));
    EXPECT_EQ(out.find_tensor(p + "ffn_up.weight"), nullptr);
    EXPECT_EQ(out.find_tensor(p + "ffn_down.weight"), nullptr);
    if (!up || !down || !b) {
      ADD_FAILURE() << "missing tensors in layer " << l;
      return 1e9;
    }
    const int64_t ne = up->ne[0], nff = up->ne[1];
    EXPECT_EQ(b->ne, (std::vector<int64_t>{2 * ne, nff}));
    const DType tu = static_cast<DType>(up->type), td = static_cast<DType>(down->type), tb = static_cast<DType>(b->type);
    EXPECT_EQ(tb, tu);
    std::vector<float> down_f(static_cast<size_t>(ne * nff));
    for (int64_t r = 0; r < ne; ++r)
      dequantize_row(td, down->data + static_cast<size_t>(r) * row_bytes(td, nff), down_f.data() + r * nff, nff);
    const size_t brb = row_bytes(tb, 2 * ne), urb = row_bytes(tu, ne);
    for (int64_t i = 0; i < nff; ++i) {
      const uint8_t* row = b->data + static_cast<size_t>(i) * brb;
      // The up half is the original row, byte for byte (same type).
      EXPECT_EQ(std::memcmp(row, up->data + static_cast<size_t>(i) * urb, urb), 0) << "up row " << i;
      const std::vector<float> d = deq(tb, row + urb, ne);
      for (int64_t j0 = 0; j0 < ne; j0 += 32) {
        double amax = 0;
        for (int64_t j = j0; j < j0 + 32 && j < ne; ++j) amax = std::max(amax, std::fabs(static_cast<double>(down_f[static_cast<size_t>(j * nff + i)])));
        for (int64_t j = j0; j < j0 + 32 && j < ne; ++j) {
          const double want = down_f[static_cast<size_t>(j * nff + i)];
          const double err = std::fabs(d[static_cast<size_t>(j)] - want);
          if (amax > 0) worst = std::max(worst, err / amax);
          EXPECT_LE(err, down_tol_rel * amax) << "layer " << l << " down column " << i << " value " << j;
        }
      }
    }
  }
  // Everything else: the same metadata values in the same order (plus the bundle key), the same tensor bytes.
  std::vector<std::pair<std::string, gguf::Value>> want = in.metadata();
  const auto& got = out.metadata();
  EXPECT_EQ(got.size(), want.size() + 1);
  for (size_t k = 0; k < want.size() && k < got.size(); ++k) {
    EXPECT_EQ(got[k].first, want[k].first);
    EXPECT_TRUE(got[k].second == want[k].second) << want[k].first;
  }
  for (const gguf::TensorInfo& t : in.tensors()) {
    if (t.name.find("ffn_up.") != std::string::npos || t.name.find("ffn_down.") != std::string::npos) continue;
    const gguf::TensorInfo* o = out.find_tensor(t.name);
    EXPECT_NE(o, nullptr) << t.name;
    if (!o) continue;
    EXPECT_EQ(o->type, t.type);
    EXPECT_EQ(o->ne, t.ne);
    EXPECT_EQ(o->nbytes, t.nbytes);
    if (o->nbytes != t.nbytes) continue;
    EXPECT_EQ(std::memcmp(o->data, t.data, t.nbytes), 0) << t.name;
  }
  return worst;
}

TEST(FfnBundle, F32LayoutIsExactWithOddFeedForwardWidth) {
  const Files f = make_pair("f32", DType::F32, 64, 97);  // n_ff 97: odd (F32 has no block constraint)
  EXPECT_EQ(check_layout(f, 0.0), 0.0);
}

TEST(FfnBundle, F16LayoutIsExact) {
  const Files f = make_pair("f16", DType::F16, 64, 96);
  EXPECT_EQ(check_layout(f, 0.0), 0.0);
}

TEST(FfnBundle, Q8_0DownColumnsWithinHalfAStep) {
  // Re-quantizing a dequantized Q8_0 column into new 32-value blocks: each value is off by at most half a
  // step of its new block (amax / 127 / 2), plus the fp16 rounding of the block scale (2^-11 relative).
  const Files f = make_pair("q8", DType::Q8_0, 64, 96);
  const double worst = check_layout(f, 0.5 / 127 + 1.0 / 2048);
  std::printf("q8_0 down columns: worst error %.3g of the block's max |value|\n", worst);
}

TEST(FfnBundle, BundledModelLoadsWithoutUpAndDown) {
  const Files f = make_pair("load", DType::Q8_0, 64, 96);
  const auto m = model::Model::load(f.out);
  EXPECT_TRUE(m->hparams().ffn_bundle);
  const model::LayerWeights& l = m->weights().layers[1];
  EXPECT_TRUE(l.w_up.name.empty());
  EXPECT_TRUE(l.w_down.name.empty());
  EXPECT_EQ(l.w_up_down.rows, 96);
  EXPECT_EQ(l.w_up_down.cols, 128);
  EXPECT_EQ(l.w_up_down.type, DType::Q8_0);
  EXPECT_NE(l.w_up_down.data, nullptr);
}

TEST(FfnBundle, ClearErrors) {
  Files f = make_pair("err", DType::F32, 64, 96);
  BundleOptions o;
  o.progress = false;
  const auto msg = [&](const std::string& in, const std::string& out) {
    try {
      write_ffn_bundle(in, out, o);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  const std::string again = tmp_path("again.gguf");
  EXPECT_NE(msg(f.out, again).find("already bundled"), std::string::npos);
  EXPECT_NE(msg(f.in, f.out).find("exists"), std::string::npos);
  EXPECT_NE(msg(f.in, f.in).find("is the input"), std::string::npos);
  o.overwrite = true;
  EXPECT_EQ(msg(f.in, f.out), "no error");
  o.overwrite = false;

  // An architecture without a gated FFN of this layout.
  gguf::Writer w;
  w.set("general.architecture", gguf::Writer::string("gpt2"));
  const std::string gpt2 = tmp_path("gpt2.gguf");
  w.write(gpt2);
  EXPECT_NE(msg(gpt2, again).find("architecture 'gpt2' is not supported"), std::string::npos);
  std::filesystem::remove(gpt2);
  EXPECT_FALSE(std::filesystem::exists(again));

  // A truncated bundled file: loading names the tensor and says the file is truncated.
  std::filesystem::resize_file(f.out, std::filesystem::file_size(f.out) - 1000);
  try {
    model::Model::load(f.out);
    ADD_FAILURE() << "a truncated bundled file loaded";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("truncated"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace strata::storage
