// The simple KV cache: layout seen through KvView, f16 conversion, commit on demand, truncate.
#include <gtest/gtest.h>

#include "core/error.h"
#include "core/fp16.h"
#include "core/reserved_memory.h"
#include "kv/kv_cache.h"

namespace strata::kv {
namespace {

TEST(ReservedMemory, CommitsOnDemand) {
  const size_t ps = ReservedMemory::page_size();
  ReservedMemory m(1ull << 36);  // 64 GiB of address space, no memory
  EXPECT_EQ(m.reserved(), 1ull << 36);
  m.commit(5 * ps + 3, 10);
  m.data()[5 * ps] = 7;  // the whole page is usable
  m.data()[6 * ps - 1] = 9;
  EXPECT_EQ(m.data()[5 * ps], 7);
  m.commit(5 * ps, ps);  // idempotent
  EXPECT_EQ(m.data()[6 * ps - 1], 9);
  m.decommit(5 * ps, ps);
  m.commit(5 * ps, ps);
  EXPECT_EQ(m.data()[5 * ps], 0);  // decommitted pages come back zeroed
  ReservedMemory moved = std::move(m);
  EXPECT_EQ(m.data(), nullptr);
  EXPECT_EQ(moved.data()[5 * ps], 0);
}

KvCacheConfig config(DType t, int64_t n_ctx) { return {2, 3, 8, 8, n_ctx, t, t}; }

TEST(KvCache, LayoutThroughViews) {
  for (DType t : {DType::F32, DType::F16}) {
    KvCache kv(config(t, 1000));
    EXPECT_EQ(kv.committed_bytes(), 0u);
    kv.reserve(5);
    EXPECT_GT(kv.committed_bytes(), 0u);
    // k, v for 5 tokens × 3 heads × 8 values: k = layer*64 + pos*8 + head*2 + i/8 (exact in f16), v = -k.
    for (int64_t l = 0; l < 2; ++l) {
      std::vector<float> k(5 * 24), v(5 * 24);
      for (int p = 0; p < 5; ++p)
        for (int h = 0; h < 3; ++h)
          for (int i = 0; i < 8; ++i) {
            k[(p * 3 + h) * 8 + i] = static_cast<float>(l * 64 + p * 8 + h * 2) + i / 8.0f;
            v[(p * 3 + h) * 8 + i] = -k[(p * 3 + h) * 8 + i];
          }
      kv.store(l, 0, 5, k.data(), v.data());
    }
    kv.set_used(5);
    for (int64_t l = 0; l < 2; ++l) {
      const kernels::KvView kview = kv.k_view(l), vview = kv.v_view(l);
      EXPECT_EQ(kview.type, t);
      EXPECT_EQ(kview.pos_stride, static_cast<int64_t>(8 * (t == DType::F32 ? 4 : 2)));
      EXPECT_GE(kview.head_stride, 1000 * kview.pos_stride);
      EXPECT_EQ(kview.head_stride % static_cast<int64_t>(ReservedMemory::page_size()), 0);
      for (int p = 0; p < 5; ++p)
        for (int h = 0; h < 3; ++h)
          for (int i = 0; i < 8; ++i) {
            auto at = [&](const kernels::KvView& vw) {
              const uint8_t* row = static_cast<const uint8_t*>(vw.data) + h * vw.head_stride + p * vw.pos_stride;
              return t == DType::F32 ? reinterpret_cast<const float*>(row)[i]
                                     : fp16_to_f32(reinterpret_cast<const uint16_t*>(row)[i]);
            };
            const float want = static_cast<float>(l * 64 + p * 8 + h * 2) + i / 8.0f;
            EXPECT_EQ(at(kview), want);
            EXPECT_EQ(at(vview), -want);
          }
    }
    kv.truncate(2);
    EXPECT_EQ(kv.n_used(), 2);
  }
}

TEST(KvCache, CommitsOnlyWhatIsUsed) {
  // A 32K context of a 7B-like shape would be 16 GiB in f16: it is only reserved.
  KvCache kv({32, 32, 128, 128, 32768, DType::F16, DType::F16});
  EXPECT_GE(kv.reserved_bytes(), 16ull << 30);
  kv.reserve(10);
  // One chunk of 64 positions is committed (32 MiB here); physical pages follow only as they are written.
  EXPECT_EQ(kv.committed_bytes(), 32ull << 20);
  kv.reserve(65);
  EXPECT_EQ(kv.committed_bytes(), 64ull << 20);
}

TEST(KvCache, Errors) {
  // A type that is no KV format (the KV tier lists its formats), and a block format whose 32-value
  // blocks do not divide head_dim 8: both refused, each naming what is wrong.
  try {
    KvCache bad(config(DType::Q4_K, 16));
    FAIL() << "q4_K is not a KV format";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("not supported"), std::string::npos) << e.what();
  }
  try {
    KvCache bad(config(DType::Q4_0, 16));
    FAIL() << "q4_0 blocks of 32 cannot hold head_dim 8";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("multiple of 32"), std::string::npos) << e.what();
  }
  KvCache kv(config(DType::F16, 16));
  try {
    kv.reserve(17);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--ctx"), std::string::npos);
  }
}

}  // namespace
}  // namespace strata::kv
