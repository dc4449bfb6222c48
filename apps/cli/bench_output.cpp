#include "cli/bench_output.h"

#include <fmt/format.h>

#include <fstream>
#include <nlohmann/json.hpp>

namespace strata::cli {
namespace {

using ojson = nlohmann::ordered_json;

std::string cpu_info() {
  static const std::string info = [] {
    std::ifstream f("/proc/cpuinfo");
    std::string line;
    while (std::getline(f, line)) {
      if (line.rfind("model name", 0) == 0) {
        const size_t c = line.find(':');
        if (c != std::string::npos) return line.substr(line.find_first_not_of(" \t", c + 1));
      }
    }
    return std::string("unknown");
  }();
  return info;
}

// llama-bench's record fields (those that apply to a CPU engine), then strata's own.
ojson record_json(const BenchRow& r) {
  const runtime::BenchRecord& rec = r.rec;
  const runtime::BenchTest& t = rec.test;
  ojson j;
  j["build_commit"] = "strata";
  j["build_number"] = 0;
  j["cpu_info"] = cpu_info();
  j["gpu_info"] = "";
  j["backends"] = "CPU";
  j["model_filename"] = r.model->filename;
  j["model_type"] = r.model->type;
  j["model_size"] = r.model->size_bytes;
  j["model_n_params"] = r.model->n_params;
  j["n_batch"] = t.n_batch;
  j["n_ubatch"] = t.n_batch;
  j["n_threads"] = t.n_threads;
  j["type_k"] = kv::format_name(t.format_k);  // ggml's names for ggml's types, strata's for its own formats
  j["type_v"] = kv::format_name(t.format_v);
  j["n_gpu_layers"] = 0;
  j["use_mmap"] = true;
  j["n_prompt"] = t.n_prompt;
  j["n_gen"] = t.n_gen;
  j["n_depth"] = t.n_depth;
  j["test_time"] = rec.test_time;
  j["avg_ns"] = static_cast<uint64_t>(rec.avg_ns);
  j["stddev_ns"] = static_cast<uint64_t>(rec.stddev_ns);
  j["avg_ts"] = rec.avg_ts;
  j["stddev_ts"] = rec.stddev_ts;
  j["samples_ns"] = rec.samples_ns;
  j["samples_ts"] = rec.samples_ts;
  j["median_ts"] = rec.median_ts;
  j["kv_bytes_per_token"] = rec.kv_bytes_per_token;
  j["bytes_per_token"] = r.is_tg() ? ojson(rec.bytes_per_token) : ojson(nullptr);
  j["achieved_gbps"] = r.is_tg() ? ojson(r.achieved_gbps()) : ojson(nullptr);
  j["dram_gbps"] = r.dram_gbps > 0 ? ojson(r.dram_gbps) : ojson(nullptr);
  const auto frac = r.roofline_fraction();
  j["roofline_fraction"] = frac ? ojson(*frac) : ojson(nullptr);
  return j;
}

std::string csv_value(const ojson& v) {
  std::string s;
  if (v.is_null()) s = "";
  else if (v.is_string()) s = v.get<std::string>();
  else if (v.is_array()) {
    for (size_t i = 0; i < v.size(); ++i) {
      if (i) s += ';';
      s += v[i].dump();
    }
  } else {
    s = v.dump();
  }
  std::string q = "\"";
  for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}

std::string size_label(uint64_t b) {
  const double d = static_cast<double>(b);
  if (d >= 1024.0 * 1024 * 1024) return fmt::format("{:.2f} GiB", d / (1024.0 * 1024 * 1024));
  if (d >= 1024.0 * 1024) return fmt::format("{:.2f} MiB", d / (1024.0 * 1024));
  return fmt::format("{:.2f} KiB", d / 1024.0);
}

std::string params_label(uint64_t n) {
  const double d = static_cast<double>(n);
  if (d >= 1e9) return fmt::format("{:.2f} B", d / 1e9);
  if (d >= 1e6) return fmt::format("{:.2f} M", d / 1e6);
  return fmt::format("{:.2f} K", d / 1e3);
}

}  // namespace

std::optional<BenchFormat> parse_bench_format(const std::string& s) {
  if (s == "md") return BenchFormat::kMarkdown;
  if (s == "json") return BenchFormat::kJson;
  if (s == "jsonl") return BenchFormat::kJsonl;
  if (s == "csv") return BenchFormat::kCsv;
  return std::nullopt;
}

double BenchRow::achieved_gbps() const {
  return is_tg() ? static_cast<double>(rec.bytes_per_token) * rec.avg_ts / 1e9 : 0;
}

std::optional<double> BenchRow::roofline_fraction() const {
  if (!is_tg() || dram_gbps <= 0) return std::nullopt;
  return achieved_gbps() / dram_gbps;
}

BenchPrinter::BenchPrinter(BenchFormat f, std::FILE* out, bool roofline, bool kv_types)
    : f_(f), out_(out), roofline_(roofline), kv_types_(kv_types) {}

void BenchPrinter::markdown_header() {
  std::string h = fmt::format("| {:<24} | {:>10} | {:>9} | {:<7} | {:>7} |", "model", "size", "params", "backend",
                              "threads");
  std::string s = fmt::format("| {:-<24} | {:->10} | {:->9} | {:-<7} | {:->7} |", "", "", "", "", "");
  if (kv_types_) {
    h += fmt::format(" {:<6} | {:<6} | {:>8} |", "type_k", "type_v", "KV B/tok");
    s += fmt::format(" {:-<6} | {:-<6} | {:->8} |", "", "", "");
  }
  h += fmt::format(" {:>15} | {:>20} | {:>9} | {:>6} |", "test", "t/s", "MB/token", "GB/s");
  s += fmt::format(" {:->15} | {:->20} | {:->9} | {:->6} |", "", "", "", "");
  if (roofline_) {
    h += fmt::format(" {:>8} |", "roofline");
    s += fmt::format(" {:->8} |", "");
  }
  fmt::print(out_, "{}\n{}\n", h, s);
}

void BenchPrinter::row(const BenchRow& r) {
  const ojson j = record_json(r);
  switch (f_) {
    case BenchFormat::kMarkdown: {
      if (rows_ == 0) markdown_header();
      const runtime::BenchTest& t = r.rec.test;
      std::string line = fmt::format("| {:<24} | {:>10} | {:>9} | {:<7} | {:>7} |", r.model->type,
                                     size_label(r.model->size_bytes), params_label(r.model->n_params), "CPU",
                                     t.n_threads);
      if (kv_types_)
        line += fmt::format(" {:<6} | {:<6} | {:>8.0f} |", kv::format_name(t.format_k), kv::format_name(t.format_v),
                            r.rec.kv_bytes_per_token);
      const std::string ts = fmt::format("{:.2f} ± {:.2f}", r.rec.avg_ts, r.rec.stddev_ts);
      const std::string mb = r.is_tg() ? fmt::format("{:.1f}", static_cast<double>(r.rec.bytes_per_token) / 1e6) : "";
      const std::string gbps = r.is_tg() ? fmt::format("{:.1f}", r.achieved_gbps()) : "";
      // fmt pads by code points; "±" is one.
      line += fmt::format(" {:>15} | {:>20} | {:>9} | {:>6} |", runtime::bench_test_name(t), ts, mb, gbps);
      if (roofline_) {
        const auto frac = r.roofline_fraction();
        line += fmt::format(" {:>8} |", frac ? fmt::format("{:.0f}%", *frac * 100) : "");
      }
      fmt::print(out_, "{}\n", line);
      break;
    }
    case BenchFormat::kJson:
      fmt::print(out_, "{}{}", rows_ == 0 ? "[\n" : ",\n", j.dump(2));
      break;
    case BenchFormat::kJsonl:
      fmt::print(out_, "{}\n", j.dump());
      break;
    case BenchFormat::kCsv: {
      if (rows_ == 0) {
        std::string h;
        for (auto it = j.begin(); it != j.end(); ++it) {
          if (!h.empty()) h += ',';
          h += it.key();
        }
        fmt::print(out_, "{}\n", h);
      }
      std::string line;
      for (auto it = j.begin(); it != j.end(); ++it) {
        if (it != j.begin()) line += ',';
        line += csv_value(it.value());
      }
      fmt::print(out_, "{}\n", line);
      break;
    }
  }
  ++rows_;
  std::fflush(out_);
}

void BenchPrinter::finish() {
  if (f_ == BenchFormat::kJson) fmt::print(out_, "{}", rows_ == 0 ? "[]\n" : "\n]\n");
  std::fflush(out_);
}

}  // namespace strata::cli
