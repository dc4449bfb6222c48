#include "runtime/bench.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <ctime>
#include <map>
#include <random>

#include "core/error.h"
#include "runtime/session.h"

namespace strata::runtime {
namespace {

// "260K", "1.1B", "6.7B": llama-bench style parameter label.
std::string params_label(uint64_t n) {
  const double d = static_cast<double>(n);
  if (d >= 1e9) return fmt::format("{:.1f}B", d / 1e9);
  if (d >= 1e6) return fmt::format("{:.0f}M", d / 1e6);
  return fmt::format("{:.0f}K", d / 1e3);
}

std::string upper(std::string s) {
  for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

std::string utc_now() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace

BenchModelInfo bench_model_info(const model::Model& m, const std::string& path) {
  BenchModelInfo info;
  info.filename = path;
  std::map<uint32_t, uint64_t> bytes_by_type;  // of the 2-D matrices, to name the dominant type
  for (const gguf::TensorInfo& t : m.file().tensors()) {
    info.size_bytes += t.nbytes;
    info.n_params += static_cast<uint64_t>(t.n_elements());
    if (t.ne.size() >= 2 && t.ne[1] > 1) bytes_by_type[t.type] += t.nbytes;
  }
  info.decode_weight_bytes = info.size_bytes;
  const model::Weights& w = m.weights();
  if (!w.tied_output) {
    // token_embd is only looked up: one row per token.
    const gguf::TensorInfo* te = m.file().find_tensor("token_embd.weight");
    STRATA_ASSERT(te != nullptr, "a loaded model has token_embd.weight");
    info.decode_weight_bytes -= te->nbytes - w.tok_embd.row_bytes;
  }
  uint32_t dominant = 0;
  uint64_t most = 0;
  for (const auto& [type, b] : bytes_by_type)
    if (b > most) most = b, dominant = type;
  const TypeTraits* tr = find_traits(dominant);
  info.type = fmt::format("{} {} {}", m.hparams().arch_name, params_label(info.n_params),
                          tr ? upper(tr->name) : std::string("?"));
  return info;
}

uint64_t kv_bytes_read(const model::HParams& hp, DType type_k, DType type_v, int64_t depth) {
  const uint64_t per_pos = row_bytes(type_k, hp.head_dim) + row_bytes(type_v, hp.head_dim_v);
  return static_cast<uint64_t>(hp.n_layer) * static_cast<uint64_t>(hp.n_head_kv) *
         static_cast<uint64_t>(std::max<int64_t>(depth, 0)) * per_pos;
}

double kv_bytes_per_token(const model::HParams& hp, kv::KvFormat k, kv::KvFormat v) {
  return (kv::bytes_per_token(k, static_cast<int32_t>(hp.head_dim)) +
          kv::bytes_per_token(v, static_cast<int32_t>(hp.head_dim_v))) *
         static_cast<double>(hp.n_layer) * static_cast<double>(hp.n_head_kv);
}

uint64_t kv_bytes_read(const model::HParams& hp, kv::KvFormat k, kv::KvFormat v, int64_t depth) {
  return static_cast<uint64_t>(std::llround(kv_bytes_per_token(hp, k, v) * static_cast<double>(std::max<int64_t>(depth, 0))));
}

std::string bench_test_name(const BenchTest& t) {
  std::string s = t.n_prompt > 0 ? fmt::format("pp{}", t.n_prompt) : fmt::format("tg{}", t.n_gen);
  if (t.n_depth > 0) s += fmt::format(" @ d{}", t.n_depth);
  return s;
}

void bench_summarize(BenchRecord& r) {
  const size_t n = r.samples_ns.size();
  const double tokens = static_cast<double>(r.test.n_prompt + r.test.n_gen);
  r.samples_ts.clear();
  for (uint64_t ns : r.samples_ns) r.samples_ts.push_back(tokens * 1e9 / static_cast<double>(std::max<uint64_t>(ns, 1)));
  auto mean_sd = [n](auto&& get, double& mean, double& sd) {
    mean = sd = 0;
    if (n == 0) return;
    for (size_t i = 0; i < n; ++i) mean += get(i);
    mean /= static_cast<double>(n);
    if (n < 2) return;
    double ss = 0;
    for (size_t i = 0; i < n; ++i) ss += (get(i) - mean) * (get(i) - mean);
    sd = std::sqrt(ss / static_cast<double>(n - 1));  // sample standard deviation, as llama-bench
  };
  mean_sd([&](size_t i) { return static_cast<double>(r.samples_ns[i]); }, r.avg_ns, r.stddev_ns);
  mean_sd([&](size_t i) { return r.samples_ts[i]; }, r.avg_ts, r.stddev_ts);
  std::vector<double> ts = r.samples_ts;
  std::sort(ts.begin(), ts.end());
  r.median_ts = n == 0 ? 0 : (n % 2 ? ts[n / 2] : 0.5 * (ts[n / 2 - 1] + ts[n / 2]));
}

BenchRecord run_bench_test(const model::Model& m, const BenchModelInfo& info, const BenchTest& t,
                           const std::function<void(int rep)>& on_rep) {
  if ((t.n_prompt > 0) == (t.n_gen > 0)) fail("bench: a test is either pp (n_prompt > 0) or tg (n_gen > 0)");
  if (t.n_depth < 0) fail("bench: depth {} is negative", t.n_depth);
  if (t.repetitions < 1) fail("bench: -r {}: need at least one repetition", t.repetitions);

  SessionConfig cfg;
  cfg.n_ctx = t.n_depth + t.n_prompt + t.n_gen;
  cfg.n_threads = t.n_threads;
  cfg.format_k = t.format_k;
  cfg.format_v = t.format_v;
  cfg.n_batch = t.n_batch;
  Session s(m, cfg);

  std::mt19937_64 rng(t.seed);
  const int32_t n_vocab = static_cast<int32_t>(m.hparams().n_vocab);
  std::uniform_int_distribution<int32_t> dist(0, n_vocab - 1);
  auto random_tokens = [&](int64_t n) {
    std::vector<int32_t> v(static_cast<size_t>(n));
    for (int32_t& x : v) x = dist(rng);
    return v;
  };

  BenchRecord r;
  r.test = t;
  r.test_time = utc_now();
  r.kv_bytes_per_token = kv_bytes_per_token(m.hparams(), t.format_k, t.format_v);
  if (t.n_gen > 0) r.bytes_per_token = info.decode_weight_bytes + kv_bytes_read(m.hparams(), t.format_k, t.format_v, t.n_depth);

  if (t.warmup) {  // llama-bench's warm-up: a short pp or one decode step, untimed
    s.append(random_tokens(t.n_prompt > 0 ? std::min(t.n_prompt, t.n_batch) : 1));
    s.rewind(0);
  }
  // The depth is filled once (untimed); each repetition rewinds to it, which leaves the same cache.
  if (t.n_depth > 0) s.append(random_tokens(t.n_depth));

  using Clock = std::chrono::steady_clock;
  for (int rep = 0; rep < t.repetitions; ++rep) {
    if (on_rep) on_rep(rep);
    s.rewind(t.n_depth);
    const std::vector<int32_t> tokens = random_tokens(t.n_prompt > 0 ? t.n_prompt : t.n_gen);
    const auto t0 = Clock::now();
    if (t.n_prompt > 0) {
      s.append(tokens);
    } else {
      for (int32_t tok : tokens) s.append(std::span<const int32_t>(&tok, 1));
    }
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0).count();
    r.samples_ns.push_back(static_cast<uint64_t>(ns));
  }
  bench_summarize(r);
  return r;
}

}  // namespace strata::runtime
