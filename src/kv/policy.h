// KV budget policies (--kv-budget, --kv-policy): which cached positions of a sequence to keep when the cache
// reaches its budget, and which evicted ones to fold into a kept one instead of dropping them.
//  - streaming (StreamingLLM): the first n_sink positions (attention sinks) + the most recent ones;
//  - h2o (H2O / SnapKV-like): sinks + the n_recent most recent + the rest of the budget to the positions with
//    the highest accumulated attention score;
//  - merge (Elastic Cache): as h2o, and every evicted position is merged into its most similar kept
//    position (count-weighted average of K and V; counts add up, so no mass is lost).
// The policy sees only per-slot metadata and a similarity callback, never bytes: it returns a prepared
// update (llama.cpp's memory-interface style) that the cache applies in one step to its metadata and to
// the rows of every layer, wherever they live. A slot is one cached entry; slots are kept in position order.
#pragma once
#include <cmath>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

namespace strata::kv {

enum class KvPolicy : uint8_t { None, Streaming, H2O, Merge };

std::optional<KvPolicy> policy_from_name(std::string_view name);  // none, streaming, h2o, merge
KvPolicy parse_policy(std::string_view name, std::string_view flag);  // throws strata::Error
const char* policy_name(KvPolicy p);

struct KvBudget {
  KvPolicy policy = KvPolicy::None;
  int64_t max_tokens = 0;   // slots per sequence after an update plus the incoming tokens; 0 = unlimited
  int32_t n_sink = 4;       // the first slots, always kept
  int32_t n_recent = 32;    // the last slots, always kept
  int32_t evict_batch = 0;  // evict this many more than needed, so updates happen every evict_batch tokens
};

// --kv-budget: "2048" (tokens) or "96MiB" / "1.5GB" / "512KiB" (bytes; divided by the model's KV bytes per
// token, kv_format.h model_bytes_per_token). Throws strata::Error on a malformed value.
int64_t parse_budget_tokens(std::string_view value, double bytes_per_token);

struct KvSlotMeta {
  int32_t pos = 0;     // the token's position (its K is already rotated for it)
  float score = 0;     // accumulated attention weight (summed over query heads and queries)
  int32_t count = 1;   // tokens this slot stands for (1 + those merged into it)
};

struct KvMerge {
  int32_t from;  // an evicted slot (index before the update)
  int32_t into;  // a kept slot (index before the update)
};

// A prepared update: new slot i holds old slot keep[i]; merges are applied first, in order.
struct KvBudgetUpdate {
  int32_t n_before = 0;
  std::vector<int32_t> keep;    // old slot indices, ascending
  std::vector<KvMerge> merges;  // each from is evicted, each into is kept
  bool noop() const { return static_cast<int32_t>(keep.size()) == n_before && merges.empty(); }
  int32_t n_after() const { return static_cast<int32_t>(keep.size()); }
};

// Similarity of two slots (old indices), e.g. the cosine of their keys averaged over layers and heads;
// only the merge policy calls it (evicted × candidate pairs).
using KvSimilarity = std::function<float(int32_t a, int32_t b)>;

// The update that leaves room for n_incoming more tokens within b.max_tokens, or a no-op when they fit.
// Throws strata::Error when the budget cannot hold the sinks, the recent window and the incoming tokens.
KvBudgetUpdate prepare_budget_update(std::span<const KvSlotMeta> slots, int64_t n_incoming, const KvBudget& b,
                                     const KvSimilarity& similarity = {});

// Metadata after the update: merged counts and scores added to their targets, then compacted.
std::vector<KvSlotMeta> apply_update(const KvBudgetUpdate& u, std::span<const KvSlotMeta> slots);
// rows [n_before][dim] (K or V of one head, decoded) updated in place: each merge replaces `into` by the
// count-weighted average of `into` and `from`, then rows are compacted to [n_after][dim]. slots are the
// metadata before the update (for the counts).
void apply_update_rows(const KvBudgetUpdate& u, std::span<const KvSlotMeta> slots, float* rows, int32_t dim);

// Logit bias for a slot standing for `count` tokens: ln(count). With it, attention to a merged slot weighs
// like attention to its `count` tokens when their keys are equal (attention kernel: score + bias).
inline float merge_logit_bias(int32_t count) { return std::log(static_cast<float>(count)); }

}  // namespace strata::kv
