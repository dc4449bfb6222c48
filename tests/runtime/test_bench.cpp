// `strata bench`: the measuring loop (runtime/bench.h) and the command's outputs (markdown, JSON, JSON lines,
// CSV) on stories260K, with the bytes per token checked against the GGUF's tensor sizes.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>
#include <tuple>

#include "core/error.h"
#include "gguf/gguf.h"
#include "model/model.h"
#include "plan/probe.h"
#include "runtime/bench.h"
#include "runtime/process.h"
#include "tensor/dtype.h"
#include "test_util.h"

namespace strata::test {
namespace {

using nlohmann::json;

// Weight bytes one decode step reads, from the file alone: every tensor, but only one row of token_embd
// when the model has its own output.weight.
uint64_t expected_decode_bytes(const gguf::File& f) {
  uint64_t total = 0;
  for (const auto& t : f.tensors()) total += t.nbytes;
  if (f.find_tensor("output.weight")) {
    const gguf::TensorInfo* te = f.find_tensor("token_embd.weight");
    total -= te->nbytes - te->nbytes / static_cast<uint64_t>(te->ne[1]);
  }
  return total;
}

// KV bytes read at `depth` with f16 K and V: 2 (K, V) * n_layer * n_head_kv * head_dim * depth * 2 bytes.
uint64_t expected_kv_bytes_f16(const gguf::File& f, int64_t depth) {
  const std::string a = f.get_string("general.architecture");
  const int64_t n_layer = f.require_int(a + ".block_count");
  const int64_t n_head = f.require_int(a + ".attention.head_count");
  const int64_t n_head_kv = f.get_int(a + ".attention.head_count_kv", n_head);
  const int64_t head_dim = f.require_int(a + ".embedding_length") / n_head;
  return static_cast<uint64_t>(2 * n_layer * n_head_kv * head_dim * depth * 2);
}

TEST(BenchLib, ModelInfoAndBytesPerTokenFollowTheTensorSizes) {
  STRATA_REQUIRE_SHARED(path, "models/stories260K.gguf");
  const gguf::File f = gguf::File::open(path);
  auto m = model::Model::load(path);
  const runtime::BenchModelInfo info = runtime::bench_model_info(*m, path);
  uint64_t size = 0, params = 0;
  for (const auto& t : f.tensors()) size += t.nbytes, params += static_cast<uint64_t>(t.n_elements());
  EXPECT_EQ(info.size_bytes, size);
  EXPECT_EQ(info.n_params, params);
  EXPECT_EQ(info.decode_weight_bytes, expected_decode_bytes(f));
  EXPECT_EQ(info.type.rfind("llama ", 0), 0u) << info.type;
  EXPECT_EQ(runtime::kv_bytes_read(m->hparams(), DType::F16, DType::F16, 100), expected_kv_bytes_f16(f, 100));
  EXPECT_EQ(runtime::kv_bytes_read(m->hparams(), DType::F32, DType::F32, 100), 2 * expected_kv_bytes_f16(f, 100));
  EXPECT_EQ(runtime::kv_bytes_read(m->hparams(), DType::F16, DType::F16, 0), 0u);
}

TEST(BenchLib, TestNames) {
  runtime::BenchTest t;
  t.n_prompt = 512;
  EXPECT_EQ(runtime::bench_test_name(t), "pp512");
  t.n_depth = 4096;
  EXPECT_EQ(runtime::bench_test_name(t), "pp512 @ d4096");
  t.n_prompt = 0, t.n_gen = 128, t.n_depth = 0;
  EXPECT_EQ(runtime::bench_test_name(t), "tg128");
}

TEST(BenchLib, SummaryIsMeanSampleSdAndMedian) {
  runtime::BenchRecord r;
  r.test.n_gen = 10;
  r.samples_ns = {1'000'000'000, 2'000'000'000, 500'000'000};  // 10, 5, 20 t/s
  runtime::bench_summarize(r);
  EXPECT_DOUBLE_EQ(r.avg_ns, 3.5e9 / 3);
  EXPECT_NEAR(r.avg_ts, 35.0 / 3, 1e-9);
  EXPECT_NEAR(r.median_ts, 10.0, 1e-9);
  const double m = 35.0 / 3;
  EXPECT_NEAR(r.stddev_ts, std::sqrt(((10 - m) * (10 - m) + (5 - m) * (5 - m) + (20 - m) * (20 - m)) / 2), 1e-9);
}

TEST(BenchLib, RunsPpAndTgAtDepth) {
  STRATA_REQUIRE_SHARED(path, "models/stories260K.gguf");
  const gguf::File f = gguf::File::open(path);
  auto m = model::Model::load(path);
  const runtime::BenchModelInfo info = runtime::bench_model_info(*m, path);
  for (int64_t depth : {0, 24}) {
    runtime::BenchTest pp;
    pp.n_prompt = 16, pp.n_depth = depth, pp.n_threads = 2, pp.repetitions = 3;
    const runtime::BenchRecord a = runtime::run_bench_test(*m, info, pp);
    ASSERT_EQ(a.samples_ns.size(), 3u);
    EXPECT_GT(a.avg_ts, 0);
    EXPECT_EQ(a.bytes_per_token, 0u);
    EXPECT_FALSE(a.test_time.empty());

    runtime::BenchTest tg = pp;
    tg.n_prompt = 0, tg.n_gen = 5;
    int reps_seen = 0;
    const runtime::BenchRecord b = runtime::run_bench_test(*m, info, tg, [&](int) { ++reps_seen; });
    EXPECT_EQ(reps_seen, 3);
    ASSERT_EQ(b.samples_ts.size(), 3u);
    for (double ts : b.samples_ts) EXPECT_GT(ts, 0);
    EXPECT_EQ(b.bytes_per_token, expected_decode_bytes(f) + expected_kv_bytes_f16(f, depth));
  }
  runtime::BenchTest both;
  both.n_prompt = 4, both.n_gen = 4;
  EXPECT_THROW(runtime::run_bench_test(*m, info, both), Error);
}

// ---- the command ----

struct BenchRun {
  int code;
  std::string out, err;
};

BenchRun bench(const std::vector<std::string>& args) {
  std::vector<std::string> a = {"bench"};
  a.insert(a.end(), args.begin(), args.end());
  Process p(strata_binary(), a);
  p.close_stdin();
  const int code = p.wait_exit(300);
  EXPECT_FALSE(p.timed_out);
  return {code, p.out_text, p.err_text};
}

// A machine profile with a known bandwidth: 10 GB/s with 1 thread, 16 GB/s with 2.
std::string write_profile() {
  plan::MachineProfile p;
  p.created = "2026-01-01T00:00:00Z";
  p.cpu_model = "test";
  p.logical_cpus = 2;
  p.simd_target = "test";
  p.dram_read_gbps = {{1, 10.0}, {2, 16.0}};
  p.fma_f32_gflops = {{1, 1.0}};
  p.int8_dot_gops = {{1, 1.0}};
  const std::string path = (std::filesystem::temp_directory_path() /
                            ("strata-bench-profile-" + std::to_string(getpid()) + ".json")).string();
  plan::save_profile(p, path);
  return path;
}

#define BENCH_PREAMBLE()                                                                           \
  if (strata_binary().empty()) GTEST_SKIP() << "the strata binary is not built (build target strata)"; \
  STRATA_REQUIRE_SHARED(model, "models/stories260K.gguf");                                         \
  const gguf::File file = gguf::File::open(model);                                                 \
  const std::string profile = write_profile();

const std::vector<std::string> kSmall = {"-p", "8", "-n", "4", "-d", "0,16", "-t", "1,2", "-r", "2"};

std::vector<std::string> with(std::vector<std::string> a, const std::vector<std::string>& more) {
  a.insert(a.end(), more.begin(), more.end());
  return a;
}

void check_record(const json& j, const gguf::File& f, const std::string& model) {
  for (const char* k : {"model_filename", "model_type", "model_size", "model_n_params", "n_batch", "n_threads",
                        "type_k", "type_v", "n_prompt", "n_gen", "n_depth", "test_time", "avg_ns", "stddev_ns",
                        "avg_ts", "stddev_ts", "samples_ns", "samples_ts", "bytes_per_token", "achieved_gbps",
                        "roofline_fraction"})
    EXPECT_TRUE(j.contains(k)) << k << " missing in " << j.dump();
  EXPECT_EQ(j["model_filename"], model);
  EXPECT_EQ(j["type_k"], "f16");
  EXPECT_EQ(j["samples_ns"].size(), 2u);
  EXPECT_EQ(j["samples_ts"].size(), 2u);
  EXPECT_GT(j["avg_ts"].get<double>(), 0);
  EXPECT_GT(j["avg_ns"].get<double>(), 0);
  const bool tg = j["n_gen"].get<int>() > 0;
  EXPECT_EQ(j["n_prompt"].get<int>(), tg ? 0 : 8);
  if (tg) {
    EXPECT_EQ(j["n_gen"].get<int>(), 4);
    const int64_t depth = j["n_depth"].get<int64_t>();
    EXPECT_EQ(j["bytes_per_token"].get<uint64_t>(), expected_decode_bytes(f) + expected_kv_bytes_f16(f, depth));
    const double gbps = j["achieved_gbps"].get<double>();
    EXPECT_NEAR(gbps, j["bytes_per_token"].get<double>() * j["avg_ts"].get<double>() / 1e9, 1e-9 * (1 + gbps));
    const double dram = j["n_threads"].get<int>() == 1 ? 10.0 : 16.0;
    EXPECT_NEAR(j["roofline_fraction"].get<double>(), gbps / dram, 1e-9);
  } else {
    EXPECT_TRUE(j["bytes_per_token"].is_null());
    EXPECT_TRUE(j["roofline_fraction"].is_null());
  }
}

// One record per test × threads × depth, each test once.
void check_records(const std::vector<json>& recs, const gguf::File& f, const std::string& model) {
  ASSERT_EQ(recs.size(), 8u);
  std::set<std::tuple<int, int, int, int>> seen;
  for (const json& j : recs) {
    check_record(j, f, model);
    seen.insert({j["n_prompt"].get<int>(), j["n_gen"].get<int>(), j["n_depth"].get<int>(), j["n_threads"].get<int>()});
  }
  EXPECT_EQ(seen.size(), 8u);
}

TEST(CliBench, JsonRecordsHaveLlamaBenchFields) {
  BENCH_PREAMBLE();
  const BenchRun r = bench(with(kSmall, {"-m", model, "-o", "json", "--profile", profile}));
  ASSERT_EQ(r.code, 0) << r.err;
  const json arr = json::parse(r.out);
  ASSERT_TRUE(arr.is_array());
  check_records(std::vector<json>(arr.begin(), arr.end()), file, model);
  EXPECT_NE(r.err.find("peak RSS"), std::string::npos) << r.err;
}

TEST(CliBench, JsonLinesOneRecordPerLine) {
  BENCH_PREAMBLE();
  const BenchRun r = bench(with(kSmall, {"-m", model, "-o", "jsonl", "--profile", profile}));
  ASSERT_EQ(r.code, 0) << r.err;
  std::vector<json> recs;
  std::istringstream in(r.out);
  for (std::string line; std::getline(in, line);) recs.push_back(json::parse(line));
  check_records(recs, file, model);
}

// Splits one CSV line whose every value is quoted.
std::vector<std::string> csv_fields(const std::string& line) {
  std::vector<std::string> out;
  std::string cur;
  bool q = false;
  for (size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (q && c == '"' && i + 1 < line.size() && line[i + 1] == '"') cur += '"', ++i;
    else if (c == '"') q = !q;
    else if (c == ',' && !q) out.push_back(cur), cur.clear();
    else cur += c;
  }
  out.push_back(cur);
  return out;
}

TEST(CliBench, CsvHasTheSameFields) {
  BENCH_PREAMBLE();
  const BenchRun r = bench(with(kSmall, {"-m", model, "-o", "csv", "--profile", profile}));
  ASSERT_EQ(r.code, 0) << r.err;
  std::istringstream in(r.out);
  std::string line;
  ASSERT_TRUE(std::getline(in, line));
  const std::vector<std::string> header = csv_fields(line);
  std::vector<json> recs;
  while (std::getline(in, line)) {
    const std::vector<std::string> v = csv_fields(line);
    ASSERT_EQ(v.size(), header.size()) << line;
    json j;
    for (size_t i = 0; i < v.size(); ++i) {
      const std::string& k = header[i];
      if (k == "samples_ns" || k == "samples_ts") {
        j[k] = json::array();
        std::istringstream s(v[i]);
        for (std::string x; std::getline(s, x, ';');) j[k].push_back(std::stod(x));
      } else if (v[i].empty()) {
        j[k] = nullptr;
      } else if (k == "model_filename" || k == "model_type" || k == "type_k" || k == "type_v" || k == "test_time" ||
                 k == "cpu_info" || k == "backends" || k == "build_commit" || k == "gpu_info") {
        j[k] = v[i];
      } else if (v[i] == "true" || v[i] == "false") {
        j[k] = v[i] == "true";
      } else {
        j[k] = json::parse(v[i]);
      }
    }
    recs.push_back(j);
  }
  check_records(recs, file, model);
}

TEST(CliBench, MarkdownTableLikeLlamaBench) {
  BENCH_PREAMBLE();
  const BenchRun r = bench(with(kSmall, {"-m", model, "--profile", profile}));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(std::regex_search(r.out, std::regex(R"(\| model +\| +size \| +params \| backend \| threads \| +test \| +t/s \|)")))
      << r.out;
  EXPECT_NE(r.out.find("roofline"), std::string::npos) << r.out;
  for (const char* test : {"pp8", "tg4", "pp8 @ d16", "tg4 @ d16"}) {
    const std::regex row(std::string(R"(\| CPU +\| +[12] \| +)") + test + R"( \| +[0-9.]+ ± [0-9.]+ \|)");
    auto begin = std::sregex_iterator(r.out.begin(), r.out.end(), row);
    EXPECT_EQ(std::distance(begin, std::sregex_iterator()), 2) << test << "\n" << r.out;
  }
  // tg rows end with MB/token, GB/s and a roofline percentage.
  EXPECT_TRUE(std::regex_search(r.out, std::regex(R"(tg4 @ d16 \| +[0-9.]+ ± [0-9.]+ \| +[0-9.]+ \| +[0-9.]+ \| +[0-9]+% \|)")))
      << r.out;
  EXPECT_NE(r.out.find("peak RSS"), std::string::npos);
}

TEST(CliBench, WithoutAProfileSaysRunProbeAndOmitsTheRoofline) {
  BENCH_PREAMBLE();
  const BenchRun r = bench({"-m", model, "-p", "0", "-n", "2", "-r", "1", "-t", "1", "--profile", "/nonexistent/p.json"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("strata probe"), std::string::npos) << r.err;
  EXPECT_EQ(r.out.find("roofline"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("tg2"), std::string::npos) << r.out;
  const BenchRun j = bench({"-m", model, "-p", "4", "-n", "0", "-r", "1", "-t", "1", "-o", "json", "-ctk", "f32",
                       "--profile", "/nonexistent/p.json"});
  ASSERT_EQ(j.code, 0) << j.err;
  const json arr = json::parse(j.out);
  ASSERT_EQ(arr.size(), 1u);
  EXPECT_EQ(arr[0]["type_k"], "f32");
  EXPECT_EQ(arr[0]["type_v"], "f16");
  EXPECT_EQ(arr[0]["n_prompt"], 4);
}

TEST(CliBench, BadFlagsSayWhatToDo) {
  BENCH_PREAMBLE();
  BenchRun r = bench({"-m", model, "-o", "xml"});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("md, json, jsonl or csv"), std::string::npos) << r.err;
  r = bench({"-m", model, "-p", "0", "-n", "0"});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("no test to run"), std::string::npos) << r.err;
  r = bench({"-m", model, "-t", "0"});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("-t"), std::string::npos) << r.err;
  r = bench({"-m", model, "-ctk", "q9"});
  EXPECT_EQ(r.code, 1);
}

}  // namespace
}  // namespace strata::test
