#include <gtest/gtest.h>
#include <cstdio>
#include "model/golden_util.h"
#include "model/model.h"
#include "model/reference_forward.h"
#include "runtime/session.h"
namespace strata {
TEST(Scratch, RefVsLlamaCpp) {
  for (const char* t : {"Q8_0", "Q4_0", "Q5_1", "Q4_K", "Q6_K", "Q2_K", "TQ2_0"}) {
    auto m = model::Model::load(test::shared_file(std::string("models/quant/strata-tiny-256-") + t + ".gguf"));
    for (const char* p : {"once", "lily"}) {
      const std::string ref = std::string("reference/llamacpp/strata-tiny-256-") + t + "." + p;
      auto g = test::read_llamacpp_ids(test::shared_file(ref + ".ids.txt"));
      auto gl = test::read_f32(test::shared_file(ref + ".logits.f32"));
      std::vector<int32_t> fed = g.prompt; fed.insert(fed.end(), g.gen.begin(), g.gen.end());
      model::ReferenceForward rf(*m, 64);
      std::vector<float> out;
      for (size_t i = 0; i < fed.size(); ++i) { auto l = rf.forward(fed[i], i); out.insert(out.end(), l.begin(), l.end()); }
      for (DType kv : {DType::F32, DType::F16}) {
        runtime::SessionConfig c; c.n_ctx = 64; c.type_k = c.type_v = kv;
        runtime::Session s(*m, c); std::vector<float> rt; s.append_all_logits(fed, rt);
        std::printf("%s %s kv=%s: ref-llama %.4f  rt-llama %.4f  rt-ref %.4f\n", t, p, dtype_name(kv),
          test::max_abs_diff(out, gl), test::max_abs_diff(rt, gl), test::max_abs_diff(rt, out));
      }
    }
  }
}
}
