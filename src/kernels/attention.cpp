// attention(): checks the shape, resolves the tiling from the cache sizes, plans work items
// (KV heads × query tile × KV split), runs them on the pool (attention_simd.cpp) and combines split partials.
#include "kernels/attention.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "kernels/attention_amx.h"
#include "kernels/attention_item.h"

namespace strata::kernels {

namespace {

void check_shape(const AttentionShape& s, int64_t n_q, int64_t q_pos0, const KvView& k, const KvView& v,
                 int64_t n_kv) {
  STRATA_ASSERT(s.n_head > 0 && s.n_head_kv > 0 && s.n_head % s.n_head_kv == 0,
                "attention: n_head must be a positive multiple of n_head_kv");
  if (s.head_dim <= 0 || s.head_dim % 2 != 0)
    fail("attention: head_dim must be a positive even number (got {})", s.head_dim);
  STRATA_ASSERT(n_q >= 0 && q_pos0 >= 0 && n_kv >= 0, "attention: negative length");
  STRATA_ASSERT(!s.causal || n_kv >= q_pos0 + n_q, "attention: causal needs n_kv >= q_pos0 + n_q");
  if (n_kv > (int64_t{1} << 24))  // key positions are compared as floats in the causal mask
    fail("attention: {} keys is more than the 16M (2^24) this kernel supports", n_kv);
  for (const KvView* kv : {&k, &v}) {
    if (kv->decode) continue;  // decoded by its owner, any format
    if (kv->type != DType::F32 && kv->type != DType::F16 && kv->type != DType::BF16 && kv->type != DType::Q8_0 &&
        kv->type != DType::Q4_0)
      fail("attention: KV cache type {} is not supported (supported: f32, f16, bf16, q8_0, q4_0)", dtype_name(kv->type));
    if ((kv->type == DType::Q8_0 || kv->type == DType::Q4_0) && s.head_dim % 32 != 0)
      fail("attention: a {} KV cache needs head_dim to be a multiple of 32 (head_dim {}): use f16",
           dtype_name(kv->type), s.head_dim);
  }
}

int64_t read_cache_size(const std::string& path) {
  std::ifstream f(path);
  std::string v;
  if (!(f >> v) || v.empty()) return 0;
  int64_t n = 0;
  size_t i = 0;
  while (i < v.size() && v[i] >= '0' && v[i] <= '9') n = n * 10 + (v[i++] - '0');
  if (i < v.size() && (v[i] == 'K' || v[i] == 'k')) n <<= 10;
  if (i < v.size() && (v[i] == 'M' || v[i] == 'm')) n <<= 20;
  return n;
}

int64_t floor_pow2(int64_t x) {
  int64_t p = 1;
  while (p * 2 <= x) p *= 2;
  return p;
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

}  // namespace

void AttentionIoStats::add(const AttentionIoStats& o) {
  q_bytes += o.q_bytes;
  k_bytes += o.k_bytes;
  v_bytes += o.v_bytes;
  o_bytes += o.o_bytes;
  partial_bytes += o.partial_bytes;
  kv_tiles += o.kv_tiles;
  rescales += o.rescales;
  items += o.items;
  amx_items += o.amx_items;
}

const CacheSizes& cache_sizes() {
  static const CacheSizes sizes = [] {
    CacheSizes c;
    for (int i = 0; i < 8; ++i) {
      const std::string dir = "/sys/devices/system/cpu/cpu0/cache/index" + std::to_string(i) + "/";
      std::ifstream lf(dir + "level"), tf(dir + "type");
      int level = 0;
      std::string type;
      if (!(lf >> level) || !(tf >> type) || type == "Instruction") continue;
      const int64_t size = read_cache_size(dir + "size");
      if (size <= 0) continue;
      if (level == 1) c.l1d = size;
      if (level == 2) c.l2 = size;
      if (level == 3) c.l3 = size;
    }
    return c;
  }();
  return sizes;
}

namespace {
// A process-wide default level: the environment variable `name` read once (`parse` maps its value, null
// when unset, to the level), unless a setter stored a level first.
int env_level(std::atomic<int>& g, const char* name, int (*parse)(const char*)) {
  int v = g.load(std::memory_order_relaxed);
  if (v < 0) {
    v = parse(std::getenv(name));
    g.store(v, std::memory_order_relaxed);
  }
  return v;
}

// STRATA_ATTN_INT8=0 in the environment turns the int8 scores off by default; =all turns them on for prefill
// too (the same per-row approximation: for `strata ppl --kl-base`, which scores by prefill).
std::atomic<int> g_int8_scores{-1};  // -1: not yet read from the environment
// STRATA_ATTN_AMX=0: AMX tiles off; =1: one product; otherwise two.
std::atomic<int> g_amx{-1};
}  // namespace

bool attention_int8_scores_default() {
  return env_level(g_int8_scores, "STRATA_ATTN_INT8", [](const char* e) {
           return e && e[0] == '0' ? 0 : e && std::string_view(e) == "all" ? 2 : 1;
         }) != 0;
}

void set_attention_int8_scores_default(bool on) { g_int8_scores.store(on ? 1 : 0, std::memory_order_relaxed); }

int attention_amx_default() {
  return env_level(g_amx, "STRATA_ATTN_AMX", [](const char* e) { return e && e[0] == '0' ? 0 : e && e[0] == '1' ? 1 : 2; });
}

void set_attention_amx_default(int amx) { g_amx.store(amx == 0 || amx == 1 ? amx : 2, std::memory_order_relaxed); }

bool attention_amx_usable() { return detail::amx_usable(); }

AttentionConfig resolve_attention_config(const AttentionShape& s, int64_t n_q, int64_t n_kv, int n_threads,
                                         const AttentionConfig& config) {
  AttentionConfig c = config;
  const CacheSizes& cs = cache_sizes();
  const int64_t hd = std::max(1, s.head_dim);
  const int64_t group = std::max(1, s.n_head / std::max(1, s.n_head_kv));
  const int64_t threads = std::max(1, n_threads);
  const bool decoding = n_q <= 4;
  // K and V tiles in float32 fill at most 3/4 of the L1 data cache; a third when decoding, where the item
  // also keeps every KV head's queries and outputs and the prefetched rows in L1 (16-32 keys measured
  // ~15% faster than 64 for decode here; prefill is insensitive).
  if (c.kv_tile <= 0) {
    const int64_t budget = decoding ? cs.l1d / 3 : cs.l1d * 3 / 4;
    c.kv_tile = static_cast<int32_t>(std::clamp<int64_t>(floor_pow2(budget / (8 * hd)), 16, 256));
  }
  // Q, O of the item's rows and a score tile fill at most half the L2.
  if (c.q_tile <= 0) {
    const int64_t rows = std::max<int64_t>(1, cs.l2 / 2 / ((2 * hd + c.kv_tile) * 4));
    int64_t bq = std::max<int64_t>(1, rows / group);
    // Enough items to keep every thread busy when the prompt allows it.
    while (bq > 16 && s.n_head_kv * ceil_div(n_q, bq) < 2 * threads) bq /= 2;
    if (bq >= 16) bq &= ~int64_t{7};
    c.q_tile = static_cast<int32_t>(std::clamp<int64_t>(bq, 1, std::max<int64_t>(1, n_q)));
  }
  if (c.kv_heads_per_item <= 0) c.kv_heads_per_item = decoding ? s.n_head_kv : 1;
  c.kv_heads_per_item = std::min(c.kv_heads_per_item, s.n_head_kv);
  if (c.kv_splits <= 0) {
    const int64_t items = ceil_div(s.n_head_kv, c.kv_heads_per_item) * ceil_div(std::max<int64_t>(1, n_q), c.q_tile);
    const int64_t max_splits = std::max<int64_t>(1, ceil_div(n_kv, 2 * c.kv_tile));
    int64_t sp = 1;
    while (threads > 1 && sp < max_splits && (items * sp < 2 * threads || ((items * sp) % threads != 0 && items * sp < 8 * threads)))
      ++sp;
    c.kv_splits = static_cast<int32_t>(sp);
  }
  if (c.shared_max < 0) c.shared_max = decoding ? 1 : 0;
  if (c.int8_scores < 0) {
    // STRATA_ATTN_INT8_DIGITS=1: one digit by default (faster; measurements and the KL check).
    static const int digits = [] {
      const char* e = std::getenv("STRATA_ATTN_INT8_DIGITS");
      return e && e[0] == '1' ? 1 : 2;
    }();
    c.int8_scores = attention_int8_scores_default() && (decoding || g_int8_scores.load() == 2) ? digits : 0;
  }
  if (c.amx < 0) c.amx = attention_amx_default();
  if (c.amx != 0 && c.amx != 1) c.amx = 2;
  return c;
}

double attention_io_bound_bytes(int64_t n_q, int64_t n_kv, int32_t head_dim, int64_t cache_bytes,
                                int32_t elem_bytes) {
  const double d = head_dim, m = std::max<double>(1, static_cast<double>(cache_bytes) / elem_bytes);
  const double tiled = static_cast<double>(n_q) * static_cast<double>(n_kv) * d * d / m;
  const double compulsory = (2.0 * static_cast<double>(n_q) + 2.0 * static_cast<double>(n_kv)) * d;
  return std::max(tiled, compulsory) * elem_bytes;
}

void attention(const AttentionShape& s, const float* q, int64_t n_q, int64_t q_pos0, const KvView& k,
               const KvView& v, int64_t n_kv, float* out, ThreadPool& pool) {
  attention(s, q, n_q, q_pos0, k, v, n_kv, out, pool, AttentionConfig{}, nullptr);
}

void attention(const AttentionShape& s, const float* q, int64_t n_q, int64_t q_pos0, const KvView& k,
               const KvView& v, int64_t n_kv, float* out, ThreadPool& pool, const AttentionConfig& config,
               AttentionIoStats* stats) {
  check_shape(s, n_q, q_pos0, k, v, n_kv);
  const AttentionConfig cfg = resolve_attention_config(s, n_q, n_kv, pool.size(), config);
  if (stats) {
    *stats = AttentionIoStats{};
    stats->config = cfg;
  }
  if (n_q == 0) return;
  const int32_t hd = s.head_dim;
  const int64_t group = s.n_head / s.n_head_kv;
  const int64_t T = cfg.kv_tile;

  // Plan: (KV heads, query tile) groups, each cut into KV chunks aligned to tiles.
  struct Group {
    int64_t first_item = 0, n_items = 0, rows = 0, q_begin = 0;
    int32_t kv_head = 0, kv_heads = 1;
    float* partial = nullptr;
  };
  std::vector<Group> groups;
  std::vector<detail::AttnItem> items;
  std::vector<int64_t> cost;
  size_t partial_floats = 0;
  for (int32_t hk = 0; hk < s.n_head_kv; hk += cfg.kv_heads_per_item)
    for (int64_t q0 = 0; q0 < n_q; q0 += cfg.q_tile) {
      const int32_t nh = std::min(cfg.kv_heads_per_item, s.n_head_kv - hk);
      const int64_t nq = std::min<int64_t>(cfg.q_tile, n_q - q0);
      const int64_t kv_len = s.causal ? q_pos0 + q0 + nq : n_kv;
      const int64_t chunk = std::max<int64_t>(T, ceil_div(ceil_div(kv_len, cfg.kv_splits), T) * T);
      const int64_t n_chunks = std::max<int64_t>(1, ceil_div(kv_len, chunk));
      Group g{static_cast<int64_t>(items.size()), n_chunks, nq * group, q0, hk, nh, nullptr};
      for (int64_t c = 0; c < n_chunks; ++c) {
        detail::AttnItem it;
        it.shape = &s;
        it.q = q;
        it.q_pos0 = q_pos0;
        it.n_kv = n_kv;
        it.k = &k;
        it.v = &v;
        it.kv_head = hk;
        it.kv_heads = nh;
        it.q_begin = q0;
        it.q_count = nq;
        it.kv_begin = c * chunk;
        it.kv_end = std::min(kv_len, (c + 1) * chunk);
        it.kv_tile = cfg.kv_tile;
        it.max_slack = cfg.max_slack;
        it.seed_max = cfg.shared_max > 0;
        it.int8_scores = static_cast<int8_t>(std::clamp(cfg.int8_scores, 0, 2));
        it.amx = static_cast<int8_t>(cfg.amx);
        if (n_chunks == 1) it.out = out;
        items.push_back(it);
        cost.push_back(nh * nq * (it.kv_end - it.kv_begin));
      }
      if (n_chunks > 1) partial_floats += static_cast<size_t>(n_chunks * nh * g.rows * (hd + 2));
      groups.push_back(g);
    }
  std::vector<float> partials(partial_floats);
  size_t off = 0;
  for (Group& g : groups) {
    if (g.n_items == 1) continue;
    g.partial = partials.data() + off;
    const int64_t item_floats = g.kv_heads * g.rows * (hd + 2);
    for (int64_t c = 0; c < g.n_items; ++c) items[g.first_item + c].partial = g.partial + c * item_floats;
    off += static_cast<size_t>(g.n_items * item_floats);
  }

  // Largest items first, handed out dynamically (causal query tiles have unequal work).
  std::vector<int32_t> order(items.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int32_t>(i);
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return cost[a] > cost[b]; });
  std::vector<AttentionIoStats> worker_stats(pool.size());
  std::atomic<size_t> next{0};
  auto run = [&](int w) {
    for (size_t i; (i = next.fetch_add(1, std::memory_order_relaxed)) < order.size();)
      detail::run_attention_item(items[order[i]], worker_stats[w]);
  };
  if (pool.size() == 1 || items.size() == 1)
    run(0);
  else
    pool.run(run);

  // Combine split partials: o = sum_s e^(m_s - M) o_s / sum_s e^(m_s - M) l_s. With the shared max every
  // m_s is the same estimate (unless a split had to raise it) and the weights are all 1.
  if (partial_floats > 0) {
    std::vector<int32_t> split_groups;
    for (size_t i = 0; i < groups.size(); ++i)
      if (groups[i].n_items > 1) split_groups.push_back(static_cast<int32_t>(i));
    pool.parallel_for(static_cast<int64_t>(split_groups.size()), [&](int64_t b, int64_t e, int w) {
      std::vector<float> wts;
      for (int64_t gi = b; gi < e; ++gi) {
        const Group& g = groups[split_groups[gi]];
        const int64_t stride = g.kv_heads * g.rows * (hd + 2);  // floats per item
        wts.resize(static_cast<size_t>(g.n_items));
        for (int64_t xr = 0; xr < g.kv_heads * g.rows; ++xr) {
          const float* p0 = g.partial + xr * (hd + 2);
          float mx = -std::numeric_limits<float>::infinity();
          for (int64_t c = 0; c < g.n_items; ++c) mx = std::max(mx, p0[c * stride + hd]);
          float lsum = 0;
          for (int64_t c = 0; c < g.n_items; ++c) {
            const float* p = p0 + c * stride;
            wts[c] = p[hd + 1] > 0 ? std::exp(p[hd] - mx) : 0.f;
            lsum += wts[c] * p[hd + 1];
          }
          const float inv = lsum > 0 ? 1.f / lsum : 0.f;
          const int64_t r = xr % g.rows;
          const int64_t qi = g.q_begin + r / group;
          const int64_t h = (g.kv_head + xr / g.rows) * group + r % group;
          float* o = out + (qi * s.n_head + h) * hd;
          for (int32_t x = 0; x < hd; ++x) o[x] = 0;
          for (int64_t c = 0; c < g.n_items; ++c) {
            const float* p = p0 + c * stride;
            const float wgt = wts[c] * inv;
            for (int32_t x = 0; x < hd; ++x) o[x] += wgt * p[x];
          }
        }
        worker_stats[w].partial_bytes += g.n_items * stride * 4;
        worker_stats[w].o_bytes += g.kv_heads * g.rows * hd * 4;
      }
    });
  }
  if (stats)
    for (const auto& ws : worker_stats) stats->add(ws);
}

}  // namespace strata::kernels
