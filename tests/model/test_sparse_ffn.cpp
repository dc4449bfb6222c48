// The sparse FFN (model/sparse_ffn.h): bundled files give the logits of the unbundled file (F32 to float
// summation order; Q8_0 within re-quantization and activation-quantization error); ReLU models computed over
// active neurons only equal the dense ReLU block; a negligible SiLU threshold equals the dense path; streamed
// bundles read only active rows (coalesced), and a window reads fewer bytes for the same logits.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "core/error.h"
#include "model/logits_util.h"
#include "model/model.h"
#include "model/synthetic.h"
#include "runtime/session.h"
#include "storage/ffn_bundle.h"
#include "test_util.h"

namespace strata::model {
namespace {

std::string tmp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("strata-sparse-" + std::to_string(getpid()) + "-" + name)).string();
}

struct Pair {
  std::string plain, bundled;
  ~Pair() {
    std::error_code ec;
    std::filesystem::remove(plain, ec);
    std::filesystem::remove(bundled, ec);
  }
};

// A synthetic model and its bundled form. weight_std 0.1 so that the FFN matters to the logits.
Pair make_pair(const std::string& tag, DType type, const std::string& act, int64_t n_ff = 96) {
  Pair p{tmp_path(tag + ".gguf"), tmp_path(tag + "-bundled.gguf")};
  SyntheticSpec s = synthetic_shape("demo");
  s.weight_type = type;
  s.n_ff = n_ff;
  s.ffn_act = act;
  s.weight_std = 0.1f;
  s.progress = false;
  write_synthetic_gguf(s, p.plain);
  storage::BundleOptions o;
  o.progress = false;
  storage::write_ffn_bundle(p.plain, p.bundled, o);
  return p;
}

// Logits after a 5-token prompt (two batches of 4 and 1), then after each of 4 decoded tokens.
std::vector<float> run_logits(const Model& m) { return test::run_logits(m, 4); }

// Largest |a - b| relative to the largest |b|.
double rel_diff(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  double d = 0, mx = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    d = std::max(d, std::fabs(static_cast<double>(a[i]) - b[i]));
    mx = std::max(mx, std::fabs(static_cast<double>(b[i])));
  }
  return mx > 0 ? d / mx : d;
}

TEST(SparseFfn, BundledF32EqualsUnbundled) {
  const Pair p = make_pair("silu-f32", DType::F32, "silu", 97);  // odd n_ff
  const auto plain = Model::load(p.plain), bundled = Model::load(p.bundled);
  const double d = rel_diff(run_logits(*bundled), run_logits(*plain));
  std::printf("f32 bundled vs unbundled: max rel diff %.3g\n", d);
  EXPECT_LT(d, 1e-5);  // float summation order only
  EXPECT_EQ(bundled->ffn_counters().sparsity(), 0.0) << "SiLU without a threshold is dense";
}

TEST(SparseFfn, BundledQ8_0CloseToUnbundled) {
  const Pair p = make_pair("silu-q8", DType::Q8_0, "silu");
  const auto plain = Model::load(p.plain), bundled = Model::load(p.bundled);
  const double d = rel_diff(run_logits(*bundled), run_logits(*plain));
  std::printf("q8_0 bundled vs unbundled: max rel diff %.3g\n", d);
  // The dense path quantizes activations to Q8_0 (vec_dot_type) and the bundle re-quantizes down columns:
  // both are ~0.4% per value; over 2 layers the logits move by well under 2%.
  EXPECT_LT(d, 2e-2);
}

TEST(SparseFfn, ReluSparseEqualsDense) {
  const Pair p = make_pair("relu-f32", DType::F32, "relu", 97);
  const auto plain = Model::load(p.plain), bundled = Model::load(p.bundled);
  EXPECT_EQ(plain->hparams().ffn_act, FfnAct::kRelu);
  // The unbundled model runs the dense ReLU block (matmuls over every neuron, zeros included); the bundled
  // one touches only the active neurons' rows.
  const std::vector<float> dense = run_logits(*plain), sparse = run_logits(*bundled);
  const double d = rel_diff(sparse, dense);
  std::printf("relu sparse vs dense: max rel diff %.3g, sparsity %.3f\n", d, bundled->ffn_counters().sparsity());
  EXPECT_LT(d, 1e-5);  // exact up to float summation order
  // Random weights: relu(gate) > 0 for about half the neurons.
  EXPECT_GT(bundled->ffn_counters().sparsity(), 0.35);
  EXPECT_LT(bundled->ffn_counters().sparsity(), 0.65);
  EXPECT_NEAR(plain->ffn_counters().sparsity(), bundled->ffn_counters().sparsity(), 1e-3);
}

TEST(SparseFfn, ReluDenseBlockMatchesSiluFileOnlyWhenActivationsAgree) {
  // The ReLU key changes the function: the same weights as SiLU give other logits (the key is read).
  const Pair r = make_pair("act-relu", DType::F32, "relu"), s = make_pair("act-silu", DType::F32, "silu");
  const auto mr = Model::load(r.plain), ms = Model::load(s.plain);
  EXPECT_GT(rel_diff(run_logits(*mr), run_logits(*ms)), 1e-3);
}

TEST(SparseFfn, NegligibleThresholdEqualsDense) {
  const Pair p = make_pair("thr", DType::F32, "silu");
  const auto dense = Model::load(p.plain);
  const std::vector<float> want = run_logits(*dense);
  for (const std::string& path : {p.plain, p.bundled}) {
    const auto m = Model::load(path);
    m->set_ffn_sparsity({.threshold = 1e-30f});
    const double d = rel_diff(run_logits(*m), want);
    EXPECT_LT(d, 1e-5) << path;
    EXPECT_LT(m->ffn_counters().sparsity(), 1e-3) << path;
  }
  // A real threshold skips neurons and moves the logits.
  const auto m = Model::load(p.plain);
  m->set_ffn_sparsity({.threshold = 0.2f});
  const std::vector<float> thr = run_logits(*m);
  EXPECT_GT(m->ffn_counters().sparsity(), 0.1);
  EXPECT_GT(rel_diff(thr, want), 0.0);
  // Thresholding the bundled file skips the same neurons and gives the same logits (a neuron at the
  // threshold may flip with the summation order: 1e-3).
  const auto mb = Model::load(p.bundled);
  mb->set_ffn_sparsity({.threshold = 0.2f});
  EXPECT_LT(rel_diff(run_logits(*mb), thr), 1e-3);
  EXPECT_NEAR(mb->ffn_counters().sparsity(), m->ffn_counters().sparsity(), 1e-3);
}

TEST(SparseFfn, StreamedBundlesReadOnlyActiveRows) {
  const Pair p = make_pair("stream", DType::Q8_0, "relu");
  const auto resident = Model::load(p.bundled);
  const std::vector<float> want = run_logits(*resident);
  uint64_t bytes[2] = {0, 0}, reads0 = 0;
  for (int window : {0, 4}) {
    WeightPlacement pl;
    for (int64_t l = 0; l < resident->hparams().n_layer; ++l) pl.streamed.push_back(storage::ffn_bundle_tensor(l));
    const auto m = Model::load(p.bundled, {.placement = &pl});
    m->set_ffn_sparsity({.window = window, .gap_bytes = 0});  // only adjacent rows share a read
    const std::vector<float> got = run_logits(*m);
    ASSERT_EQ(got.size(), want.size());
    EXPECT_EQ(std::memcmp(got.data(), want.data(), want.size() * sizeof(float)), 0) << "window " << window;
    const FfnCounters& k = m->ffn_counters();
    const Matrix& b = m->weights().layers[0].w_up_down;
    const uint64_t full = b.row_bytes * static_cast<uint64_t>(b.rows) * static_cast<uint64_t>(m->hparams().n_layer);
    // 4 steps (two prompt batches, 4 decodes... 6 steps): a dense read would be 6 × full.
    EXPECT_GT(k.bytes_read.load(), 0u);
    EXPECT_LT(k.bytes_read.load(), 6 * full);
    EXPECT_LT(k.reads.load() * b.row_bytes, k.bytes_read.load()) << "adjacent rows are read together";
    bytes[window ? 1 : 0] = k.bytes_read.load();
    if (window == 0) reads0 = k.reads.load();
    std::printf("window %d: %llu bundle bytes read in %llu reads (%.2f of a dense read per step)\n", window,
                static_cast<unsigned long long>(k.bytes_read.load()), static_cast<unsigned long long>(k.reads.load()),
                static_cast<double>(k.bytes_read.load()) / (6.0 * static_cast<double>(full)));
  }
  EXPECT_LT(bytes[1], bytes[0]) << "the window keeps recently active rows";

  // A capped cache: the same logits, the cache never holds more than the cap plus one layer's active rows,
  // and it reads between the uncapped window and no window.
  WeightPlacement pl;
  for (int64_t l = 0; l < resident->hparams().n_layer; ++l) pl.streamed.push_back(storage::ffn_bundle_tensor(l));
  const auto m = Model::load(p.bundled, {.placement = &pl});
  const Matrix& b = m->weights().layers[0].w_up_down;
  const uint64_t cap = b.row_bytes * static_cast<uint64_t>(b.rows) / 2;  // a quarter of each layer's rows
  m->set_ffn_sparsity({.window = 4, .cache_bytes = cap, .gap_bytes = 0});
  const std::vector<float> got = run_logits(*m);
  EXPECT_EQ(std::memcmp(got.data(), want.data(), want.size() * sizeof(float)), 0) << "capped window";
  EXPECT_LE(m->ffn_counters().cache_peak.load(), cap + b.row_bytes * static_cast<uint64_t>(b.rows));
  EXPECT_GE(m->ffn_counters().bytes_read.load(), bytes[1]);
  EXPECT_LE(m->ffn_counters().bytes_read.load(), bytes[0]);

  // Gaps of up to 3 inactive rows read through: the same logits in fewer, larger reads.
  const auto mg = Model::load(p.bundled, {.placement = &pl});
  mg->set_ffn_sparsity({.gap_bytes = 3 * b.row_bytes});
  const std::vector<float> gap = run_logits(*mg);
  EXPECT_EQ(std::memcmp(gap.data(), want.data(), want.size() * sizeof(float)), 0) << "gaps read through";
  std::printf("gaps <= 3 rows: %llu bytes in %llu reads (no gaps: %llu in %llu)\n",
              static_cast<unsigned long long>(mg->ffn_counters().bytes_read.load()),
              static_cast<unsigned long long>(mg->ffn_counters().reads.load()),
              static_cast<unsigned long long>(bytes[0]), static_cast<unsigned long long>(reads0));
  EXPECT_LT(mg->ffn_counters().reads.load(), reads0);
  EXPECT_GT(mg->ffn_counters().bytes_read.load(), bytes[0]);
}

// Checked reads: the bundled file changes under a streamed run, between tokens. Junk over rows read before,
// a truncation inside a bundle, or rewriting the same bytes (the times change: rows never read before cannot
// be checked) -- the next token is an error naming the file, never garbage logits. (Strict: once the file's
// times changed, the first newly active row never read before stops the run.)
TEST(SparseFfn, StreamedBundleModifiedOrTruncatedIsAnError) {
  const Pair p = make_pair("checked", DType::Q8_0, "relu");
  const std::string path = tmp_path("checked-copy.gguf");
  for (const std::string mode : {"junk", "truncated", "same bytes"}) {
    SCOPED_TRACE(mode);
    std::filesystem::copy_file(p.bundled, path, std::filesystem::copy_options::overwrite_existing);
    const auto m0 = Model::load(path);
    WeightPlacement pl;
    for (int64_t l = 0; l < m0->hparams().n_layer; ++l) pl.streamed.push_back(storage::ffn_bundle_tensor(l));
    const auto m = Model::load(path, {.placement = &pl});
    runtime::SessionConfig c;
    c.n_ctx = 16;
    c.n_threads = 2;
    runtime::Session s(*m, c);
    const auto toks = test::some_tokens(m->hparams().n_vocab, 14);
    const size_t warm = 2;
    s.append(std::span<const int32_t>(toks.data(), 2));
    for (size_t i = 2; i < warm; ++i) s.append(std::span<const int32_t>(&toks[i], 1));
    // Junk over layer 0's bundle (whose rows are read first); the truncation inside layer 1's.
    const Matrix& b = m->weights().layers[mode == "junk" ? 0 : 1].w_up_down;
    const uint64_t bundle_bytes = b.row_bytes * static_cast<uint64_t>(b.rows);
    if (mode == "truncated") {
      ASSERT_EQ(::truncate(path.c_str(), static_cast<off_t>(b.file_offset + bundle_bytes / 3)), 0);
    } else {
      const int fd = ::open(path.c_str(), O_RDWR);
      ASSERT_GE(fd, 0);
      std::vector<uint8_t> bytes(static_cast<size_t>(bundle_bytes));
      ASSERT_EQ(pread(fd, bytes.data(), bytes.size(), static_cast<off_t>(b.file_offset)), static_cast<ssize_t>(bytes.size()));
      if (mode == "junk")
        for (size_t i = 0; i < bytes.size(); i += 7) bytes[i] ^= 0x5a;
      ASSERT_EQ(pwrite(fd, bytes.data(), bytes.size(), static_cast<off_t>(b.file_offset)), static_cast<ssize_t>(bytes.size()));
      ::close(fd);
    }
    try {
      for (size_t i = warm; i < toks.size(); ++i) s.append(std::span<const int32_t>(&toks[i], 1));
      FAIL() << "a changed file must be an error";
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find(path), std::string::npos) << msg;
      if (mode == "truncated") {
        EXPECT_TRUE(msg.find("truncated") != std::string::npos || msg.find("was not read before") != std::string::npos) << msg;
      } else if (mode == "junk") {
        // Rows read before now read other bytes (reported before rows that cannot be checked).
        EXPECT_NE(msg.find("'blk.0.ffn_up_down.weight'"), std::string::npos) << msg;
        EXPECT_NE(msg.find("different bytes than at its first read"), std::string::npos) << msg;
      } else {
        // The same bytes: rows read before pass, the first row never read before cannot be checked.
        EXPECT_NE(msg.find("was not read before"), std::string::npos) << msg;
      }
    }
  }
  std::filesystem::remove(path);
}

TEST(SparseFfn, RealModelBundledEqualsOriginal) {
  STRATA_REQUIRE_SHARED(src, "models/strata-tiny-256.gguf");
  const std::string out = tmp_path("tiny256-bundled.gguf");
  storage::BundleOptions o;
  o.progress = false;
  storage::write_ffn_bundle(src, out, o);
  const auto plain = Model::load(src), bundled = Model::load(out);
  const double d = rel_diff(run_logits(*bundled), run_logits(*plain));
  std::printf("strata-tiny-256 (f32) bundled vs original: max rel diff %.3g\n", d);
  EXPECT_LT(d, 1e-5);
  std::filesystem::remove(out);
}

}  // namespace
}  // namespace strata::model
