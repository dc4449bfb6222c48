// Which instruction sets the matmul kernels are compiled for (Highway dynamic dispatch). Include this
// FIRST in every kernels TU that uses Highway, before hwy/foreach_target.h, so that all of them (and the
// tests, which iterate the same set) agree.
//
// x86: AVX3_DL (AVX-512 + VNNI), AVX3 (AVX-512), AVX2, SSE4 and the scalar fallback. SSE4 runs the generic
//      Highway code path (no x86 intrinsics), the same code NEON compiles, so the tests exercise it here.
// Arm: NEON and the scalar fallback (SVE is left out: the kernels assume a fixed vector length).
// The scalar fallback (HWY_SCALAR: one lane) runs the dequantize-and-dot path for every type.
#pragma once

#ifndef HWY_WANT_AVX3_DL
#define HWY_WANT_AVX3_DL 1
#endif
#ifndef HWY_DISABLED_TARGETS
#define HWY_DISABLED_TARGETS (HWY_SSSE3 | HWY_SVE | HWY_SVE2 | HWY_SVE_256 | HWY_SVE2_128 | HWY_RVV)
#endif
