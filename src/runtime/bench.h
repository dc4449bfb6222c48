// The measuring loop of `strata bench` (llama-bench's tests): prompt processing (pp: one batch of p random
// tokens) and text generation (tg: n tokens fed one at a time), each after `depth` tokens already in the
// context, repeated and timed. Also the bytes a decode step reads, for the bandwidth roofline.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "kv/kv_format.h"
#include "model/model.h"
#include "tensor/dtype.h"

namespace strata::runtime {

// What llama-bench reports about a model.
struct BenchModelInfo {
  std::string filename;           // the path given
  std::string type;               // "llama 1.1B Q4_0" (architecture, parameters, dominant weight type)
  uint64_t size_bytes = 0;        // bytes of all tensors in the file (llama-bench's model_size)
  uint64_t n_params = 0;          // elements of all tensors (model_n_params)
  uint64_t decode_weight_bytes = 0;  // weight bytes one decode step reads: every tensor, except that only
                                     // one row of token_embd is read when output.weight is separate
};
BenchModelInfo bench_model_info(const model::Model& m, const std::string& path);

// KV bytes one decode step reads attending over `depth` cached positions:
// n_layer * n_head_kv * depth * (head_dim_k * size(type_k) + head_dim_v * size(type_v)).
uint64_t kv_bytes_read(const model::HParams& hp, DType type_k, DType type_v, int64_t depth);
// The same for any KV format (bfp4, gear2, ...): kv_bytes_per_token * depth, rounded.
uint64_t kv_bytes_read(const model::HParams& hp, kv::KvFormat k, kv::KvFormat v, int64_t depth);
// KV bytes per cached token of the model in these formats (K and V, all layers and KV heads).
double kv_bytes_per_token(const model::HParams& hp, kv::KvFormat k, kv::KvFormat v);

struct BenchTest {
  int64_t n_prompt = 0;  // pp test: tokens in one prompt (n_gen = 0)
  int64_t n_gen = 0;     // tg test: tokens generated one by one (n_prompt = 0)
  int64_t n_depth = 0;   // tokens in the context before the timed part (filled untimed)
  int n_threads = 1;
  int64_t n_batch = 512;
  kv::KvFormat format_k = kv::KvFormat::F16;  // -ctk / -ctv: any registered KV format
  kv::KvFormat format_v = kv::KvFormat::F16;
  int repetitions = 5;
  bool warmup = true;    // one untimed run first (faults the weights in, warms the caches)
  uint64_t seed = 1234;  // for the random tokens
};

// "pp512", "tg128", "pp512 @ d4096".
std::string bench_test_name(const BenchTest& t);

struct BenchRecord {
  BenchTest test;
  std::string test_time;            // UTC start time, ISO 8601 ("2026-11-28T10:00:00Z")
  std::vector<uint64_t> samples_ns; // one per repetition
  std::vector<double> samples_ts;   // tokens/s of each repetition
  double avg_ns = 0, stddev_ns = 0; // mean and sample standard deviation
  double avg_ts = 0, stddev_ts = 0, median_ts = 0;
  uint64_t bytes_per_token = 0;     // tg only: decode weight bytes + KV bytes at n_depth; 0 for pp
  double kv_bytes_per_token = 0;    // KV cache bytes per cached token in the test's formats (every test)
};

// Fills mean, standard deviation and median from samples_ns and the test's token count.
void bench_summarize(BenchRecord& r);

// Runs one test on a fresh session (its own thread pool and KV cache of n_depth + n_prompt + n_gen
// positions). on_rep(i) is called before repetition i (for progress; may be empty).
BenchRecord run_bench_test(const model::Model& m, const BenchModelInfo& info, const BenchTest& t,
                           const std::function<void(int rep)>& on_rep = {});

}  // namespace strata::runtime
