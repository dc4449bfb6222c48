// The KV format registry: names, sizes, ggml bit-compatibility, round-trip error bounds on plain data, and
// the fused dot/axpy (through prepare_query / finish_output) against decode-then-compute, for every format.
#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <string>

#include "core/error.h"
#include "kv/calibration.h"
#include "test_format_helpers.h"

namespace strata::kv {
namespace {

using test::make_rows;

TEST(KvFormatRegistry, NamesParseBackAndUnknownNamesListTheFormats) {
  for (const auto& i : all_formats()) {
    EXPECT_EQ(format_from_name(i.name), i.format) << i.name;
    std::string upper(i.name);
    for (auto& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    EXPECT_EQ(format_from_name(upper), i.format) << upper;
    EXPECT_EQ(&format_info(i.format), &i);
  }
  EXPECT_EQ(parse_format("q4_0", "-ctk"), KvFormat::Q4_0);
  try {
    parse_format("q3_x", "-ctv");
    FAIL() << "expected strata::Error";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("-ctv"), std::string::npos) << m;
    EXPECT_NE(m.find("q3_x"), std::string::npos) << m;
    EXPECT_NE(m.find("gear2"), std::string::npos) << m;
  }
}

// The bytes of one row (one position, one KV head); GEAR: of one 64-token chunk.
TEST(KvFormatRegistry, UnitBytes) {
  const std::map<std::string, std::pair<size_t, size_t>> expected = {
      {"f32", {256, 512}},   {"f16", {128, 256}},   {"bf16", {128, 256}}, {"q8_0", {68, 136}},
      {"q4_0", {36, 72}},    {"q4_1", {40, 80}},    {"bfp8", {68, 136}},  {"bfp4", {36, 72}},
      {"bfp8r", {68, 136}},  {"bfp4r", {36, 72}},   {"q4h", {36, 72}},    {"bfp4h", {36, 72}},
      // 12 header + fp16 (scale, min) × 64|128 groups + 2|4-bit codes + fp16 A (64×rank) and B (rank×d)
      // + (u16, fp16) × floor(frac × 64 × d) outliers
      {"gear2", {12 + 256 + 1024 + 128 + 128 + 81 * 4, 12 + 512 + 2048 + 128 + 256 + 163 * 4}},
      {"gear4", {12 + 256 + 2048 + 20 * 4, 12 + 512 + 4096 + 40 * 4}},
  };
  ASSERT_EQ(expected.size(), all_formats().size());
  for (const auto& i : all_formats()) {
    const auto& [b64, b128] = expected.at(i.name);
    EXPECT_EQ(unit_bytes(i.format, 64), b64) << i.name;
    EXPECT_EQ(unit_bytes(i.format, 128), b128) << i.name;
    EXPECT_DOUBLE_EQ(bytes_per_token(i.format, 64), static_cast<double>(b64) / i.tokens_per_unit) << i.name;
    if (i.dtype) {
      EXPECT_EQ(unit_bytes(i.format, 128), row_bytes(*i.dtype, 128)) << i.name;
    }
  }
  // strata-tiny-256: 4 layers × 2 KV heads × head_dim 64, K and V.
  EXPECT_DOUBLE_EQ(model_bytes_per_token({KvFormat::F16, KvFormat::F16, 0}, 4, 2, 64), 2048.0);
  EXPECT_DOUBLE_EQ(model_bytes_per_token({KvFormat::Q4_0, KvFormat::Q8_0, 0}, 4, 2, 64), 8 * (36 + 68));
}

TEST(KvFormatRegistry, HeadDimThatDoesNotFitTheBlocksIsAUserError) {
  EXPECT_THROW(check_head_dim(KvFormat::Q4_0, 48), Error);  // 32-value blocks
  EXPECT_NO_THROW(check_head_dim(KvFormat::BFP4, 48));      // 16-value blocks
  EXPECT_THROW(check_head_dim(KvFormat::BFP4, 40), Error);
  EXPECT_NO_THROW(check_head_dim(KvFormat::BFP4H, 80));      // Hadamard blocks of 16 (80 = 16 × 5)
  EXPECT_NO_THROW(check_head_dim(KvFormat::Q4H, 96));        // block 32
  EXPECT_THROW(check_head_dim(KvFormat::GEAR2, 1024), Error);
  EXPECT_NO_THROW(check_head_dim(KvFormat::F16, 7));
}

// Rows of ggml formats are ggml's bytes: encoding equals quantize_row, decoding equals dequantize_row.
TEST(KvFormatRegistry, GgmlFormatsAreBitCompatibleWithTheTensorReferences) {
  const int d = 128;
  const auto x = make_rows(8, d, 7, test::spread_outliers(d));
  for (const auto& i : all_formats()) {
    if (!i.dtype) continue;
    const FormatParams p{d, nullptr};
    const size_t rb = unit_bytes(i.format, d);
    for (int t = 0; t < 8; ++t) {
      std::vector<uint8_t> mine(rb), ref(rb);
      encode_row(i.format, p, x.data() + t * d, mine.data());
      quantize_row(*i.dtype, x.data() + t * d, ref.data(), d);
      ASSERT_EQ(0, std::memcmp(mine.data(), ref.data(), rb)) << i.name;
      std::vector<float> a(d), b(d);
      decode_row(i.format, p, mine.data(), a.data());
      dequantize_row(*i.dtype, ref.data(), b.data(), d);
      ASSERT_EQ(0, std::memcmp(a.data(), b.data(), 4 * d)) << i.name;
    }
  }
}

// Relative RMS round-trip error on N(0, 1) rows with no outliers: the stated bound per format.
TEST(KvFormatRegistry, RoundTripErrorOnPlainData) {
  const std::map<std::string, double> bound = {
      {"f32", 0.0},     {"f16", 3e-4},   {"bf16", 3e-3}, {"q8_0", 6e-3}, {"q4_0", 0.11},
      {"q4_1", 0.10},   {"bfp8", 9e-3},  {"bfp4", 0.14}, {"bfp8r", 9e-3}, {"bfp4r", 0.14},
      {"q4h", 0.11},    {"bfp4h", 0.14}, {"gear2", 0.42}, {"gear4", 0.09},
  };
  for (int d : {64, 128}) {
    const int n = 128;
    const auto x = make_rows(n, d, 11);
    for (const auto& i : all_formats()) {
      test::StoredHead h(i.format, {d, nullptr}, x, n);
      const double rel = std::sqrt(test::mse(h.decoded(), x));  // the data has unit variance
      std::printf("  plain N(0,1) d=%d %-6s relative RMS error %.5f\n", d, i.name, rel);
      EXPECT_LE(rel, bound.at(i.name)) << i.name << " d=" << d;
    }
  }
}

// dot_range / axpy_range on stored rows (the query and the output transformed once) equal the dot and the
// weighted sum computed on decoded rows, for every format and several head sizes; GEAR with a partial chunk.
TEST(KvFormatRegistry, FusedDotAndAxpyMatchDecodeThenCompute) {
  for (int d : {64, 96, 128}) {
    const int n = 150;
    const auto outl = test::spread_outliers(d);
    const auto x = make_rows(n, d, 3 + d, outl, 20.f, 4);
    const auto q = make_rows(1, d, 99 + d);
    std::vector<float> w(n);
    for (int t = 0; t < n; ++t) w[t] = std::sin(0.37f * t) / n;
    KvCalibrator cal(1, 1, d);
    cal.add(0, x.data(), x.data(), n);
    const KvCalibration c = cal.finish();
    for (const auto& i : all_formats()) {
      const FormatParams p{d, i.needs_calibration() ? c.k_perm(0, 0) : nullptr};
      test::StoredHead h(i.format, p, x, n);
      const auto dec = h.decoded();
      const auto s = h.scores(q.data());
      const auto o = h.weighted_sum(w);
      double smax = 0, omax = 0;
      for (int t = 0; t < n; ++t) {
        double ref = 0;
        for (int ch = 0; ch < d; ++ch) ref += static_cast<double>(q[ch]) * dec[t * d + ch];
        smax = std::max(smax, std::fabs(ref));
        EXPECT_NEAR(s[t], ref, 2e-5 * (1 + std::fabs(ref)) + 1e-4 * d) << i.name << " d=" << d << " t=" << t;
      }
      for (int ch = 0; ch < d; ++ch) {
        double ref = 0;
        for (int t = 0; t < n; ++t) ref += static_cast<double>(w[t]) * dec[t * d + ch];
        omax = std::max(omax, std::fabs(ref));
        EXPECT_NEAR(o[ch], ref, 1e-4 * (1 + std::fabs(ref))) << i.name << " d=" << d << " ch=" << ch;
      }
      if (i.is_row_format()) {  // the logical-domain row API agrees too
        std::vector<uint8_t> row(unit_bytes(i.format, d));
        encode_row(i.format, p, x.data(), row.data());
        std::vector<float> r(d), acc(d, 0.f);
        decode_row(i.format, p, row.data(), r.data());
        double ref = 0;
        for (int ch = 0; ch < d; ++ch) ref += static_cast<double>(q[ch]) * r[ch];
        EXPECT_NEAR(dot_row(i.format, p, q.data(), row.data()), ref, 1e-4 * (1 + std::fabs(ref))) << i.name;
        axpy_row(i.format, p, 0.5f, row.data(), acc.data());
        for (int ch = 0; ch < d; ++ch) EXPECT_NEAR(acc[ch], 0.5f * r[ch], 1e-4 * (1 + std::fabs(r[ch]))) << i.name;
      }
    }
  }
}

// rows_decoder (decode_range_stored with a row stride: an attention kernel's f32 tile) equals the packed decode.
TEST(KvFormatRegistry, StridedDecodeForTileLoaders) {
  const int d = 64, n = 192, ld = d + 16;
  const auto x = make_rows(n, d, 21, test::spread_outliers(d));
  for (const auto& i : all_formats()) {
    test::StoredHead h(i.format, {d, nullptr}, x, n);
    const int64_t p0 = 10, p1 = h.n_main - 5;
    std::vector<float> packed((p1 - p0) * d), strided((p1 - p0) * ld, -7.f);
    decode_range_stored(i.format, d, h.main.data(), h.unit, p0, p1, packed.data());
    rows_decoder(i.format)(h.main.data(), h.unit, p0, p1, d, strided.data(), ld);
    for (int64_t r = 0; r < p1 - p0; ++r) {
      for (int c = 0; c < d; ++c) ASSERT_EQ(strided[r * ld + c], packed[r * d + c]) << i.name;
      for (int c = d; c < ld; ++c) ASSERT_EQ(strided[r * ld + c], -7.f) << i.name;  // padding untouched
    }
  }
}

// The transforms are orthogonal: the query's transform and the output's inverse compose to the identity.
TEST(KvFormatRegistry, TransformsAreOrthogonal) {
  const int d = 128;
  std::vector<uint16_t> perm(d);
  for (int j = 0; j < d; ++j) perm[j] = static_cast<uint16_t>((j * 37) % d);
  const auto x = make_rows(1, d, 5), y = make_rows(1, d, 6);
  for (KvFormat f : {KvFormat::BFP4R, KvFormat::Q4H, KvFormat::BFP4H}) {
    const FormatParams p{d, &perm[0]};
    std::vector<float> xt(d), yt(d), back(d);
    prepare_query(f, p, x.data(), xt.data());
    prepare_query(f, p, y.data(), yt.data());
    finish_output(f, p, xt.data(), back.data());
    double dot = 0, dot_t = 0;
    for (int c = 0; c < d; ++c) {
      EXPECT_NEAR(back[c], x[c], 1e-5) << format_name(f);
      dot += x[c] * y[c];
      dot_t += xt[c] * yt[c];
    }
    EXPECT_NEAR(dot_t, dot, 1e-4) << format_name(f);
  }
}

}  // namespace
}  // namespace strata::kv
