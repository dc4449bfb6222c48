// kernels::matmul_multi (several weights, one input, one parallel section) against one kernels::matmul
// per weight, which test_matmul.cpp checks against the scalar reference: the outputs must be bit-identical
// (the same tiles on the same quantized activations; only how the work is shared out differs). Mixed
// types in one call (int8-panel types with different activation formats, a float type, a dequantized
// type), odd row counts, 1 / 5 / 40 tokens (the private and the shared activation quantization), 1, 2 and
// 3 threads, on every SIMD target. Also: the u8-offset activation format of the Q8_0 VNNI kernel.
#include <gtest/gtest.h>
#include <hwy/targets.h>

#include <random>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "kernels/matmul.h"
#include "kernels/kernel_test_util.h"  // tests/kernels
#include "kernels/quantize_act.h"

namespace strata::test {
namespace {

TEST(MatmulMulti, SameAsOneMatmulPerWeight) {
  constexpr int64_t kCols = 768;  // 3 superblocks of the k-quants, 24 blocks of 32
  struct Spec {
    DType type;
    int64_t rows;
  };
  // Q4_0 / Q8_0 / Q4_K / Q6_K quantize the activations differently (sum scales -8, 0, 1, -32; Q8_0 with
  // the u8 offset on VNNI); F16 runs the float kernel and Q5_1 the dequantize path, outside the section.
  const Spec specs[] = {{DType::Q4_0, 67}, {DType::Q8_0, 17}, {DType::Q4_K, 3},
                        {DType::F16, 5},   {DType::Q6_K, 33}, {DType::Q5_1, 1}};
  std::vector<std::vector<uint8_t>> data;
  for (size_t i = 0; i < std::size(specs); ++i) data.push_back(random_weight(specs[i].type, specs[i].rows, kCols, i + 1));
  for (bool repack : {true, false}) {
    std::vector<kernels::Weight> ws;
    for (size_t i = 0; i < std::size(specs); ++i)
      ws.push_back(repack ? kernels::prepare_weight(specs[i].type, data[i].data(), specs[i].rows, kCols)
                          : kernels::Weight{specs[i].type, data[i].data(), specs[i].rows, kCols, nullptr});
    std::vector<const kernels::Weight*> wp;
    for (const auto& w : ws) wp.push_back(&w);
    for (int64_t n_tok : {1, 5, 40}) {
      const std::vector<float> x = randn(n_tok * kCols, 100 + n_tok);
      for_each_target([&](const std::string& target) {
        for (int threads : {1, 2, 3}) {
          ThreadPool pool(threads);
          std::vector<std::vector<float>> want, got;
          std::vector<float*> outs;
          for (const auto& w : ws) {
            want.emplace_back(n_tok * w.rows);
            kernels::matmul(w, x.data(), n_tok, want.back().data(), pool);
            got.emplace_back(n_tok * w.rows, -1.0f);
          }
          for (auto& g : got) outs.push_back(g.data());
          kernels::matmul_multi(wp, x.data(), n_tok, outs, pool);
          for (size_t i = 0; i < ws.size(); ++i)
            EXPECT_EQ(got[i], want[i]) << dtype_name(ws[i].type) << " on " << target << " threads=" << threads
                                       << " n_tok=" << n_tok << (repack ? " repacked" : " file-layout");
        }
      });
    }
  }
}

// More weights than one parallel section holds (they run as several sections).
TEST(MatmulMulti, ManyWeightsSpanSeveralSections) {
  const int64_t cols = 64;
  std::vector<std::vector<uint8_t>> data;
  std::vector<kernels::Weight> ws;
  for (int i = 0; i < 11; ++i) data.push_back(random_weight(DType::Q4_0, 3 + i, cols, 7 + i));
  for (int i = 0; i < 11; ++i) ws.push_back(kernels::prepare_weight(DType::Q4_0, data[i].data(), 3 + i, cols));
  std::vector<const kernels::Weight*> wp;
  for (const auto& w : ws) wp.push_back(&w);
  const std::vector<float> x = randn(2 * cols, 3);
  ThreadPool pool(2);
  std::vector<std::vector<float>> got, want;
  std::vector<float*> outs;
  for (const auto& w : ws) {
    want.emplace_back(2 * w.rows);
    kernels::matmul(w, x.data(), 2, want.back().data(), pool);
    got.emplace_back(2 * w.rows);
  }
  for (auto& g : got) outs.push_back(g.data());
  kernels::matmul_multi(wp, x.data(), 2, outs, pool);
  for (size_t i = 0; i < ws.size(); ++i) EXPECT_EQ(got[i], want[i]) << "weight " << i;
}

// The u8-offset activations (Q8_0 on VNNI): the same block as the signed format, every byte + 128, on
// every target, at a length of 7 blocks.
TEST(QuantizeAct, U8OffsetIsTheSignedFormatPlus128) {
  const int64_t n = 7 * 32;
  const std::vector<float> x = randn(2 * n, 11);
  for_each_target([&](const std::string& target) {
    std::vector<kernels::QAct> s(2 * n / 32), u(2 * n / 32);
    kernels::quantize_act_rows(x.data(), 2, n, s.data(), -8.0f, false);
    kernels::quantize_act_rows(x.data(), 2, n, u.data(), -8.0f, true);
    for (size_t b = 0; b < s.size(); ++b) {
      EXPECT_EQ(s[b].d, u[b].d) << target;
      EXPECT_EQ(s[b].s, u[b].s) << target;
      EXPECT_EQ(s[b].s16[0], u[b].s16[0]) << target;
      EXPECT_EQ(s[b].s16[1], u[b].s16[1]) << target;
      for (int j = 0; j < 32; ++j)
        ASSERT_EQ(static_cast<int>(static_cast<uint8_t>(u[b].q[j])), s[b].q[j] + 128) << target << " block " << b;
    }
    // The signed format against its definition: q = round(x / d), |q| <= 127, the sums premultiplied.
    for (size_t b = 0; b < s.size(); ++b) {
      int sum = 0;
      for (int j = 0; j < 32; ++j) {
        const float xv = x[b * 32 + j];
        EXPECT_LE(std::abs(s[b].q[j]), 127);
        EXPECT_NEAR(s[b].q[j] * s[b].d, xv, s[b].d * 0.5f + 1e-6f) << target;
        sum += s[b].q[j];
      }
      EXPECT_FLOAT_EQ(s[b].s, -8.0f * s[b].d * static_cast<float>(sum)) << target;
    }
  });
}

}  // namespace
}  // namespace strata::test
