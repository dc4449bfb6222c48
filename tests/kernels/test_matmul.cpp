// kernels::matmul against kernels::ref::matmul (the specification) for every supported weight type, on
// every SIMD target compiled into the kernels that this CPU supports, with 1, 2 and 3 threads, with and
// without repacking, at shapes below, at and above the tiles: rows 1/3/17/67 (tiles are 4, 8 or 16 rows),
// 1/2/3/7/19 blocks of columns, 1/2/5/17 tokens (token tiles are 4 or 8).
//
// Tolerances (per output, relative to what the kernel is allowed to change):
//  - int8-panel types (q4_0 q4_1 q5_0 q8_0 q4_K q5_K q6_K) quantize the activations to int8 per 32
//    columns: |x - d*q| <= d/2 with d = max|x|/127, so |err| <= sum_c |w_c| * d_c / 2, plus float rounding
//    2e-5 * sum_c |w_c x_c|;
//  - float types and the dequantize path: float rounding only, 2e-5 * sum_c |w_c x_c|.
#include <gtest/gtest.h>
#include <hwy/targets.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/thread_pool.h"
#include "kernels/matmul.h"
#include "kernels/kernel_test_util.h"  // tests/kernels
#include "kernels/matmul_registry.h"

namespace strata::test {
namespace {

using kernels::KernelFamily;

struct Problem {
  DType type;
  int64_t rows, cols, n_tok;
  std::vector<uint8_t> w;     // rows * row_bytes
  std::vector<float> x;       // n_tok * cols
  std::vector<float> want;    // n_tok * rows, from ref::matmul
  std::vector<double> tol;    // n_tok * rows
};

// Columns for "b blocks": the block size, or for the float types (block of 1) lengths that are not
// multiples of any vector width.
int64_t cols_for(DType t, int blocks) {
  const int64_t bs = traits(t).block_size;
  if (bs > 1) return blocks * bs;
  switch (blocks) {
    case 1: return 1;
    case 2: return 37;
    case 3: return 98;
    default: return 229;
  }
}

Problem make_problem(DType type, int64_t rows, int64_t cols, int64_t n_tok, uint64_t seed) {
  Problem p{type, rows, cols, n_tok, {}, {}, {}, {}};
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_real_distribution<float> uni(0.0f, 1.0f);
  const size_t rb = row_bytes(type, cols);
  p.w.resize(rows * rb);
  std::vector<float> wf(cols);
  for (int64_t r = 0; r < rows; ++r) {
    const float row_scale = 0.02f * (0.5f + uni(rng));
    for (auto& v : wf) v = normal(rng) * row_scale * (uni(rng) < 0.01f ? 8.0f : 1.0f);
    quantize_row(type, wf.data(), p.w.data() + r * rb, cols);
  }
  p.x.resize(n_tok * cols);
  for (auto& v : p.x) v = normal(rng) * (uni(rng) < 0.02f ? 10.0f : 1.0f);

  kernels::Weight w{type, p.w.data(), rows, cols, nullptr};
  p.want.assign(n_tok * rows, 0.0f);
  kernels::ref::matmul(w, p.x.data(), n_tok, p.want.data());

  // Error bounds from the dequantized weights.
  const bool int8_act = kernels::matmul_kernel(type).family == KernelFamily::kInt8Panel;
  std::vector<double> dx(cols, 0.0);  // half the activation quantization step, per column (int8 types)
  p.tol.assign(n_tok * rows, 0.0);
  std::vector<float> deq(cols);
  for (int64_t r = 0; r < rows; ++r) {
    dequantize_row(type, p.w.data() + r * rb, deq.data(), cols);
    for (int64_t t = 0; t < n_tok; ++t) {
      const float* xt = p.x.data() + t * cols;
      double quant = 0.0, mag = 0.0;
      for (int64_t c0 = 0; c0 < cols; c0 += 32) {
        const int64_t c1 = std::min(cols, c0 + 32);
        double amax = 0.0;
        for (int64_t c = c0; c < c1; ++c) amax = std::max(amax, std::fabs(static_cast<double>(xt[c])));
        for (int64_t c = c0; c < c1; ++c) {
          if (int8_act) quant += std::fabs(deq[c]) * amax / 127.0 * 0.5001;
          mag += std::fabs(static_cast<double>(deq[c]) * xt[c]);
        }
      }
      p.tol[t * rows + r] = quant + 2e-5 * mag + 1e-6;
    }
  }
  return p;
}

// Runs the kernel on the current SIMD target and compares with the reference.
void check(const Problem& p, int threads, bool repack, const std::string& what) {
  ThreadPool pool(threads);
  const kernels::Weight w = repack ? kernels::prepare_weight(p.type, p.w.data(), p.rows, p.cols)
                                   : kernels::Weight{p.type, p.w.data(), p.rows, p.cols, nullptr};
  std::vector<float> y(p.n_tok * p.rows, -12345.0f);
  kernels::matmul(w, p.x.data(), p.n_tok, y.data(), pool);
  int bad = 0;
  for (size_t i = 0; i < y.size() && bad < 5; ++i) {
    const double err = std::fabs(static_cast<double>(y[i]) - p.want[i]);
    if (!(err <= p.tol[i])) {
      ++bad;
      ADD_FAILURE() << what << " threads=" << threads << (repack ? " repacked" : " file-layout") << " token "
                    << i / p.rows << " row " << i % p.rows << ": got " << y[i] << ", want " << p.want[i]
                    << " (err " << err << " > tol " << p.tol[i] << ")";
    }
  }
}


struct Shape {
  int64_t rows;
  int col_blocks;
  int64_t n_tok;
};
// Every rows value meets every col_blocks value and every n_tok value at least once.
constexpr Shape kShapes[] = {
    {1, 1, 1}, {3, 2, 2}, {17, 3, 5}, {67, 7, 17}, {1, 7, 5}, {3, 3, 1}, {17, 1, 17}, {67, 2, 2},
    {1, 2, 17}, {3, 7, 2}, {17, 7, 1}, {67, 3, 5}, {67, 1, 1},
    // GEMV (1-2 tokens) steps over the 32-column types' superblocks 2 (AVX-512), 4 (AVX2) or 8 (SSE4) at a
    // time: 19 blocks = whole steps plus a remainder on every target.
    {5, 19, 1}, {33, 19, 2},
};

void check_type(DType type) {
  uint64_t seed = static_cast<uint64_t>(type) * 1000;
  std::vector<Problem> problems;
  for (const Shape& s : kShapes)
    problems.push_back(make_problem(type, s.rows, cols_for(type, s.col_blocks), s.n_tok, ++seed));
  const bool can_repack = kernels::matmul_kernel(type).family == KernelFamily::kInt8Panel;
  for_each_target([&](const std::string& target) {
    for (const Problem& p : problems) {
      const std::string what = std::string(dtype_name(type)) + " on " + target + " rows=" +
                               std::to_string(p.rows) + " cols=" + std::to_string(p.cols) +
                               " n_tok=" + std::to_string(p.n_tok);
      for (int threads : {1, 2, 3}) {
        check(p, threads, false, what);
        if (can_repack) check(p, threads, true, what);
      }
    }
  });
}

class MatmulEveryType : public ::testing::TestWithParam<DType> {};

TEST_P(MatmulEveryType, MatchesReferenceOnEveryTargetShapeAndThreadCount) { check_type(GetParam()); }

std::vector<DType> all_types() {
  std::vector<DType> v;
  for (const auto& k : kernels::matmul_kernels()) v.push_back(k.type);
  return v;
}

INSTANTIATE_TEST_SUITE_P(Kernels, MatmulEveryType, ::testing::ValuesIn(all_types()),
                         [](const auto& param_info) { return std::string(dtype_name(param_info.param)); });

// Every supported type has a registry entry (so it is tested and benchmarked).
TEST(MatmulRegistry, CoversEverySupportedType) {
  for (uint32_t id = 0; id < 64; ++id) {
    const TypeTraits* tr = find_traits(id);
    if (!tr || !tr->supported) continue;
    bool found = false;
    for (const auto& k : kernels::matmul_kernels()) found |= k.type == tr->type;
    EXPECT_TRUE(found) << tr->name << " has no matmul kernel registry entry";
  }
}

// Prompts long enough to be split in several token blocks (the int8 and float kernels block tokens so
// that the activations stay in L2).
TEST(Matmul, LongPromptsSpanSeveralTokenBlocks) {
  for (DType type : {DType::Q4_0, DType::Q6_K, DType::F16}) {
    const Problem p = make_problem(type, 21, 8192, 100, 77);
    for_each_target([&](const std::string& target) {
      check(p, 2, true, std::string(dtype_name(type)) + " on " + target + " long prompt");
    });
  }
}

// A weight repacked for one target still gives the right answer when another target runs.
TEST(Matmul, WeightPackedForAnotherTarget) {
  const Problem p = make_problem(DType::Q4_K, 19, 512, 3, 5);
  const kernels::Weight w = kernels::prepare_weight(p.type, p.w.data(), p.rows, p.cols);
  for_each_target([&](const std::string& target) {
    ThreadPool pool(2);
    std::vector<float> y(p.n_tok * p.rows);
    kernels::matmul(w, p.x.data(), p.n_tok, y.data(), pool);
    for (size_t i = 0; i < y.size(); ++i) EXPECT_NEAR(y[i], p.want[i], p.tol[i]) << target << " output " << i;
  });
}

TEST(Matmul, PackedBytesMatchTheFileSize) {
  const int64_t rows = 256, cols = 2048;
  for (DType type : {DType::Q4_0, DType::Q8_0, DType::Q6_K, DType::Q4_K}) {
    std::vector<uint8_t> data(rows * row_bytes(type, cols));
    const kernels::Weight w = kernels::prepare_weight(type, data.data(), rows, cols);
    const double ratio = static_cast<double>(kernels::packed_bytes(w)) / static_cast<double>(data.size());
    EXPECT_GE(ratio, 1.0) << dtype_name(type);
    EXPECT_LE(ratio, 1.03) << dtype_name(type);
  }
  std::vector<uint8_t> f16(rows * cols * 2);
  EXPECT_EQ(kernels::packed_bytes(kernels::prepare_weight(DType::F16, f16.data(), rows, cols)), 0u);
}

TEST(Matmul, EmptyShapesAndBadColumns) {
  ThreadPool pool(2);
  std::vector<float> x(64, 1.0f), y(4, -1.0f);
  kernels::Weight w{DType::F32, x.data(), 2, 0, nullptr};
  kernels::matmul(w, x.data(), 2, y.data(), pool);
  EXPECT_EQ(y, std::vector<float>(4, 0.0f));
  std::vector<uint8_t> q(18 * 4);
  kernels::Weight bad{DType::Q4_0, q.data(), 1, 48, nullptr};  // 48 is not a multiple of 32
  EXPECT_THROW(kernels::matmul(bad, x.data(), 1, y.data(), pool), Error);
}

}  // namespace
}  // namespace strata::test
