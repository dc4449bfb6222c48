#include "kv/policy.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstring>
#include <string>

#include "core/error.h"

namespace strata::kv {

namespace {

struct PolicyName { KvPolicy p; const char* name; };
constexpr PolicyName kPolicies[] = {
    {KvPolicy::None, "none"}, {KvPolicy::Streaming, "streaming"}, {KvPolicy::H2O, "h2o"}, {KvPolicy::Merge, "merge"}};

std::string lower(std::string_view s) {
  std::string r(s);
  std::transform(r.begin(), r.end(), r.begin(), [](unsigned char c) { return std::tolower(c); });
  return r;
}

}  // namespace

std::optional<KvPolicy> policy_from_name(std::string_view name) {
  const std::string l = lower(name);
  for (const auto& p : kPolicies)
    if (l == p.name) return p.p;
  return std::nullopt;
}

KvPolicy parse_policy(std::string_view name, std::string_view flag) {
  if (auto p = policy_from_name(name)) return *p;
  fail("{}: unknown KV policy '{}' (known: none, streaming, h2o, merge)", flag, name);
}

const char* policy_name(KvPolicy p) {
  for (const auto& e : kPolicies)
    if (e.p == p) return e.name;
  return "?";
}

int64_t parse_budget_tokens(std::string_view value, double bytes_per_token) {
  const std::string v = lower(value);
  size_t i = 0;
  while (i < v.size() && (std::isdigit(static_cast<unsigned char>(v[i])) || v[i] == '.')) ++i;
  const std::string num = v.substr(0, i), unit = v.substr(i);
  double x = 0;
  const auto r = std::from_chars(num.data(), num.data() + num.size(), x);
  if (num.empty() || r.ec != std::errc() || r.ptr != num.data() + num.size() || !(x >= 0))
    fail("--kv-budget '{}': expected tokens (2048) or bytes (96MiB, 1.5GB)", value);
  if (unit.empty()) {
    if (num.find('.') != std::string::npos) fail("--kv-budget '{}': a token count is a whole number", value);
    return static_cast<int64_t>(x);
  }
  struct Unit { const char* s; double f; };
  constexpr Unit kUnits[] = {{"b", 1},         {"kb", 1e3},         {"mb", 1e6},         {"gb", 1e9},
                             {"kib", 1024.0}, {"mib", 1048576.0}, {"gib", 1073741824.0}};
  for (const auto& u : kUnits)
    if (unit == u.s) {
      STRATA_ASSERT(bytes_per_token > 0, "parse_budget_tokens: bytes_per_token must be positive");
      return static_cast<int64_t>(x * u.f / bytes_per_token);
    }
  fail("--kv-budget '{}': unknown unit '{}' (tokens: no unit; bytes: B, KB, MB, GB, KiB, MiB, GiB)", value, unit);
}

KvBudgetUpdate prepare_budget_update(std::span<const KvSlotMeta> slots, int64_t n_incoming, const KvBudget& b,
                                     const KvSimilarity& similarity) {
  const int32_t n = static_cast<int32_t>(slots.size());
  KvBudgetUpdate u;
  u.n_before = n;
  u.keep.resize(n);
  for (int32_t i = 0; i < n; ++i) u.keep[i] = i;
  if (b.policy == KvPolicy::None || b.max_tokens <= 0 || n + n_incoming <= b.max_tokens) return u;

  const int64_t room = b.max_tokens - n_incoming;
  if (room < static_cast<int64_t>(b.n_sink) + b.n_recent)
    fail("--kv-budget {} tokens cannot hold {} attention sinks, {} recent tokens and a batch of {} new tokens: "
         "raise --kv-budget to at least {} or use smaller batches (--ubatch)",
         b.max_tokens, b.n_sink, b.n_recent, n_incoming, b.n_sink + b.n_recent + n_incoming);
  const int64_t target = std::max<int64_t>(room - std::max(b.evict_batch, 0), int64_t{b.n_sink} + b.n_recent);

  // [0, n_sink) sinks | [n_sink, mid_end) middle | [mid_end, n) recent
  const int32_t n_sink = std::min(b.n_sink, n);
  const int32_t mid_end = std::max(n_sink, n - b.n_recent);
  const int32_t n_mid = mid_end - n_sink;
  const int32_t n_mid_keep = static_cast<int32_t>(std::clamp<int64_t>(target - n_sink - (n - mid_end), 0, n_mid));

  std::vector<uint8_t> kept(n, 1);
  std::vector<int32_t> mid(n_mid);
  for (int32_t i = 0; i < n_mid; ++i) mid[i] = n_sink + i;
  if (b.policy == KvPolicy::Streaming) {
    for (int32_t i = 0; i < n_mid - n_mid_keep; ++i) kept[mid[i]] = 0;  // drop the oldest
  } else {
    // Highest accumulated score first; ties go to the more recent slot.
    std::stable_sort(mid.begin(), mid.end(), [&](int32_t a, int32_t c) {
      return slots[a].score > slots[c].score || (slots[a].score == slots[c].score && a > c);
    });
    for (int32_t i = n_mid_keep; i < n_mid; ++i) kept[mid[i]] = 0;
  }

  if (b.policy == KvPolicy::Merge) {
    STRATA_ASSERT(static_cast<bool>(similarity), "prepare_budget_update: the merge policy needs a similarity");
    // Merge targets: the kept middle slots (important "anchors"); with none, the recent window.
    std::vector<int32_t> targets;
    for (int32_t i = n_sink; i < mid_end; ++i)
      if (kept[i]) targets.push_back(i);
    if (targets.empty())
      for (int32_t i = mid_end; i < n; ++i) targets.push_back(i);
    if (!targets.empty())
      for (int32_t e = n_sink; e < mid_end; ++e) {
        if (kept[e]) continue;
        int32_t best = targets[0];
        float best_sim = similarity(e, best);
        for (size_t j = 1; j < targets.size(); ++j) {
          const int32_t t = targets[j];
          const float s = similarity(e, t);
          // Ties: the positionally nearer target.
          if (s > best_sim || (s == best_sim && std::abs(t - e) < std::abs(best - e))) {
            best = t;
            best_sim = s;
          }
        }
        u.merges.push_back({e, best});
      }
  }

  u.keep.clear();
  for (int32_t i = 0; i < n; ++i)
    if (kept[i]) u.keep.push_back(i);
  return u;
}

std::vector<KvSlotMeta> apply_update(const KvBudgetUpdate& u, std::span<const KvSlotMeta> slots) {
  STRATA_ASSERT(static_cast<int32_t>(slots.size()) == u.n_before, "apply_update: slots changed since prepare");
  std::vector<KvSlotMeta> s(slots.begin(), slots.end());
  for (const KvMerge& m : u.merges) {
    s[m.into].count += s[m.from].count;
    s[m.into].score += s[m.from].score;
  }
  std::vector<KvSlotMeta> out;
  out.reserve(u.keep.size());
  for (int32_t i : u.keep) out.push_back(s[i]);
  return out;
}

void apply_update_rows(const KvBudgetUpdate& u, std::span<const KvSlotMeta> slots, float* rows, int32_t dim) {
  STRATA_ASSERT(static_cast<int32_t>(slots.size()) == u.n_before, "apply_update_rows: slots changed since prepare");
  std::vector<int64_t> count(slots.size());
  for (size_t i = 0; i < slots.size(); ++i) count[i] = slots[i].count;
  for (const KvMerge& m : u.merges) {
    float* into = rows + static_cast<int64_t>(m.into) * dim;
    const float* from = rows + static_cast<int64_t>(m.from) * dim;
    const double ci = static_cast<double>(count[m.into]), cf = static_cast<double>(count[m.from]);
    const double inv = 1.0 / (ci + cf);
    for (int32_t c = 0; c < dim; ++c) into[c] = static_cast<float>((ci * into[c] + cf * from[c]) * inv);
    count[m.into] += count[m.from];
  }
  for (size_t i = 0; i < u.keep.size(); ++i)
    if (u.keep[i] != static_cast<int32_t>(i))
      std::memmove(rows + i * dim, rows + static_cast<int64_t>(u.keep[i]) * dim, sizeof(float) * dim);
}

}  // namespace strata::kv
