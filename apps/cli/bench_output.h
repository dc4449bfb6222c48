// `strata bench` output: llama-bench's markdown table, JSON array, JSON lines and CSV, with strata's
// bandwidth columns (bytes read per token, achieved GB/s, fraction of the probed DRAM roofline).
#pragma once
#include <cstdio>
#include <optional>
#include <string>

#include "cli/command.h"
#include "runtime/bench.h"

namespace strata::cli {

enum class BenchFormat { kMarkdown, kJson, kJsonl, kCsv };
std::optional<BenchFormat> parse_bench_format(const std::string& s);  // "md", "json", "jsonl", "csv"

struct BenchRow {
  const runtime::BenchModelInfo* model = nullptr;
  runtime::BenchRecord rec;
  double dram_gbps = 0;  // probed read bandwidth at rec.test.n_threads; 0: no profile

  bool is_tg() const { return rec.test.n_gen > 0; }
  double achieved_gbps() const;                   // tg: bytes_per_token * avg_ts / 1e9
  std::optional<double> roofline_fraction() const;  // tg with a profile: achieved / probed
};

// Prints rows as they are measured (the JSON array is opened by the first row and closed by finish()).
class BenchPrinter {
 public:
  // roofline: a profile was found (markdown shows the roofline column). kv_types: show type_k/type_v
  // and KV bytes per token columns in markdown (when not the default f16; JSON and CSV always carry them).
  BenchPrinter(BenchFormat f, std::FILE* out, bool roofline, bool kv_types);
  void row(const BenchRow& r);
  void finish();

 private:
  void markdown_header();
  BenchFormat f_;
  std::FILE* out_;
  bool roofline_, kv_types_;
  int rows_ = 0;
};

// `strata bench attn` (cmd_bench_attn.cpp): adds its options to the subcommand, returns its run function.
RunFn setup_bench_attn(CLI::App& sub);

}  // namespace strata::cli
