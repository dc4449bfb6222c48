// GEAR chunks: the low-rank and sparse parts reduce the base quantization's error as designed, outliers come
// back exact, the group axis follows the data, and the fused per-chunk operations agree with decoding on
// any sub-range of tokens.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>

#include "core/error.h"
#include "kv/format_gear.h"
#include "test_format_helpers.h"

namespace strata::kv {
namespace {

using test::make_rows;

// K-like chunk: outlier channels (×8, biased), a rank-4 component shared across tokens, and a few spikes.
std::vector<float> k_like_chunk(int C, int d, uint32_t seed) {
  auto x = make_rows(C, d, seed, test::spread_outliers(d), 8.f, 4);
  for (int i = 0; i < 12; ++i) x[(i * 997 + seed) % (C * d)] = (i % 2 ? 40.f : -40.f);
  return x;
}

double chunk_mse(const std::vector<float>& x, int d, const GearParams& p) {
  std::vector<uint8_t> buf(gear_chunk_bytes(d, p));
  gear_encode_chunk(x.data(), buf.data(), d, p);
  std::vector<float> y(x.size());
  gear_decode_chunk(buf.data(), d, 0, p.chunk, y.data());
  return test::mse(y, x);
}

TEST(KvFormatGear, LowRankAndSparsePartsReduceTheBaseError) {
  for (int bits : {2, 4})
    for (int d : {64, 128}) {
      const int C = 64;
      double base = 0, sparse = 0, lowrank = 0, full = 0;
      for (uint32_t seed = 1; seed <= 4; ++seed) {
        const auto x = k_like_chunk(C, d, seed * 31 + d);
        base += chunk_mse(x, d, {bits, C, 0, 0.f, 3});
        sparse += chunk_mse(x, d, {bits, C, 0, 0.02f, 3});
        lowrank += chunk_mse(x, d, {bits, C, 4, 0.f, 3});
        full += chunk_mse(x, d, {bits, C, 4, 0.02f, 3});
      }
      std::printf("  GEAR %d-bit d=%d MSE: base %.5f, +sparse 2%% %.5f, +rank 4 %.5f, both %.5f\n", bits, d,
                  base / 4, sparse / 4, lowrank / 4, full / 4);
      EXPECT_LT(full, base) << bits << " " << d;
      EXPECT_LT(sparse, 0.5 * base) << bits << " " << d;  // the spikes no longer stretch their groups
      EXPECT_LT(lowrank, 0.97 * base) << bits << " " << d;
      EXPECT_LT(full, 0.97 * sparse) << bits << " " << d;
    }
}

TEST(KvFormatGear, PresetBeatsItsBaseAlone) {
  for (const auto f : {KvFormat::GEAR2, KvFormat::GEAR4}) {
    const GearParams p = format_info(f).gear;
    const auto x = k_like_chunk(p.chunk, 64, 77);
    EXPECT_LT(chunk_mse(x, 64, p), chunk_mse(x, 64, {p.bits, p.chunk, 0, 0.f, 3})) << format_name(f);
  }
}

TEST(KvFormatGear, OutliersComeBackExactAndNothingElseMoves) {
  const int C = 64, d = 64;
  auto x = make_rows(C, d, 4);
  x[5 * d + 7] = 1000.f;
  x[40 * d + 63] = -333.f;
  const GearParams p{2, C, 2, 0.01f, 3};
  std::vector<uint8_t> buf(gear_chunk_bytes(d, p));
  gear_encode_chunk(x.data(), buf.data(), d, p);
  std::vector<float> y(x.size());
  gear_decode_chunk(buf.data(), d, 0, C, y.data());
  EXPECT_NEAR(y[5 * d + 7], 1000.f, 0.5f);  // fp16 correction: within half an fp16 step of the base
  EXPECT_NEAR(y[40 * d + 63], -333.f, 0.25f);
  EXPECT_LT(test::mse(y, x), 0.2);  // the spikes did not ruin their groups
}

TEST(KvFormatGear, GroupAxisFollowsTheData) {
  const int C = 64, d = 64;
  const GearParams p{4, C, 0, 0.f, 3};
  std::vector<uint8_t> buf(gear_chunk_bytes(d, p));
  // Outlier channels: per channel.
  const auto k = make_rows(C, d, 1, test::spread_outliers(d), 20.f);
  gear_encode_chunk(k.data(), buf.data(), d, p);
  EXPECT_EQ(buf[1], 0);
  // Tokens of very different magnitudes: per token.
  auto v = make_rows(C, d, 2);
  for (int t = 0; t < C; ++t)
    for (int c = 0; c < d; ++c) v[t * d + c] *= std::pow(10.f, static_cast<float>(t % 4) - 1.5f);
  gear_encode_chunk(v.data(), buf.data(), d, p);
  EXPECT_EQ(buf[1], 1);
}

TEST(KvFormatGear, SubRangesAgreeWithTheWholeChunkAndEncodingIsDeterministic) {
  const int d = 128;
  for (const auto f : {KvFormat::GEAR2, KvFormat::GEAR4}) {
    const GearParams p = format_info(f).gear;
    const auto x = k_like_chunk(p.chunk, d, 5);
    std::vector<uint8_t> buf(gear_chunk_bytes(d, p)), again(buf.size());
    gear_encode_chunk(x.data(), buf.data(), d, p);
    gear_encode_chunk(x.data(), again.data(), d, p);
    EXPECT_EQ(buf, again);
    const auto q = make_rows(1, d, 6);
    std::vector<float> all(p.chunk), dec(static_cast<size_t>(p.chunk) * d);
    gear_dot_chunk(q.data(), buf.data(), d, 0, p.chunk, all.data());
    gear_decode_chunk(buf.data(), d, 0, p.chunk, dec.data());
    for (auto [t0, t1] : {std::pair{0, 1}, {5, 37}, {63, 64}, {10, 10}, {0, 64}}) {
      std::vector<float> part(t1 - t0 + 1), rows(static_cast<size_t>(t1 - t0 + 1) * d);
      gear_dot_chunk(q.data(), buf.data(), d, t0, t1, part.data());
      gear_decode_chunk(buf.data(), d, t0, t1, rows.data());
      for (int t = t0; t < t1; ++t) {
        EXPECT_NEAR(part[t - t0], all[t], 1e-3f * (1 + std::fabs(all[t]))) << t;
        for (int c = 0; c < d; ++c) ASSERT_EQ(rows[(t - t0) * d + c], dec[t * d + c]);
      }
      std::vector<float> w(t1 - t0 + 1, 0.f), acc(d, 0.f);
      for (int t = t0; t < t1; ++t) w[t - t0] = 0.1f * (t % 7) - 0.3f;
      gear_axpy_chunk(w.data(), buf.data(), d, t0, t1, acc.data());
      for (int c = 0; c < d; ++c) {
        double ref = 0;
        for (int t = t0; t < t1; ++t) ref += w[t - t0] * dec[t * d + c];
        EXPECT_NEAR(acc[c], ref, 1e-3 * (1 + std::fabs(ref))) << c;
      }
    }
  }
}

TEST(KvFormatGear, DegenerateChunks) {
  const int C = 64, d = 64;
  const GearParams p{2, C, 2, 0.01f, 3};
  std::vector<uint8_t> buf(gear_chunk_bytes(d, p));
  std::vector<float> y(C * d);
  const std::vector<float> zeros(C * d, 0.f);
  gear_encode_chunk(zeros.data(), buf.data(), d, p);
  gear_decode_chunk(buf.data(), d, 0, C, y.data());
  for (float v : y) ASSERT_EQ(v, 0.f);
  const std::vector<float> constant(C * d, 2.5f);
  gear_encode_chunk(constant.data(), buf.data(), d, p);
  gear_decode_chunk(buf.data(), d, 0, C, y.data());
  for (float v : y) ASSERT_NEAR(v, 2.5f, 1e-3f);
}

TEST(KvFormatGear, ParametersThatCannotBeStoredAreUserErrors) {
  EXPECT_THROW(check_gear(64, {3, 64, 1, 0.01f, 3}), Error);      // bits
  EXPECT_THROW(check_gear(64, {2, 2048, 1, 0.01f, 3}), Error);    // chunk × head_dim > 65536
  EXPECT_THROW(check_gear(64, {2, 64, 65, 0.01f, 3}), Error);     // rank
  EXPECT_THROW(check_gear(64, {2, 64, 1, 0.9f, 3}), Error);       // outliers
  EXPECT_THROW(check_gear(40, {2, 64, 1, 0.01f, 3}), Error);      // head_dim
  EXPECT_NO_THROW(check_gear(80, {4, 32, 0, 0.f, 1}));
  EXPECT_EQ(gear_token_group(80), 16);
  EXPECT_EQ(gear_token_group(128), 64);
}

}  // namespace
}  // namespace strata::kv
