// Reading golden files (token ids, float32 logits) and comparing logits rows with a stated tolerance.
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <span>
#include <sstream>
#include <string>
#include <vector>

#include "test_util.h"

namespace strata::test {

// Whitespace-separated ids; lines starting with '#' are comments.
inline std::vector<int32_t> read_ids(const std::string& path) {
  std::ifstream f(path);
  std::vector<int32_t> ids;
  std::string line;
  while (std::getline(f, line)) {
    if (!line.empty() && line[0] == '#') continue;
    std::istringstream ss(line);
    int32_t v;
    while (ss >> v) ids.push_back(v);
  }
  return ids;
}

// llama.cpp reference ids: line 1 the prompt, line 2 the generated ids.
struct PromptAndGen {
  std::vector<int32_t> prompt, gen;
};
inline PromptAndGen read_llamacpp_ids(const std::string& path) {
  std::ifstream f(path);
  PromptAndGen r;
  std::string line;
  for (auto* v : {&r.prompt, &r.gen}) {
    if (!std::getline(f, line)) break;
    std::istringstream ss(line);
    int32_t x;
    while (ss >> x) v->push_back(x);
  }
  return r;
}

inline int32_t argmax(std::span<const float> v) {
  return static_cast<int32_t>(std::max_element(v.begin(), v.end()) - v.begin());
}

// Difference between the largest and the second largest value.
inline float top2_margin(std::span<const float> v) {
  float a = -INFINITY, b = -INFINITY;
  for (float x : v) {
    if (x > a) { b = a; a = x; } else if (x > b) { b = x; }
  }
  return a - b;
}

inline float max_abs_diff(std::span<const float> a, std::span<const float> b) {
  float m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::fabs(a[i] - b[i]));
  return m;
}

// Compares rows of logits (ours vs golden, [n_rows][n_vocab]): every value within tol, and the argmax equal
// except on rows where the golden top two are within tol (a near tie either side may win).
// Returns the largest difference seen.
inline float expect_logits_near(const std::vector<float>& ours, const std::vector<float>& golden, int64_t n_vocab,
                                float tol, const std::string& what) {
  EXPECT_EQ(ours.size(), golden.size()) << what;
  const size_t n_rows = std::min(ours.size(), golden.size()) / static_cast<size_t>(n_vocab);
  float worst = 0;
  int bad_rows = 0;
  for (size_t r = 0; r < n_rows; ++r) {
    std::span<const float> a(ours.data() + r * n_vocab, static_cast<size_t>(n_vocab));
    std::span<const float> g(golden.data() + r * n_vocab, static_cast<size_t>(n_vocab));
    const float d = max_abs_diff(a, g);
    worst = std::max(worst, d);
    const bool tie = top2_margin(g) < tol;
    if ((d > tol || (!tie && argmax(a) != argmax(g))) && bad_rows++ < 5)
      ADD_FAILURE() << what << ": row " << r << ": max |Δlogit| " << d << " (tolerance " << tol << "), argmax "
                    << argmax(a) << " vs golden " << argmax(g) << " (golden top-2 margin " << top2_margin(g) << ")";
  }
  return worst;
}

// Free-running greedy ids against golden ids: equal until the first difference, which is allowed only where
// the golden logits of that step have their top two within tol. Returns the number of equal steps.
// golden_logits_row(i) gives the golden logits that chose golden id i.
template <class RowFn>
size_t expect_greedy_match(const std::vector<int32_t>& ours, const std::vector<int32_t>& golden, float tol,
                           RowFn golden_logits_row, const std::string& what) {
  size_t i = 0;
  while (i < ours.size() && i < golden.size() && ours[i] == golden[i]) ++i;
  if (i < std::min(ours.size(), golden.size())) {
    const float margin = top2_margin(golden_logits_row(i));
    EXPECT_LT(margin, tol) << what << ": greedy ids differ at step " << i << " (" << ours[i] << " vs golden "
                           << golden[i] << ") where the golden top-2 margin is " << margin << ", not a near tie";
  } else {
    EXPECT_EQ(ours.size(), golden.size()) << what;
  }
  return i;
}

}  // namespace strata::test
