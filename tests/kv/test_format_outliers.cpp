// Outlier channels: seeded rows where 4 of the channels are 20× larger (and biased), each in a different
// block. Channel reordering (calibrated) and the Hadamard rotation must cut the round-trip error of plain
// block formats by the stated ratios; the calibration must find the outlier channels and survive a file.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <map>
#include <string>

#include "core/error.h"
#include "kv/calibration.h"
#include "kv/format_hadamard.h"
#include "test_format_helpers.h"

namespace strata::kv {
namespace {

using test::make_rows;

struct Errors {
  double all = 0, normal = 0;  // MSE over all channels / over the non-outlier channels
};

std::map<std::string, Errors> measure(int d, int n) {
  const auto outl = test::spread_outliers(d);
  const auto x = make_rows(n, d, 100 + d, outl);
  // Calibrated on other rows of the same distribution (as offline calibration would be).
  const auto calib_rows = make_rows(256, d, 200 + d, outl);
  KvCalibrator cal(1, 1, d);
  cal.add(0, calib_rows.data(), calib_rows.data(), 256);
  const KvCalibration c = cal.finish();
  std::map<std::string, Errors> e;
  for (const auto& i : all_formats()) {
    const FormatParams p{d, i.needs_calibration() ? c.k_perm(0, 0) : nullptr};
    test::StoredHead h(i.format, p, x, n);
    const auto dec = h.decoded();
    e[i.name] = {test::mse(dec, x), test::mse_except(dec, x, d, outl)};
    std::printf("  outliers d=%d %-6s MSE %9.5f  normal-channel MSE %9.5f  (%.2f B/token)\n", d, i.name,
                e[i.name].all, e[i.name].normal, bytes_per_token(i.format, d));
  }
  return e;
}

// Every format's round-trip MSE on the outlier data (values have variance ~1 on the 60 or 124 normal
// channels and ~ 100 + 400 on the 4 outlier channels): the stated bound per format, ~1.4× the measured
// worst of d=64 and d=128.
TEST(KvFormatOutliers, RoundTripErrorBoundPerFormat) {
  const std::map<std::string, double> bound = {
      {"f32", 0.0},   {"f16", 1e-4},  {"bf16", 3e-4}, {"q8_0", 0.006}, {"q4_0", 0.8},  {"q4_1", 0.56},
      {"bfp8", 0.008}, {"bfp4", 0.8}, {"bfp8r", 0.005}, {"bfp4r", 0.6}, {"q4h", 0.22},  {"bfp4h", 0.35},
      {"gear2", 0.42}, {"gear4", 0.12},
  };
  ASSERT_EQ(bound.size(), all_formats().size());
  for (int d : {64, 128}) {
    const auto e = measure(d, 256);
    for (const auto& [name, b] : bound) EXPECT_LE(e.at(name).all, b) << name << " d=" << d;
  }
}

// The ratios asserted here hold with margin on these seeds (see the printed table; measured ratios in
// the comments, d=64 / d=128).
TEST(KvFormatOutliers, ReorderingAndRotationReduceBlockFormatError) {
  for (int d : {64, 128}) {
    const auto e = measure(d, 256);
    // Reordering puts the 4 outlier channels into one block of 16 (with the 12 largest normal channels):
    // the other 3 (d=64) or 7 (d=128) blocks are clean. The normal channels gain (2.5× / 2.6×); the outlier
    // channels' own error, which dominates the total, stays (1.36× / 1.40× overall).
    EXPECT_LT(e.at("bfp4r").normal * 2, e.at("bfp4").normal) << d;
    EXPECT_LT(e.at("bfp4r").all * 1.2, e.at("bfp4").all) << d;
    EXPECT_LT(e.at("bfp8r").normal * 1.6, e.at("bfp8").normal) << d;  // 2.0× / 1.9×
    // The rotation spreads the outliers' energy over all channels: 3.7× / 4.3× and 2.3× / 1.95×.
    EXPECT_LT(e.at("q4h").all * 3, e.at("q4_0").all) << d;
    EXPECT_LT(e.at("bfp4h").all * 1.6, e.at("bfp4").all) << d;
    // GEAR's per-channel grouping isolates outlier channels without calibration: 7× / 12× (both ~4.5 bits).
    EXPECT_LT(e.at("gear4").all * 5, e.at("q4_0").all) << d;
    // Sanity: plain 4-bit formats really suffer from the outliers.
    EXPECT_GT(e.at("q4_0").normal, 0.2) << d;
  }
}

TEST(KvFormatOutliers, CalibrationGroupsTheOutlierChannelsFirst) {
  const int d = 64;
  const auto outl = test::spread_outliers(d);
  const auto rows = make_rows(200, d, 5, outl);
  ChannelStats s(d);
  for (int t = 0; t < 200; ++t) s.add(rows.data() + t * d);
  const auto p = permutation_by_magnitude(s);
  ASSERT_TRUE(is_permutation(p));
  std::vector<int> first(p.begin(), p.begin() + 4);
  std::sort(first.begin(), first.end());
  EXPECT_EQ(first, outl);
  for (int j = 1; j < d; ++j) EXPECT_GE(s.rms(p[j - 1]), s.rms(p[j]));
}

TEST(KvFormatOutliers, UncalibratedReorderedFormatIsThePlainOne) {
  const int d = 64;
  const auto x = make_rows(4, d, 8, test::spread_outliers(d));
  std::vector<uint8_t> a(unit_bytes(KvFormat::BFP4, d)), b(a.size());
  for (int t = 0; t < 4; ++t) {
    encode_row(KvFormat::BFP4, {d, nullptr}, x.data() + t * d, a.data());
    encode_row(KvFormat::BFP4R, {d, nullptr}, x.data() + t * d, b.data());
    EXPECT_EQ(a, b);
  }
}

TEST(KvFormatOutliers, CalibrationFileRoundTripAndErrors) {
  const int L = 2, H = 3, d = 32;
  KvCalibrator cal(L, H, d);
  for (int l = 0; l < L; ++l) {
    const auto k = make_rows(10 * H, d, 1 + l, {3, 17}), v = make_rows(10 * H, d, 9 + l, {30});
    cal.add(l, k.data(), v.data(), 10);
  }
  EXPECT_EQ(cal.tokens(1), 10);
  const KvCalibration c = cal.finish();
  EXPECT_EQ(c.k_perm(1, 2)[0] == 3 || c.k_perm(1, 2)[0] == 17, true);
  EXPECT_EQ(c.v_perm(0, 1)[0], 30);
  const auto path = (std::filesystem::temp_directory_path() / "strata_test_kvcal.bin").string();
  c.save(path);
  const KvCalibration r = KvCalibration::load(path);
  EXPECT_EQ(r.perm_k, c.perm_k);
  EXPECT_EQ(r.perm_v, c.perm_v);
  EXPECT_NO_THROW(r.check_shape(L, H, d));
  EXPECT_THROW(r.check_shape(L, H, 64), Error);
  // A corrupted permutation and a truncated file are user errors.
  {
    FILE* f = std::fopen(path.c_str(), "r+b");
    ASSERT_NE(f, nullptr);
    std::fseek(f, 8 + 12, SEEK_SET);
    const uint16_t bad[2] = {5, 5};
    std::fwrite(bad, 2, 2, f);
    std::fclose(f);
  }
  EXPECT_THROW(KvCalibration::load(path), Error);
  std::filesystem::resize_file(path, 30);
  EXPECT_THROW(KvCalibration::load(path), Error);
  std::filesystem::remove(path);
  EXPECT_THROW(KvCalibration::load(path), Error);
}

TEST(KvFormatOutliers, HadamardIsItsOwnInverseUpToSigns) {
  for (int d : {16, 48, 64, 96, 128, 256}) {
    EXPECT_EQ(hadamard_block(d) & (hadamard_block(d) - 1), 0) << d;
    EXPECT_EQ(d % hadamard_block(d), 0) << d;
    const auto x = make_rows(1, d, d);
    std::vector<float> y(d), z(d);
    hadamard_forward(x.data(), y.data(), d);
    hadamard_inverse(y.data(), z.data(), d);
    double nx = 0, ny = 0;
    for (int c = 0; c < d; ++c) {
      EXPECT_NEAR(z[c], x[c], 1e-5) << d;
      nx += x[c] * x[c];
      ny += y[c] * y[c];
    }
    EXPECT_NEAR(ny, nx, 1e-4 * nx) << d;  // orthogonal: norms kept
    hadamard_forward(y.data(), y.data(), d);  // in place
  }
}

}  // namespace
}  // namespace strata::kv
