// KV budget policies: streaming keeps the sinks and the most recent tokens, h2o the highest accumulated
// scores, merge folds every evicted token into its most similar kept one without losing mass; and all of it
// still holds over many turns of appending and evicting (SCBench's multi-turn setting).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <set>

#include "core/error.h"
#include "kv/policy.h"

namespace strata::kv {
namespace {

std::vector<KvSlotMeta> slots_0_to(int n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> U(0.f, 1.f);
  std::vector<KvSlotMeta> s(n);
  for (int i = 0; i < n; ++i) s[i] = {i, U(rng), 1};
  return s;
}

std::vector<int32_t> positions(const std::vector<KvSlotMeta>& s) {
  std::vector<int32_t> p;
  for (const auto& m : s) p.push_back(m.pos);
  return p;
}

TEST(KvPolicy, NamesAndBudgets) {
  EXPECT_EQ(parse_policy("H2O", "--kv-policy"), KvPolicy::H2O);
  EXPECT_EQ(parse_policy("streaming", "--kv-policy"), KvPolicy::Streaming);
  EXPECT_THROW(parse_policy("lru", "--kv-policy"), Error);
  EXPECT_EQ(parse_budget_tokens("2048", 100), 2048);
  EXPECT_EQ(parse_budget_tokens("1MiB", 1024), 1024);
  EXPECT_EQ(parse_budget_tokens("1.5KB", 10), 150);
  EXPECT_EQ(parse_budget_tokens("2gib", 2048.0 * 1024), 1024);
  EXPECT_THROW(parse_budget_tokens("4k", 10), Error);
  EXPECT_THROW(parse_budget_tokens("1.5", 10), Error);
  EXPECT_THROW(parse_budget_tokens("MiB", 10), Error);
}

TEST(KvPolicy, NothingHappensWhileTheTokensFit) {
  const auto s = slots_0_to(50, 1);
  for (KvPolicy p : {KvPolicy::None, KvPolicy::Streaming, KvPolicy::H2O, KvPolicy::Merge}) {
    const auto u = prepare_budget_update(s, 10, {p, 60, 4, 8, 0}, [](int32_t, int32_t) { return 0.f; });
    EXPECT_TRUE(u.noop());
  }
  EXPECT_TRUE(prepare_budget_update(s, 1000, {KvPolicy::None, 60, 4, 8, 0}).noop());  // no policy: no limit
}

TEST(KvPolicy, StreamingKeepsTheSinksAndTheMostRecent) {
  const auto s = slots_0_to(100, 2);
  const auto u = prepare_budget_update(s, 1, {KvPolicy::Streaming, 50, 4, 8, 5}, {});
  const auto after = apply_update(u, s);
  ASSERT_EQ(after.size(), 44u);  // 50 - 1 incoming - 5 evict_batch
  std::vector<int32_t> expect = {0, 1, 2, 3};
  for (int p = 60; p < 100; ++p) expect.push_back(p);
  EXPECT_EQ(positions(after), expect);
}

TEST(KvPolicy, H2OKeepsTheHighestScores) {
  const auto s = slots_0_to(300, 3);
  const KvBudget b{KvPolicy::H2O, 100, 4, 16, 0};
  const auto after = apply_update(prepare_budget_update(s, 4, b), s);
  ASSERT_EQ(after.size(), 96u);
  std::set<int32_t> kept;
  for (const auto& m : after) kept.insert(m.pos);
  for (int p = 0; p < 4; ++p) EXPECT_TRUE(kept.count(p)) << "sink " << p;
  for (int p = 284; p < 300; ++p) EXPECT_TRUE(kept.count(p)) << "recent " << p;
  // The middle: exactly the 76 best scores of positions 4 .. 283.
  std::vector<int32_t> mid(280);
  std::iota(mid.begin(), mid.end(), 4);
  std::sort(mid.begin(), mid.end(), [&](int32_t a, int32_t c) { return s[a].score > s[c].score; });
  for (int i = 0; i < 280; ++i) EXPECT_EQ(kept.count(mid[i]) == 1, i < 76) << "rank " << i;
  EXPECT_TRUE(std::is_sorted(after.begin(), after.end(), [](auto& a, auto& c) { return a.pos < c.pos; }));
}

TEST(KvPolicy, MergeFoldsIntoTheMostSimilarAndKeepsMass) {
  const int n = 120, dim = 8;
  auto s = slots_0_to(n, 4);
  std::mt19937 rng(5);
  std::normal_distribution<float> N(0.f, 1.f);
  std::vector<float> rows(n * dim);
  for (auto& x : rows) x = N(rng);
  for (int i = 0; i < n; ++i) s[i].count = 1 + i % 3;
  auto cosine = [&](int32_t a, int32_t b) {
    double ab = 0, aa = 0, bb = 0;
    for (int c = 0; c < dim; ++c) {
      ab += rows[a * dim + c] * rows[b * dim + c];
      aa += rows[a * dim + c] * rows[a * dim + c];
      bb += rows[b * dim + c] * rows[b * dim + c];
    }
    return static_cast<float>(ab / std::sqrt(aa * bb));
  };
  const KvBudget b{KvPolicy::Merge, 60, 4, 10, 0};
  const auto u = prepare_budget_update(s, 0, b, cosine);
  ASSERT_EQ(u.n_after(), 60);
  std::set<int32_t> keep(u.keep.begin(), u.keep.end());
  std::set<int32_t> anchors;  // kept middle slots
  for (int32_t i : u.keep)
    if (i >= 4 && i < n - 10) anchors.insert(i);
  EXPECT_EQ(u.merges.size(), static_cast<size_t>(n - 60));  // every evicted slot is merged, none dropped
  for (const KvMerge& m : u.merges) {
    EXPECT_FALSE(keep.count(m.from));
    ASSERT_TRUE(anchors.count(m.into));
    for (int32_t a : anchors) EXPECT_LE(cosine(m.from, a), cosine(m.from, m.into));
  }
  // Expected rows: count-weighted means of each anchor and everything merged into it.
  std::vector<double> sum(n * dim, 0.0), cnt(n, 0.0);
  for (int i = 0; i < n; ++i) {
    int32_t into = i;
    for (const KvMerge& m : u.merges)
      if (m.from == i) into = m.into;
    for (int c = 0; c < dim; ++c) sum[into * dim + c] += s[i].count * static_cast<double>(rows[i * dim + c]);
    cnt[into] += s[i].count;
  }
  auto merged_rows = rows;
  apply_update_rows(u, s, merged_rows.data(), dim);
  const auto after = apply_update(u, s);
  int64_t total_before = 0, total_after = 0;
  for (const auto& m : s) total_before += m.count;
  for (const auto& m : after) total_after += m.count;
  EXPECT_EQ(total_after, total_before);  // mass preserved
  for (int j = 0; j < u.n_after(); ++j) {
    const int32_t old = u.keep[j];
    EXPECT_EQ(after[j].count, cnt[old]);
    for (int c = 0; c < dim; ++c) EXPECT_NEAR(merged_rows[j * dim + c], sum[old * dim + c] / cnt[old], 1e-5);
  }
}

// Merging an exact duplicate (same K and V) with the ln(count) logit bias leaves attention unchanged.
TEST(KvPolicy, MergedDuplicateWithLogCountBiasKeepsAttention) {
  const std::vector<float> k = {0.5f, 2.0f, -1.0f, 2.0f}, v = {1.f, 2.f, 3.f, 4.f};  // slots 1 and 3 equal
  const float q = 0.7f;
  auto attend = [&](const std::vector<float>& ks, const std::vector<float>& vs, const std::vector<float>& bias) {
    double l = 0, o = 0;
    for (size_t i = 0; i < ks.size(); ++i) {
      const double p = std::exp(q * ks[i] + bias[i]);
      l += p;
      o += p * vs[i];
    }
    return o / l;
  };
  const double before = attend(k, v, {0, 0, 0, 0});
  std::vector<KvSlotMeta> s = {{0, 0, 1}, {1, 0, 1}, {2, 0, 1}, {3, 0, 1}};
  const KvBudgetUpdate u{4, {0, 1, 2}, {{3, 1}}};
  auto ks = k, vs = v;
  apply_update_rows(u, s, ks.data(), 1);
  apply_update_rows(u, s, vs.data(), 1);
  const auto after = apply_update(u, s);
  ks.resize(3);
  vs.resize(3);
  std::vector<float> bias;
  for (const auto& m : after) bias.push_back(merge_logit_bias(m.count));
  EXPECT_NEAR(attend(ks, vs, bias), before, 1e-6);
}

TEST(KvPolicy, ABudgetTooSmallForSinksWindowAndBatchIsAUserError) {
  const auto s = slots_0_to(40, 6);
  try {
    prepare_budget_update(s, 16, {KvPolicy::H2O, 32, 4, 16, 0});
    FAIL() << "expected strata::Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("at least 36"), std::string::npos) << e.what();
  }
}

// SCBench-style multi-turn use: turns of new tokens (a shared context, then follow-ups), each preceded by
// an update that makes room; attention scores keep accumulating. After every turn the invariants hold.
TEST(KvPolicy, MultiTurnAppendAndEvictKeepsTheInvariants) {
  for (KvPolicy policy : {KvPolicy::Streaming, KvPolicy::H2O, KvPolicy::Merge}) {
    const int dim = 4;
    const KvBudget b{policy, 96, 4, 24, 8};
    std::mt19937 rng(7 + static_cast<int>(policy));
    std::uniform_int_distribution<int> turn_len(1, 40);
    std::uniform_real_distribution<float> U(0.f, 1.f);
    std::vector<KvSlotMeta> slots;
    std::vector<float> rows;     // [slot][dim]: a K row per slot, updated like the cache's
    std::vector<double> mass;    // [slot][dim]: sum of the original rows a slot stands for
    int32_t next_pos = 0;
    int32_t top_pos = -1;        // the position with the highest accumulated score so far (middle)
    float top_score = -1;
    for (int turn = 0; turn < 30; ++turn) {
      const int n_new = turn == 0 ? 60 : turn_len(rng);  // the shared context, then follow-ups
      auto sim = [&](int32_t a, int32_t c) {
        float s = 0;
        for (int j = 0; j < dim; ++j) s -= std::fabs(rows[a * dim + j] - rows[c * dim + j]);
        return s;
      };
      const auto u = prepare_budget_update(slots, n_new, b, sim);
      apply_update_rows(u, slots, rows.data(), dim);
      {  // mass follows the merges and the compaction
        for (const KvMerge& m : u.merges)
          for (int j = 0; j < dim; ++j) mass[m.into * dim + j] += mass[m.from * dim + j];
        std::vector<double> m2;
        for (int32_t i : u.keep) m2.insert(m2.end(), mass.begin() + i * dim, mass.begin() + (i + 1) * dim);
        mass = m2;
      }
      const std::vector<KvSlotMeta> before = slots;
      slots = apply_update(u, slots);
      rows.resize(slots.size() * dim);

      // Invariants after the update.
      ASSERT_LE(static_cast<int64_t>(slots.size()) + n_new, b.max_tokens) << "turn " << turn;
      for (int p = 0; p < std::min<int>(b.n_sink, next_pos); ++p) ASSERT_EQ(slots[p].pos, p) << "sink, turn " << turn;
      const int n_recent = std::min<int>(b.n_recent, static_cast<int>(before.size()));
      for (int i = 0; i < n_recent; ++i)
        ASSERT_EQ(slots[slots.size() - 1 - i].pos, before[before.size() - 1 - i].pos) << "recent, turn " << turn;
      for (size_t i = 1; i < slots.size(); ++i) ASSERT_LT(slots[i - 1].pos, slots[i].pos);
      int64_t total = 0;
      for (size_t i = 0; i < slots.size(); ++i) {
        total += slots[i].count;
        for (int j = 0; j < dim; ++j)  // each row is the mean of the tokens it stands for
          ASSERT_NEAR(rows[i * dim + j], mass[i * dim + j] / slots[i].count, 1e-4);
      }
      if (policy == KvPolicy::Merge) {
        ASSERT_EQ(total, next_pos) << "merge loses no token, turn " << turn;
      } else {
        ASSERT_EQ(total, static_cast<int64_t>(slots.size()));
      }
      if (policy == KvPolicy::H2O && top_pos >= 0 && !u.noop()) {
        bool found = false;
        for (const auto& m : slots) found |= m.pos == top_pos;
        EXPECT_TRUE(found) << "the highest-score token was evicted, turn " << turn;
      }

      // Append the turn's tokens and accumulate this turn's attention on everything.
      for (int i = 0; i < n_new; ++i) {
        slots.push_back({next_pos++, 0.f, 1});
        const float topic = static_cast<float>(turn % 3);
        for (int j = 0; j < dim; ++j) {
          rows.push_back(topic + U(rng));
          mass.push_back(rows.back());
        }
      }
      for (auto& m : slots) m.score += U(rng) * (m.pos % 17 == 0 ? 5.f : 1.f);
      top_score = -1;
      for (size_t i = b.n_sink; i + b.n_recent < slots.size(); ++i)
        if (slots[i].score > top_score) { top_score = slots[i].score; top_pos = slots[i].pos; }
    }
  }
}

}  // namespace
}  // namespace strata::kv
