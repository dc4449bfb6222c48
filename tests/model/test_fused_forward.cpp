// The forward pass with its fused passes (rmsnorm + quantize, SwiGLU + quantize, the wo/down products added
// in the matmul's store, the keys rotated into the cache) against the same pass with them off
// (LlamaForward::set_fused(false): the separate passes of session 3). The fused ones quantize the same
// blocks and add the same floats in the same order, so the logits agree to 1e-4 relative to the largest
// logit (measured: bit-identical; only the column-block partial sums of the float GEMM over more than 2048
// columns may add up in another order — none here. A one-ulp change anywhere can flip an int8 or f16
// rounding downstream and move logits by ~1%: that is why an output bias keeps the unfused order).
// Every token at once and one token at a time, 1/2/3 threads, f32/f16/q4h (a channel transform) KV, quantized
// and float weights, NeoX rope, partial rotary, biases. The runtime-vs-reference tests
// (test_llama_forward.cpp) run the fused pass against llama.cpp-checked references.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "core/thread_pool.h"
#include "kv/kv_cache.h"
#include "kv/kv_format.h"
#include "model/llama_forward.h"
#include "model/model.h"
#include "model/tiny_model.h"
#include "test_util.h"

namespace strata::model {
namespace {

std::vector<float> logits(const Model& m, const std::vector<int32_t>& tokens, size_t step, int threads,
                          kv::KvFormat fmt, bool fused) {
  const HParams& hp = m.hparams();
  ThreadPool pool(threads);
  kv::KvCacheConfig c{hp.n_layer, hp.n_head_kv, hp.head_dim, hp.head_dim_v, static_cast<int64_t>(tokens.size()) + 2};
  c.format_k = c.format_v = fmt;
  kv::KvCache kv(c);
  LlamaForward fwd(m, kv, pool, 64);
  fwd.set_fused(fused);
  const size_t nv = static_cast<size_t>(hp.n_vocab);
  std::vector<float> out(tokens.size() * nv);
  for (size_t b = 0; b < tokens.size(); b += step) {
    const size_t n = std::min(step, tokens.size() - b);
    fwd.eval(std::span<const int32_t>(tokens.data() + b, n), out.data() + b * nv, /*all_logits=*/true);
  }
  return out;
}

void check_fused(const Model& m, const std::string& what) {
  std::vector<int32_t> tokens(17);
  for (size_t i = 0; i < tokens.size(); ++i)
    tokens[i] = static_cast<int32_t>((i * 7919 + 13) % static_cast<size_t>(m.hparams().n_vocab));
  const kv::KvFormat fmts[] = {kv::KvFormat::F32, kv::KvFormat::F16, *kv::format_from_name("q4h")};
  for (const kv::KvFormat fmt : fmts) {
    if (m.hparams().head_dim % kv::format_info(fmt).channel_block != 0) continue;
    for (const size_t step : {tokens.size(), size_t{1}}) {
      for (const int threads : {1, 2, 3}) {
        const std::vector<float> a = logits(m, tokens, step, threads, fmt, true);
        const std::vector<float> b = logits(m, tokens, step, threads, fmt, false);
        float amax = 0.0f, dmax = 0.0f;
        for (size_t i = 0; i < a.size(); ++i) {
          amax = std::max(amax, std::fabs(b[i]));
          dmax = std::max(dmax, std::fabs(a[i] - b[i]));
        }
        EXPECT_LE(dmax, 1e-4f * amax) << what << " kv " << kv::format_name(fmt) << " step " << step << " threads "
                                      << threads;
        if (threads == 2)
          std::printf("[   INFO ] fused vs unfused, %s, kv %s, step %zu: max |Δlogit| %.3g (max |logit| %.3g)\n",
                      what.c_str(), kv::format_name(fmt), step, dmax, amax);
      }
    }
  }
}

void check_synthetic(const test::TinySpec& s, const std::string& what) {
  const std::string path = test::temp_path("fused.gguf");
  test::write_tiny_model(s, path);
  auto m = Model::load(path);
  std::remove(path.c_str());
  check_fused(*m, what);
}

TEST(FusedForward, QuantizedWeights) {
  for (const DType t : {DType::Q8_0, DType::Q4_0, DType::Q4_K}) {
    test::TinySpec s;
    s.n_embd = 256;  // k-quant superblocks
    s.n_head = 4;
    s.n_head_kv = 2;
    s.n_ff = 512;
    s.type = t;
    s.out_bias = true;
    check_synthetic(s, std::string("llama ") + dtype_name(t));
  }
}

TEST(FusedForward, FloatWeightsNeoxBiasPartialRotary) {
  test::TinySpec s;
  s.arch = "qwen2";
  s.qkv_bias = true;
  s.rope_base = 1000000;
  s.n_embd = 64;
  s.n_head = 2;
  s.n_head_kv = 1;
  s.n_ff = 96;
  s.type = DType::F16;
  check_synthetic(s, "qwen2 f16");
  test::TinySpec p;
  p.n_rot = 4;
  p.rope_freqs = true;
  check_synthetic(p, "llama f32, n_rot 4");
}

TEST(FusedForward, RealModels) {
  for (const char* rel : {"models/quant/strata-tiny-256-Q8_0.gguf", "models/quant/strata-tiny-256-Q4_K.gguf"}) {
    STRATA_REQUIRE_SHARED(path, rel);
    auto m = Model::load(path);
    check_fused(*m, rel);
  }
}

}  // namespace
}  // namespace strata::model
