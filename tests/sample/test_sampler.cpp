// The sampler chain against a literal, full-sort reference of llama.cpp's chain, on hand-checked vectors
// and seeded random logits; draws checked with a chi-square test.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <map>
#include <random>
#include <vector>

#include "core/error.h"
#include "sample/sampler.h"

namespace strata {
namespace {

SamplerParams plain(float temp = 1.0f) {  // every filter off
  SamplerParams p;
  p.temperature = temp;
  p.top_k = 0;
  p.top_p = 1.0f;
  p.min_p = 0.0f;
  p.seed = 1234;
  return p;
}

// The chain written out the slow, obvious way (llama.cpp order and semantics): penalties over the last
// repeat_last_n tokens, full sort, top-k, top-p (softmax over what is left), min-p, temperature.
std::vector<TokenProb> reference_chain(std::vector<float> l, const SamplerParams& p,
                                       const std::vector<int32_t>& history) {
  const size_t start = p.repeat_last_n < 0 ? 0
      : history.size() > static_cast<size_t>(p.repeat_last_n) ? history.size() - p.repeat_last_n : 0;
  std::map<int32_t, int> count;
  if (p.repeat_last_n != 0)
    for (size_t i = start; i < history.size(); ++i) count[history[i]]++;
  for (auto [id, c] : count) {
    float& v = l[id];
    v = v <= 0 ? v * p.repeat_penalty : v / p.repeat_penalty;
    v -= c * p.frequency_penalty + (c > 0 ? p.presence_penalty : 0.0f);
  }
  std::vector<TokenProb> c;
  for (size_t i = 0; i < l.size(); ++i) c.push_back({static_cast<int32_t>(i), l[i], 0});
  std::sort(c.begin(), c.end(), [](auto& a, auto& b) { return a.logit > b.logit || (a.logit == b.logit && a.id < b.id); });
  if (p.temperature <= 0) return {{c[0].id, c[0].logit, 1.0f}};
  if (p.top_k > 0 && static_cast<size_t>(p.top_k) < c.size()) c.resize(p.top_k);
  if (p.top_p < 1.0f) {
    double z = 0, cum = 0;
    for (auto& t : c) z += std::exp(double(t.logit) - c[0].logit);
    size_t keep = c.size();
    for (size_t i = 0; i < c.size(); ++i) {
      cum += std::exp(double(c[i].logit) - c[0].logit) / z;
      if (cum >= p.top_p) { keep = i + 1; break; }
    }
    c.resize(keep);
  }
  if (p.min_p > 0.0f) {
    const float thr = c[0].logit + std::log(p.min_p);
    size_t keep = 1;
    while (keep < c.size() && c[keep].logit >= thr) ++keep;
    c.resize(keep);
  }
  double z = 0;
  for (auto& t : c) t.logit /= p.temperature;
  for (auto& t : c) z += std::exp(double(t.logit) - c[0].logit);
  for (auto& t : c) t.p = static_cast<float>(std::exp(double(t.logit) - c[0].logit) / z);
  return c;
}

std::vector<float> random_logits(size_t n, uint64_t seed, float scale = 3.0f) {
  std::mt19937_64 g(seed);
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = d(g);
  return v;
}

void expect_same_candidates(const std::vector<TokenProb>& got, const std::vector<TokenProb>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].id, want[i].id) << "rank " << i;
    EXPECT_NEAR(got[i].p, want[i].p, 1e-6) << "rank " << i;
    EXPECT_NEAR(got[i].logit, want[i].logit, 1e-5) << "rank " << i;
  }
}

std::vector<float> log_probs(const std::vector<double>& probs) {
  std::vector<float> l;
  for (double p : probs) l.push_back(static_cast<float>(std::log(p)));
  return l;
}

TEST(Sampler, TopKKeepsTheKBestWithRenormalisedProbabilities) {
  auto p = plain();
  p.top_k = 2;
  Sampler s(p, 4);
  s.sample(std::vector<float>{1, 2, 3, 4});
  const auto& c = s.last_candidates();
  ASSERT_EQ(c.size(), 2u);
  EXPECT_EQ(c[0].id, 3);
  EXPECT_EQ(c[1].id, 2);
  EXPECT_NEAR(c[0].p, 0.7310586f, 1e-6);  // e^1 / (1 + e^1)
  EXPECT_NEAR(c[1].p, 0.2689414f, 1e-6);
}

TEST(Sampler, TopPKeepsTheShortestPrefixReachingP) {
  const auto l = log_probs({0.5, 0.3, 0.15, 0.05});
  for (auto [top_p, keep] : std::vector<std::pair<float, size_t>>{{0.4f, 1}, {0.75f, 2}, {0.85f, 3}, {0.99f, 4}}) {
    auto p = plain();
    p.top_p = top_p;
    Sampler s(p, 4);
    s.sample(l);
    ASSERT_EQ(s.last_candidates().size(), keep) << "top_p " << top_p;
    if (keep == 2) {
      EXPECT_NEAR(s.last_candidates()[0].p, 0.625f, 1e-6);  // 0.5 / 0.8
      EXPECT_NEAR(s.last_candidates()[1].p, 0.375f, 1e-6);
    }
  }
  auto p = plain();
  p.top_p = 0.0f;  // keeps at least one
  Sampler s(p, 4);
  EXPECT_EQ(s.sample(l), 0);
  EXPECT_EQ(s.last_candidates().size(), 1u);
}

TEST(Sampler, MinPIsRelativeToTheMostLikelyToken) {
  const auto l = log_probs({0.5, 0.3, 0.15, 0.05});
  for (auto [min_p, keep] : std::vector<std::pair<float, size_t>>{{0.05f, 4}, {0.2f, 3}, {0.5f, 2}, {0.9f, 1}, {2.0f, 1}}) {
    auto p = plain();
    p.min_p = min_p;
    Sampler s(p, 4);
    s.sample(l);
    EXPECT_EQ(s.last_candidates().size(), keep) << "min_p " << min_p;
  }
}

TEST(Sampler, TemperatureScalesLogitsBeforeTheSoftmax) {
  Sampler s(plain(0.5f), 2);
  s.sample(std::vector<float>{0.0f, 1.0f});
  const auto& c = s.last_candidates();
  ASSERT_EQ(c.size(), 2u);
  EXPECT_EQ(c[0].id, 1);
  EXPECT_FLOAT_EQ(c[0].logit, 2.0f);
  EXPECT_NEAR(c[0].p, 1.0 / (1.0 + std::exp(-2.0)), 1e-6);
}

TEST(Sampler, RepetitionPenaltyDividesPositiveAndMultipliesNegativeLogits) {
  auto p = plain();
  p.repeat_penalty = 2.0f;
  Sampler s(p, 4);
  for (int id : {0, 1, 1}) s.accept(id);
  s.sample(std::vector<float>{2.0f, -2.0f, 1.5f, 0.5f});
  std::map<int, float> got;
  for (auto& c : s.last_candidates()) got[c.id] = c.logit;
  EXPECT_FLOAT_EQ(got[0], 1.0f);   // 2 / 2
  EXPECT_FLOAT_EQ(got[1], -4.0f);  // -2 * 2 (counted once, however often it appeared)
  EXPECT_FLOAT_EQ(got[2], 1.5f);   // not in the window
  EXPECT_FLOAT_EQ(got[3], 0.5f);
}

TEST(Sampler, PresenceAndFrequencyPenaltiesFollowOpenAI) {
  auto p = plain();
  p.presence_penalty = 0.5f;
  p.frequency_penalty = 0.25f;
  Sampler s(p, 4);
  for (int id : {0, 1, 1, 1}) s.accept(id);
  s.sample(std::vector<float>{2.0f, -2.0f, 1.5f, 0.5f});
  std::map<int, float> got;
  for (auto& c : s.last_candidates()) got[c.id] = c.logit;
  EXPECT_FLOAT_EQ(got[0], 2.0f - (0.5f + 0.25f * 1));
  EXPECT_FLOAT_EQ(got[1], -2.0f - (0.5f + 0.25f * 3));
  EXPECT_FLOAT_EQ(got[2], 1.5f);
}

TEST(Sampler, PenaltiesLookOnlyAtTheLastNTokens) {
  auto p = plain(0.0f);
  p.repeat_penalty = 100.0f;
  p.repeat_last_n = 2;
  Sampler s(p, 3);
  const std::vector<float> l{3.0f, 2.0f, 1.0f};
  s.accept(0);
  EXPECT_EQ(s.sample(l), 1);  // 0 is penalised
  s.accept(2);
  s.accept(2);                // 0 left the window
  EXPECT_EQ(s.sample(l), 0);
  s.reset();                  // history forgotten
  EXPECT_EQ(s.sample(l), 0);
  auto off = p;
  off.repeat_last_n = 0;      // 0: penalties off
  Sampler s0(off, 3);
  s0.accept(0);
  EXPECT_EQ(s0.sample(l), 0);
}

TEST(Sampler, GreedyIsArgmaxWithTheLowestIdOnTies) {
  Sampler s(plain(0.0f), 5);
  EXPECT_EQ(s.sample(std::vector<float>{1, 7, 3, 7, -1}), 1);
  EXPECT_EQ(s.last_candidates().size(), 1u);
  EXPECT_EQ(s.sample(std::vector<float>{-5, -5, -5, -5, -5}), 0);
  auto neg = plain(-1.0f);  // any temperature <= 0 is greedy
  Sampler s2(neg, 3);
  EXPECT_EQ(s2.sample(std::vector<float>{0, 0, 0.5f}), 2);
  for (int seed = 0; seed < 20; ++seed) {
    const auto l = random_logits(1000, seed);
    Sampler g(plain(0.0f), 1000);
    EXPECT_EQ(g.sample(l), std::max_element(l.begin(), l.end()) - l.begin());
  }
}

TEST(Sampler, TopK1IsGreedyForAnySeedAndTemperature) {
  for (int seed = 0; seed < 20; ++seed) {
    const auto l = random_logits(5000, 100 + seed);
    auto p = plain(1.7f);
    p.top_k = 1;
    p.seed = seed;
    Sampler s(p, 5000);
    Sampler g(plain(0.0f), 5000);
    EXPECT_EQ(s.sample(l), g.sample(l));
  }
}

TEST(Sampler, MatchesTheReferenceChainOnRandomLogits) {
  int configs = 0;
  for (size_t n : {7, 1000, 32000}) {
    for (int32_t k : {0, 1, 5, 40, 2000}) {
      for (float top_p : {1.0f, 0.9f, 0.5f}) {
        for (float min_p : {0.0f, 0.05f, 0.3f}) {
          for (float temp : {0.0f, 0.6f, 1.3f}) {
            SamplerParams p;
            p.top_k = k, p.top_p = top_p, p.min_p = min_p, p.temperature = temp, p.seed = 7;
            p.repeat_penalty = 1.3f, p.presence_penalty = 0.2f, p.frequency_penalty = 0.1f, p.repeat_last_n = 16;
            const auto l = random_logits(n, configs, n < 100 ? 1.0f : 3.0f);
            std::vector<int32_t> hist;
            std::mt19937 g(configs);
            for (int i = 0; i < 24; ++i) hist.push_back(static_cast<int32_t>(g() % std::min<size_t>(n, 50)));
            Sampler s(p, static_cast<int32_t>(n));
            for (auto id : hist) s.accept(id);
            const int32_t tok = s.sample(l);
            const auto want = reference_chain(l, p, hist);
            SCOPED_TRACE(testing::Message() << "n " << n << " k " << k << " top_p " << top_p << " min_p " << min_p
                                            << " temp " << temp);
            expect_same_candidates(s.last_candidates(), want);
            EXPECT_TRUE(std::any_of(want.begin(), want.end(), [&](auto& c) { return c.id == tok; }));
            ++configs;
          }
        }
      }
    }
  }
  EXPECT_EQ(configs, 3 * 5 * 3 * 3 * 3);
}

TEST(Sampler, TopPAloneOnALargeVocabularyMatchesTheReference) {
  // Flat distributions force the incremental nucleus search past its first 64 and 512 candidates.
  for (float scale : {0.1f, 1.0f, 6.0f}) {
    for (float top_p : {0.3f, 0.95f}) {
      auto p = plain(0.8f);
      p.top_p = top_p;
      const auto l = random_logits(151936, 42, scale);
      Sampler s(p, 151936);
      s.sample(l);
      SCOPED_TRACE(testing::Message() << "scale " << scale << " top_p " << top_p);
      expect_same_candidates(s.last_candidates(), reference_chain(l, p, {}));
    }
  }
}

// Pearson's chi-square of `draws` draws against the chain's distribution. With df <= 30 the 0.1% critical
// value is at most 59.7; the draws are seeded, so the test is deterministic.
double chi_square(const SamplerParams& p, const std::vector<float>& l, int draws, std::vector<int>& counts) {
  Sampler s(p, static_cast<int32_t>(l.size()));
  counts.assign(l.size(), 0);
  for (int i = 0; i < draws; ++i) counts[s.sample(l)]++;
  double chi = 0;
  for (const auto& c : reference_chain(l, p, {})) {
    const double e = c.p * draws;
    chi += (counts[c.id] - e) * (counts[c.id] - e) / e;
  }
  return chi;
}

TEST(Sampler, DrawFrequenciesMatchTheDistribution) {
  const std::vector<float> l{1.0f, 0.5f, 2.0f, -1.0f, 0.0f, 1.5f, -0.5f, 0.25f, 3.0f, -2.0f};
  std::vector<int> counts;
  // df = 9: the 0.1% critical value is 27.88.
  EXPECT_LT(chi_square(plain(0.7f), l, 20000, counts), 27.88);
  EXPECT_LT(chi_square(plain(1.5f), l, 20000, counts), 27.88);

  auto p = plain(1.0f);
  p.top_k = 4;  // df = 3: 16.27
  EXPECT_LT(chi_square(p, l, 20000, counts), 16.27);
  for (int id : {1, 3, 4, 6, 7, 9}) EXPECT_EQ(counts[id], 0) << id;  // outside the top 4 (8, 2, 5, 0)

  p = plain(1.0f);
  p.top_p = 0.8f;
  p.min_p = 0.1f;
  const auto kept = reference_chain(l, p, {});
  EXPECT_LT(chi_square(p, l, 20000, counts), 16.27);
  int total_kept = 0;
  for (auto& c : kept) total_kept += counts[c.id];
  EXPECT_EQ(total_kept, 20000);

  // A large vocabulary: tokens grouped in 20 bins of equal expected mass-rank, df = 19 (critical 43.8).
  const auto big = random_logits(8000, 9, 2.0f);
  auto q = plain(1.0f);
  q.top_k = 200;
  Sampler s(q, 8000);
  s.sample(big);
  const auto cands = s.last_candidates();
  std::vector<int> bin_of(8000, -1);
  std::vector<double> bin_p(20, 0);
  double acc = 0;
  for (auto& c : cands) {
    const int b = std::min(19, static_cast<int>(acc * 20));
    bin_of[c.id] = b;
    bin_p[b] += c.p;
    acc += c.p;
  }
  std::vector<int> bins(20, 0);
  for (int i = 0; i < 20000; ++i) {
    const int b = bin_of[s.sample(big)];
    ASSERT_GE(b, 0);
    bins[b]++;
  }
  double chi = 0;
  for (int b = 0; b < 20; ++b) {
    if (bin_p[b] == 0) continue;
    chi += (bins[b] - bin_p[b] * 20000) * (bins[b] - bin_p[b] * 20000) / (bin_p[b] * 20000);
  }
  EXPECT_LT(chi, 43.8);
}

std::vector<int32_t> generate(const SamplerParams& p, int n_vocab, int steps) {
  Sampler s(p, n_vocab);
  std::vector<int32_t> out;
  for (int i = 0; i < steps; ++i) {
    const auto l = random_logits(n_vocab, 1000 + i, 1.5f);
    out.push_back(s.sample(l));
    s.accept(out.back());
  }
  return out;
}

TEST(Sampler, SameSeedSameTokens) {
  SamplerParams p;  // the defaults: temp 0.8, top-k 40, top-p 0.95, min-p 0.05
  p.seed = 99;
  p.repeat_penalty = 1.1f;
  const auto a = generate(p, 2000, 200);
  EXPECT_EQ(a, generate(p, 2000, 200));
  p.seed = 100;
  EXPECT_NE(a, generate(p, 2000, 200));

  p.seed = 99;  // reset() replays the same draws
  Sampler s(p, 2000);
  const auto l = random_logits(2000, 5, 0.5f);
  std::vector<int32_t> first, second;
  for (int i = 0; i < 50; ++i) first.push_back(s.sample(l));
  s.reset();
  for (int i = 0; i < 50; ++i) second.push_back(s.sample(l));
  EXPECT_EQ(first, second);
}

TEST(Sampler, RandomSeedIsReported) {
  SamplerParams p;
  p.seed = 0xFFFFFFFFu;
  Sampler a(p, 10), b(p, 10);
  EXPECT_NE(a.seed(), b.seed());
  p.seed = a.seed();
  Sampler c(p, 10);
  EXPECT_EQ(c.seed(), a.seed());
}

TEST(Sampler, MaskedAndNanLogitsAreNeverDrawn) {
  const float inf = std::numeric_limits<float>::infinity();
  std::vector<float> l{-inf, 0.0f, -inf, std::nanf(""), 0.0f};
  auto p = plain(1.0f);
  Sampler s(p, 5);
  for (int i = 0; i < 200; ++i) {
    const int32_t t = s.sample(l);
    EXPECT_TRUE(t == 1 || t == 4) << t;
  }
  std::vector<float> all(5, -inf);
  EXPECT_EQ(s.sample(all), 0);  // nothing to draw from: the lowest id, like greedy
}

TEST(Sampler, RejectsBadParameters) {
  auto p = plain();
  p.repeat_penalty = 0.0f;
  EXPECT_THROW(Sampler(p, 10), Error);
  p = plain(std::nanf(""));
  EXPECT_THROW(Sampler(p, 10), Error);
  EXPECT_THROW(Sampler(plain(), 0), Error);
}

TEST(Sampler, TopNReportsWholeVocabularyProbabilities) {
  const std::vector<float> l{0.0f, 2.0f, 1.0f, 2.0f};
  const auto t = Sampler::top_n(l, 2);
  ASSERT_EQ(t.size(), 2u);
  EXPECT_EQ(t[0].id, 1);
  EXPECT_EQ(t[1].id, 3);
  const double z = 1 + 2 * std::exp(2.0) + std::exp(1.0);
  EXPECT_NEAR(t[0].p, std::exp(2.0) / z, 1e-6);
  EXPECT_EQ(Sampler::top_n(l, 10).size(), 4u);
}

// Speed (the chain never sorts the whole vocabulary) is measured in bench/bench_sampler.cpp, not here.

}  // namespace
}  // namespace strata
