// `strata plan -m MODEL [--mem 4G] [--ctx N] [--kv-type T] [--profile FILE|NAME] [--threads N] [--json]`:
// reads only the GGUF header and tensor index, decides which tensors stay resident and which stream from
// SSD under the budget, and predicts prefill and decode speed from a roofline over a machine profile
// (src/plan/planner.h, docs/PLANNING.md). Exits 1, saying what would fit, when nothing does.
#include <fmt/format.h>

#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include "cli/command.h"
#include "core/error.h"
#include "gguf/gguf.h"
#include "kv/kv_format.h"
#include "model/synthetic.h"
#include "plan/hardware_profiles.h"
#include "plan/planner.h"

namespace strata::cli {
namespace {

struct PlanCliOptions {
  std::string model, shape, type = "q4_0", mem, profile, kv_type = "f16", kv_k, kv_v;
  int64_t ctx = 0, n_prompt = 512, n_batch = 512;
  int threads = 0, ring_slots = 2;
  double efficiency = 0.5;
  bool json = false;
};

// MemAvailable of this machine (bytes), 0 when unknown.
int64_t mem_available() {
  std::ifstream f("/proc/meminfo");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("MemAvailable:", 0) == 0) {
      std::istringstream is(line.substr(13));
      int64_t kb = 0;
      is >> kb;
      return kb * 1024;
    }
  }
  return 0;
}

std::string count(double n) {
  return n >= 1e9 ? fmt::format("{:.2f} B", n / 1e9) : n >= 1e6 ? fmt::format("{:.1f} M", n / 1e6) : fmt::format("{:.0f}", n);
}

std::string hb(uint64_t b) { return plan::human_bytes(static_cast<double>(b)); }

std::string ts(double v) { return v >= 100 ? fmt::format("{:.0f}", v) : v >= 10 ? fmt::format("{:.1f}", v) : fmt::format("{:.2f}", v); }

const char* why(plan::TensorRole r) {
  switch (r) {
    case plan::TensorRole::kNorm: return "always resident: tiny, read every token";
    case plan::TensorRole::kAttention: return "pinned first: every layer, every token";
    case plan::TensorRole::kOutput: return "read whole every token; one large unit";
    case plan::TensorRole::kFfn: return "after attention, layers spread";
    case plan::TensorRole::kOther: return "biases, rope factors, other";
    case plan::TensorRole::kEmbedding: return "gathered: one row per token, first to disk";
  }
  return "";
}

void print_table(const plan::ModelDesc& m, const plan::Plan& p, const plan::ResolvedProfile& prof,
                 const std::string& mem_source) {
  const plan::MachineRates& r = p.rates;
  fmt::print("model      {} ({}, {} params, {} {}, {} layers, {}/{} heads, head_dim {})\n", m.name, m.arch,
             count(m.n_params()), hb(p.weight_bytes), m.main_type(), m.n_layer, m.n_head, m.n_head_kv, m.head_dim);
  fmt::print("machine    {} ({}): {} threads, DRAM {:.1f} GB/s, int8 {:.0f} GOP/s, f32 {:.0f} GFLOP/s (x{} "
             "efficiency), SSD {:.2f} GB/s{}\n",
             prof.name, prof.source, r.threads, r.dram_gbps, r.int8_gops, r.f32_gflops, r.compute_efficiency,
             r.ssd_seq_gbps,
             r.ssd_assumed                                     ? std::string(" (assumed)")
             : std::string(p.ssd_rate.source) == "reread"     ? fmt::format(" (re-read rate of a {} set)", hb(static_cast<uint64_t>(p.ssd_rate.set_bytes)))
             : std::string(p.ssd_rate.source) == "first_read" ? std::string(" (first-read rate)")
                                                               : std::string(""));
  fmt::print("budget     {} ({}), context {} tokens, KV {}{}\n\n", hb(static_cast<uint64_t>(p.mem_bytes)), mem_source,
             p.ctx, kv::format_name(p.kv.k),
             p.kv.k == p.kv.v ? "" : fmt::format("/{}", kv::format_name(p.kv.v)));

  fmt::print("{:<18} {:>8} {:>11} {:>11}  {}\n", "placement", "tensors", "resident", "streamed", "why");
  for (const auto& s : p.roles) {
    const std::string streamed = s.bytes == s.resident_bytes ? "-" : hb(s.bytes - s.resident_bytes);
    fmt::print("{:<18} {:>8} {:>11} {:>11}  {}\n", plan::role_name(s.role), s.count,
               s.resident_bytes ? hb(s.resident_bytes) : "-", streamed, why(s.role));
  }
  fmt::print("{:<18} {:>8} {:>11} {:>11}\n\n", "total", m.tensors.size(), hb(p.resident_bytes),
             p.streamed_bytes ? hb(p.streamed_bytes) : "-");

  const plan::Buffers& b = p.buffers;
  fmt::print("memory\n");
  fmt::print("  resident weights  {:>11}\n", hb(p.resident_bytes));
  fmt::print("  KV cache          {:>11}  = {:.0f} B/token x {} tokens (2 x {} layers x {} KV heads x {} dims, {})\n",
             hb(p.kv_bytes), p.kv_bytes_per_token, p.ctx, m.n_layer, m.n_head_kv, m.head_dim, kv::format_name(p.kv.k));
  fmt::print("  activations       {:>11}  (one micro-batch of {} tokens)\n", hb(b.activations),
             p.n_batch);
  fmt::print("  logits            {:>11}\n", hb(b.logits));
  fmt::print("  scratch           {:>11}  ({} threads)\n", hb(b.scratch), r.threads);
  if (b.ring) fmt::print("  streaming ring    {:>11}  ({} x {})\n", hb(b.ring), b.ring / b.ring_slot, hb(b.ring_slot));
  fmt::print("  runtime overhead  {:>11}\n", hb(b.overhead));
  fmt::print("  peak              {:>11}  of {}: {}\n\n", hb(p.peak_bytes), hb(static_cast<uint64_t>(p.mem_bytes)),
             p.fits ? "fits" : "DOES NOT FIT");

  fmt::print("prediction (roofline, {} threads)   {:>8}  {:>8}  {:>9}  {:>9}\n", r.threads, "t/s", "bound",
             "DRAM/tok", "SSD/tok");
  auto row = [&](const std::string& name, const plan::PhasePrediction& ph) {
    fmt::print("  {:<32} {:>8}  {:>8}  {:>9}  {:>9}\n", name, ts(ph.tokens_per_s), plan::bound_name(ph.step.bound),
               hb(static_cast<uint64_t>(ph.dram_bytes)), ph.ssd_bytes > 0 ? hb(static_cast<uint64_t>(ph.ssd_bytes)) : "-");
  };
  row(fmt::format("prefill pp{}", p.n_prompt), p.prefill);
  row("decode tg at depth 0", p.decode);
  row(fmt::format("decode tg at depth {}", p.ctx), p.decode_full);
  fmt::print("  time to first token ({} tokens)  {:.2f} s\n", p.n_prompt, p.ttft_s);
  if (p.streamed_bytes > 0)
    fmt::print("  (without overlapping SSD reads and compute: tg {} t/s)\n", ts(p.decode.serial_tokens_per_s));
  for (const auto& n : p.notes) fmt::print("note: {}\n", n);
}

const Command kCmd{
    "plan",
    "Decide what stays in memory and what streams from SSD, and predict speed, before loading a model",
    [](CLI::App& sub) -> RunFn {
      auto o = std::make_shared<PlanCliOptions>();
      auto* model_opt = sub.add_option("-m,--model", o->model, "GGUF model (only its header and tensor index are read)");
      sub.add_option("--shape", o->shape, "Plan a named model shape without its file (" +
                                              [] {
                                                std::string s;
                                                for (const auto& n : model::synthetic_shape_names()) s += (s.empty() ? "" : ", ") + n;
                                                return s;
                                              }() + ")")
          ->excludes(model_opt);
      sub.add_option("--type", o->type, "Weight type for --shape (q4_0 gets llama-quantize's q6_K output)")
          ->capture_default_str();
      sub.add_option("--mem", o->mem, "Memory budget: 4G, 512M, 1.5GiB (binary), 4GB (decimal) (default: the "
                                      "profile machine's RAM, or this machine's available memory)");
      sub.add_option("-c,--ctx", o->ctx, "Context size in tokens (default: the model's, at most 4096)");
      sub.add_option("--kv-type", o->kv_type, "KV cache format for K and V: " + kv::format_name_list())
          ->capture_default_str();
      sub.add_option("--kv-type-k", o->kv_k, "KV format of K (overrides --kv-type)");
      sub.add_option("--kv-type-v", o->kv_v, "KV format of V (overrides --kv-type)");
      sub.add_option("--profile", o->profile, "Machine profile: a built-in name (" + plan::builtin_profile_names() +
                                                  ") or a JSON file from `strata probe` (default: the probed profile)");
      sub.add_option("-t,--threads", o->threads, "Threads (default: the profile's largest measured count)");
      sub.add_option("-p,--n-prompt", o->n_prompt, "Prompt length for prefill speed and time to first token")
          ->capture_default_str();
      sub.add_option("-b,--batch", o->n_batch, "Prefill micro-batch in tokens")->capture_default_str();
      sub.add_option("--ring-slots", o->ring_slots, "Streaming buffers in flight")->capture_default_str();
      sub.add_option("--efficiency", o->efficiency, "Fraction of the peak compute rates the kernels reach")
          ->capture_default_str();
      sub.add_flag("--json", o->json, "Print one JSON object instead of the table");
      return [o]() {
        const plan::ResolvedProfile prof = plan::resolve_profile(o->profile);
        plan::ModelDesc m;
        if (!o->shape.empty()) {
          model::SyntheticSpec spec = model::synthetic_shape(o->shape);
          const auto t = dtype_from_name(o->type);
          if (!t) fail("--type {}: unknown tensor type: use one of {}", o->type, supported_type_list());
          spec.weight_type = *t;
          if (*t == DType::Q4_0 || *t == DType::Q4_1 || *t == DType::Q5_0 || *t == DType::Q5_1 ||
              *t == DType::Q4_K || *t == DType::Q5_K)
            spec.output_type = static_cast<int32_t>(DType::Q6_K);  // llama-quantize's mix
          m = plan::describe_spec(spec);
          m.name = o->shape + " " + o->type + " (shape only)";
        } else if (!o->model.empty()) {
          m = plan::describe_gguf(gguf::File::open(o->model));
        } else {
          fail("give a model: -m MODEL.gguf, or --shape NAME to plan a named shape without its file");
        }

        plan::PlanOptions opt;
        std::string mem_source = "--mem";
        if (!o->mem.empty()) {
          opt.mem_bytes = plan::parse_bytes(o->mem, "--mem");
        } else if (prof.mem_bytes > 0) {
          opt.mem_bytes = prof.mem_bytes, mem_source = "the " + prof.name + " machine's RAM";
        } else {
          opt.mem_bytes = mem_available(), mem_source = "available memory of this machine";
          if (opt.mem_bytes <= 0) fail("cannot read MemAvailable from /proc/meminfo: give --mem");
        }
        opt.ctx = o->ctx;
        const kv::KvFormat both = kv::parse_format(o->kv_type, "--kv-type");
        opt.kv.k = o->kv_k.empty() ? both : kv::parse_format(o->kv_k, "--kv-type-k");
        opt.kv.v = o->kv_v.empty() ? both : kv::parse_format(o->kv_v, "--kv-type-v");
        if (kv::format_info(opt.kv.k).needs_calibration() || kv::format_info(opt.kv.v).needs_calibration())
          fail("--kv-type: calibrated formats are planned like their base format; use bfp4 or bfp8 here");
        opt.threads = o->threads;
        opt.n_prompt = o->n_prompt;
        opt.n_batch = o->n_batch;
        opt.ring_slots = o->ring_slots;
        opt.compute_efficiency = o->efficiency;
        if (o->n_prompt < 1 || o->n_batch < 1) fail("--n-prompt and --batch must be positive");

        const plan::MachineRates rates = plan::rates_at(prof.profile, opt.threads, opt.compute_efficiency);
        plan::Plan p = plan::make_plan(m, rates, opt);
        if (!prof.note.empty()) p.notes.insert(p.notes.begin(), prof.note);
        std::unique_ptr<plan::Advice> advice;
        if (!p.fits) advice = std::make_unique<plan::Advice>(plan::advise(m, rates, opt));
        if (o->json) {
          fmt::print("{}\n", plan::plan_to_json(m, p, advice.get()));
        } else {
          print_table(m, p, prof, mem_source);
        }
        if (advice) {
          std::fprintf(stderr, "plan: %s\n", advice->message.c_str());
          return 1;
        }
        return 0;
      };
    }};

}  // namespace
}  // namespace strata::cli
