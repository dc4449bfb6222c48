#include "runtime/bench_attn.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <cmath>
#include <memory>
#include <random>

#include "core/error.h"
#include "core/reserved_memory.h"
#include "kv/kv_format.h"

namespace strata::runtime {

double kv_elem_bytes(DType t) {
  switch (t) {
    case DType::F32: return 4;
    case DType::F16: return 2;
    case DType::BF16: return 2;
    case DType::Q8_0: return static_cast<double>(sizeof(block_q8_0)) / QK8_0;
    case DType::Q4_0: return static_cast<double>(sizeof(block_q4_0)) / QK4_0;
    default: fail("bench attn: KV type {} is not supported (f32, f16, bf16, q8_0, q4_0)", dtype_name(t));
  }
}

double kv_elem_bytes(const AttnBenchCase& c) {
  if (c.kv_format.empty()) return kv_elem_bytes(c.kv_type);
  const kv::KvFormat f = kv::parse_format(c.kv_format, "--kv-type");
  return kv::bytes_per_token(f, c.head_dim) / c.head_dim;
}

std::string kv_format_label(const AttnBenchCase& c) {
  return c.kv_format.empty() ? std::string(dtype_name(c.kv_type)) : c.kv_format;
}

double attn_bound_bytes(const AttnBenchCase& c, int64_t cache_bytes) {
  const double eb = kv_elem_bytes(c);
  const int32_t eb_int = static_cast<int32_t>(std::ceil(eb));
  // Grouped-query attention: the group's query heads share one K/V head, so per KV head the problem is
  // group × n_q queries against N keys. attention_io_bound_bytes counts elements × eb_int; rescale to the
  // format's exact bytes per element.
  const int64_t group = std::max(1, c.n_head / std::max(1, c.n_head_kv));
  const int64_t n_q = (c.decode ? 1 : c.n) * group;
  const double b = kernels::attention_io_bound_bytes(n_q, c.n, c.head_dim, cache_bytes, eb_int);
  return static_cast<double>(c.n_head_kv) * b / eb_int * eb;
}

double attn_flops(const AttnBenchCase& c) {
  const double n = static_cast<double>(c.n);
  const double pairs = c.decode ? n : n * (n + 1) / 2;
  return 4.0 * c.head_dim * c.n_head * pairs;
}

double median_of(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

namespace {

// CPU seconds of all threads of the process: on a shared machine a call's CPU time is less disturbed by
// other processes than its wall time (waiting for a core is not counted; memory stalls are).
double process_cpu_s() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

// Random rows of head_dim values in the KV format, laid out like kv::KvCache: per KV head, positions one
// after another ([head][pos], head_stride apart), in memory allocated as KvCache's is: a memory file mapped
// shared (ReservedMemory kSharedFile), in huge pages once filled (KvCache::reserve; STRATA_HUGE_PAGES=0:
// small pages). A strata format (case.kv_format) is encoded with the
// registry's encoder and read through its row decoder, as KvCache::view() serves it (one indirect call per
// tile); GEAR is encoded in whole chunks (positions rounded up).
struct RandomKv {
  struct DecodeCtx {
    kv::KvRowsDecoder decode = nullptr;
    const uint8_t* data = nullptr;
    int64_t head_stride = 0, unit_stride = 0;
  };
  ReservedMemory mem;
  uint8_t* bytes = nullptr;
  DecodeCtx ctx;
  kernels::KvView view;

  static void decode_rows(const void* c, int32_t head, int64_t p0, int64_t p1, int32_t d, float* out, int64_t ld) {
    const auto& x = *static_cast<const DecodeCtx*>(c);
    x.decode(x.data + head * x.head_stride, x.unit_stride, p0, p1, d, out, ld);
  }

  void allocate(size_t n) {
    mem = ReservedMemory(n, ReservedMemory::Backing::kSharedFile);
    mem.commit(0, n);
    bytes = mem.data();
  }

  RandomKv(const AttnBenchCase& c, uint64_t seed) {
    const int32_t d = c.head_dim;
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> nd(0.f, 1.f);
    if (c.kv_format.empty()) {
      const size_t rb = row_bytes(c.kv_type, d);
      allocate(rb * static_cast<size_t>(c.n * c.n_head_kv));
      std::vector<float> x(static_cast<size_t>(d));
      for (int64_t r = 0; r < c.n * c.n_head_kv; ++r) {
        for (auto& e : x) e = nd(rng);
        quantize_row(c.kv_type, x.data(), bytes + r * rb, d);
      }
      mem.collapse_huge(0, mem.reserved());
      const int64_t rbi = static_cast<int64_t>(rb);
      view = c.token_major ? kernels::KvView{c.kv_type, bytes, rbi, rbi * c.n_head_kv}
                           : kernels::KvView{c.kv_type, bytes, rbi * c.n, rbi};
      return;
    }
    const kv::KvFormat f = kv::parse_format(c.kv_format, "--kv-type");
    kv::check_head_dim(f, d);
    if (c.token_major) fail("bench attn: --layout token is for f32, f16, q8_0 and q4_0 (not {})", c.kv_format);
    const int64_t tpu = kv::format_info(f).tokens_per_unit;
    const int64_t units = (c.n + tpu - 1) / tpu;
    const size_t ub = kv::unit_bytes(f, d);
    allocate(ub * static_cast<size_t>(units * c.n_head_kv));
    std::vector<float> x(static_cast<size_t>(tpu * d));
    kv::FormatParams p;
    p.head_dim = d;  // perm = identity for the calibrated formats
    for (int64_t u = 0; u < units * c.n_head_kv; ++u) {
      for (auto& e : x) e = nd(rng);
      kv::encode_unit(f, p, x.data(), bytes + u * ub);
    }
    mem.collapse_huge(0, mem.reserved());
    ctx = {kv::rows_decoder(f), bytes, static_cast<int64_t>(ub) * units, static_cast<int64_t>(ub)};
    view.decode = &RandomKv::decode_rows;
    view.decode_ctx = &ctx;
    view.decode_bytes_per_row = kv::bytes_per_token(f, d);
  }
  RandomKv(const RandomKv&) = delete;
  RandomKv& operator=(const RandomKv&) = delete;
};

}  // namespace

AttnBenchRecord run_attn_bench(const AttnBenchCase& c, ThreadPool& pool) {
  if (c.n < 1) fail("bench attn: N {} must be at least 1", c.n);
  if (c.head_dim < 2 || c.head_dim % 2) fail("bench attn: head dim {} must be a positive even number", c.head_dim);
  if (c.n_head < 1 || c.n_head_kv < 1 || c.n_head % c.n_head_kv)
    fail("bench attn: {} query heads must be a positive multiple of the {} KV heads", c.n_head, c.n_head_kv);
  if (c.reps < 1) fail("bench attn: -r {}: need at least one repetition", c.reps);
  if (c.kv_tile < 0 || c.q_tile < 0) fail("bench attn: tile sizes must be >= 0 (0: automatic)");
  if (c.layers < 1) fail("bench attn: --layers {} must be at least 1", c.layers);
  (void)kv_elem_bytes(c);  // rejects unsupported formats with a message

  AttnBenchRecord r;
  r.c = c;
  r.threads = pool.size();
  r.cache_bytes = c.cache_bytes > 0 ? c.cache_bytes : kernels::cache_sizes().l2;
  r.bound_bytes = attn_bound_bytes(c, r.cache_bytes);
  r.flops = attn_flops(c);

  std::vector<std::unique_ptr<RandomKv>> ks, vs;
  for (int32_t l = 0; l < c.layers; ++l) {
    ks.push_back(std::make_unique<RandomKv>(c, c.seed + 2 * l + 10));
    vs.push_back(std::make_unique<RandomKv>(c, c.seed + 2 * l + 11));
  }
  const int64_t n_q = c.decode ? 1 : c.n, q_pos0 = c.decode ? c.n - 1 : 0;
  std::vector<float> q(static_cast<size_t>(n_q * c.n_head * c.head_dim)), out(q.size());
  std::mt19937_64 rng(c.seed + 2);
  std::normal_distribution<float> nd(0.f, 1.f);
  for (auto& e : q) e = nd(rng);

  kernels::AttentionShape s;
  s.n_head = c.n_head;
  s.n_head_kv = c.n_head_kv;
  s.head_dim = c.head_dim;
  s.scale = 1.f / std::sqrt(static_cast<float>(c.head_dim));
  s.causal = true;
  kernels::AttentionConfig cfg;
  cfg.kv_tile = c.kv_tile;
  cfg.q_tile = c.q_tile;

  std::vector<double> cpu;
  kernels::attention(s, q.data(), n_q, q_pos0, ks[0]->view, vs[0]->view, c.n, out.data(), pool, cfg, &r.io);  // warm-up
  for (int i = 0; i < c.reps; ++i) {
    const size_t l = static_cast<size_t>((i + 1) % c.layers);
    const double c0 = process_cpu_s();
    const auto t0 = std::chrono::steady_clock::now();
    kernels::attention(s, q.data(), n_q, q_pos0, ks[l]->view, vs[l]->view, c.n, out.data(), pool, cfg, &r.io);
    r.samples_s.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    cpu.push_back(process_cpu_s() - c0);
  }
  r.median_s = median_of(r.samples_s);
  r.median_cpu_s = median_of(cpu);
  return r;
}

namespace {

std::string mb(double bytes) { return fmt::format("{:.3f}", bytes / 1e6); }

std::string m_label(int64_t bytes) {
  return bytes % (1 << 20) == 0 ? fmt::format("{} MiB", bytes >> 20) : fmt::format("{} KiB", bytes >> 10);
}

}  // namespace

std::string attn_markdown(const std::vector<AttnBenchRecord>& rows) {
  std::string s =
      "| phase | N | d | heads | KV | q_tile | kv_tile | splits | M | counted MB | bound MB | counted / bound "
      "| K+V MB | median ms | CPU ms | GFLOP/s | threads |\n"
      "|---|---:|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
  for (const auto& r : rows) {
    const auto& c = r.c;
    const double counted = static_cast<double>(r.io.total_bytes());
    s += fmt::format("| {} | {} | {} | {}/{} | {} | {} | {} | {} | {} | {} | {} | {:.2f} | {} | {:.3f} | {:.3f} | {:.1f} | {} |\n",
                     c.decode ? "decode" : "prefill", c.n, c.head_dim, c.n_head, c.n_head_kv, kv_format_label(c),
                     r.io.config.q_tile, r.io.config.kv_tile, r.io.config.kv_splits, m_label(r.cache_bytes),
                     mb(counted), mb(r.bound_bytes), r.bound_bytes > 0 ? counted / r.bound_bytes : 0.0,
                     mb(static_cast<double>(r.io.k_bytes + r.io.v_bytes)), r.median_s * 1e3, r.median_cpu_s * 1e3,
                     r.median_s > 0 ? r.flops / r.median_s / 1e9 : 0.0, r.threads);
  }
  return s;
}

std::string attn_json(const std::vector<AttnBenchRecord>& rows) {
  std::string s = "[\n";
  for (size_t i = 0; i < rows.size(); ++i) {
    const auto& r = rows[i];
    const auto& c = r.c;
    std::string samples;
    for (size_t j = 0; j < r.samples_s.size(); ++j) samples += fmt::format("{}{:.9g}", j ? ", " : "", r.samples_s[j]);
    s += fmt::format(
        "  {{\"phase\": \"{}\", \"n\": {}, \"head_dim\": {}, \"n_head\": {}, \"n_head_kv\": {}, \"type_kv\": \"{}\", "
        "\"q_tile\": {}, \"kv_tile\": {}, \"kv_splits\": {}, \"cache_bytes\": {}, \"n_threads\": {}, "
        "\"q_bytes\": {}, \"k_bytes\": {}, \"v_bytes\": {}, \"o_bytes\": {}, \"partial_bytes\": {}, "
        "\"counted_bytes\": {}, \"bound_bytes\": {:.0f}, \"kv_tiles\": {}, \"rescales\": {}, "
        "\"median_s\": {:.9g}, \"median_cpu_s\": {:.9g}, \"samples_s\": [{}], \"flops\": {:.0f}}}{}\n",
        c.decode ? "decode" : "prefill", c.n, c.head_dim, c.n_head, c.n_head_kv, kv_format_label(c),
        r.io.config.q_tile, r.io.config.kv_tile, r.io.config.kv_splits, r.cache_bytes, r.threads, r.io.q_bytes,
        r.io.k_bytes, r.io.v_bytes, r.io.o_bytes, r.io.partial_bytes, r.io.total_bytes(), r.bound_bytes,
        r.io.kv_tiles, r.io.rescales, r.median_s, r.median_cpu_s, samples, r.flops, i + 1 < rows.size() ? "," : "");
  }
  return s + "]\n";
}

// ---- SVG ----

double LogAxis::map(double v) const {
  const double a = std::log(lo), b = std::log(hi);
  const double t = b > a ? (std::log(std::max(v, 1e-300)) - a) / (b - a) : 0.5;
  return p0 + t * (p1 - p0);
}

namespace {

std::string esc(const std::string& s) {
  std::string o;
  for (char ch : s) {
    if (ch == '<') o += "&lt;";
    else if (ch == '>') o += "&gt;";
    else if (ch == '&') o += "&amp;";
    else o += ch;
  }
  return o;
}

std::string num_label(double v, bool pow2) {
  if (pow2) {
    if (v >= 1024 && std::fmod(v, 1024) == 0) return fmt::format("{}K", v / 1024);
    return fmt::format("{}", v);
  }
  if (v >= 1 && v < 1e4) return fmt::format("{}", v);
  return fmt::format("1e{}", static_cast<int>(std::lround(std::log10(v))));
}

}  // namespace

std::string svg_panel(const std::string& title, const std::string& x_label, const std::string& y_label,
                      const std::vector<PlotSeries>& series, double x, double y, double w, double h) {
  double xlo = 1e300, xhi = 0, ylo = 1e300, yhi = 0;
  for (const auto& s : series)
    for (const auto& [px, py] : s.pts) {
      if (px <= 0 || py <= 0) continue;
      xlo = std::min(xlo, px), xhi = std::max(xhi, px), ylo = std::min(ylo, py), yhi = std::max(yhi, py);
    }
  if (xhi <= 0) xlo = 1, xhi = 2, ylo = 1, yhi = 10;
  // Whole powers of 2 on x, of 10 on y.
  xlo = std::exp2(std::floor(std::log2(xlo))), xhi = std::exp2(std::ceil(std::log2(xhi)));
  ylo = std::pow(10, std::floor(std::log10(ylo))), yhi = std::pow(10, std::ceil(std::log10(yhi)));
  if (xhi <= xlo) xhi = xlo * 2;
  if (yhi <= ylo) yhi = ylo * 10;
  const double L = x + 60, R = x + w - 10, T = y + 30, B = y + h - 45;
  const LogAxis ax{xlo, xhi, L, R}, ay{ylo, yhi, B, T};
  std::string s;
  s += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\" font-size=\"14\">{}</text>\n", (L + R) / 2,
                   y + 18, esc(title));
  s += fmt::format("<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" fill=\"none\" stroke=\"#444\"/>\n",
                   L, T, R - L, B - T);
  for (double v = xlo; v <= xhi * 1.0001; v *= 2) {
    const double px = ax.map(v);
    s += fmt::format("<line x1=\"{0:.1f}\" y1=\"{1:.1f}\" x2=\"{0:.1f}\" y2=\"{2:.1f}\" stroke=\"#ddd\"/>\n", px, T, B);
    s += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\" font-size=\"10\">{}</text>\n", px, B + 14,
                     num_label(v, true));
  }
  for (double v = ylo; v <= yhi * 1.0001; v *= 10) {
    const double py = ay.map(v);
    s += fmt::format("<line x1=\"{0:.1f}\" y1=\"{1:.1f}\" x2=\"{2:.1f}\" y2=\"{1:.1f}\" stroke=\"#ddd\"/>\n", L, py, R);
    s += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"end\" font-size=\"10\">{}</text>\n", L - 4, py + 3,
                     num_label(v, false));
  }
  s += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\" font-size=\"12\">{}</text>\n", (L + R) / 2,
                   B + 32, esc(x_label));
  s += fmt::format("<text transform=\"translate({:.1f},{:.1f}) rotate(-90)\" text-anchor=\"middle\" "
                   "font-size=\"12\">{}</text>\n", x + 14, (T + B) / 2, esc(y_label));
  int li = 0;
  for (const auto& se : series) {
    std::string pts;
    for (const auto& [px, py] : se.pts)
      if (px > 0 && py > 0) pts += fmt::format("{:.1f},{:.1f} ", ax.map(px), ay.map(py));
    const std::string dash = se.dashed ? " stroke-dasharray=\"6,4\"" : "";
    s += fmt::format("<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"2\"{} points=\"{}\"/>\n", se.color, dash, pts);
    for (const auto& [px, py] : se.pts)
      if (px > 0 && py > 0)
        s += fmt::format("<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"2.5\" fill=\"{}\"/>\n", ax.map(px), ay.map(py), se.color);
    const double ly = T + 12 + 15 * li++;
    s += fmt::format("<line x1=\"{0:.1f}\" y1=\"{1:.1f}\" x2=\"{2:.1f}\" y2=\"{1:.1f}\" stroke=\"{3}\" stroke-width=\"2\"{4}/>\n",
                     L + 8, ly, L + 30, se.color, dash);
    s += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" font-size=\"11\">{}</text>\n", L + 34, ly + 4, esc(se.name));
  }
  return s;
}

std::string attn_svg(const std::vector<AttnBenchRecord>& rows, const std::string& caption) {
  PlotSeries tp{"prefill (causal, N queries)", "#1f77b4", false, {}}, td{"decode (1 query)", "#d62728", false, {}};
  PlotSeries bp{"prefill: counted", "#1f77b4", false, {}}, bpb{"prefill: bound N²d²/M", "#1f77b4", true, {}};
  PlotSeries bd{"decode: counted", "#d62728", false, {}}, bdb{"decode: bound", "#d62728", true, {}};
  for (const auto& r : rows) {
    const double n = static_cast<double>(r.c.n);
    (r.c.decode ? td : tp).pts.emplace_back(n, r.median_s * 1e3);
    (r.c.decode ? bd : bp).pts.emplace_back(n, static_cast<double>(r.io.total_bytes()) / 1e6);
    (r.c.decode ? bdb : bpb).pts.emplace_back(n, r.bound_bytes / 1e6);
  }
  std::vector<PlotSeries> times, bytes;
  for (auto* s : {&tp, &td})
    if (!s->pts.empty()) times.push_back(*s);
  for (auto* s : {&bp, &bpb, &bd, &bdb})
    if (!s->pts.empty()) bytes.push_back(*s);
  const double W = 980, H = 440;
  std::string s = fmt::format("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1}\" "
                              "viewBox=\"0 0 {0} {1}\" font-family=\"sans-serif\">\n"
                              "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n", W, H);
  s += svg_panel("attention time (median)", "N (sequence length)", "ms", times, 0, 0, W / 2, H - 30);
  s += svg_panel("bytes moved: counted vs I/O lower bound", "N (sequence length)", "MB", bytes, W / 2, 0, W / 2, H - 30);
  s += fmt::format("<text x=\"10\" y=\"{:.1f}\" font-size=\"11\">{}</text>\n", H - 10, esc(caption));
  return s + "</svg>\n";
}

}  // namespace strata::runtime
