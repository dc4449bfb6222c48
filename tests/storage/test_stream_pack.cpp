// The streamed-weight compute path: the SIMD tile packer (kernels/pack_panel_simd.h) writes exactly the
// bytes of the scalar packer on every SIMD target, and a matmul on file-layout bytes (what a streamed
// weight is) equals the repacked one bit for bit.
#include <gtest/gtest.h>
#include <hwy/targets.h>

#include <algorithm>
#include <cstring>
#include <random>
#include <vector>

#include "core/thread_pool.h"
#include "kernels/int8_panel.h"
#include "kernels/matmul.h"
#include "kernels/pack_panel_simd.h"
#include "tensor/dtype.h"

namespace strata::kernels {
namespace {

struct TargetScope {
  ~TargetScope() { hwy::SetSupportedTargetsForTest(0); }
};

// Random bytes: the packer moves bits, so any bit pattern (fp16 NaNs included) must survive unchanged.
std::vector<uint8_t> random_bytes(size_t n, uint32_t seed) {
  std::vector<uint8_t> b(n);
  std::mt19937 rng(seed);
  for (auto& x : b) x = static_cast<uint8_t>(rng());
  return b;
}

TEST(StreamPack, SimdPackerMatchesScalarOnEveryTarget) {
  TargetScope scope;
  const DType types[] = {DType::Q4_0, DType::Q4_1, DType::Q8_0, DType::Q4_K, DType::Q5_0, DType::Q5_K, DType::Q6_K};
  int checked = 0;
  for (int64_t target : simd_targets()) {
    hwy::SetSupportedTargetsForTest(target);
    for (DType t : types) {
      const PanelFormat* f = panel_format(t);
      ASSERT_NE(f, nullptr);
      // One superblock, an odd number (meta padding), and a long row; strides with extra bytes between rows.
      for (int64_t n_sb : {1, 3, 9, 64}) {
        const int64_t cols = n_sb * f->sb;
        for (size_t extra : {size_t{0}, size_t{6}}) {
          const size_t stride = row_bytes(t, cols) + extra;
          int accepted = 0;
          for (int R : {4, 8, 16}) {
            const auto src = random_bytes(stride * R, static_cast<uint32_t>(n_sb * 131 + R + extra));
            const size_t tb = panel_tile_bytes(*f, R, cols);
            std::vector<uint8_t> want(tb, 0x5A), got(tb, 0xA5);  // different garbage: padding must be written
            pack_panel_tile_scalar(*f, R, src.data(), stride, R, cols, want.data());
            if (!pack_panel_tile_simd(*f, R, src.data(), stride, R, cols, got.data())) continue;
            ++accepted, ++checked;
            const size_t first = static_cast<size_t>(std::mismatch(got.begin(), got.end(), want.begin()).first - got.begin());
            ASSERT_EQ(got, want) << "first difference at byte " << first << " of " << tb << ": " << dtype_name(t) << " cols " << cols << " R " << R << " target "
                                 << hwy::TargetName(target);
            // A partial tile is left to the scalar packer.
            EXPECT_FALSE(pack_panel_tile_simd(*f, R, src.data(), stride, R - 1, cols, got.data()));
          }
          if (target != HWY_SCALAR) {
            EXPECT_EQ(accepted, 1) << hwy::TargetName(target) << ": one tile height fits";
          }
        }
      }
    }
  }
  EXPECT_GT(checked, 0) << "no SIMD target packed anything";
}

TEST(StreamPack, FileLayoutMatmulEqualsRepackedBitForBit) {
  TargetScope scope;
  ThreadPool pool(2);
  for (int64_t target : simd_targets()) {
    hwy::SetSupportedTargetsForTest(target);
    for (DType t : {DType::Q4_0, DType::Q8_0, DType::Q4_K, DType::Q5_0, DType::Q5_K, DType::Q6_K}) {
      // 37 rows: full tiles and a partial one on every target; 1 and 3 tokens (GEMV and GEMM).
      const int64_t rows = 37, cols = 512;
      std::mt19937 rng(7);
      std::normal_distribution<float> nd(0.0f, 1.0f);
      std::vector<float> wf(static_cast<size_t>(rows * cols));
      for (auto& v : wf) v = nd(rng);
      std::vector<uint8_t> wq(row_bytes(t, cols) * rows);
      for (int64_t r = 0; r < rows; ++r)
        quantize_row(t, wf.data() + r * cols, wq.data() + r * row_bytes(t, cols), cols);
      for (int64_t n_tok : {1, 3}) {
        std::vector<float> x(static_cast<size_t>(n_tok * cols));
        for (auto& v : x) v = nd(rng);
        std::vector<float> y_file(static_cast<size_t>(n_tok * rows)), y_packed(y_file.size());
        Weight file;
        file.type = t, file.data = wq.data(), file.rows = rows, file.cols = cols;
        matmul(file, x.data(), n_tok, y_file.data(), pool);
        const Weight packed = prepare_weight(t, wq.data(), rows, cols);
        matmul(packed, x.data(), n_tok, y_packed.data(), pool);
        ASSERT_EQ(0, std::memcmp(y_file.data(), y_packed.data(), y_file.size() * sizeof(float)))
            << dtype_name(t) << " n_tok " << n_tok << " target " << hwy::TargetName(target);
      }
    }
  }
}

}  // namespace
}  // namespace strata::kernels
