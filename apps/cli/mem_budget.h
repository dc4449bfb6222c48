// `--mem BYTES` for `strata run` and `strata bench`: plan the placement of the weights under the budget
// (plan::make_plan: the hot set resident, the rest streamed from the file each token) and load the model
// with it. Without --mem the model is loaded as before (weights used in place from the mapped file).
#pragma once
#include <memory>
#include <string>

#include "model/model.h"
#include "runtime/session.h"

namespace strata::cli {

struct MemBudgetOptions {
  std::string mem;              // "" (no budget), "600M", "1.5G", ...
  bool progress = false;
  bool report = true;           // one line on stderr: resident / streamed / predicted speed
};

// Throws strata::Error when the budget cannot hold even the non-streamable minimum (KV cache at this
// context, working buffers, the ring): the message says what would fit (a budget, a context, a KV format).
std::unique_ptr<model::Model> load_model_with_budget(const std::string& path, const runtime::SessionConfig& sc,
                                                     const MemBudgetOptions& o);

}  // namespace strata::cli
