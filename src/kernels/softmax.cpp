// Two-Pass Softmax (XNNPACK) with Highway dynamic dispatch. Pass 1, per lane: e^x = 2^n · p with
// n = round(x·log2 e) and p = e^(x - n·ln 2) in [0.7, 1.42]; the lane's running sum is kept as
// (mantissa s, exponent E): E' = max(E, n), s' = s·2^(E-E') + p·2^(n-E'). Only non-positive powers of two
// appear, so nothing overflows, and the max is the exponent itself: one read for max and sum.
#include "kernels/softmax.h"

#include <algorithm>
#include <cmath>
#include <limits>

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/softmax.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep

#include "hwy/contrib/math/math-inl.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace strata::kernels::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

constexpr float kMinLogit = -1e6f;   // scaled logits below this count as -inf
constexpr float kMinExp = -1e6f;     // exponent given to them: 2^(kMinExp - E) is exactly 0

// 2^k for integer-valued k <= 0 (k < -126 gives 0).
template <class D, class V>
HWY_INLINE V Pow2NonPositive(D d, V k) {
  const hn::RebindToSigned<D> di;
  const V kc = hn::Max(k, hn::Set(d, -127.f));
  return hn::BitCast(d, hn::ShiftLeft<23>(hn::Add(hn::ConvertTo(di, kc), hn::Set(di, 127))));
}

// Per-lane pass-1 state.
template <class D>
struct ExpSum {
  hn::Vec<D> s, e;  // sum = s · 2^e

  template <class V>
  HWY_INLINE void Add(D d, V xs) {
    const V kLog2e = hn::Set(d, 1.44269504088896341f);
    const V kLn2Hi = hn::Set(d, 0.693145751953125f), kLn2Lo = hn::Set(d, 1.428606765330187045e-6f);
    const auto masked = hn::Lt(xs, hn::Set(d, kMinLogit));
    const V x = hn::IfThenElse(masked, hn::Zero(d), xs);
    V n = hn::Round(hn::Mul(x, kLog2e));
    const V r = hn::NegMulAdd(n, kLn2Lo, hn::NegMulAdd(n, kLn2Hi, x));  // x - n ln2, |r| <= 0.35
    hn::impl::ExpImpl<float> impl;
    const V p = hn::IfThenZeroElse(masked, hn::Add(impl.ExpPoly(d, r), hn::Set(d, 1.f)));
    n = hn::IfThenElse(masked, hn::Set(d, kMinExp), n);
    const V e_new = hn::Max(e, n);
    s = hn::MulAdd(s, Pow2NonPositive(d, hn::Sub(e, e_new)), hn::Mul(p, Pow2NonPositive(d, hn::Sub(n, e_new))));
    e = e_new;
  }
};

// Combines lanes (and a scalar tail) into log(sum) = log(S) + E ln 2.
template <class D>
HWY_INLINE float Finish(D d, const ExpSum<D>& acc, const float* tail, int64_t n_tail, float scale) {
  HWY_ALIGN float s[hn::MaxLanes(D())], e[hn::MaxLanes(D())];
  hn::Store(acc.s, d, s);
  hn::Store(acc.e, d, e);
  const size_t N = hn::Lanes(d);
  double emax = kMinExp;
  for (size_t i = 0; i < N; ++i) emax = std::max<double>(emax, e[i]);
  double sum = 0;
  for (size_t i = 0; i < N; ++i) sum += s[i] * std::exp2(e[i] - emax);
  double lse = std::log(sum) + emax * 0.69314718055994530942;
  // The tail in double: lse = log(e^lse + sum e^x).
  double m = lse;
  for (int64_t i = 0; i < n_tail; ++i) m = std::max(m, static_cast<double>(scale) * tail[i]);
  if (!(m > static_cast<double>(kMinLogit))) return -std::numeric_limits<float>::infinity();
  double t = std::exp(lse - m);
  for (int64_t i = 0; i < n_tail; ++i) t += std::exp(static_cast<double>(scale) * tail[i] - m);
  lse = m + std::log(t);
  if (!(lse > static_cast<double>(kMinLogit) / 2)) return -std::numeric_limits<float>::infinity();
  return static_cast<float>(lse);
}

template <class D>
HWY_INLINE ExpSum<D> Pass1(D d, const float* HWY_RESTRICT x, int64_t n_vec, float scale) {
  const size_t N = hn::Lanes(d);
  const auto vs = hn::Set(d, scale);
  ExpSum<D> a{hn::Zero(d), hn::Set(d, kMinExp)}, b = a;
  int64_t i = 0;
  for (; i + 2 * static_cast<int64_t>(N) <= n_vec; i += 2 * N) {
    a.Add(d, hn::Mul(hn::LoadU(d, x + i), vs));
    b.Add(d, hn::Mul(hn::LoadU(d, x + i + N), vs));
  }
  for (; i < n_vec; i += N) a.Add(d, hn::Mul(hn::LoadU(d, x + i), vs));
  // Merge b into a.
  const auto e_new = hn::Max(a.e, b.e);
  a.s = hn::MulAdd(a.s, Pow2NonPositive(d, hn::Sub(a.e, e_new)), hn::Mul(b.s, Pow2NonPositive(d, hn::Sub(b.e, e_new))));
  a.e = e_new;
  return a;
}

float LogSumExp(const float* x, int64_t n, float scale) {
  const hn::ScalableTag<float> d;
  const int64_t n_vec = n / static_cast<int64_t>(hn::Lanes(d)) * static_cast<int64_t>(hn::Lanes(d));
  return Finish(d, Pass1(d, x, n_vec, scale), x + n_vec, n - n_vec, scale);
}

float Softmax(const float* x, float* y, int64_t n, float scale) {
  const hn::ScalableTag<float> d;
  const float lse = LogSumExp(x, n, scale);
  if (lse == -std::numeric_limits<float>::infinity()) {
    std::fill(y, y + n, 0.f);
    return lse;
  }
  const size_t N = hn::Lanes(d);
  const auto vs = hn::Set(d, scale), vl = hn::Set(d, lse);
  int64_t i = 0;
  for (; i + static_cast<int64_t>(N) <= n; i += N)
    hn::StoreU(hn::Exp(d, hn::MulSub(hn::LoadU(d, x + i), vs, vl)), d, y + i);
  for (; i < n; ++i) y[i] = std::exp(x[i] * scale - lse);
  return lse;
}

// Pass 1 plus the k largest logits: a vector whose lanes are all <= the current k-th largest is skipped
// with one compare; others go lane by lane into a min-heap (strict >, so lower ids win ties).
float LogSumExpTopK(const float* x, int64_t n, float scale, int32_t k, std::vector<TokenCandidate>& heap) {
  const hn::ScalableTag<float> d;
  const size_t N = hn::Lanes(d);
  auto worse = [](const TokenCandidate& a, const TokenCandidate& b) {  // heap top = the worst kept
    return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
  };
  heap.clear();
  float thr = -std::numeric_limits<float>::infinity();
  auto offer = [&](int64_t i) {
    if (static_cast<int32_t>(heap.size()) < k) {
      heap.push_back({static_cast<int32_t>(i), x[i], 0.f});
      std::push_heap(heap.begin(), heap.end(), worse);
      if (static_cast<int32_t>(heap.size()) == k) thr = heap.front().logit;
    } else if (x[i] > thr) {
      std::pop_heap(heap.begin(), heap.end(), worse);
      heap.back() = {static_cast<int32_t>(i), x[i], 0.f};
      std::push_heap(heap.begin(), heap.end(), worse);
      thr = heap.front().logit;
    }
  };
  const auto vs = hn::Set(d, scale);
  ExpSum<hn::ScalableTag<float>> acc{hn::Zero(d), hn::Set(d, kMinExp)};
  const int64_t n_vec = n / static_cast<int64_t>(N) * static_cast<int64_t>(N);
  for (int64_t i = 0; i < n_vec; i += N) {
    const auto v = hn::LoadU(d, x + i);
    acc.Add(d, hn::Mul(v, vs));
    if (static_cast<int32_t>(heap.size()) < k || !hn::AllFalse(d, hn::Gt(v, hn::Set(d, thr))))
      for (size_t l = 0; l < N; ++l) offer(i + static_cast<int64_t>(l));
  }
  for (int64_t i = n_vec; i < n; ++i) offer(i);
  return Finish(d, acc, x + n_vec, n - n_vec, scale);
}

}  // namespace strata::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace strata::kernels {

HWY_EXPORT(LogSumExp);
HWY_EXPORT(Softmax);
HWY_EXPORT(LogSumExpTopK);

float log_sum_exp(const float* x, int64_t n, float scale) {
  if (n <= 0) return -std::numeric_limits<float>::infinity();
  return HWY_DYNAMIC_DISPATCH(LogSumExp)(x, n, scale);
}

float softmax(const float* x, float* y, int64_t n, float scale) {
  if (n <= 0) return -std::numeric_limits<float>::infinity();
  return HWY_DYNAMIC_DISPATCH(Softmax)(x, y, n, scale);
}

float softmax_top_k(const float* x, int64_t n, float scale, int32_t k, float top_p,
                    std::vector<TokenCandidate>& out) {
  out.clear();
  if (n <= 0) return -std::numeric_limits<float>::infinity();
  // Without a top-k cut, try the 256 most likely first; widen only if they do not reach top_p.
  int64_t kk = k > 0 ? std::min<int64_t>(k, n) : top_p < 1.f ? std::min<int64_t>(256, n) : n;
  float lse;
  for (;;) {
    lse = HWY_DYNAMIC_DISPATCH(LogSumExpTopK)(x, n, scale, static_cast<int32_t>(kk), out);
    std::sort(out.begin(), out.end(), [](const TokenCandidate& a, const TokenCandidate& b) {
      return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
    });
    double cum = 0;
    size_t keep = out.size();
    for (size_t i = 0; i < out.size(); ++i) {
      out[i].p = lse == -std::numeric_limits<float>::infinity() ? 0.f : std::exp(scale * out[i].logit - lse);
      cum += out[i].p;
      if (top_p < 1.f && cum >= top_p) {
        keep = i + 1;
        break;
      }
    }
    if (k > 0 || keep < out.size() || kk == n) {
      out.resize(std::max<size_t>(1, std::min(keep, out.size())));
      return lse;
    }
    kk = std::min<int64_t>(kk * 8, n);
  }
}

}  // namespace strata::kernels
#endif  // HWY_ONCE
