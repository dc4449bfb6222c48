#include "cli/mem_budget.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdio>

#include "core/error.h"
#include "gguf/gguf.h"
#include "kv/kv_format.h"
#include "plan/hardware_profiles.h"
#include "plan/planner.h"
#include "plan/roofline.h"

namespace strata::cli {

std::unique_ptr<model::Model> load_model_with_budget(const std::string& path, const runtime::SessionConfig& sc,
                                                     const MemBudgetOptions& o) {
  if (o.mem.empty()) return model::Model::load(path, {.prepare_kernels = true, .progress = o.progress});
  plan::PlanOptions opt;
  opt.mem_bytes = plan::parse_bytes(o.mem, "--mem");
  gguf::ReadOptions ro;
  ro.progress = o.progress;
  gguf::File f = gguf::File::open(path, ro);  // the header only: no weight page is touched
  const plan::ModelDesc desc = plan::describe_gguf(f);
  // The session's context: its n_ctx, else the model's training context.
  opt.ctx = sc.n_ctx > 0 ? sc.n_ctx : std::max<int64_t>(desc.n_ctx_train, 1);
  opt.kv.k = sc.format_k ? *sc.format_k : kv::parse_format(dtype_name(sc.type_k), "--cache-type-k");
  opt.kv.v = sc.format_v ? *sc.format_v : kv::parse_format(dtype_name(sc.type_v), "--cache-type-v");
  opt.kv.recent_window = sc.kv_window;
  opt.n_batch = sc.n_batch;
  const plan::ResolvedProfile prof = plan::resolve_profile("");
  opt.threads = sc.n_threads > 0 ? sc.n_threads : runtime::default_threads();
  const plan::MachineRates rates = plan::rates_at(prof.profile, opt.threads, opt.compute_efficiency);
  const plan::Plan p = plan::make_plan(desc, rates, opt);
  if (!p.fits) {
    const plan::Advice a = plan::advise(desc, rates, opt);
    fail("--mem {}: {} (`strata plan -m {} --mem {}` shows the whole plan)", o.mem, a.message, path, o.mem);
  }
  model::WeightPlacement placement;
  placement.ring_slots = opt.ring_slots;
  for (size_t i = 0; i < desc.tensors.size(); ++i)
    if (p.where[i] == plan::Where::kStreamed) placement.streamed.push_back(desc.tensors[i].name);
  if (o.report)
    std::fprintf(stderr,
                 "strata: --mem %s: %s of weights resident, %s streamed from disk each token (%zu tensors, ring "
                 "%d x %s); planned peak %s; predicted decode %.2f tok/s (%s profile %s)\n",
                 o.mem.c_str(), plan::human_bytes(static_cast<double>(p.resident_bytes)).c_str(),
                 plan::human_bytes(static_cast<double>(p.streamed_bytes)).c_str(), placement.streamed.size(),
                 opt.ring_slots, plan::human_bytes(static_cast<double>(p.buffers.ring_slot)).c_str(),
                 plan::human_bytes(static_cast<double>(p.peak_bytes)).c_str(), p.decode.tokens_per_s,
                 prof.source.c_str(), prof.name.c_str());
  model::LoadOptions lo{.prepare_kernels = true, .progress = o.progress, .placement = &placement};
  auto m = model::Model::from_file(std::move(f), lo);
  return m;
}

}  // namespace strata::cli
