// The vector row decoders (kv/format_rows_simd.h) against the scalar codecs of kv/format_rows.h, their
// reference: bit-identical float32 rows, at odd row counts and offsets, several head dims, padded ld, rows at
// unaligned addresses, blocks with extreme exponents/scales; and decode_range_stored (the attention
// callback's path) giving the same rows for every format that uses them.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include "core/fp16.h"
#include "hwy/targets.h"
#include "kv/format_rows.h"
#include "kv/format_rows_simd.h"
#include "kv/kv_format.h"

namespace strata::kv {
namespace {

using SimdDecoder = void (*)(const uint8_t*, int64_t, int64_t, int64_t, int32_t, float*, int64_t);

// Random encoded rows: n rows of `row_bytes` (plus `pad` spare bytes each, so rows sit at odd addresses
// when pad is odd) filled by encoding N(0, sigma) values, sigma varying per row over 2^-20 .. 2^20 so that
// exponents/scales cover a wide range; a few blocks are all zero.
// Rows start at odd addresses (the vector decoders read bytes), except q4_0: its scalar codec reads ggml's
// block_q4_0 struct, whose fp16 scale needs 2-byte alignment (a cache's q4_0 rows always have it), so
// its rows are only 2-byte aligned (misaligned for any wider load).
template <class C>
constexpr size_t kOff = std::is_same_v<C, rows::Q4_0> ? 2 : 1;

template <class C>
std::vector<uint8_t> encoded_rows(int n, int d, size_t stride, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.f, 1.f);
  std::uniform_int_distribution<int> ex(-20, 20);
  std::vector<uint8_t> buf(stride * static_cast<size_t>(n) + kOff<C>);
  std::vector<float> x(static_cast<size_t>(d));
  for (int r = 0; r < n; ++r) {
    const float sigma = std::ldexp(1.f, ex(rng));
    for (auto& v : x) v = nd(rng) * sigma;
    if (r % 7 == 3) std::fill(x.begin(), x.begin() + C::kBlock, 0.f);  // an all-zero block
    C::encode(x.data(), buf.data() + kOff<C> + r * stride, d);
  }
  return buf;
}

template <class C>
void expect_same_as_scalar(SimdDecoder simd, const char* name) {
  for (int d : {16, 32, 64, 80, 96, 128, 256}) {
    if (d % C::kBlock) continue;
    const size_t rb = C::bytes(d);
    for (size_t pad : {size_t{0}, 3 * kOff<C>}) {
      const size_t stride = rb + pad;
      const int n = 37;
      const auto buf = encoded_rows<C>(n, d, stride, static_cast<uint32_t>(d * 7 + pad));
      const uint8_t* data = buf.data() + kOff<C>;
      for (auto [p0, p1] : {std::pair{0, 37}, std::pair{5, 6}, std::pair{3, 20}, std::pair{36, 37}}) {
        const int64_t ld = d + 13;  // a tile's padded rows
        std::vector<float> got(static_cast<size_t>((p1 - p0) * ld), -1.f), want(got);
        simd(data, static_cast<int64_t>(stride), p0, p1, d, got.data(), ld);
        for (int p = p0; p < p1; ++p) C::decode(data + p * stride, want.data() + (p - p0) * ld, d);
        for (size_t i = 0; i < got.size(); ++i) {
          const int64_t c = static_cast<int64_t>(i) % ld;
          if (c >= d) {
            ASSERT_EQ(got[i], -1.f) << name << ": wrote past head_dim (d=" << d << ")";
            continue;
          }
          uint32_t a, b;
          std::memcpy(&a, &got[i], 4);
          std::memcpy(&b, &want[i], 4);
          ASSERT_EQ(a, b) << name << " d=" << d << " pad=" << pad << " rows " << p0 << ".." << p1 << " element " << i
                          << ": " << got[i] << " vs scalar " << want[i];
        }
      }
    }
  }
}

struct TargetScope {  // restores the real CPU's targets at the end of the test
  ~TargetScope() { hwy::SetSupportedTargetsForTest(0); }
};

// Every instruction set compiled in and supported by this CPU (AVX3, AVX2, SSE4, ...), not only the best.
template <class C>
void expect_same_as_scalar_every_target(SimdDecoder simd, const char* name) {
  TargetScope restore;
  for (int64_t target : hwy::SupportedAndGeneratedTargets()) {
    hwy::SetSupportedTargetsForTest(target);
    SCOPED_TRACE(simd::decode_target_name());
    expect_same_as_scalar<C>(simd, name);
  }
}

TEST(KvFormatRowsSimd, Bfp4MatchesScalarCodec) {
  expect_same_as_scalar_every_target<rows::Bfp4>(simd::decode_bfp4, "bfp4");
}
TEST(KvFormatRowsSimd, Bfp8MatchesScalarCodec) {
  expect_same_as_scalar_every_target<rows::Bfp8>(simd::decode_bfp8, "bfp8");
}
TEST(KvFormatRowsSimd, Q4_0MatchesScalarCodec) {
  expect_same_as_scalar_every_target<rows::Q4_0>(simd::decode_q4_0, "q4_0");
}

// Every mantissa/nibble value, including the extremes -8/7 (bfp4) and -128/127 (bfp8), set directly.
TEST(KvFormatRowsSimd, AllMantissaValuesAndExponents) {
  const int d = 64;
  std::vector<uint8_t> b4(rows::Bfp4::bytes(d)), b8(rows::Bfp8::bytes(d));
  std::vector<float> got(d), want(d);
  for (int e : {-126, -60, -1, 0, 1, 60, 127}) {
    for (int rep = 0; rep < 16; ++rep) {
      for (int b = 0; b < d / 16; ++b) {
        b4[b * 9] = static_cast<uint8_t>(static_cast<int8_t>(e));
        for (int j = 0; j < 8; ++j) b4[b * 9 + 1 + j] = static_cast<uint8_t>((j + rep + b) * 17 + 16 * b);
        b8[b * 17] = static_cast<uint8_t>(static_cast<int8_t>(e));
        for (int j = 0; j < 16; ++j) b8[b * 17 + 1 + j] = static_cast<uint8_t>(rep * 16 + j + 64 * b);
      }
      simd::decode_bfp4(b4.data(), 0, 0, 1, d, got.data(), d);
      rows::Bfp4::decode(b4.data(), want.data(), d);
      for (int c = 0; c < d; ++c) ASSERT_EQ(got[c], want[c]) << "bfp4 e=" << e << " c=" << c;
      simd::decode_bfp8(b8.data(), 0, 0, 1, d, got.data(), d);
      rows::Bfp8::decode(b8.data(), want.data(), d);
      for (int c = 0; c < d; ++c) ASSERT_EQ(got[c], want[c]) << "bfp8 e=" << e << " c=" << c;
    }
  }
}

// decode_range_stored (what KvCache's view callback runs) equals the scalar codec row by row for every row
// format, so the switch to the vector decoders changed nothing attention sees.
TEST(KvFormatRowsSimd, DecodeRangeStoredEqualsScalarForEveryRowFormat) {
  std::mt19937 rng(11);
  std::normal_distribution<float> nd(0.f, 1.f);
  const int d = 64, n = 29;
  for (const KvFormatInfo& info : all_formats()) {
    if (!info.is_row_format()) continue;
    const size_t ub = unit_bytes(info.format, d);
    std::vector<uint8_t> buf(ub * n);
    std::vector<float> x(d);
    FormatParams fp;
    fp.head_dim = d;
    for (int r = 0; r < n; ++r) {
      for (auto& v : x) v = nd(rng);
      encode_unit(info.format, fp, x.data(), buf.data() + r * ub);
    }
    std::vector<float> got(static_cast<size_t>(n) * d), want(got.size());
    decode_range_stored(info.format, d, buf.data(), static_cast<int64_t>(ub), 0, n, got.data());
    for (int r = 0; r < n; ++r) {
      const uint8_t* src = buf.data() + r * ub;
      float* w = want.data() + r * d;
      switch (info.format) {
        case KvFormat::BFP4: case KvFormat::BFP4R: case KvFormat::BFP4H: rows::Bfp4::decode(src, w, d); break;
        case KvFormat::BFP8: case KvFormat::BFP8R: rows::Bfp8::decode(src, w, d); break;
        case KvFormat::Q4_0: case KvFormat::Q4H: rows::Q4_0::decode(src, w, d); break;
        default: decode_range_stored(info.format, d, src, 0, 0, 1, w); break;  // not switched: itself
      }
    }
    for (size_t i = 0; i < got.size(); ++i) ASSERT_EQ(got[i], want[i]) << info.name << " element " << i;
  }
}

}  // namespace
}  // namespace strata::kv
