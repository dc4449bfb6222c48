// `strata bench attn`: the I/O model of attention. For each configuration (sequence length N, head dim d,
// tile sizes, cache size M) it runs the attention kernel on random Q/K/V, reports the bytes the algorithm
// moved between memory and the cores as it counts them (kernels::AttentionIoStats), beside the lower bound
// of "The I/O Complexity of Attention" (Saha & Ye, 2024: Θ(N²d²/M) for M >= d²; kernels::
// attention_io_bound_bytes, constant factor 1), and the measured time (median of the repetitions), for
// prefill (N causal queries over N keys) and decode (one query over N keys). Also draws the plot of time
// and bytes against N as a standalone SVG file (no plotting library).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "kernels/attention.h"
#include "tensor/dtype.h"

namespace strata::runtime {

struct AttnBenchCase {
  int64_t n = 1024;      // sequence length N: keys (and, for prefill, causal queries)
  bool decode = false;   // false: prefill (N queries at positions 0..N-1); true: one query at position N-1
  int32_t head_dim = 64;
  int32_t n_head = 1, n_head_kv = 1;
  DType kv_type = DType::F16;  // f32, f16, q8_0 or q4_0 (decoded natively by the kernel)
  // A strata KV format by name (bfp4, bfp8, q4h, bfp4h, gear2, ...; kv/kv_format.h) read through the row-decoder
  // callback as kv::KvCache serves it; empty: kv_type. Formats needing calibration (bfp4r, bfp8r) are refused.
  std::string kv_format;
  // Distinct K/V caches (like a model's layers) the repetitions cycle through, so that with enough of them
  // the K/V bytes come from DRAM and not from a cache warmed by the previous repetition.
  int32_t layers = 1;
  // false: kv::KvCache's layout, each KV head's positions one after another ([head][pos]); true: a
  // token's heads together ([pos][head], rows strided by n_head_kv rows; native formats only).
  bool token_major = false;
  int32_t kv_tile = 0, q_tile = 0;  // 0: chosen from the cache sizes (kernels::resolve_attention_config)
  int64_t cache_bytes = 0;  // M of the bound, in bytes (0: the L2 of this CPU)
  int reps = 5;
  uint64_t seed = 7;
};

struct AttnBenchRecord {
  AttnBenchCase c;
  int threads = 1;
  int64_t cache_bytes = 0;         // M used for the bound (resolved)
  kernels::AttentionIoStats io;    // the bytes the algorithm counted, and the tiling it resolved
  double bound_bytes = 0;          // attn_bound_bytes(c, cache_bytes)
  std::vector<double> samples_s;   // seconds per repetition
  double median_s = 0;
  double median_cpu_s = 0;         // CPU seconds of the process per repetition (median; every pool thread)
  double flops = 0;                // 4·d per (query head, attended key) pair: QKᵀ and PV
};

// Bytes per element of the KV format, as the bound counts them (q8_0: 34/32).
double kv_elem_bytes(DType t);
// Bytes per element of the case's format (kv_format when set, else kv_type).
double kv_elem_bytes(const AttnBenchCase& c);
// The name of the case's KV format, for tables.
std::string kv_format_label(const AttnBenchCase& c);

// The yardstick: n_head_kv × kernels::attention_io_bound_bytes(group·n_q, N, d, M, bytes per KV element),
// with n_q = N (prefill) or 1 (decode) and group = n_head / n_head_kv (the query heads sharing one K/V head
// form one problem with group·n_q queries). Element sizes are the KV format's (rounded up to whole bytes for the
// cache capacity M / elem_bytes).
double attn_bound_bytes(const AttnBenchCase& c, int64_t cache_bytes);

// Multiply-adds of the case: 4·d·n_head·(attended (query, key) pairs); causal prefill attends N(N+1)/2.
double attn_flops(const AttnBenchCase& c);

// The median of the values (the mean of the middle two for an even count; 0 when empty).
double median_of(std::vector<double> v);

// Runs one case on the pool: one untimed warm-up, then c.reps timed calls.
AttnBenchRecord run_attn_bench(const AttnBenchCase& c, ThreadPool& pool);

// Output: a markdown table (one row per record) and a JSON array (one object per record).
std::string attn_markdown(const std::vector<AttnBenchRecord>& rows);
std::string attn_json(const std::vector<AttnBenchRecord>& rows);

// ---- the plot ----

// A log-scale axis mapping [lo, hi] (values > 0) to pixels [p0, p1] (p1 < p0 for a y axis).
struct LogAxis {
  double lo = 1, hi = 10, p0 = 0, p1 = 1;
  double map(double v) const;
};

struct PlotSeries {
  std::string name, color;
  bool dashed = false;
  std::vector<std::pair<double, double>> pts;  // (x, y), x and y > 0
};

// One panel of a log-log plot: axes with power-of-10 (y) and power-of-2 (x) ticks, one polyline per series,
// a legend. Returns SVG elements (to be placed in an <svg> by attn_svg) inside the box (x, y, w, h).
std::string svg_panel(const std::string& title, const std::string& x_label, const std::string& y_label,
                      const std::vector<PlotSeries>& series, double x, double y, double w, double h);

// The whole figure: time vs N (prefill, decode) and bytes vs N (counted, bound; prefill, decode).
std::string attn_svg(const std::vector<AttnBenchRecord>& rows, const std::string& caption);

}  // namespace strata::runtime
