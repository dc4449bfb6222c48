// Int8 panel kernels for the 256-column k-quant types: Q4_K, Q5_K, Q6_K (one Highway variant per target;
// the kernel itself is in gemm_int8-inl.h).
#include "kernels/simd_config.h"  // first: the target list

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/gemm_int8_kquant.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include "core/error.h"
#include "kernels/gemm_int8-inl.h"

HWY_BEFORE_NAMESPACE();
namespace strata::kernels::i8::HWY_NAMESPACE {

void Int8TilesKQuant(const detail::Int8Args& a, int64_t tile_begin, int64_t tile_end, uint8_t* scratch) {
#if HWY_TARGET == HWY_SCALAR
  STRATA_ASSERT(false, "int8 kernels are not compiled for the scalar target");
#else
  switch (a.fmt->type) {
    case DType::Q4_K: return RunTiles<KindNib4, ScaleKMin, QK_K>(a, tile_begin, tile_end, scratch);
    case DType::Q5_K: return RunTiles<KindNib5, ScaleKMin, QK_K>(a, tile_begin, tile_end, scratch);
    case DType::Q6_K: return RunTiles<KindNib6, ScaleK6, QK_K>(a, tile_begin, tile_end, scratch);
    default: STRATA_ASSERT(false, "Int8TilesKQuant: not a k-quant type");
  }
#endif
}

}  // namespace strata::kernels::i8::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace strata::kernels {
namespace i8 {
HWY_EXPORT(Int8TilesKQuant);
}  // namespace i8

namespace detail {
void int8_matmul_tiles_kquant(const Int8Args& a, int64_t tile_begin, int64_t tile_end, uint8_t* scratch) {
  HWY_DYNAMIC_DISPATCH(i8::Int8TilesKQuant)(a, tile_begin, tile_end, scratch);
}
}  // namespace detail

}  // namespace strata::kernels
#endif  // HWY_ONCE
