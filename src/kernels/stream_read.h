// A streaming read-only pass over memory: the yardstick of memory-bound kernels. `strata probe` times it
// to measure DRAM read bandwidth, and bench_matmul runs it beside the GEMVs.
#pragma once
#include <cstddef>
#include <cstdint>

namespace strata::kernels {

// Sum of the 64-bit words of p[0..bytes) (bytes a multiple of 8), with the widest loads of the SIMD
// target Highway chose and several independent accumulators.
uint64_t stream_read_sum(const void* p, size_t bytes);

}  // namespace strata::kernels
