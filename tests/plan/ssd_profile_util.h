// A hand-made machine profile with an SSD, for the planner's SSD-rate tests.
#pragma once

#include "plan/probe.h"

namespace strata::plan::test {

// 2 CPUs, DRAM 10/18 GB/s (1/2 threads), an O_DIRECT SSD at `seq` GB/s sequential and `stream` GB/s streaming.
inline MachineProfile profile_with_ssd(double seq, double stream) {
  MachineProfile p;
  p.cpu_model = "test";
  p.logical_cpus = 2;
  p.dram_read_gbps = {{1, 10.0}, {2, 18.0}};
  p.has_ssd = true;
  p.ssd.path = "/tmp";
  p.ssd.direct_io = true;
  p.ssd.seq_read_gbps = seq;
  p.ssd.stream_read_gbps = stream;
  p.ssd.rand4k_qd1_iops = 20000;
  return p;
}

}  // namespace strata::plan::test
