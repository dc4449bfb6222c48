// KvCache::store with rope (the keys rotated on their way into the cache) against kernels::rope() on the
// keys followed by a plain store(): the stored rows must be bit-identical, for every registered KV format
// (row formats, GEAR chunks, channel transforms), with and without an f16 window, both rope pairings, a
// partial rotary width, several steps (the tail moving into the main region) and a rope offset (a KV budget's
// evicted tokens). The keys passed in stay unrotated. kernels::rope_head / rope_cos_sin against
// kernels::ref::rope (1e-6 relative: both round float products of the same double angles).
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "kernels/ops.h"
#include "kernels/kernel_test_util.h"  // tests/kernels
#include "kernels/ref/ops_ref.h"
#include "kv/kv_cache.h"
#include "kv/kv_format.h"

namespace strata::test {
namespace {


TEST(FusedRopeStore, RopeHeadMatchesReference) {
  const int head_dim = 24, n_rot = 10, n_head = 3;
  std::vector<float> inv(n_rot / 2);
  kernels::rope_inv_freq(n_rot, 10000.0, 1.0, nullptr, inv.data());
  for (const auto mode : {kernels::RopeMode::kNormal, kernels::RopeMode::kNeox}) {
    const std::vector<float> x = randn(3 * n_head * head_dim, 5);
    std::vector<float> want = x, got(x.size());
    kernels::ref::rope(want.data(), 3, n_head, head_dim, n_rot, 1000, inv.data(), mode);
    std::vector<float> cs(n_rot);
    for (int t = 0; t < 3; ++t) {
      kernels::rope_cos_sin(1000 + t, n_rot, inv.data(), cs.data());
      for (int h = 0; h < n_head; ++h)
        kernels::rope_head(x.data() + (t * n_head + h) * head_dim, got.data() + (t * n_head + h) * head_dim,
                           head_dim, n_rot, cs.data(), mode);
    }
    for (size_t i = 0; i < x.size(); ++i) ASSERT_NEAR(got[i], want[i], 1e-6 * std::fabs(want[i]) + 1e-6) << i;
    // rope() in place is the same function.
    std::vector<float> inplace = x;
    kernels::rope(inplace.data(), 3, n_head, head_dim, n_rot, 1000, inv.data(), mode);
    EXPECT_EQ(inplace, got);
  }
}

TEST(FusedRopeStore, SameBytesAsRopeThenStore) {
  const int64_t n_head = 2, head_dim = 64;
  const int n_rot = 48;  // partial rotary: the last 16 channels pass through
  std::vector<float> inv(n_rot / 2);
  kernels::rope_inv_freq(n_rot, 10000.0, 1.0, nullptr, inv.data());
  const int64_t steps[] = {5, 1, 7, 40, 1};
  int64_t total = 0;
  for (int64_t s : steps) total += s;
  int checked = 0;
  for (const kv::KvFormatInfo& f : kv::all_formats()) {
    if (head_dim % f.channel_block != 0) continue;
    for (const int32_t window : {0, 3}) {
      for (const auto mode : {kernels::RopeMode::kNormal, kernels::RopeMode::kNeox}) {
        const std::string what = std::string(f.name) + " window=" + std::to_string(window) +
                                 (mode == kernels::RopeMode::kNeox ? " neox" : " normal");
        kv::KvCacheConfig c;
        c.n_layer = 2;
        c.n_head_kv = n_head;
        c.head_dim_k = c.head_dim_v = head_dim;
        c.n_ctx = 128;
        c.format_k = c.format_v = f.format;
        c.window = window;
        kv::KvCache a(c), b(c);
        const kv::RopeParams rp{n_rot, inv.data(), mode};
        const int64_t offset = 3;  // rope position = slot + 3
        int64_t pos0 = 0;
        for (size_t si = 0; si < std::size(steps); ++si) {
          const int64_t n = steps[si];
          a.reserve(pos0 + n);
          b.reserve(pos0 + n);
          for (int64_t l = 0; l < c.n_layer; ++l) {
            const std::vector<float> k = randn(n * n_head * head_dim, 1000 * si + 10 * l + 1);
            const std::vector<float> v = randn(n * n_head * head_dim, 1000 * si + 10 * l + 2);
            std::vector<float> ka = k;
            kernels::rope(ka.data(), n, static_cast<int>(n_head), static_cast<int>(head_dim), n_rot, pos0 + offset,
                          inv.data(), mode);
            a.store(l, pos0, n, ka.data(), v.data());
            std::vector<float> kb = k;
            b.store(l, pos0, n, kb.data(), v.data(), &rp, pos0 + offset);
            ASSERT_EQ(kb, k) << what << ": store changed its input";
          }
          pos0 += n;
          a.set_used(pos0);
          b.set_used(pos0);
        }
        ASSERT_EQ(pos0, total);
        std::vector<float> ra(static_cast<size_t>(total * head_dim)), rb(ra.size());
        for (int64_t l = 0; l < c.n_layer; ++l)
          for (int kind = 0; kind < 2; ++kind)
            for (int64_t h = 0; h < n_head; ++h) {
              a.read_rows(l, kind, h, 0, total, ra.data());
              b.read_rows(l, kind, h, 0, total, rb.data());
              ASSERT_EQ(ra, rb) << what << " layer " << l << " kind " << kind << " head " << h;
            }
        ++checked;
      }
    }
  }
  EXPECT_GT(checked, 8) << "formats checked";
}

}  // namespace
}  // namespace strata::test
