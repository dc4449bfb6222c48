// The fused producers of the int8 kernels' activations (kernels/fused_ops.h) and the matmul entry that
// takes them (kernels/matmul.h: Acts, accumulate), on every SIMD target this CPU supports.
//  - rmsnorm_quant / swiglu_quant against the scalar references ref::rmsnorm_quant / ref::swiglu_quant:
//    the float rows within 1e-6 relative (rmsnorm) / 4e-6 relative (swiglu: the SIMD exp), each block's d
//    within 1e-5 relative, each q within 1 of the reference's (a value at a rounding boundary may go either
//    way), the sums exactly d * sum_scale * sum(q). And bit-identical to the two passes they replace
//    (rmsnorm() or swiglu(), then quantize_act_rows()), which test_matmul checks end to end.
//  - matmul / matmul_multi on pre-quantized activations: bit-identical to the same call on float rows
//    (the same tiles on the same blocks), with and without the float rows; with accumulate, y0 + W·x
//    bit-identical to y0 + matmul() (one float add per output); 1, 5 and 40 tokens, 1/2/3 threads.
#include <gtest/gtest.h>
#include <hwy/targets.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "kernels/fused_ops.h"
#include "kernels/kernel_test_util.h"  // tests/kernels
#include "kernels/matmul.h"
#include "kernels/matmul_internal.h"
#include "kernels/ops.h"
#include "kernels/quantize_act.h"
#include "kernels/ref/ops_ref.h"

namespace strata::test {
namespace {

using kernels::ActFormat;
using kernels::ActSlot;
using kernels::QAct;



// The three activation formats the int8 kernels use: Q4_0's (-8), Q4_K's (1), Q8_0's on VNNI (0, u8).
const ActFormat kFormats[] = {{-8.0f, false}, {1.0f, false}, {0.0f, true}};

struct Quantized {
  std::vector<std::vector<QAct>> blocks;  // per format
  std::vector<ActSlot> slots;
  explicit Quantized(int64_t n_blocks) {
    for (const ActFormat& f : kFormats) {
      blocks.emplace_back(static_cast<size_t>(n_blocks));
      slots.push_back(ActSlot{f, nullptr});
    }
    for (size_t i = 0; i < slots.size(); ++i) slots[i].q = blocks[i].data();
  }
};

void expect_blocks_match_ref(const Quantized& got, const Quantized& ref, const std::string& what) {
  for (size_t s = 0; s < got.slots.size(); ++s) {
    const ActFormat f = got.slots[s].fmt;
    for (size_t b = 0; b < got.blocks[s].size(); ++b) {
      const QAct& g = got.blocks[s][b];
      const QAct& r = ref.blocks[s][b];
      ASSERT_NEAR(g.d, r.d, 1e-5 * r.d + 1e-30) << what << " format " << s << " block " << b;
      int sum[2] = {0, 0};
      for (int i = 0; i < 32; ++i) {
        const int gq = f.u8_offset ? static_cast<uint8_t>(g.q[i]) - 128 : g.q[i];
        const int rq = f.u8_offset ? static_cast<uint8_t>(r.q[i]) - 128 : r.q[i];
        ASSERT_LE(std::abs(gq - rq), 1) << what << " format " << s << " block " << b << " value " << i;
        ASSERT_LE(std::abs(gq), 127) << what;
        sum[i / 16] += gq;
      }
      const float ds = g.d * f.sum_scale;
      EXPECT_EQ(g.s16[0], ds * static_cast<float>(sum[0])) << what;
      EXPECT_EQ(g.s16[1], ds * static_cast<float>(sum[1])) << what;
      EXPECT_EQ(g.s, ds * static_cast<float>(sum[0] + sum[1])) << what;
    }
  }
}

// The blocks quantize_act_rows() makes from float rows v, per format.
Quantized two_pass(const std::vector<float>& v, int64_t rows, int64_t n) {
  Quantized q(rows * n / 32);
  for (size_t s = 0; s < q.slots.size(); ++s)
    kernels::quantize_act_rows(v.data(), rows, n, q.blocks[s].data(), q.slots[s].fmt.sum_scale,
                               q.slots[s].fmt.u8_offset);
  return q;
}

void expect_same_blocks(const Quantized& a, const Quantized& b, const std::string& what) {
  for (size_t s = 0; s < a.blocks.size(); ++s)
    ASSERT_EQ(std::memcmp(a.blocks[s].data(), b.blocks[s].data(), a.blocks[s].size() * sizeof(QAct)), 0)
        << what << " format " << s;
}

TEST(FusedOps, RmsnormQuantMatchesReferenceAndTwoPasses) {
  for (const int64_t n : {32, 7 * 32, 45 * 32}) {
    const int64_t rows = 3;
    const std::vector<float> x = randn(rows * n, 1 + n), w = randn(n, 2 + n, 0.5f);
    Quantized want(rows * n / 32);
    std::vector<float> y_ref(static_cast<size_t>(rows * n));
    kernels::ref::rmsnorm_quant(x.data(), w.data(), y_ref.data(), rows, n, 1e-5f, want.slots);
    for_each_target([&](const std::string& target) {
      const std::string what = target + " n=" + std::to_string(n);
      Quantized got(rows * n / 32), got_noy(rows * n / 32);
      std::vector<float> y(static_cast<size_t>(rows * n), -1.0f), y2(y.size());
      kernels::rmsnorm_quant(x.data(), w.data(), y.data(), rows, n, 1e-5f, got.slots);
      kernels::rmsnorm_quant(x.data(), w.data(), nullptr, rows, n, 1e-5f, got_noy.slots);
      for (size_t i = 0; i < y.size(); ++i)
        ASSERT_NEAR(y[i], y_ref[i], 1e-6 * std::fabs(y_ref[i]) + 1e-7) << what << " value " << i;
      expect_blocks_match_ref(got, want, what);
      // The two passes it replaces, on the same target.
      kernels::rmsnorm(x.data(), w.data(), y2.data(), rows, n, 1e-5f);
      ASSERT_EQ(y, y2) << what;
      expect_same_blocks(got, two_pass(y2, rows, n), what);
      expect_same_blocks(got_noy, got, what + " without float rows");
    });
  }
}

TEST(FusedOps, SwigluQuantMatchesReferenceAndTwoPasses) {
  for (const int64_t n : {32, 5 * 32, 176 * 32}) {
    const int64_t rows = 3;
    const std::vector<float> g = randn(rows * n, 3 + n, 3.0f), u = randn(rows * n, 4 + n);
    Quantized want(rows * n / 32);
    std::vector<float> v_ref(static_cast<size_t>(rows * n));
    kernels::ref::swiglu_quant(g.data(), u.data(), v_ref.data(), rows, n, want.slots);
    for_each_target([&](const std::string& target) {
      const std::string what = target + " n=" + std::to_string(n);
      Quantized got(rows * n / 32);
      std::vector<float> v(static_cast<size_t>(rows * n)), v2(v.size());
      kernels::swiglu_quant(g.data(), u.data(), v.data(), rows, n, got.slots);
      for (size_t i = 0; i < v.size(); ++i)
        ASSERT_NEAR(v[i], v_ref[i], 4e-6 * std::fabs(v_ref[i]) + 1e-7) << what << " value " << i;
      expect_blocks_match_ref(got, want, what);
      kernels::swiglu(g.data(), u.data(), v2.data(), rows * n);
      ASSERT_EQ(v, v2) << what;
      expect_same_blocks(got, two_pass(v2, rows, n), what);
      // In place over the gate (the forward pass writes the float rows back only when a weight needs them).
      std::vector<float> g2 = g;
      Quantized got2(rows * n / 32);
      kernels::swiglu_quant(g2.data(), u.data(), g2.data(), rows, n, got2.slots);
      ASSERT_EQ(g2, v) << what << " in place";
      expect_same_blocks(got2, got, what + " in place");
    });
  }
}


TEST(FusedOps, MatmulOnQuantizedActsAndAccumulate) {
  constexpr int64_t kCols = 768;
  struct Spec {
    DType type;
    int64_t rows;
  };
  // Four int8 activation formats (Q4_0 -8, Q8_0 0 (u8 on VNNI), Q4_K 1, Q6_K -32), the float kernel (F16)
  // and the dequantize path (Q5_1).
  const Spec specs[] = {{DType::Q4_0, 67}, {DType::Q8_0, 17}, {DType::Q4_K, 3},
                        {DType::F16, 5},   {DType::Q6_K, 33}, {DType::Q5_1, 1}};
  std::vector<std::vector<uint8_t>> bytes;
  std::vector<kernels::Weight> ws;
  for (size_t i = 0; i < std::size(specs); ++i) {
    bytes.push_back(random_weight(specs[i].type, specs[i].rows, kCols, 100 + i));
    ws.push_back(kernels::prepare_weight(specs[i].type, bytes.back().data(), specs[i].rows, kCols));
  }
  for_each_target([&](const std::string& target) {
    for (const int64_t n_tok : {1, 5, 40}) {
      const std::vector<float> x = randn(n_tok * kCols, 7 + n_tok);
      for (const int threads : {1, 2, 3}) {
        ThreadPool pool(threads);
        const std::string what = target + " tokens=" + std::to_string(n_tok) + " threads=" + std::to_string(threads);
        std::vector<const kernels::Weight*> all;
        for (const auto& w : ws) all.push_back(&w);
        const kernels::ActNeeds need = kernels::act_needs(all);
        // Every format the weights want, quantized from x (what a fused producer writes).
        std::vector<std::vector<QAct>> q(static_cast<size_t>(need.n_fmt));
        std::vector<ActSlot> slots;
        for (int f = 0; f < need.n_fmt; ++f) {
          q[f].resize(static_cast<size_t>(n_tok * kCols / 32));
          kernels::quantize_act_rows(x.data(), n_tok, kCols, q[f].data(), need.fmt[f].sum_scale,
                                     need.fmt[f].u8_offset);
          slots.push_back(ActSlot{need.fmt[f], q[f].data()});
        }
        EXPECT_TRUE(need.f32) << "F16 and Q5_1 read the float rows";
        for (size_t i = 0; i < ws.size(); ++i) {
          const kernels::Weight& w = ws[i];
          const size_t ny = static_cast<size_t>(n_tok * w.rows);
          std::vector<float> want(ny), got(ny, -7.0f), got_q(ny, -7.0f);
          kernels::matmul(w, x.data(), n_tok, want.data(), pool);
          kernels::matmul(w, kernels::Acts{x.data(), slots}, n_tok, got.data(), pool);
          EXPECT_EQ(got, want) << what << " weight " << i;
          const kernels::Weight* one[] = {&w};
          if (!kernels::act_needs(one).f32) {  // int8 weights run without the float rows
            kernels::matmul(w, kernels::Acts{nullptr, slots}, n_tok, got_q.data(), pool);
            EXPECT_EQ(got_q, want) << what << " weight " << i << " without float rows";
          }
          // Accumulate: y = y0 + W·x.
          const std::vector<float> y0 = randn(static_cast<int64_t>(ny), 9 + i);
          std::vector<float> acc = y0;
          kernels::matmul(w, kernels::Acts{x.data(), slots}, n_tok, acc.data(), pool, /*accumulate=*/true);
          for (size_t k = 0; k < ny; ++k) ASSERT_EQ(acc[k], y0[k] + want[k]) << what << " weight " << i << " out " << k;
        }
        // matmul_multi on the pre-quantized activations: the same as one matmul per weight.
        std::vector<std::vector<float>> want(ws.size()), got(ws.size());
        std::vector<float*> outs;
        for (size_t i = 0; i < ws.size(); ++i) {
          want[i].resize(static_cast<size_t>(n_tok * ws[i].rows));
          got[i].assign(want[i].size(), -3.0f);
          kernels::matmul(ws[i], x.data(), n_tok, want[i].data(), pool);
          outs.push_back(got[i].data());
        }
        kernels::matmul_multi(all, kernels::Acts{x.data(), slots}, n_tok, outs, pool);
        for (size_t i = 0; i < ws.size(); ++i) EXPECT_EQ(got[i], want[i]) << what << " multi, weight " << i;
      }
    }
  });
}

TEST(FusedOps, ActNeedsListsEachFormatOnce) {
  const std::vector<uint8_t> a = random_weight(DType::Q4_0, 4, 64, 1), b = random_weight(DType::Q4_K, 4, 256, 2);
  const kernels::Weight wa = kernels::prepare_weight(DType::Q4_0, a.data(), 4, 64);
  const kernels::Weight wb = kernels::prepare_weight(DType::Q4_K, b.data(), 4, 256);
  const kernels::Weight* ws[] = {&wa, &wa, &wb};
  for_each_target([&](const std::string& target) {
    const kernels::ActNeeds n = kernels::act_needs(ws);
    if (kernels::detail::int8_tile_rows() == 0) {  // no int8 kernels on this target: all float rows
      EXPECT_EQ(n.n_fmt, 0) << target;
      EXPECT_TRUE(n.f32) << target;
      return;
    }
    ASSERT_EQ(n.n_fmt, 2) << target;
    EXPECT_EQ(n.fmt[0], (ActFormat{-8.0f, false})) << target;
    EXPECT_EQ(n.fmt[1], (ActFormat{1.0f, false})) << target;
    EXPECT_FALSE(n.f32) << target;
  });
}

}  // namespace
}  // namespace strata::test
