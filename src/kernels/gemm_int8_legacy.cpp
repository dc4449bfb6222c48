// Int8 panel kernels for the 32-column block types: Q4_0, Q4_1, Q5_0, Q8_0 (one Highway variant per
// target; the kernel itself is in gemm_int8-inl.h).
#include "kernels/simd_config.h"  // first: the target list

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/gemm_int8_legacy.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include "core/error.h"
#include "kernels/gemm_int8-inl.h"

HWY_BEFORE_NAMESPACE();
namespace strata::kernels::i8::HWY_NAMESPACE {

int Int8TileRows() {
#if HWY_TARGET == HWY_SCALAR
  return 0;
#else
  return static_cast<int>(kR);
#endif
}

// Whether this target's kernel for the type takes QAct::q offset to unsigned (quantize_act.h).
bool Int8ActU8(DType t) {
#if HWY_TARGET == HWY_SCALAR
  (void)t;
  return false;
#else
  return t == DType::Q8_0 && KindQ8::kActU8;
#endif
}

void Int8TilesLegacy(const detail::Int8Args& a, int64_t tile_begin, int64_t tile_end, uint8_t* scratch) {
#if HWY_TARGET == HWY_SCALAR
  STRATA_ASSERT(false, "int8 kernels are not compiled for the scalar target");
#else
  switch (a.fmt->type) {
    case DType::Q4_0: return RunTiles<KindNib4, ScaleD<-8>, 32>(a, tile_begin, tile_end, scratch);
    case DType::Q4_1: return RunTiles<KindNib4, ScaleDM, 32>(a, tile_begin, tile_end, scratch);
    case DType::Q5_0: return RunTiles<KindNib5, ScaleD<-16>, 32>(a, tile_begin, tile_end, scratch);
    case DType::Q8_0: return RunTiles<KindQ8, ScaleD<0>, 32>(a, tile_begin, tile_end, scratch);
    default: STRATA_ASSERT(false, "Int8TilesLegacy: not a 32-column block type");
  }
#endif
}

}  // namespace strata::kernels::i8::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace strata::kernels {
namespace i8 {
HWY_EXPORT(Int8TileRows);
HWY_EXPORT(Int8ActU8);
HWY_EXPORT(Int8TilesLegacy);
}  // namespace i8

namespace detail {
void int8_matmul_tiles_kquant(const Int8Args& a, int64_t tile_begin, int64_t tile_end, uint8_t* scratch);

int int8_tile_rows() { return HWY_DYNAMIC_DISPATCH(i8::Int8TileRows)(); }

bool int8_act_u8(DType t) { return HWY_DYNAMIC_DISPATCH(i8::Int8ActU8)(t); }

void int8_matmul_tiles(const Int8Args& a, int64_t tile_begin, int64_t tile_end, uint8_t* scratch) {
  if (a.fmt->sb == QK_K) return int8_matmul_tiles_kquant(a, tile_begin, tile_end, scratch);
  HWY_DYNAMIC_DISPATCH(i8::Int8TilesLegacy)(a, tile_begin, tile_end, scratch);
}
}  // namespace detail

}  // namespace strata::kernels
#endif  // HWY_ONCE
