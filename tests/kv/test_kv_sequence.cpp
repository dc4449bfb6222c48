// KvCache sequence operations (kv_sequence.cpp) in every format, with and without an f16 window:
// fork gives a cache equal bit for bit to the source truncated at the fork point, and both continue
// independently; remove/keep move rows (bytes for row formats, re-encoding for GEAR); shift re-rotates keys
// like RoPE at the new positions (against kernels::ref::rope on the original rows, per-format bounds).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "core/error.h"
#include "kernels/ref/ops_ref.h"
#include "kv_seq_helpers.h"

namespace strata::kv {
namespace {

using namespace seqtest;

// rows of one (layer, kind, head) of content(): [n][kDim] at this offset.
size_t block(int l, int kind, int h, int64_t n) { return static_cast<size_t>(((l * 2 + kind) * kHeadsKv + h) * n * kDim); }

// content() of an n-position cache with positions [p0, p1) cut out (a cache of n - (p1 - p0) positions).
std::vector<float> cut(const std::vector<float>& c, int64_t n, int64_t p0, int64_t p1) {
  std::vector<float> out;
  for (int l = 0; l < kLayers; ++l)
    for (int kind = 0; kind < 2; ++kind)
      for (int h = 0; h < kHeadsKv; ++h) {
        const float* b = c.data() + block(l, kind, h, n);
        out.insert(out.end(), b, b + p0 * kDim);
        out.insert(out.end(), b + p1 * kDim, b + n * kDim);
      }
  return out;
}

double rms(const std::vector<float>& a) {
  double s = 0;
  for (float x : a) s += static_cast<double>(x) * x;
  return std::sqrt(s / static_cast<double>(std::max<size_t>(a.size(), 1)));
}
double rms_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += (static_cast<double>(a[i]) - b[i]) * (static_cast<double>(a[i]) - b[i]);
  return std::sqrt(s / static_cast<double>(std::max<size_t>(a.size(), 1)));
}

TEST(KvSequence, ForkEqualsTheTruncatedSourceAndBothContinue) {
  const Rows r = make(300, 41), other = make(300, 42);
  for (const auto& info : all_formats())
    for (int32_t window : {0, 24})
      for (int64_t n : {187, 170, 130, 100, 1, 0}) {
        SCOPED_TRACE(std::string(info.name) + " window " + std::to_string(window) + " n " + std::to_string(n));
        KvCache src(config(info.format, window, 400)), twin(config(info.format, window, 400)),
            cut_twin(config(info.format, window, 400));
        for (KvCache* c : {&src, &twin, &cut_twin}) {
          feed(*c, r, 0, 150, 150);
          feed(*c, r, 150, 187, 1);
        }
        KvCache f = src.fork(n);
        cut_twin.truncate(n);
        EXPECT_EQ(f.n_used(), n);
        EXPECT_EQ(f.n_encoded(), cut_twin.n_encoded());
        EXPECT_EQ(first_bit_difference(content(f), content(cut_twin)), -1);
        EXPECT_EQ(first_bit_difference(content(src), content(twin)), -1);  // the source is unchanged
        // The fork continues with other rows, the source with its own: each as its twin.
        feed(f, other, n, n + 70, 7);
        feed(cut_twin, other, n, n + 70, 7);
        feed(src, r, 187, 260, 5);
        feed(twin, r, 187, 260, 5);
        EXPECT_EQ(first_bit_difference(content(f), content(cut_twin)), -1);
        EXPECT_EQ(first_bit_difference(attention_out(f, 3), attention_out(cut_twin, 3)), -1);
        EXPECT_EQ(first_bit_difference(content(src), content(twin)), -1);
      }
  KvCache c(config(KvFormat::F16, 0, 64));
  EXPECT_THROW(c.fork(1), Error);  // holds nothing
}

TEST(KvSequence, RemoveAndKeep) {
  const Rows r = make(260, 43);
  for (const auto& info : all_formats())
    for (int32_t window : {0, 24})
      for (auto [p0, p1] : {std::pair<int64_t, int64_t>{10, 40}, {150, 180}, {0, 70}, {100, 187}, {170, 175}}) {
        SCOPED_TRACE(std::string(info.name) + " window " + std::to_string(window) + " remove " + std::to_string(p0) +
                     ".." + std::to_string(p1));
        KvCache kv(config(info.format, window, 400));
        feed(kv, r, 0, 150, 150);
        feed(kv, r, 150, 187, 1);
        const std::vector<float> before = content(kv);
        kv.remove(p0, p1);
        ASSERT_EQ(kv.n_used(), 187 - (p1 - p0));
        const std::vector<float> want = cut(before, 187, p0, p1), got = content(kv);
        if (info.tokens_per_unit == 1 || p0 >= (187 - window) / 64 * 64) {  // GEAR: [lo, n) is the f16 tail
          // Row formats (and GEAR removing only tail rows): the stored bytes moved, nothing re-encoded.
          EXPECT_EQ(first_bit_difference(got, want), -1);
        } else {
          // GEAR re-encodes from the chunk holding p0: the chunks before it are untouched, the rest carries
          // one more encoding error (bounded by the format's error on these rows, relative to their size).
          const int64_t c0 = p0 / info.tokens_per_unit * info.tokens_per_unit, n = kv.n_used();
          for (int l = 0; l < kLayers; ++l)
            for (int kind = 0; kind < 2; ++kind)
              for (int h = 0; h < kHeadsKv; ++h)
                for (int64_t i = 0; i < c0 * kDim; ++i)
                  ASSERT_EQ(got[block(l, kind, h, n) + i], want[block(l, kind, h, n) + i]);
          EXPECT_LT(rms_diff(got, want), (info.format == KvFormat::GEAR2 ? 0.25 : 0.08) * rms(want));
        }
        // The cache continues: new rows land after the kept ones.
        const int64_t n = kv.n_used();
        feed(kv, r, 187, 230, 6, n);
        EXPECT_EQ(kv.n_used(), n + 43);
        const int64_t t = info.tokens_per_unit;
        EXPECT_GE(kv.n_encoded(), std::max<int64_t>(0, n + 43 - window - t));
        std::vector<float> last(kDim);
        kv.read_rows(1, 1, 1, n + 42, n + 43, last.data());  // the last V row stored: within f16/format error
        for (int c = 0; c < kDim; ++c) EXPECT_NEAR(last[c], r.V[1][(229 * kHeadsKv + 1) * kDim + c], 0.8) << c;
      }
}

TEST(KvSequence, KeepIsARange) {
  const Rows r = make(200, 44);
  KvCache kv(config(KvFormat::Q8_0, 16, 256));
  feed(kv, r, 0, 200, 50);
  const std::vector<float> before = content(kv);
  kv.keep(30, 120);
  ASSERT_EQ(kv.n_used(), 90);
  EXPECT_EQ(first_bit_difference(content(kv), cut(cut(before, 200, 120, 200), 120, 0, 30)), -1);
}

// The logical keys of the cache, rope'd back by the reference to check shift: all layers, heads.
struct Rope {
  std::vector<float> inv_freq;
  RopeParams params;
  Rope(int n_rot, kernels::RopeMode mode) : inv_freq(static_cast<size_t>(n_rot / 2)) {
    kernels::ref::rope_inv_freq(n_rot, 10000.0, 1.0, nullptr, inv_freq.data());
    params = {n_rot, inv_freq.data(), mode};
  }
};

TEST(KvSequence, ShiftRotatesKeysLikeRopeAtTheNewPositions) {
  const Rows r = make(187, 45);
  for (auto mode : {kernels::RopeMode::kNormal, kernels::RopeMode::kNeox})
    for (const auto& info : all_formats())
      for (int32_t window : {0, 24}) {
        SCOPED_TRACE(std::string(info.name) + " window " + std::to_string(window));
        const Rope rope(48, mode);  // partial rotation: channels 48..63 stay
        KvCache kv(config(info.format, window, 400));
        feed(kv, r, 0, 150, 150);
        feed(kv, r, 150, 187, 1);
        const std::vector<float> before = content(kv);
        const int64_t p0 = 40, p1 = 175, delta = -37;
        kv.shift(p0, p1, delta, rope.params);
        const std::vector<float> after = content(kv);
        // Reference: the rows before, keys in [p0, p1) rotated by the reference rope at position delta.
        std::vector<float> want = before, orig_err_ref(before.size()), orig(before.size());
        for (int l = 0; l < kLayers; ++l)
          for (int h = 0; h < kHeadsKv; ++h) {
            float* k = want.data() + block(l, 0, h, 187);
            kernels::ref::rope(k + p0 * kDim, 1, static_cast<int>(p1 - p0), kDim, 48, delta, rope.inv_freq.data(), mode);
          }
        // Values are untouched, bit for bit.
        for (int l = 0; l < kLayers; ++l)
          for (int h = 0; h < kHeadsKv; ++h)
            for (int64_t i = 0; i < 187 * kDim; ++i)
              ASSERT_EQ(after[block(l, 1, h, 187) + i], before[block(l, 1, h, 187) + i]);
        // Keys: one more rounding of the format. Bound: the format's own error on these keys (decoded vs the
        // original rows), plus f32 rounding of the rotation.
        std::vector<float> keys_before, keys_orig, keys_after, keys_want;
        for (int l = 0; l < kLayers; ++l)
          for (int h = 0; h < kHeadsKv; ++h) {
            const size_t b = block(l, 0, h, 187);
            keys_before.insert(keys_before.end(), before.begin() + b, before.begin() + b + 187 * kDim);
            keys_after.insert(keys_after.end(), after.begin() + b, after.begin() + b + 187 * kDim);
            keys_want.insert(keys_want.end(), want.begin() + b, want.begin() + b + 187 * kDim);
            for (int64_t p = 0; p < 187; ++p)
              keys_orig.insert(keys_orig.end(), r.K[l].begin() + (p * kHeadsKv + h) * kDim,
                               r.K[l].begin() + (p * kHeadsKv + h + 1) * kDim);
          }
        const double format_err = rms_diff(keys_before, keys_orig), shift_err = rms_diff(keys_after, keys_want);
        EXPECT_LT(shift_err, 2.0 * format_err + 1e-5 * rms(keys_want)) << format_err;
        if (info.format == KvFormat::F32 && window == 0) {
          EXPECT_LT(shift_err, 1e-6 * rms(keys_want));
        }
        // Rows outside [p0, p1) are untouched unless they share a GEAR chunk with shifted rows.
        if (info.tokens_per_unit == 1) {
          for (int64_t i = 0; i < p0 * kDim; ++i) ASSERT_EQ(keys_after[i], keys_before[i]);
        }
      }
  KvCache kv(config(KvFormat::F16, 0, 64));
  feed(kv, r, 0, 10, 10);
  const Rope odd(48, kernels::RopeMode::kNormal);
  EXPECT_THROW(kv.shift(0, 5, 1, RopeParams{47, odd.inv_freq.data(), kernels::RopeMode::kNormal}), Error);
  EXPECT_THROW(kv.shift(0, 5, 1, RopeParams{128, odd.inv_freq.data(), kernels::RopeMode::kNormal}), Error);
  EXPECT_THROW(kv.shift(0, 5, 1, RopeParams{48, nullptr, kernels::RopeMode::kNormal}), Error);
}

// llama.cpp's context shift: keep the first 4 positions, drop the next 60, move the rest down and shift
// their keys by -60. The result equals a cache that stored the same rows rope'd at their new positions.
TEST(KvSequence, ContextShiftEqualsStoringAtTheNewPositions) {
  const Rows raw = make(200, 46);
  const Rope rope(64, kernels::RopeMode::kNeox);
  // Keys rope'd at `pos0 + i` for row i of rows [from, to).
  const auto roped = [&](int64_t from, int64_t to, int64_t pos0) {
    Rows out{to - from, {}, {}};
    for (int l = 0; l < kLayers; ++l) {
      std::vector<float> k(raw.K[l].begin() + from * kHeadsKv * kDim, raw.K[l].begin() + to * kHeadsKv * kDim);
      kernels::ref::rope(k.data(), to - from, kHeadsKv, kDim, 64, pos0, rope.inv_freq.data(), rope.params.mode);
      out.K.push_back(k);
      out.V.emplace_back(raw.V[l].begin() + from * kHeadsKv * kDim, raw.V[l].begin() + to * kHeadsKv * kDim);
    }
    return out;
  };
  KvCache kv(config(KvFormat::F32, 0, 256)), want(config(KvFormat::F32, 0, 256));
  feed(kv, roped(0, 200, 0), 0, 200, 200);
  kv.remove(4, 64);
  kv.shift(4, 140, -60, rope.params);
  const Rows head = roped(0, 4, 0), tail = roped(64, 200, 4);
  feed(want, head, 0, 4, 4);
  feed(want, tail, 0, 136, 136, 4);
  const std::vector<float> a = content(kv), b = content(want);
  ASSERT_EQ(a.size(), b.size());
  EXPECT_LT(rms_diff(a, b), 1e-5 * rms(b));
}

}  // namespace
}  // namespace strata::kv
