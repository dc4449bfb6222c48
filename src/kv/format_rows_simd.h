// Vector (Highway, dispatched at run time) row decoders of the KV formats attention reads through the
// KvView row-decoder callback: bit-identical to the scalar codecs of format_rows.h, which are their
// reference (tests/kv/test_format_rows_simd.cpp). decode_range_stored() (format_registry.cpp) uses them for
// every format whose codec is listed here; the rest keep the scalar loop.
//
// Each decodes rows p0 .. p1-1 (row p at data + p * unit_stride) into out + (p - p0) * ld, float32.
#pragma once
#include <cstdint>

namespace strata::kv::simd {

void decode_bfp4(const uint8_t* data, int64_t unit_stride, int64_t p0, int64_t p1, int32_t head_dim, float* out,
                 int64_t ld);
void decode_bfp8(const uint8_t* data, int64_t unit_stride, int64_t p0, int64_t p1, int32_t head_dim, float* out,
                 int64_t ld);
// ggml's q4_0 layout (the codec of q4h, whose rows are q4_0 of the rotated row).
void decode_q4_0(const uint8_t* data, int64_t unit_stride, int64_t p0, int64_t p1, int32_t head_dim, float* out,
                 int64_t ld);

// The instruction set the decoders use on this CPU (e.g. "AVX3").
const char* decode_target_name();

}  // namespace strata::kv::simd
