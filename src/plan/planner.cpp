// The memory planner and the per-phase predictions (planner.h; the model is in docs/PLANNING.md).
#include "plan/planner.h"
#include "plan/stream_pipeline.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <functional>
#include <map>

#include "core/error.h"
#include "gguf/gguf.h"
#include "model/hparams.h"
#include "model/synthetic.h"

#include <nlohmann/json.hpp>

namespace strata::plan {

// ---- Model descriptions ----

const char* role_name(TensorRole r) {
  switch (r) {
    case TensorRole::kNorm: return "norms";
    case TensorRole::kAttention: return "attention";
    case TensorRole::kOutput: return "output";
    case TensorRole::kFfn: return "ffn";
    case TensorRole::kEmbedding: return "token embeddings";
    case TensorRole::kOther: return "other";
  }
  return "?";
}

int64_t TensorDesc::n_elements() const {
  int64_t n = 1;
  for (int64_t d : ne) n *= d;
  return n;
}

uint64_t TensorDesc::row_bytes() const {
  const int64_t rows = ne.empty() ? 1 : n_elements() / std::max<int64_t>(ne[0], 1);
  return rows > 0 ? bytes / static_cast<uint64_t>(rows) : bytes;
}

uint64_t ModelDesc::weight_bytes() const {
  uint64_t b = 0;
  for (const auto& t : tensors) b += t.bytes;
  return b;
}

double ModelDesc::n_params() const {
  double n = 0;
  for (const auto& t : tensors) n += static_cast<double>(t.n_elements());
  return n;
}

std::string ModelDesc::main_type() const {
  std::map<DType, uint64_t> by;
  for (const auto& t : tensors) by[t.type] += t.bytes;
  DType best = DType::F32;
  uint64_t most = 0;
  for (auto [t, b] : by)
    if (b > most) most = b, best = t;
  return dtype_name(best);
}

namespace {

void classify(TensorDesc& d) {
  const std::string& n = d.name;
  if (n.rfind("blk.", 0) == 0) d.layer = std::atoi(n.c_str() + 4);
  if (n == "token_embd.weight") d.role = TensorRole::kEmbedding;
  else if (n == "output.weight") d.role = TensorRole::kOutput;
  else if (d.is_vector()) d.role = n.find("norm") != std::string::npos ? TensorRole::kNorm : TensorRole::kOther;
  else if (n.find("attn_") != std::string::npos) d.role = TensorRole::kAttention;
  else if (n.find("ffn_") != std::string::npos) d.role = TensorRole::kFfn;
  else d.role = TensorRole::kOther;
}

void finish(ModelDesc& m) {
  m.tied_output = std::none_of(m.tensors.begin(), m.tensors.end(),
                               [](const TensorDesc& t) { return t.role == TensorRole::kOutput; });
  // Tied embeddings are also the output matrix: read whole every token, not gathered.
  if (m.tied_output)
    for (auto& t : m.tensors)
      if (t.role == TensorRole::kEmbedding) t.role = TensorRole::kOutput;
}

}  // namespace

ModelDesc describe_gguf(const gguf::File& f) {
  const model::HParams hp = model::read_hparams(f);
  ModelDesc m;
  m.name = hp.name.empty() ? f.path() : hp.name;
  m.arch = hp.arch_name;
  m.path = f.path();
  m.n_vocab = hp.n_vocab, m.n_ctx_train = hp.n_ctx_train, m.n_embd = hp.n_embd, m.n_layer = hp.n_layer;
  m.n_ff = hp.n_ff, m.n_head = hp.n_head, m.n_head_kv = hp.n_head_kv, m.head_dim = hp.head_dim;
  m.file_bytes = f.file_size();
  for (const auto& t : f.tensors()) {
    TensorDesc d;
    d.name = t.name;
    d.type = static_cast<DType>(t.type);
    d.ne = t.ne;
    d.bytes = t.nbytes;
    d.file_offset = f.data_offset() + t.offset;
    classify(d);
    m.tensors.push_back(std::move(d));
  }
  if (m.n_vocab == 0)
    for (const auto& t : m.tensors)
      if (t.role == TensorRole::kEmbedding && t.ne.size() >= 2) m.n_vocab = t.ne[1];
  finish(m);
  return m;
}

ModelDesc describe_spec(const model::SyntheticSpec& s) {
  ModelDesc m;
  m.name = s.name, m.arch = s.arch;
  m.n_vocab = s.n_vocab, m.n_ctx_train = s.n_ctx, m.n_embd = s.n_embd, m.n_layer = s.n_layer, m.n_ff = s.n_ff;
  m.n_head = s.n_head, m.n_head_kv = s.n_head_kv, m.head_dim = s.head_dim();
  auto add = [&](const std::string& name, DType want, int64_t in, int64_t out) {
    TensorDesc d;
    d.name = name;
    d.type = out > 0 ? model::fallback_type(want, in) : DType::F32;
    d.ne = out > 0 ? std::vector<int64_t>{in, out} : std::vector<int64_t>{in};
    d.bytes = row_bytes(d.type, in) * static_cast<uint64_t>(std::max<int64_t>(out, 1));
    classify(d);
    m.tensors.push_back(std::move(d));
  };
  const DType wt = s.weight_type;
  add("token_embd.weight", wt, s.n_embd, s.n_vocab);
  for (int64_t l = 0; l < s.n_layer; ++l) {
    const std::string b = "blk." + std::to_string(l) + ".";
    add(b + "attn_norm.weight", DType::F32, s.n_embd, 0);
    add(b + "attn_q.weight", wt, s.n_embd, s.n_embd);
    add(b + "attn_k.weight", wt, s.n_embd, s.n_embd_kv());
    add(b + "attn_v.weight", wt, s.n_embd, s.n_embd_kv());
    if (s.qkv_bias) {
      add(b + "attn_q.bias", DType::F32, s.n_embd, 0);
      add(b + "attn_k.bias", DType::F32, s.n_embd_kv(), 0);
      add(b + "attn_v.bias", DType::F32, s.n_embd_kv(), 0);
    }
    add(b + "attn_output.weight", wt, s.n_embd, s.n_embd);
    add(b + "ffn_norm.weight", DType::F32, s.n_embd, 0);
    add(b + "ffn_gate.weight", wt, s.n_embd, s.n_ff);
    add(b + "ffn_up.weight", wt, s.n_embd, s.n_ff);
    add(b + "ffn_down.weight", wt, s.n_ff, s.n_embd);
  }
  add("output_norm.weight", DType::F32, s.n_embd, 0);
  if (!s.tied_embeddings)
    add("output.weight", s.output_type >= 0 ? static_cast<DType>(s.output_type) : wt, s.n_embd, s.n_vocab);
  finish(m);
  m.file_bytes = m.weight_bytes();
  return m;
}

// ---- Placement ----

namespace {

constexpr uint64_t kIoBlock = 4096;

bool quantized(DType t) { return !(t == DType::F32 || t == DType::F16 || t == DType::BF16 || t == DType::F64); }

int priority(TensorRole r) {
  switch (r) {
    case TensorRole::kNorm: return 0;
    case TensorRole::kAttention: return 1;
    case TensorRole::kOutput: return 2;
    case TensorRole::kFfn: return 3;
    case TensorRole::kOther: return 4;
    case TensorRole::kEmbedding: return 5;
  }
  return 6;
}

// Where FFN layer `layer` comes in the pin order: layers in bit-reversed order (0, 16, 8, 24, 4, ... for
// 32 layers), so that whatever prefix stays resident, the streamed layers are spread over the forward pass
// instead of being its last layers. The ring reads ahead only `ring_slots` tensors: spread out, the reads
// of a streamed layer overlap the compute of the resident layer before it, and the disk stays busy; bunched
// at the end, the disk idles during the resident layers, then the CPU waits for it (stream_pipeline.h).
uint32_t spread_key(int layer, int64_t n_layer) {
  int bits = 0;
  while ((int64_t{1} << bits) < n_layer) ++bits;
  uint32_t r = 0;
  for (int b = 0; b < bits; ++b)
    if (layer >> b & 1) r |= 1u << (bits - 1 - b);
  return r;
}

// Where an FFN matrix comes among the FFN matrices of the pin order: gates, then ups, then downs, each
// kind over the layers in spread_key order. So the streamed FFN matrices (the end of the pin order) are
// the downs of layers spread over the forward pass, one per layer, before any layer streams two: the
// 2-slot ring reads each one during the compute of the resident layers before it. Streamed a layer at a
// time (gate, up, down in a row, the order until 2026-11-29), the third read could not start before the
// first was used and the CPU waited for it (at 100% of TinyLlama Q8_0: 0.5x the unlimited speed).
int ffn_kind_rank(const std::string& name) {
  if (name.find("ffn_down") != std::string::npos) return 2;
  if (name.find("ffn_up") != std::string::npos) return 1;
  return 0;
}

// Matrices in the order they are pinned: attention of every layer, output, FFN matrices by kind and layer
// (ffn_kind_rank, spread_key), the rest, token embeddings last.
std::vector<size_t> pin_order(const ModelDesc& m) {
  std::vector<size_t> v;
  for (size_t i = 0; i < m.tensors.size(); ++i)
    if (!m.tensors[i].is_vector()) v.push_back(i);
  std::stable_sort(v.begin(), v.end(), [&](size_t a, size_t b) {
    const TensorDesc &x = m.tensors[a], &y = m.tensors[b];
    if (priority(x.role) != priority(y.role)) return priority(x.role) < priority(y.role);
    if (x.role == TensorRole::kFfn && x.layer >= 0 && y.layer >= 0) {
      if (ffn_kind_rank(x.name) != ffn_kind_rank(y.name)) return ffn_kind_rank(x.name) < ffn_kind_rank(y.name);
      return spread_key(x.layer, m.n_layer) < spread_key(y.layer, m.n_layer);
    }
    return false;
  });
  return v;
}

// The largest tensor that streams through the ring (embedding rows are gathered, not ringed).
uint64_t largest_ringed(const ModelDesc& m, const std::vector<Where>& where) {
  uint64_t mx = 0;
  for (size_t i = 0; i < m.tensors.size(); ++i)
    if (where[i] == Where::kStreamed && m.tensors[i].role != TensorRole::kEmbedding)
      mx = std::max(mx, m.tensors[i].bytes);
  return mx;
}

// First fit in pin order under `budget` bytes for matrices.
std::vector<Where> place(const ModelDesc& m, const std::vector<size_t>& order, int64_t budget) {
  std::vector<Where> where(m.tensors.size(), Where::kResident);
  for (size_t i : order) {
    const auto b = static_cast<int64_t>(m.tensors[i].bytes);
    if (b <= budget) budget -= b;
    else where[i] = Where::kStreamed;
  }
  return where;
}

const TensorDesc* embedding(const ModelDesc& m) {
  for (const auto& t : m.tensors)
    if (t.role == TensorRole::kEmbedding) return &t;
  return nullptr;
}

// Work of one token's matrices (everything but the gathered embedding row).
struct TokenOps {
  double int8 = 0, f32 = 0;            // all matrices
  double out_int8 = 0, out_f32 = 0;    // the output matrix alone (prefill computes it for one token)
};

TokenOps token_ops(const ModelDesc& m) {
  TokenOps o;
  for (const auto& t : m.tensors) {
    if (t.is_vector() || t.role == TensorRole::kEmbedding) continue;
    const double ops = 2.0 * static_cast<double>(t.n_elements());
    (quantized(t.type) ? o.int8 : o.f32) += ops;
    if (t.role == TensorRole::kOutput) (quantized(t.type) ? o.out_int8 : o.out_f32) += ops;
  }
  return o;
}

struct Traffic {
  double dram = 0;          // bytes read by the CPU each token (resident and ring), embedding excluded
  double ssd = 0;           // streamed bytes each token
  double embd_row = 0;      // bytes of one embedding row
  double embd_reads = 0;    // 4 KiB reads per gathered row when the embeddings are on disk
};

Traffic traffic(const ModelDesc& m, const std::vector<Where>& where) {
  Traffic t;
  for (size_t i = 0; i < m.tensors.size(); ++i) {
    const TensorDesc& d = m.tensors[i];
    if (d.role == TensorRole::kEmbedding) {
      t.embd_row = static_cast<double>(d.row_bytes());
      if (where[i] == Where::kStreamed) t.embd_reads = std::ceil(t.embd_row / kIoBlock);
      continue;
    }
    t.dram += static_cast<double>(d.bytes);
    if (where[i] == Where::kStreamed) t.ssd += static_cast<double>(d.bytes);
  }
  return t;
}

// f32 FLOPs of attention for one token at position `pos` (scores and weighted sum over pos + 1 keys).
double attention_flops(const ModelDesc& m, double n_keys) {
  return 4.0 * static_cast<double>(m.n_layer * m.n_head * m.head_dim) * n_keys;
}

// Where a matrix comes in the forward pass (llama_forward.cpp; the streamer's sequence, model.cpp).
int forward_rank(const TensorDesc& t) {
  if (t.role == TensorRole::kOutput) return 1 << 30;
  static constexpr const char* kOrder[] = {".attn_q.", ".attn_k.", ".attn_v.", ".attn_output.",
                                           ".ffn_gate.", ".ffn_up.", ".ffn_down."};
  int k = 0;
  for (const char* s : kOrder) {
    if (t.name.find(s) != std::string::npos) break;
    ++k;
  }
  return std::max(t.layer, 0) * 16 + k;
}

// One decode token of a streamed plan as the streamer runs it (stream_pipeline.h): per matrix, CPU time
// = its roofline (bytes from DRAM, or ops), plus the tile packing and checksum of a streamed one; disk time = its
// bytes at the sequential rate; attention over `depth` keys and the embedding gather are CPU-side steps.
PipelineTime simulate_decode(const ModelDesc& m, const Plan& p, const Traffic& tr, int64_t depth) {
  const MachineRates& r = p.rates;
  std::vector<size_t> mats;
  for (size_t i = 0; i < m.tensors.size(); ++i)
    if (!m.tensors[i].is_vector() && m.tensors[i].role != TensorRole::kEmbedding) mats.push_back(i);
  std::stable_sort(mats.begin(), mats.end(),
                   [&](size_t a, size_t b) { return forward_rank(m.tensors[a]) < forward_rank(m.tensors[b]); });
  std::vector<PipelineOp> ops;
  // The embedding row: a small random read when on disk (synchronous), else a DRAM row.
  ops.push_back({tr.embd_reads > 0 ? tr.embd_reads / r.ssd_rand_iops : tr.embd_row / (r.dram_gbps * 1e9), false, 0});
  const double attn_layer = (p.kv_bytes_per_token * static_cast<double>(depth) / (r.dram_gbps * 1e9) +
                             attention_flops(m, static_cast<double>(depth + 1)) / (r.f32_gflops * 1e9 * r.compute_efficiency)) /
                            static_cast<double>(std::max<int64_t>(1, m.n_layer));
  int last_layer = -1;
  for (size_t i : mats) {
    const TensorDesc& t = m.tensors[i];
    if (t.layer >= 0 && t.layer != last_layer && t.role != TensorRole::kOutput) {
      ops.push_back({attn_layer, false, 0});
      last_layer = t.layer;
    }
    const auto bytes = static_cast<double>(t.bytes);
    const double flops = 2.0 * static_cast<double>(t.n_elements());
    const double rate = quantized(t.type) ? r.int8_gops : r.f32_gflops;
    double cpu = std::max(bytes / (r.dram_gbps * 1e9), flops / (rate * 1e9 * r.compute_efficiency));
    const bool streamed = p.where[i] == Where::kStreamed;
    if (streamed) {
      if (const double pack = stream_pack_gbps_per_thread(t.type); pack > 0) cpu += bytes / (pack * 1e9 * r.threads);
      cpu += bytes * kStreamChecksumShare / (kStreamChecksumGbps * 1e9 * r.threads);
    }
    ops.push_back({cpu, streamed, streamed ? bytes / (r.ssd_seq_gbps * 1e9) : 0});
  }
  const int slots = p.buffers.ring_slot ? static_cast<int>(p.buffers.ring / p.buffers.ring_slot) : 1;
  return simulate_stream_pipeline(ops, slots);
}

PhasePrediction predict_decode(const ModelDesc& m, const Plan& p, const Traffic& tr, const TokenOps& ops,
                               int64_t depth) {
  StepWork w;
  w.dram_bytes = tr.dram + tr.embd_row + p.kv_bytes_per_token * static_cast<double>(depth);
  w.ssd_bytes = tr.ssd;
  w.ssd_random_reads = tr.embd_reads;
  w.int8_ops = ops.int8;
  w.f32_flops = ops.f32 + attention_flops(m, static_cast<double>(depth + 1));
  PhasePrediction r;
  r.step = roofline(w, p.rates);
  if (tr.ssd > 0) {
    // Streamed: what the ring overlaps, not max(t_dram, t_ssd, t_compute) (stream_pipeline.h).
    const PipelineTime pt = simulate_decode(m, p, tr, depth);
    r.step.seconds = std::max(pt.seconds, r.step.seconds);
    r.step.serial_seconds = std::max(r.step.serial_seconds, r.step.seconds);
    r.step.bound = pt.disk_busy >= 0.8 * r.step.seconds ? Bound::kSsd
                   : r.step.t_compute > r.step.t_dram   ? Bound::kCompute
                                                        : Bound::kDram;
  }
  r.tokens_per_s = 1.0 / r.step.seconds;
  r.serial_tokens_per_s = 1.0 / r.step.serial_seconds;
  r.dram_bytes = w.dram_bytes;
  r.ssd_bytes = w.ssd_bytes + tr.embd_reads * kIoBlock;
  return r;
}

PhasePrediction predict_prefill(const ModelDesc& m, const Plan& p, const Traffic& tr, const TokenOps& ops,
                                int64_t n_prompt, int64_t n_batch) {
  PhasePrediction r;
  double dram = 0, ssd = 0;
  for (int64_t p0 = 0; p0 < n_prompt; p0 += n_batch) {
    const int64_t p1 = std::min(n_prompt, p0 + n_batch);
    const auto nb = static_cast<double>(p1 - p0);
    const bool last = p1 == n_prompt;
    StepWork w;
    w.dram_bytes = tr.dram + nb * tr.embd_row + p.kv_bytes_per_token * static_cast<double>(p1);
    w.ssd_bytes = tr.ssd;
    w.ssd_random_reads = nb * tr.embd_reads;
    // Logits only for the last token of the prompt.
    w.int8_ops = nb * (ops.int8 - ops.out_int8) + (last ? ops.out_int8 : 0);
    w.f32_flops = nb * (ops.f32 - ops.out_f32) + (last ? ops.out_f32 : 0);
    const double keys = (static_cast<double>(p0 + 1) + static_cast<double>(p1)) / 2 * nb;  // sum of (pos + 1)
    w.f32_flops += attention_flops(m, keys);
    const StepTime s = roofline(w, p.rates);
    r.step.seconds += s.seconds;
    r.step.serial_seconds += s.serial_seconds;
    r.step.t_dram += s.t_dram, r.step.t_ssd += s.t_ssd, r.step.t_compute += s.t_compute;
    dram += w.dram_bytes;
    ssd += w.ssd_bytes + w.ssd_random_reads * kIoBlock;
  }
  const StepTime& s = r.step;
  r.step.bound = s.t_compute >= s.t_dram && s.t_compute >= s.t_ssd ? Bound::kCompute
                 : s.t_ssd >= s.t_dram                             ? Bound::kSsd
                                                                   : Bound::kDram;
  const auto n = static_cast<double>(n_prompt);
  r.tokens_per_s = n / s.seconds;
  r.serial_tokens_per_s = n / s.serial_seconds;
  r.dram_bytes = dram / n;
  r.ssd_bytes = ssd / n;
  return r;
}

}  // namespace

Plan make_plan(const ModelDesc& m, const MachineRates& rates, const PlanOptions& opt) {
  if (opt.mem_bytes <= 0) fail("--mem must be a positive size (e.g. --mem 4G)");
  if (opt.ring_slots < 1) fail("the streaming ring needs at least 1 slot");
  Plan p;
  p.mem_bytes = opt.mem_bytes;
  p.ctx = opt.ctx > 0 ? opt.ctx : std::min<int64_t>(m.n_ctx_train > 0 ? m.n_ctx_train : 4096, 4096);
  if (opt.ctx < 0) fail("--ctx {}: must be positive", opt.ctx);
  p.kv = opt.kv;
  p.rates = rates;
  p.weight_bytes = m.weight_bytes();
  kv::check_head_dim(opt.kv.k, static_cast<int32_t>(m.head_dim));
  kv::check_head_dim(opt.kv.v, static_cast<int32_t>(m.head_dim));
  p.kv_bytes_per_token = kv::model_bytes_per_token(opt.kv, static_cast<int32_t>(m.n_layer),
                                                   static_cast<int32_t>(m.n_head_kv), static_cast<int32_t>(m.head_dim));
  p.kv_bytes = static_cast<uint64_t>(std::ceil(p.kv_bytes_per_token * static_cast<double>(p.ctx)));

  // Working buffers without the ring.
  // The runtime sizes its scratch for n_batch tokens whatever the context (LlamaForward), so no clamp.
  const auto nb = static_cast<uint64_t>(opt.n_batch);
  const auto u = [](int64_t v) { return static_cast<uint64_t>(v); };
  const uint64_t q_dim = u(m.n_head * m.head_dim), kv_dim = u(m.n_head_kv * m.head_dim);
  const uint64_t wide = u(std::max(m.n_embd, m.n_ff));
  Buffers& b = p.buffers;
  b.activations = nb * (4 * (3 * u(m.n_embd) + q_dim + 2 * kv_dim + 2 * u(m.n_ff)) + 2 * wide);
  b.logits = 4 * u(m.n_vocab);
  b.scratch = u(rates.threads) * (4 * (u(p.ctx) + wide) + (64u << 10));
  b.overhead = u(opt.overhead_bytes);
  const TensorDesc* embd = embedding(m);
  const uint64_t gather = embd ? nb * embd->row_bytes() : 0;  // rows read from disk for a micro-batch
  const uint64_t fixed = p.kv_bytes + b.total();

  uint64_t pinned = 0, max_matrix = 0;
  for (const auto& t : m.tensors) {
    if (t.is_vector()) pinned += t.bytes;
    else if (t.role != TensorRole::kEmbedding) max_matrix = std::max(max_matrix, t.bytes);
  }
  const auto slots = static_cast<uint64_t>(opt.ring_slots);
  p.all_resident_peak_bytes = fixed + p.weight_bytes;
  p.min_peak_bytes = fixed + pinned + gather + slots * max_matrix;  // lowered below by smaller ring caps

  // The ring is as large as the largest streamed tensor, and what streams depends on the budget left after
  // the ring. Candidates: each cap on the ring slot (every distinct matrix size); tensors larger than the cap
  // must be resident, the rest are placed first-fit in pin order. Caps below the largest attention or FFN
  // tensor would force FFN before attention: not tried, so the hot set keeps its priority; in practice this
  // lets the output matrix stay resident and the ring small.
  const std::vector<size_t> order = pin_order(m);
  uint64_t floor_cap = 0;
  for (const auto& t : m.tensors)
    if (t.role == TensorRole::kAttention || t.role == TensorRole::kFfn) floor_cap = std::max(floor_cap, t.bytes);
  struct Candidate {
    uint64_t need;             // peak with every tensor <= cap streamed
    std::vector<size_t> rest;  // the tensors placed first-fit
  };
  std::vector<uint64_t> caps;
  for (const auto& t : m.tensors)
    if (!t.is_vector() && t.role != TensorRole::kEmbedding && t.bytes >= floor_cap) caps.push_back(t.bytes);
  std::sort(caps.begin(), caps.end(), std::greater<>());
  caps.erase(std::unique(caps.begin(), caps.end()), caps.end());
  std::vector<Candidate> cands;
  for (uint64_t cap : caps) {
    Candidate c{fixed + gather + pinned + slots * cap, {}};
    for (size_t i : order) {
      if (m.tensors[i].role != TensorRole::kEmbedding && m.tensors[i].bytes > cap) c.need += m.tensors[i].bytes;
      else c.rest.push_back(i);
    }
    p.min_peak_bytes = std::min(p.min_peak_bytes, c.need);
    cands.push_back(std::move(c));
  }

  if (p.all_resident_peak_bytes <= u(opt.mem_bytes)) {
    p.where.assign(m.tensors.size(), Where::kResident);
  } else {
    b.activations += gather;
    uint64_t best_streamed = UINT64_MAX;
    const Candidate* smallest = nullptr;
    for (const Candidate& c : cands) {
      if (!smallest || c.need < smallest->need) smallest = &c;
      if (c.need > u(opt.mem_bytes)) continue;
      std::vector<Where> w = place(m, c.rest, opt.mem_bytes - static_cast<int64_t>(c.need));
      uint64_t streamed = 0;
      for (size_t i = 0; i < m.tensors.size(); ++i)
        if (w[i] == Where::kStreamed) streamed += m.tensors[i].bytes;
      if (streamed < best_streamed) {
        best_streamed = streamed;
        p.where = std::move(w);
      }
    }
    if (p.where.empty())  // nothing fits: the smallest peak possible
      p.where = place(m, smallest ? smallest->rest : order, -1);
    b.ring_slot = largest_ringed(m, p.where);
    b.ring = slots * b.ring_slot;
  }
  for (size_t i = 0; i < m.tensors.size(); ++i)
    (p.where[i] == Where::kResident ? p.resident_bytes : p.streamed_bytes) += m.tensors[i].bytes;
  p.peak_bytes = p.kv_bytes + b.total() + p.resident_bytes;
  p.fits = p.peak_bytes <= u(opt.mem_bytes);

  for (TensorRole r : {TensorRole::kNorm, TensorRole::kAttention, TensorRole::kOutput, TensorRole::kFfn,
                       TensorRole::kOther, TensorRole::kEmbedding}) {
    RoleSummary s{r};
    for (size_t i = 0; i < m.tensors.size(); ++i) {
      if (m.tensors[i].role != r) continue;
      ++s.count, s.bytes += m.tensors[i].bytes;
      if (p.where[i] == Where::kResident) ++s.resident_count, s.resident_bytes += m.tensors[i].bytes;
    }
    if (s.count > 0) p.roles.push_back(s);
  }

  // Predictions.
  const Traffic tr = traffic(m, p.where);
  // The streamed set is read again every token: its re-read rate when a measured re-read set holds it.
  p.ssd_rate = choose_ssd_rate(rates, tr.ssd > 0 ? tr.ssd : HUGE_VAL);
  p.rates.ssd_seq_gbps = p.ssd_rate.gbps;
  const TokenOps ops = token_ops(m);
  p.n_prompt = std::max<int64_t>(1, std::min(opt.n_prompt, p.ctx));
  p.n_batch = static_cast<int64_t>(nb);
  p.prefill = predict_prefill(m, p, tr, ops, p.n_prompt, p.n_batch);
  p.ttft_s = p.prefill.step.seconds;
  p.decode = predict_decode(m, p, tr, ops, 0);
  p.decode_full = predict_decode(m, p, tr, ops, p.ctx);

  // Notes.
  if (m.n_ctx_train > 0 && p.ctx > m.n_ctx_train)
    p.notes.push_back(fmt::format("--ctx {} is beyond the model's training context ({}): quality will suffer",
                                  p.ctx, m.n_ctx_train));
  if (embd) {
    p.notes.push_back(fmt::format(
        "token embeddings ({}) are only gathered, one {} row per token: they are the first to leave memory "
        "(on disk they cost one 4 KiB read per token)", human_bytes(static_cast<double>(embd->bytes)),
        human_bytes(static_cast<double>(embd->row_bytes()))));
  } else if (m.tied_output) {
    p.notes.push_back("tied embeddings: token_embd.weight is also the output matrix, read whole every token");
  }
  if (p.fits && p.streamed_bytes > 0 && tr.ssd > 0)
    p.notes.push_back(fmt::format("{:.0f}% of the weights stream from SSD each token through a ring of {} x {}",
                                  100.0 * tr.ssd / tr.dram, opt.ring_slots,
                                  human_bytes(static_cast<double>(b.ring_slot))));
  if (p.streamed_bytes > 0 && tr.ssd > 0 && !rates.ssd_reread.empty())
    p.notes.push_back(
        std::string(p.ssd_rate.source) == "reread"
            ? fmt::format("SSD priced at the re-read rate {:.2f} GB/s: the {} streamed each token fit the {} "
                          "set the probe re-read (first read: {:.2f} GB/s)",
                          p.ssd_rate.gbps, human_bytes(tr.ssd), human_bytes(static_cast<double>(p.ssd_rate.set_bytes)),
                          rates.ssd_seq_gbps)
            : fmt::format("SSD priced at the first-read rate {:.2f} GB/s: the {} streamed each token exceed every "
                          "set the probe re-read (largest {})",
                          p.ssd_rate.gbps, human_bytes(tr.ssd),
                          human_bytes(static_cast<double>(rates.ssd_reread.front().set_bytes))));
  if (rates.ssd_assumed && p.streamed_bytes > 0)
    p.notes.push_back(fmt::format("the profile has no SSD measurement: assuming {} GB/s sequential reads "
                                  "(`strata probe` measures it)", kAssumedSsdSeqGbps));
  return p;
}

// ---- Advice ----

Advice advise(const ModelDesc& m, const MachineRates& rates, const PlanOptions& opt) {
  Advice a;
  const Plan base = make_plan(m, rates, opt);
  a.budget_streaming = base.min_peak_bytes;
  a.budget_resident = base.all_resident_peak_bytes;
  auto fits_ctx = [&](int64_t c) {
    PlanOptions o = opt;
    o.ctx = c;
    return make_plan(m, rates, o).fits;
  };
  int64_t lo = 0, hi = base.ctx;  // fits(lo) (0: none), !fits(hi) unless the base fits
  if (base.fits) {
    lo = base.ctx;
  } else {
    while (hi - lo > 1) {
      const int64_t mid = lo + (hi - lo) / 2;
      (fits_ctx(mid) ? lo : hi) = mid;
    }
  }
  a.max_ctx = lo >= 256 && !base.fits ? lo / 256 * 256 : lo;

  std::vector<std::pair<double, std::string>> fmts;
  const auto hd = static_cast<int32_t>(m.head_dim);
  for (const kv::KvFormatInfo& f : kv::all_formats()) {
    if (f.needs_calibration()) continue;
    PlanOptions o = opt;
    o.ctx = base.ctx;
    o.kv = {f.format, f.format, 0};
    try {
      kv::check_head_dim(f.format, hd);
      const Plan q = make_plan(m, rates, o);
      if (q.fits && q.kv_bytes < base.kv_bytes) fmts.emplace_back(q.kv_bytes_per_token, f.name);
    } catch (const Error&) {
    }
  }
  std::sort(fmts.begin(), fmts.end(), [](const auto& x, const auto& y) { return x.first > y.first; });
  for (auto& [bytes, name] : fmts) a.kv_formats.push_back(name);

  const std::string kvname = opt.kv.k == opt.kv.v ? kv::format_name(opt.kv.k)
                                                  : fmt::format("{}/{}", kv::format_name(opt.kv.k), kv::format_name(opt.kv.v));
  std::string msg = fmt::format(
      "{} does not fit in --mem {}: even with every weight matrix streamed from SSD, the KV cache ({} for {} "
      "tokens of {}) and working buffers ({}) need {}. What would fit:",
      m.name, human_bytes(static_cast<double>(opt.mem_bytes)), human_bytes(static_cast<double>(base.kv_bytes)),
      base.ctx, kvname, human_bytes(static_cast<double>(base.min_peak_bytes - base.kv_bytes)),
      human_bytes(static_cast<double>(base.min_peak_bytes)));
  if (a.max_ctx > 0) msg += fmt::format("\n  --ctx {}  (the largest context that fits with {} KV)", a.max_ctx, kvname);
  else msg += fmt::format("\n  no context fits with {} KV", kvname);
  if (!a.kv_formats.empty()) {
    std::string rest;
    for (size_t i = 1; i < a.kv_formats.size(); ++i) rest += (i > 1 ? ", " : "") + a.kv_formats[i];
    msg += fmt::format("\n  --kv-type {}  (fits {} tokens{}{})", a.kv_formats[0], base.ctx,
                       rest.empty() ? "" : "; also ", rest);
  }
  msg += fmt::format("\n  --mem {}  (streaming weights; --mem {} keeps them all resident)",
                     human_bytes(static_cast<double>(a.budget_streaming)), human_bytes(static_cast<double>(a.budget_resident)));
  a.message = msg;
  return a;
}

// ---- JSON ----

namespace {
using json = nlohmann::ordered_json;

json phase_json(const PhasePrediction& p) {
  return {{"tokens_per_s", p.tokens_per_s},
          {"serial_tokens_per_s", p.serial_tokens_per_s},
          {"bound", bound_name(p.step.bound)},
          {"seconds", p.step.seconds},
          {"t_dram_s", p.step.t_dram},
          {"t_ssd_s", p.step.t_ssd},
          {"t_compute_s", p.step.t_compute},
          {"bytes_per_token_dram", p.dram_bytes},
          {"bytes_per_token_ssd", p.ssd_bytes}};
}
}  // namespace

std::string plan_to_json(const ModelDesc& m, const Plan& p, const Advice* advice) {
  json j;
  j["model"] = {{"name", m.name}, {"path", m.path}, {"arch", m.arch}, {"type", m.main_type()},
                {"params", m.n_params()}, {"n_layer", m.n_layer}, {"n_embd", m.n_embd}, {"n_ff", m.n_ff},
                {"n_head", m.n_head}, {"n_head_kv", m.n_head_kv}, {"head_dim", m.head_dim},
                {"n_vocab", m.n_vocab}, {"n_ctx_train", m.n_ctx_train}, {"file_bytes", m.file_bytes}};
  j["fits"] = p.fits;
  j["mem_bytes"] = p.mem_bytes;
  j["ctx"] = p.ctx;
  j["kv_type_k"] = kv::format_name(p.kv.k);
  j["kv_type_v"] = kv::format_name(p.kv.v);
  j["threads"] = p.rates.threads;
  j["weight_bytes"] = p.weight_bytes;
  j["resident_bytes"] = p.resident_bytes;
  j["streamed_bytes"] = p.streamed_bytes;
  j["kv_bytes"] = p.kv_bytes;
  j["kv_bytes_per_token"] = p.kv_bytes_per_token;
  j["peak_bytes"] = p.peak_bytes;
  j["min_peak_bytes"] = p.min_peak_bytes;
  j["all_resident_peak_bytes"] = p.all_resident_peak_bytes;
  j["buffers"] = {{"activations", p.buffers.activations}, {"logits", p.buffers.logits},
                  {"scratch", p.buffers.scratch},         {"ring", p.buffers.ring},
                  {"ring_slot", p.buffers.ring_slot},     {"ring_slots", p.buffers.ring_slot ? p.buffers.ring / p.buffers.ring_slot : 0},
                  {"overhead", p.buffers.overhead}};
  j["predicted_pp_ts"] = p.prefill.tokens_per_s;
  j["predicted_tg_ts"] = p.decode.tokens_per_s;
  j["predicted_tg_ts_at_ctx"] = p.decode_full.tokens_per_s;
  j["n_prompt"] = p.n_prompt;
  j["n_batch"] = p.n_batch;
  j["ttft_s"] = p.ttft_s;
  j["ssd_gbps_used"] = p.ssd_rate.gbps;
  j["ssd_rate_source"] = p.ssd_rate.source;
  j["ssd_reread_set_bytes"] = p.ssd_rate.set_bytes;
  j["bytes_per_token_dram"] = p.decode.dram_bytes;
  j["bytes_per_token_ssd"] = p.decode.ssd_bytes;
  j["bound"] = {{"prefill", bound_name(p.prefill.step.bound)}, {"decode", bound_name(p.decode.step.bound)},
                {"decode_at_ctx", bound_name(p.decode_full.step.bound)}};
  j["prefill"] = phase_json(p.prefill);
  j["decode"] = phase_json(p.decode);
  j["decode_at_ctx"] = phase_json(p.decode_full);
  j["machine"] = {{"threads", p.rates.threads},       {"dram_gbps", p.rates.dram_gbps},
                  {"f32_gflops", p.rates.f32_gflops}, {"int8_gops", p.rates.int8_gops},
                  {"ssd_seq_gbps", p.rates.ssd_seq_gbps}, {"ssd_rand_iops", p.rates.ssd_rand_iops},
                  {"ssd_assumed", p.rates.ssd_assumed}, {"compute_efficiency", p.rates.compute_efficiency}};
  json roles = json::array();
  for (const auto& r : p.roles)
    roles.push_back({{"role", role_name(r.role)}, {"tensors", r.count}, {"resident_tensors", r.resident_count},
                     {"bytes", r.bytes}, {"resident_bytes", r.resident_bytes}});
  j["placement"] = roles;
  // The streamed tensors in compute order, with where their bytes are in the file: what the streamer reads.
  json streamed = json::array();
  for (size_t i = 0; i < m.tensors.size(); ++i) {
    if (p.where[i] != Where::kStreamed) continue;
    const TensorDesc& t = m.tensors[i];
    streamed.push_back({{"name", t.name}, {"role", role_name(t.role)}, {"layer", t.layer},
                        {"type", dtype_name(t.type)}, {"offset", t.file_offset}, {"bytes", t.bytes}});
  }
  j["streamed_tensors"] = streamed;
  j["notes"] = p.notes;
  if (advice) {
    j["advice"] = {{"max_ctx", advice->max_ctx}, {"kv_types", advice->kv_formats},
                   {"budget_streaming", advice->budget_streaming}, {"budget_resident", advice->budget_resident},
                   {"message", advice->message}};
  }
  return j.dump(2);
}

// ---- Sizes ----

int64_t parse_bytes(const std::string& s, const std::string& flag) {
  size_t pos = 0;
  double v = 0;
  try {
    v = std::stod(s, &pos);
  } catch (const std::exception&) {
    fail("{} {}: expected a size such as 4G, 512M or 1.5GiB", flag, s);
  }
  std::string suf = s.substr(pos);
  for (char& c : suf) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  double mul = 1;
  if (!suf.empty() && suf != "B") {
    const size_t k = std::string("KMGT").find(suf[0]);
    const std::string tail = suf.substr(1);
    if (k == std::string::npos || !(tail.empty() || tail == "IB" || tail == "B"))
      fail("{} {}: unknown unit '{}' (use K, M, G, T: binary; KB, MB, GB, TB: decimal)", flag, s, s.substr(pos));
    mul = std::pow(tail == "B" ? 1000.0 : 1024.0, static_cast<double>(k + 1));
  }
  if (!(v > 0)) fail("{} {}: must be positive", flag, s);
  return static_cast<int64_t>(v * mul);
}

std::string human_bytes(double b) {
  if (b >= 1024.0 * 1024 * 1024) return fmt::format("{:.2f} GiB", b / (1024.0 * 1024 * 1024));
  if (b >= 1024.0 * 1024) return fmt::format("{:.1f} MiB", b / (1024.0 * 1024));
  if (b >= 1024.0) return fmt::format("{:.1f} KiB", b / 1024.0);
  return fmt::format("{:.0f} B", b);
}

}  // namespace strata::plan
