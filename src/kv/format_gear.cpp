#include "kv/format_gear.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <queue>
#include <vector>

#include "core/error.h"
#include "core/fp16.h"
#include "kv/format_rows.h"

namespace strata::kv {

namespace {

using rows::load_u16;
using rows::quant_clamp;
using rows::store_u16;

constexpr int kHeader = 12;  // u8 bits, axis, rank, 0; u16 chunk, max_outliers, n_outliers, 0
enum Axis : uint8_t { kPerChannel = 0, kPerToken = 1 };

// fp16 with saturation (KV values beyond ±65504 would become inf).
uint16_t to_f16(float x) { return f32_to_fp16(std::min(std::max(x, -65504.f), 65504.f)); }
float f16r(float x) { return fp16_to_f32(to_f16(x)); }

struct Layout {
  int d, chunk, bits, rank, max_out, tok_group, n_groups;
  size_t off_groups, off_codes, off_a, off_b, off_idx, off_val, total;
  size_t row_code_bytes() const { return static_cast<size_t>(d) * bits / 8; }

  Layout(int d_, int chunk_, int bits_, int rank_, int max_out_)
      : d(d_), chunk(chunk_), bits(bits_), rank(rank_), max_out(max_out_) {
    tok_group = gear_token_group(d);
    n_groups = std::max(d, chunk * (d / tok_group));
    off_groups = kHeader;
    off_codes = off_groups + 4 * static_cast<size_t>(n_groups);
    off_a = off_codes + static_cast<size_t>(chunk) * row_code_bytes();
    off_b = off_a + 2 * static_cast<size_t>(chunk) * rank;
    off_idx = off_b + 2 * static_cast<size_t>(rank) * d;
    off_val = off_idx + 2 * static_cast<size_t>(max_out);
    total = off_val + 2 * static_cast<size_t>(max_out);
  }
  // Group of element (t, c) for the given axis.
  int group(Axis axis, int t, int c) const {
    return axis == kPerChannel ? c : t * (d / tok_group) + c / tok_group;
  }
};

void put_code(uint8_t* row, int bits, int c, int q) {
  if (bits == 2)
    row[c >> 2] = static_cast<uint8_t>(row[c >> 2] | (q << ((c & 3) * 2)));
  else
    row[c >> 1] = static_cast<uint8_t>(row[c >> 1] | (q << ((c & 1) * 4)));
}
// The codes of one token as floats (out: d values).
void unpack_codes(const uint8_t* row, int bits, int d, float* out) {
  if (bits == 2) {
    for (int c = 0; c < d; c += 4) {
      const uint8_t b = row[c >> 2];
      out[c] = b & 3; out[c + 1] = (b >> 2) & 3; out[c + 2] = (b >> 4) & 3; out[c + 3] = b >> 6;
    }
  } else {
    for (int c = 0; c < d; c += 2) {
      const uint8_t b = row[c >> 1];
      out[c] = b & 15; out[c + 1] = b >> 4;
    }
  }
}

// The groups of an axis: per channel, channel c over the chunk's tokens (stride d); per token, tok_group
// consecutive channels of one token.
int n_groups_of(const Layout& L, Axis axis) { return axis == kPerChannel ? L.d : L.chunk * (L.d / L.tok_group); }
int group_size(const Layout& L, Axis axis) { return axis == kPerChannel ? L.chunk : L.tok_group; }
// Flat index of member j of group g.
int member(const Layout& L, Axis axis, int g, int j) {
  if (axis == kPerChannel) return j * L.d + g;
  const int per_tok = L.d / L.tok_group;
  return (g / per_tok) * L.d + (g % per_tok) * L.tok_group + j;
}

// Greedy choice of k outliers: repeatedly drop the group extreme (max or min) whose removal shrinks its
// group's squared range (times its size, ∝ its quantization error) the most. Each group's two largest and
// two smallest remaining values are found by a scan, redone only for the group that lost one: O(n + k·size).
std::vector<uint8_t> select_outliers(const float* x, const Layout& L, Axis axis, int k) {
  const int n = L.chunk * L.d, G = n_groups_of(L, axis), size = group_size(L, axis);
  std::vector<uint8_t> is_out(n, 0);
  if (k <= 0) return is_out;
  struct Ext { int hi, hi2, lo, lo2, cnt; };  // flat indices of the extremes, remaining count
  std::vector<Ext> ext(G);
  auto scan = [&](int g) {
    Ext e{-1, -1, -1, -1, 0};
    for (int j = 0; j < size; ++j) {
      const int i = member(L, axis, g, j);
      if (is_out[i]) continue;
      ++e.cnt;
      if (e.hi < 0 || x[i] > x[e.hi]) { e.hi2 = e.hi; e.hi = i; }
      else if (e.hi2 < 0 || x[i] > x[e.hi2]) e.hi2 = i;
      if (e.lo < 0 || x[i] < x[e.lo]) { e.lo2 = e.lo; e.lo = i; }
      else if (e.lo2 < 0 || x[i] < x[e.lo2]) e.lo2 = i;
    }
    ext[g] = e;
  };
  struct Cand { double gain; int g; bool high; int version; };
  auto cmp = [](const Cand& a, const Cand& b) { return a.gain < b.gain || (a.gain == b.gain && a.g > b.g); };
  std::priority_queue<Cand, std::vector<Cand>, decltype(cmp)> pq(cmp);
  std::vector<int> version(G, 0);
  auto push = [&](int g) {
    const Ext& e = ext[g];
    if (e.cnt < 3) return;  // keep at least two values in a group
    const double r = x[e.hi] - x[e.lo];
    const double r_hi = x[e.hi2] - x[e.lo], r_lo = x[e.hi] - x[e.lo2];
    const bool high = r_hi <= r_lo;
    const double r2 = high ? r_hi : r_lo;
    pq.push({e.cnt * (r * r - r2 * r2), g, high, version[g]});
  };
  for (int g = 0; g < G; ++g) {
    scan(g);
    push(g);
  }
  int taken = 0;
  while (taken < k && !pq.empty()) {
    const Cand c = pq.top();
    pq.pop();
    if (c.version != version[c.g]) continue;  // stale
    if (c.gain <= 0) break;                   // nothing left that stretches a range
    is_out[c.high ? ext[c.g].hi : ext[c.g].lo] = 1;
    ++taken;
    ++version[c.g];
    scan(c.g);
    push(c.g);
  }
  return is_out;
}

struct Base {
  Axis axis;
  std::vector<float> scale, min;  // per group, fp16-rounded
  std::vector<uint8_t> codes;     // [chunk][d], unpacked
  std::vector<float> deq;         // [chunk][d]
  double err = 0;                 // squared error over non-outliers
};

// Scale and min (fp16-rounded) for one group's values v: the min-max grid, refined by alternating code
// assignment and a least-squares fit of (s, m) (clipping the extremes when that lowers the squared error),
// from the full range and from a range shrunk by 15%; the best grid seen wins. Matters most at 2 bits.
void fit_group(const float* v, int n, int levels, float& s_out, float& m_out) {
  if (n == 0) { s_out = m_out = 0; return; }
  float lo = v[0], hi = v[0];
  for (int i = 1; i < n; ++i) { lo = std::min(lo, v[i]); hi = std::max(hi, v[i]); }
  m_out = f16r(lo);
  s_out = f16r((hi - m_out) / levels);
  if (!(hi > lo) || !(s_out > 0)) return;
  float best = INFINITY;
  for (float shrink : {1.0f, 0.85f}) {
    const float half = 0.5f * (hi - lo) * shrink;
    float m = shrink == 1.0f ? m_out : f16r(0.5f * (lo + hi) - half);
    float s = shrink == 1.0f ? s_out : f16r(2 * half / levels);
    for (int it = 0; it < 4 && s > 0; ++it) {
      // Assign codes with the current (fp16) grid; its error and the sums of the least-squares fit.
      // Float sums (groups are small; this loop vectorizes), the fit itself in double.
      const float inv = 1.f / s;
      float err = 0, sq = 0, sqq = 0, sx = 0, sqx = 0;
      for (int i = 0; i < n; ++i) {
        const float q = static_cast<float>(quant_clamp((v[i] - m) * inv, 0, levels));
        const float r = v[i] - (q * s + m);
        err += r * r;
        sq += q; sqq += q * q; sx += v[i]; sqx += q * v[i];
      }
      if (err < best) { best = err; s_out = s; m_out = m; }
      const double det = static_cast<double>(n) * sqq - static_cast<double>(sq) * sq;
      if (det <= 0) break;
      const double s_new = (static_cast<double>(n) * sqx - static_cast<double>(sq) * sx) / det;
      if (!(s_new > 0)) break;
      const float s2 = f16r(static_cast<float>(s_new)), m2 = f16r(static_cast<float>((sx - s_new * sq) / n));
      if (s2 == s && m2 == m) break;  // converged
      s = s2;
      m = m2;
    }
  }
}

Base quantize_base(const float* x, const Layout& L, Axis axis, const std::vector<uint8_t>& is_out) {
  const int G = n_groups_of(L, axis), size = group_size(L, axis);
  const int levels = (1 << L.bits) - 1;
  Base b;
  b.axis = axis;
  b.scale.resize(G);
  b.min.resize(G);
  std::vector<float> vals(size);
  for (int g = 0; g < G; ++g) {
    int n = 0;
    for (int j = 0; j < size; ++j) {
      const int i = member(L, axis, g, j);
      if (!is_out[i]) vals[n++] = x[i];
    }
    fit_group(vals.data(), n, levels, b.scale[g], b.min[g]);
  }
  b.codes.resize(static_cast<size_t>(L.chunk) * L.d);
  b.deq.resize(b.codes.size());
  for (int t = 0; t < L.chunk; ++t)
    for (int c = 0; c < L.d; ++c) {
      const int i = t * L.d + c, g = L.group(axis, t, c);
      const float s = b.scale[g], m = b.min[g];
      const int q = s > 0 ? quant_clamp((x[i] - m) * (1.f / s), 0, levels) : 0;
      b.codes[i] = static_cast<uint8_t>(q);
      b.deq[i] = q * s + m;
      if (!is_out[i]) b.err += (x[i] - b.deq[i]) * static_cast<double>(x[i] - b.deq[i]);
    }
  return b;
}

// Deterministic pseudo-random numbers in [-1, 1) for the subspace iteration's start.
float prand(uint64_t i) {
  uint64_t z = i * 0x9E3779B97F4A7C15ull + 0x632BE59BD9B4E019ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return static_cast<float>(z >> 40) / static_cast<float>(1ull << 23) - 1.f;
}

// E [C][d] ≈ U [C][r] · Vᵀ, V [d][r] (U orthonormal columns). Subspace iteration, in double.
void low_rank(const std::vector<float>& E, int C, int d, int r, int iters, std::vector<double>& U,
              std::vector<double>& V) {
  U.assign(static_cast<size_t>(C) * r, 0.0);
  V.assign(static_cast<size_t>(d) * r, 0.0);
  for (int c = 0; c < d; ++c)
    for (int k = 0; k < r; ++k) V[c * r + k] = prand(static_cast<uint64_t>(c) * 131 + k);
  for (int it = 0; it < std::max(1, iters); ++it) {
    // U = E V
    std::fill(U.begin(), U.end(), 0.0);
    for (int t = 0; t < C; ++t)
      for (int c = 0; c < d; ++c) {
        const double e = E[t * d + c];
        if (e == 0) continue;
        for (int k = 0; k < r; ++k) U[t * r + k] += e * V[c * r + k];
      }
    // Orthonormalize U's columns (modified Gram-Schmidt); a dependent column becomes 0.
    for (int k = 0; k < r; ++k) {
      for (int j = 0; j < k; ++j) {
        double dp = 0;
        for (int t = 0; t < C; ++t) dp += U[t * r + k] * U[t * r + j];
        for (int t = 0; t < C; ++t) U[t * r + k] -= dp * U[t * r + j];
      }
      double nrm = 0;
      for (int t = 0; t < C; ++t) nrm += U[t * r + k] * U[t * r + k];
      nrm = std::sqrt(nrm);
      for (int t = 0; t < C; ++t) U[t * r + k] = nrm > 1e-30 ? U[t * r + k] / nrm : 0.0;
    }
    // V = Eᵀ U
    std::fill(V.begin(), V.end(), 0.0);
    for (int t = 0; t < C; ++t)
      for (int c = 0; c < d; ++c) {
        const double e = E[t * d + c];
        if (e == 0) continue;
        for (int k = 0; k < r; ++k) V[c * r + k] += e * U[t * r + k];
      }
  }
}

struct View {  // a decoded chunk header + pointers
  Layout L;
  Axis axis;
  int n_out;
  const uint8_t* src;
  float scale(int g) const { return fp16_to_f32(load_u16(src + L.off_groups + 4 * g)); }
  float min(int g) const { return fp16_to_f32(load_u16(src + L.off_groups + 4 * g + 2)); }
  const uint8_t* code_row(int t) const { return src + L.off_codes + t * L.row_code_bytes(); }
  float a(int t, int k) const { return fp16_to_f32(load_u16(src + L.off_a + 2 * (t * L.rank + k))); }
  float b(int k, int c) const { return fp16_to_f32(load_u16(src + L.off_b + 2 * (k * L.d + c))); }
  int idx(int i) const { return load_u16(src + L.off_idx + 2 * i); }
  float val(int i) const { return fp16_to_f32(load_u16(src + L.off_val + 2 * i)); }
  // First outlier with index >= flat.
  int first_outlier(int flat) const {
    int lo = 0, hi = n_out;
    while (lo < hi) {
      const int mid = (lo + hi) / 2;
      if (idx(mid) < flat) lo = mid + 1; else hi = mid;
    }
    return lo;
  }
};

View view_of(const uint8_t* src, int d) {
  const int bits = src[0], axis = src[1], rank = src[2];
  const int chunk = load_u16(src + 4), max_out = load_u16(src + 6), n_out = load_u16(src + 8);
  STRATA_ASSERT((bits == 2 || bits == 4) && axis <= 1 && chunk > 0 && n_out <= max_out,
                "gear: corrupt chunk header");
  return View{Layout(d, chunk, bits, rank, max_out), static_cast<Axis>(axis), n_out, src};
}

}  // namespace

int32_t gear_token_group(int32_t head_dim) {
  for (int g : {64, 32, 16})
    if (head_dim % g == 0) return g;
  return head_dim;
}

void check_gear(int32_t head_dim, const GearParams& p) {
  if (head_dim <= 0 || head_dim % 16 != 0 || head_dim > kGearMaxHeadDim)
    fail("GEAR KV format: head_dim {} must be a multiple of 16 and at most {}: use q4_0 or bfp4", head_dim,
         kGearMaxHeadDim);
  if (p.bits != 2 && p.bits != 4) fail("GEAR KV format: base bits must be 2 or 4 (got {})", p.bits);
  if (p.chunk < 1 || static_cast<int64_t>(p.chunk) * head_dim > 65536)
    fail("GEAR KV format: chunk of {} tokens × head_dim {} must hold at most 65536 values", p.chunk, head_dim);
  if (p.rank < 0 || p.rank > std::min(p.chunk, head_dim) || p.rank > 255)
    fail("GEAR KV format: rank {} must be in [0, min(chunk, head_dim)]", p.rank);
  if (!(p.outlier_frac >= 0 && p.outlier_frac <= 0.5f))
    fail("GEAR KV format: outlier fraction {} must be in [0, 0.5]", p.outlier_frac);
}

int32_t gear_max_outliers(int32_t head_dim, const GearParams& p) {
  return static_cast<int32_t>(std::floor(p.outlier_frac * static_cast<double>(p.chunk) * head_dim));
}

size_t gear_chunk_bytes(int32_t head_dim, const GearParams& p) {
  check_gear(head_dim, p);
  return Layout(head_dim, p.chunk, p.bits, p.rank, gear_max_outliers(head_dim, p)).total;
}

void gear_encode_chunk(const float* x, uint8_t* dst, int32_t head_dim, const GearParams& p) {
  check_gear(head_dim, p);
  const int d = head_dim, C = p.chunk, n = C * d;
  const int max_out = gear_max_outliers(d, p);
  const Layout L(d, C, p.bits, p.rank, max_out);
  std::memset(dst, 0, L.total);

  // 1. Outliers and base quantization, for each axis; keep the axis with the smaller error.
  std::vector<uint8_t> out_c = select_outliers(x, L, kPerChannel, max_out);
  std::vector<uint8_t> out_t = select_outliers(x, L, kPerToken, max_out);
  Base bc = quantize_base(x, L, kPerChannel, out_c);
  Base bt = quantize_base(x, L, kPerToken, out_t);
  const bool per_token = bt.err < bc.err;
  const Base& b = per_token ? bt : bc;
  const std::vector<uint8_t>& is_out = per_token ? out_t : out_c;

  dst[0] = static_cast<uint8_t>(p.bits);
  dst[1] = b.axis;
  dst[2] = static_cast<uint8_t>(p.rank);
  store_u16(dst + 4, static_cast<uint16_t>(C));
  store_u16(dst + 6, static_cast<uint16_t>(max_out));
  for (size_t g = 0; g < b.scale.size(); ++g) {
    store_u16(dst + L.off_groups + 4 * g, to_f16(b.scale[g]));
    store_u16(dst + L.off_groups + 4 * g + 2, to_f16(b.min[g]));
  }
  for (int t = 0; t < C; ++t) {
    uint8_t* row = dst + L.off_codes + t * L.row_code_bytes();
    for (int c = 0; c < d; ++c) put_code(row, p.bits, c, b.codes[t * d + c]);
  }

  // 2. Low rank of the error, outliers excluded (they are corrected exactly below).
  std::vector<float> recon(b.deq);
  if (p.rank > 0) {
    std::vector<float> E(n);
    for (int i = 0; i < n; ++i) E[i] = is_out[i] ? 0.f : x[i] - b.deq[i];
    std::vector<double> U, V;
    low_rank(E, C, d, p.rank, p.power_iters, U, V);
    std::vector<float> A(static_cast<size_t>(C) * p.rank), B(static_cast<size_t>(p.rank) * d);
    for (int t = 0; t < C; ++t)
      for (int k = 0; k < p.rank; ++k) {
        const uint16_t h = to_f16(static_cast<float>(U[t * p.rank + k]));
        store_u16(dst + L.off_a + 2 * (t * p.rank + k), h);
        A[t * p.rank + k] = fp16_to_f32(h);
      }
    for (int k = 0; k < p.rank; ++k)
      for (int c = 0; c < d; ++c) {
        const uint16_t h = to_f16(static_cast<float>(V[c * p.rank + k]));
        store_u16(dst + L.off_b + 2 * (k * d + c), h);
        B[k * d + c] = fp16_to_f32(h);
      }
    // The reconstruction as decode computes it (same float operations, same order).
    for (int t = 0; t < C; ++t)
      for (int c = 0; c < d; ++c) {
        float lr = 0;
        for (int k = 0; k < p.rank; ++k) lr += A[t * p.rank + k] * B[k * d + c];
        recon[t * d + c] = b.deq[t * d + c] + lr;
      }
  }

  // 3. Sparse corrections at the outliers: exact up to fp16 rounding of the correction.
  int n_out = 0;
  for (int i = 0; i < n && n_out < max_out; ++i) {
    if (!is_out[i]) continue;
    store_u16(dst + L.off_idx + 2 * n_out, static_cast<uint16_t>(i));
    store_u16(dst + L.off_val + 2 * n_out, to_f16(x[i] - recon[i]));
    ++n_out;
  }
  store_u16(dst + 8, static_cast<uint16_t>(n_out));
}

namespace {

// A chunk's parameters as floats, converted once per call: per-channel scale/min (per-channel axis) and
// the low-rank factor B. Per-token scales are converted per row.
struct Params {
  std::array<float, kGearMaxHeadDim> scale, min;  // per channel (per-channel axis only)
  std::vector<float> b;                           // [rank][d]
  explicit Params(const View& v) {
    const int d = v.L.d;
    if (v.axis == kPerChannel)
      for (int c = 0; c < d; ++c) {
        scale[c] = v.scale(c);
        min[c] = v.min(c);
      }
    b.resize(static_cast<size_t>(v.L.rank) * d);
    for (int k = 0; k < v.L.rank; ++k)
      for (int c = 0; c < d; ++c) b[k * d + c] = v.b(k, c);
  }
};

}  // namespace

void gear_decode_chunk(const uint8_t* src, int32_t head_dim, int32_t t0, int32_t t1, float* out, int64_t ld) {
  if (ld == 0) ld = head_dim;
  const View v = view_of(src, head_dim);
  const Layout& L = v.L;
  const int d = head_dim, G = L.tok_group, ng = d / G;
  STRATA_ASSERT(0 <= t0 && t0 <= t1 && t1 <= L.chunk, "gear_decode_chunk: rows out of range");
  const Params P(v);
  std::array<float, kGearMaxHeadDim> code, lr;
  for (int t = t0; t < t1; ++t) {
    float* o = out + (t - t0) * ld;
    unpack_codes(v.code_row(t), L.bits, d, code.data());
    if (v.axis == kPerChannel) {
      for (int c = 0; c < d; ++c) o[c] = code[c] * P.scale[c] + P.min[c];
    } else {
      for (int g = 0; g < ng; ++g) {
        const float s = v.scale(t * ng + g), m = v.min(t * ng + g);
        for (int c = g * G; c < (g + 1) * G; ++c) o[c] = code[c] * s + m;
      }
    }
    if (L.rank > 0) {  // the same float operations, in the same order, as the encoder's reconstruction
      std::fill(lr.begin(), lr.begin() + d, 0.f);
      for (int k = 0; k < L.rank; ++k) {
        const float a = v.a(t, k);
        const float* bk = P.b.data() + k * d;
        for (int c = 0; c < d; ++c) lr[c] += a * bk[c];
      }
      for (int c = 0; c < d; ++c) o[c] += lr[c];
    }
  }
  for (int i = v.first_outlier(t0 * d); i < v.n_out && v.idx(i) < t1 * d; ++i)
    out[(v.idx(i) / d - t0) * ld + v.idx(i) % d] += v.val(i);
}

void gear_dot_chunk(const float* q, const uint8_t* src, int32_t head_dim, int32_t t0, int32_t t1,
                    float* scores) {
  const View v = view_of(src, head_dim);
  const Layout& L = v.L;
  const int d = head_dim, G = L.tok_group, ng = d / G;
  STRATA_ASSERT(0 <= t0 && t0 <= t1 && t1 <= L.chunk, "gear_dot_chunk: rows out of range");
  const Params P(v);
  // Low rank: u = B q once, then A[t]·u per token.
  std::array<float, 256> u{};
  for (int k = 0; k < L.rank; ++k) {
    float s = 0;
    for (int c = 0; c < d; ++c) s += P.b[k * d + c] * q[c];
    u[k] = s;
  }
  std::array<float, kGearMaxHeadDim> code, qs;
  std::array<float, kGearMaxHeadDim / 16> qsum{};
  float qm = 0;
  if (v.axis == kPerChannel) {
    // sum_c q_c (s_c code + m_c) = sum_c (q_c s_c) code + sum_c q_c m_c
    for (int c = 0; c < d; ++c) {
      qs[c] = q[c] * P.scale[c];
      qm += q[c] * P.min[c];
    }
  } else {
    for (int g = 0; g < ng; ++g)
      for (int c = g * G; c < (g + 1) * G; ++c) qsum[g] += q[c];
  }
  for (int t = t0; t < t1; ++t) {
    unpack_codes(v.code_row(t), L.bits, d, code.data());
    float s = 0;
    if (v.axis == kPerChannel) {
      for (int c = 0; c < d; ++c) s += qs[c] * code[c];
      s += qm;
    } else {
      for (int g = 0; g < ng; ++g) {
        float sg = 0;
        for (int c = g * G; c < (g + 1) * G; ++c) sg += q[c] * code[c];
        s += sg * v.scale(t * ng + g) + qsum[g] * v.min(t * ng + g);
      }
    }
    for (int k = 0; k < L.rank; ++k) s += v.a(t, k) * u[k];
    scores[t - t0] = s;
  }
  for (int i = v.first_outlier(t0 * d); i < v.n_out && v.idx(i) < t1 * d; ++i)
    scores[v.idx(i) / d - t0] += q[v.idx(i) % d] * v.val(i);
}

void gear_axpy_chunk(const float* w, const uint8_t* src, int32_t head_dim, int32_t t0, int32_t t1,
                     float* acc) {
  const View v = view_of(src, head_dim);
  const Layout& L = v.L;
  const int d = head_dim, G = L.tok_group, ng = d / G;
  STRATA_ASSERT(0 <= t0 && t0 <= t1 && t1 <= L.chunk, "gear_axpy_chunk: rows out of range");
  const Params P(v);
  std::array<float, kGearMaxHeadDim> code, wc{};
  float wsum = 0;
  std::array<float, 256> a{};  // sum_t w_t A[t]
  for (int t = t0; t < t1; ++t) {
    const float wt = w[t - t0];
    unpack_codes(v.code_row(t), L.bits, d, code.data());
    if (v.axis == kPerChannel) {
      // sum_t w_t (s_c code_tc + m_c) = s_c sum_t w_t code_tc + m_c sum_t w_t
      wsum += wt;
      for (int c = 0; c < d; ++c) wc[c] += wt * code[c];
    } else {
      for (int g = 0; g < ng; ++g) {
        const float ws = wt * v.scale(t * ng + g), wm = wt * v.min(t * ng + g);
        for (int c = g * G; c < (g + 1) * G; ++c) acc[c] += ws * code[c] + wm;
      }
    }
    for (int k = 0; k < L.rank; ++k) a[k] += wt * v.a(t, k);
  }
  if (v.axis == kPerChannel)
    for (int c = 0; c < d; ++c) acc[c] += P.scale[c] * wc[c] + P.min[c] * wsum;
  for (int k = 0; k < L.rank; ++k)  // (sum_t w_t A[t]) · B
    for (int c = 0; c < d; ++c) acc[c] += a[k] * P.b[k * d + c];
  for (int i = v.first_outlier(t0 * d); i < v.n_out && v.idx(i) < t1 * d; ++i)
    acc[v.idx(i) % d] += w[v.idx(i) / d - t0] * v.val(i);
}

}  // namespace strata::kv
