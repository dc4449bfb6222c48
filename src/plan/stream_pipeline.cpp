#include "plan/stream_pipeline.h"

#include <algorithm>
#include <deque>

namespace strata::plan {

PipelineTime simulate_stream_pipeline(const std::vector<PipelineOp>& token_ops, int slots) {
  PipelineTime r;
  slots = std::max(1, slots);
  double cpu = 0, disk = 0;
  std::deque<double> released;  // when the slots of the last `slots` streamed ops were released, oldest first
  double token_start = 0;
  constexpr int kTokens = 3;
  for (int tok = 0; tok < kTokens; ++tok) {
    token_start = cpu;
    for (const PipelineOp& op : token_ops) {
      if (!op.streamed) {
        cpu += op.seconds;
        continue;
      }
      // The read of this op needs the slot of the op `slots` streamed ops back; the disk reads in order.
      const double slot_free = static_cast<int>(released.size()) < slots ? 0.0 : released.front();
      const double read_end = std::max(disk, slot_free) + op.read_seconds;
      disk = read_end;
      cpu = std::max(cpu, read_end) + op.seconds;
      released.push_back(cpu);
      if (static_cast<int>(released.size()) > slots) released.pop_front();
    }
  }
  r.seconds = cpu - token_start;
  for (const PipelineOp& op : token_ops) {
    r.cpu_busy += op.seconds;
    if (op.streamed) r.disk_busy += op.read_seconds;
  }
  return r;
}

double stream_pack_gbps_per_thread(DType t) {
  switch (t) {
    case DType::Q4_0: case DType::Q4_1: case DType::Q8_0: case DType::Q4_K: return 10.0;
    // SIMD too since 2026-11-29 15:00 (the scalar packer: 0.3-0.9 GB/s); measured 7.2 / 8.1 / 5.2 GB/s where
    // the types above measured 12-15 (busy machine), scaled alike.
    case DType::Q5_0: case DType::Q5_K: return 6.0;
    case DType::Q6_K: return 4.0;
    default: return 0.0;
  }
}

}  // namespace strata::plan
