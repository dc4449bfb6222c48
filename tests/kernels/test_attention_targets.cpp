// Every instruction set the attention and softmax kernels were compiled for (Highway dynamic dispatch:
// AVX-512 VNNI, AVX-512, AVX2, SSE4, scalar on x86) that this CPU runs, against the float64 references.
#include "kernels/simd_config.h"  // first: the kernels' target list (AVX3_DL included)

#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "hwy/targets.h"
#include "kernels/attention.h"
#include "kernels/attention_item.h"
#include "kernels/ref/attention_ref.h"
#include "kernels/ref/softmax_ref.h"
#include "kernels/softmax.h"
#include "test_attention_util.h"

namespace strata::test {
namespace {

struct TargetScope {  // restores the real CPU's targets at the end of the test
  ~TargetScope() { hwy::SetSupportedTargetsForTest(0); }
};

TEST(AttentionTargets, EveryCompiledTargetMatchesReference) {
  TargetScope restore;
  std::vector<std::string> seen;
  for (int64_t target : hwy::SupportedAndGeneratedTargets()) {
    hwy::SetSupportedTargetsForTest(target);
    const std::string name = kernels::detail::attention_target_name();
    seen.push_back(name);
    SCOPED_TRACE("target " + name);
    ThreadPool pool(2);
    AttnCase cases[4];
    cases[0].n_q = 70; cases[0].n_kv = 70; cases[0].n_head_kv = 2; cases[0].group = 4;  // causal prefill f16
    cases[1].n_q = 9; cases[1].q_pos0 = 20; cases[1].n_kv = 40; cases[1].head_dim = 80; cases[1].causal = false;
    cases[1].type = DType::F32; cases[1].group = 3;
    cases[2].n_q = 1; cases[2].q_pos0 = 299; cases[2].n_kv = 300; cases[2].n_head_kv = 4; cases[2].group = 8;
    cases[2].type = DType::Q8_0;  // decode, GQA 8
    cases[3].n_q = 1; cases[3].q_pos0 = 99; cases[3].n_kv = 100; cases[3].head_dim = 128;  // decode, no GQA
    for (const AttnCase& c : cases) {
      SCOPED_TRACE(describe(c));
      AttnData a(c);
      std::vector<float> out(a.out_size(c));
      std::vector<double> want(out.size());
      kernels::AttentionConfig cfg;
      cfg.kv_splits = c.n_q == 1 ? 3 : 0;
      kernels::attention(a.shape, a.q.data(), c.n_q, c.q_pos0, a.k.view, a.v.view, c.n_kv, out.data(), pool, cfg,
                         nullptr);
      kernels::ref::attention_f64(a.shape, a.q.data(), c.n_q, c.q_pos0, a.k.view, a.v.view, c.n_kv, want.data());
      EXPECT_LE(max_abs_diff(out.data(), want.data(), out.size()), attention_tolerance(c.type));
    }
    auto x = random_floats(1003, 5, 3.f);
    std::vector<float> y(x.size()), yr(x.size());
    const float lse = kernels::softmax(x.data(), y.data(), 1003, 1.3f);
    EXPECT_NEAR(lse, kernels::ref::softmax(x.data(), yr.data(), 1003, 1.3f), 1e-4);
    for (size_t i = 0; i < y.size(); ++i) ASSERT_NEAR(y[i], yr[i], 1e-5 * yr[i] + 1e-30);
  }
  EXPECT_FALSE(seen.empty());
  std::string all;
  for (const auto& s : seen) all += s + " ";
  std::printf("[ targets  ] %s\n", all.c_str());
}

}  // namespace
}  // namespace strata::test
