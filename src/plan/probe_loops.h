// The compute loops `strata probe` times (probe_loops.cpp, one Highway variant per SIMD target; the best
// one this CPU supports runs). Each returns a value derived from everything it computed, so that the
// compiler cannot drop the work.
#pragma once
#include <cstddef>
#include <cstdint>

namespace strata::plan {

// Runs `iters` rounds of independent f32 fused multiply-adds; *flops receives the FLOPs done (2 per FMA
// lane).
float probe_fma_loop(int64_t iters, double* flops);

// Runs `iters` rounds of the int8 dot-product instruction the matmul kernels use (vpdpbusd on AVX-512
// VNNI, pmaddubsw + paddw on AVX2/AVX-512, widening multiply-adds elsewhere); *ops receives the
// operations done (2 per 8-bit multiply-add).
int32_t probe_int8_loop(int64_t iters, double* ops);

}  // namespace strata::plan
