// The decode step of a streamed plan, as the streamer runs it (storage/weight_streamer.h): a
// discrete-event simulation of one token's matrices in forward order, the disk reading streamed tensors
// back to back into a ring of `slots` buffers (a read starts when the disk is free and a slot is; a slot
// frees when its matmul ends), the CPU multiplying in order (a streamed matmul starts when its bytes are
// in and the previous matmul ended). The token time is the steady state (the third token), so the
// read-ahead that crosses from one token into the next counts.
//
// This replaces max(t_dram, t_ssd, t_compute) for streamed plans: that assumed the disk overlaps with
// all compute, but with a ring of 2 the disk stops after 2 tensors of read-ahead while the CPU works on
// resident layers, so a plan with few streamed tensors interleaved with many resident ones is closer to
// the sum. And a streamed matrix costs more CPU than a resident one: its tiles are packed from the file
// layout on every call (kernels/pack_panel_simd.h).
#pragma once
#include <vector>

#include "tensor/dtype.h"

namespace strata::plan {

struct PipelineOp {
  double seconds = 0;       // CPU time of the op (matmul; attention etc. folded into a streamed = false op)
  bool streamed = false;
  double read_seconds = 0;  // disk time of a streamed op's bytes
};

struct PipelineTime {
  double seconds = 0;       // one token, steady state
  double disk_busy = 0;     // seconds the disk reads per token
  double cpu_busy = 0;      // seconds the CPU works per token
};

PipelineTime simulate_stream_pipeline(const std::vector<PipelineOp>& token_ops, int slots);

// Bytes per second one thread packs file-layout tiles of a type into int8 panels (what a streamed matmul
// adds over a resident one), measured with bench/bench_stream_gemv.cpp (pack/*): the SIMD packer's types
// ~9-13 GB/s (Q5_0/Q5_K/Q6_K: SIMD since 2026-11-29 15:00, 4-6: more bit work per byte). 0 for
// types used in their file layout (float types and the dequantize path: a streamed matmul costs what a
// resident one does).
double stream_pack_gbps_per_thread(DType t);

// Bytes per second the streamer checksums a tensor it read (storage::checksum: memory-bound, the bytes
// just landed in DRAM). It runs on a reader thread; the planner counts it as CPU time shared by the
// compute threads. Since 2026-11-29 15:00 a read of a large tensor checks one of its 8 windows (all of
// them once the file changed): kStreamChecksumShare of its bytes (it was every byte: 7-16% of the CPU).
inline constexpr double kStreamChecksumGbps = 8.0;
inline constexpr double kStreamChecksumShare = 1.0 / 8;

}  // namespace strata::plan
