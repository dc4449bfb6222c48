// `strata plan`: before any weight is loaded (only the GGUF header and tensor index are parsed), decide
// where every byte lives under a memory budget and predict the speed per phase from a roofline over the
// machine's profile. docs/PLANNING.md explains the model with a worked example.
//
// Placement. Vectors (norms, biases, rope factors) are always resident. Matrices are pinned in this
// order while the budget lasts: attention (every layer), the output matrix (read whole every token, and
// the largest single unit: streaming it would need the largest ring slot), then the FFN layer by layer in
// bit-reversed layer order (the streamed layers spread over the forward pass; planner.cpp spread_key).
// Token embeddings come last: a token only gathers its row (n_embd values), so on disk they cost one
// small random read per token instead of their whole size in memory. What does not fit is streamed from
// the model file each token into a fixed ring of `ring_slots` buffers, each as large as the largest
// streamed tensor, the next ones read while the current one computes. The ring's size is chosen with the
// placement: each cap on the slot is tried (tensors above it resident), the one streaming least wins.
//
// Memory: peak = resident weights + KV cache + working buffers (activations of a micro-batch, logits,
// per-thread scratch, the streaming ring) + runtime overhead. The plan fits when peak <= budget; it
// refuses only when even streaming every matrix leaves the KV cache and buffers over the budget.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "kv/kv_format.h"
#include "plan/roofline.h"
#include "tensor/dtype.h"

namespace strata::gguf { class File; }
namespace strata::model { struct SyntheticSpec; }

namespace strata::plan {

enum class TensorRole { kNorm, kAttention, kOutput, kFfn, kEmbedding, kOther };
const char* role_name(TensorRole r);  // "norms", "attention", "output", "ffn", "token embeddings", "other"

struct TensorDesc {
  std::string name;
  DType type = DType::F32;
  std::vector<int64_t> ne;   // ne[0]: row length
  uint64_t bytes = 0;
  uint64_t file_offset = 0;  // absolute offset of the data in the model file (0 for descriptions)
  int layer = -1;            // blk.N, -1 for global tensors
  TensorRole role = TensorRole::kOther;
  int64_t n_elements() const;
  bool is_vector() const { return ne.size() < 2 || n_elements() == ne[0]; }
  uint64_t row_bytes() const;  // bytes of one row (ne[0] values)
};

// What the planner needs to know about a model: shapes and the tensor index, no weights.
struct ModelDesc {
  std::string name, arch, path;
  int64_t n_vocab = 0, n_ctx_train = 0, n_embd = 0, n_layer = 0, n_ff = 0;
  int64_t n_head = 0, n_head_kv = 0, head_dim = 0;
  uint64_t file_bytes = 0;
  bool tied_output = false;  // no output.weight: token_embd is also the output matrix
  std::vector<TensorDesc> tensors;

  uint64_t weight_bytes() const;
  double n_params() const;
  std::string main_type() const;  // the type holding most weight bytes ("q4_0")
};

// From a parsed GGUF (header and index only: no tensor data is read). Throws strata::Error for an
// unsupported architecture or missing keys.
ModelDesc describe_gguf(const gguf::File& f);
// The tensor index a synthetic model of this spec would have (`strata gen-model`), without writing it:
// plans a 7B shape without a 7B file.
ModelDesc describe_spec(const model::SyntheticSpec& s);

struct PlanOptions {
  int64_t mem_bytes = 0;       // the budget (required, > 0)
  int64_t ctx = 0;             // context in tokens; 0: min(n_ctx_train, 4096)
  kv::KvFormatSpec kv;         // KV formats (-ctk/-ctv, --kv-type sets both)
  int threads = 0;             // 0: the profile's largest thread count
  int64_t n_prompt = 512;      // prompt length for the prefill speed and time to first token
  int64_t n_batch = 512;       // tokens per prefill micro-batch
  int ring_slots = 2;          // streaming buffers in flight (2: one computing, one being read)
  double compute_efficiency = 0.5;  // see roofline.h
  int64_t overhead_bytes = int64_t{48} << 20;  // code, libraries, allocator, tokenizer
};

enum class Where { kResident, kStreamed };

struct Buffers {
  uint64_t activations = 0;  // one micro-batch: hidden states, q/k/v, FFN, quantized copies
  uint64_t logits = 0;       // n_vocab floats
  uint64_t scratch = 0;      // per thread: attention scores over the context, a dequantized row
  uint64_t ring = 0;         // ring_slots x ring_slot
  uint64_t ring_slot = 0;    // the largest streamed tensor
  uint64_t overhead = 0;
  uint64_t total() const { return activations + logits + scratch + ring + overhead; }
};

struct PhasePrediction {
  double tokens_per_s = 0;
  double serial_tokens_per_s = 0;  // without overlapping SSD reads and compute (lower bound)
  StepTime step;                   // one token (decode) or the whole prompt (prefill)
  double dram_bytes = 0, ssd_bytes = 0;  // per token
};

struct RoleSummary {
  TensorRole role;
  int count = 0, resident_count = 0;
  uint64_t bytes = 0, resident_bytes = 0;
};

struct Plan {
  bool fits = false;
  int64_t mem_bytes = 0, ctx = 0;
  kv::KvFormatSpec kv;
  MachineRates rates;              // as given, but ssd_seq_gbps = ssd_rate.gbps
  SsdRateChoice ssd_rate;          // the rate streamed bytes are priced at, and why (roofline.h)
  std::vector<Where> where;        // parallel to ModelDesc::tensors
  uint64_t weight_bytes = 0, resident_bytes = 0, streamed_bytes = 0;
  double kv_bytes_per_token = 0;   // all layers, K and V
  uint64_t kv_bytes = 0;           // kv_bytes_per_token x ctx
  Buffers buffers;
  uint64_t peak_bytes = 0;         // when !fits: the smallest possible peak (every matrix streamed)
  uint64_t min_peak_bytes = 0;     // every matrix streamed
  uint64_t all_resident_peak_bytes = 0;
  std::vector<RoleSummary> roles;
  PhasePrediction prefill;         // n_prompt tokens from an empty cache
  PhasePrediction decode;          // at depth 0
  PhasePrediction decode_full;     // at depth ctx
  int64_t n_prompt = 0;
  int64_t n_batch = 0;             // tokens per prefill micro-batch (activations are sized for it)
  double ttft_s = 0;               // prefill of n_prompt tokens
  std::vector<std::string> notes;
};

// Throws strata::Error for impossible options (ctx < 1, a KV format the head size does not allow).
Plan make_plan(const ModelDesc& m, const MachineRates& rates, const PlanOptions& opt);

// What would fit when `plan` does not: the largest context at this KV format, smaller KV formats that
// fit this context, and the budgets needed.
struct Advice {
  int64_t max_ctx = 0;                  // 0: no context fits
  std::vector<std::string> kv_formats;  // formats (no calibration needed) that fit this context, larger first
  uint64_t budget_streaming = 0;        // the smallest budget that fits this context and format
  uint64_t budget_resident = 0;         // the budget that keeps every weight resident
  std::string message;                  // says all of the above, for the refusal
};
Advice advise(const ModelDesc& m, const MachineRates& rates, const PlanOptions& opt);

// The plan as one JSON object (fits, resident_bytes, streamed_bytes, kv_bytes, peak_bytes,
// predicted_tg_ts, predicted_pp_ts, ttft_s, bytes_per_token_dram/ssd, bound per phase, the streamed
// tensors with their file offsets, ...).
std::string plan_to_json(const ModelDesc& m, const Plan& p, const Advice* advice = nullptr);

// "4G" (GiB), "512M", "1.5G", "4GB" (1e9), "4096": bytes. Throws strata::Error naming `flag`.
int64_t parse_bytes(const std::string& s, const std::string& flag);
std::string human_bytes(double bytes);  // "606.9 MiB"

}  // namespace strata::plan
