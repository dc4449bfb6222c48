// Synthetic GGUF models: the named shapes, the tensor plan (llama.cpp names and ggml dims, ne[0] = input
// dim), and the streaming writer. Weights are drawn per row from a generator seeded by (seed, tensor, row),
// so the bytes do not depend on the thread count; rows are generated and quantized in parallel, a chunk at a
// time, and streamed to disk before the next chunk.
#include "model/synthetic.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <thread>

#include "core/error.h"
#include "core/progress.h"
#include "core/thread_pool.h"
#include "gguf/gguf.h"
#include "gguf/stream_writer.h"
#include "model/synthetic_vocab.h"

namespace strata::model {
namespace {

using gguf::Writer;

SyntheticSpec make(const char* name, const char* arch, int64_t embd, int64_t layers, int64_t heads, int64_t kv,
                   int64_t ff, int64_t vocab, int64_t ctx, float rope, const char* tok, const char* pre,
                   const char* chat) {
  SyntheticSpec s;
  s.name = name, s.arch = arch, s.n_embd = embd, s.n_layer = layers, s.n_head = heads, s.n_head_kv = kv;
  s.n_ff = ff, s.n_vocab = vocab, s.n_ctx = ctx, s.rope_freq_base = rope;
  s.tokenizer = tok, s.tokenizer_pre = pre, s.chat_template = chat;
  s.weight_type = DType::Q4_0;
  return s;
}

const std::vector<SyntheticSpec>& shapes() {
  static const std::vector<SyntheticSpec> v = [] {
    std::vector<SyntheticSpec> s;
    s.push_back(make("tinyllama-1.1b", "llama", 2048, 22, 32, 4, 5632, 32000, 2048, 1e4f, "llama", "", "llama2"));
    s.push_back(make("llama2-7b", "llama", 4096, 32, 32, 32, 11008, 32000, 4096, 1e4f, "llama", "", "llama2"));
    s.push_back(make("llama3-8b", "llama", 4096, 32, 32, 8, 14336, 128256, 8192, 5e5f, "gpt2", "llama-bpe", "llama3"));
    SyntheticSpec q = make("qwen2.5-0.5b", "qwen2", 896, 24, 14, 2, 4864, 151936, 32768, 1e6f, "gpt2", "qwen2", "chatml");
    q.rms_eps = 1e-6f, q.qkv_bias = true, q.tied_embeddings = true;
    s.push_back(q);
    s.push_back(make("mistral-7b", "llama", 4096, 32, 32, 8, 14336, 32000, 32768, 1e6f, "llama", "", "mistral"));
    SyntheticSpec d = make("demo", "llama", 64, 2, 4, 2, 192, 512, 512, 1e4f, "llama", "", "llama2");
    d.weight_type = DType::F32;
    s.push_back(d);
    return s;
  }();
  return v;
}

// ---- random weights ----

inline uint64_t splitmix64(uint64_t& x) {
  uint64_t z = (x += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// xoshiro256** (Blackman & Vigna): fast, all 64 output bits usable.
struct Xoshiro256 {
  uint64_t s[4];
  explicit Xoshiro256(uint64_t seed) {
    for (auto& w : s) w = splitmix64(seed);
  }
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t next() {
    const uint64_t r = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0], s[3] ^= s[1], s[1] ^= s[2], s[0] ^= s[3], s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return r;
  }
};

// N(0, 1) approximated by Irwin-Hall: four 16-bit uniforms from one 64-bit draw, summed (mean 2, variance
// 1/3), centred and scaled. Bounded at ±3.46: fine for random weights, and far cheaper than Box-Muller.
inline float std_normal(uint64_t r) {
  const uint32_t sum = static_cast<uint32_t>(r & 0xFFFF) + static_cast<uint32_t>((r >> 16) & 0xFFFF) +
                       static_cast<uint32_t>((r >> 32) & 0xFFFF) + static_cast<uint32_t>(r >> 48);
  return ((static_cast<float>(sum) + 2.0f) * (1.0f / 65536.0f) - 2.0f) * 1.7320508f;
}

uint64_t fnv1a(const std::string& s) {
  uint64_t h = 0xCBF29CE484222325ull;
  for (unsigned char c : s) h = (h ^ c) * 0x100000001B3ull;
  return h;
}

enum class Fill { kNormal, kOnes };

struct Planned {
  gguf::TensorDecl decl;
  Fill fill;
};

std::vector<Planned> plan_tensors(const SyntheticSpec& s) {
  const auto id = [](DType t) { return static_cast<uint32_t>(t); };
  const auto matrix = [&](const std::string& name, int64_t in, int64_t out, DType want) {
    return Planned{{name, id(fallback_type(want, in)), {in, out}}, Fill::kNormal};
  };
  const auto vec = [&](const std::string& name, int64_t n, Fill f) {
    return Planned{{name, id(DType::F32), {n}}, f};
  };
  const DType wt = s.weight_type;
  std::vector<Planned> p;
  p.push_back(matrix("token_embd.weight", s.n_embd, s.n_vocab, wt));
  for (int64_t l = 0; l < s.n_layer; ++l) {
    const std::string b = "blk." + std::to_string(l) + ".";
    p.push_back(vec(b + "attn_norm.weight", s.n_embd, Fill::kOnes));
    p.push_back(matrix(b + "attn_q.weight", s.n_embd, s.n_embd, wt));
    p.push_back(matrix(b + "attn_k.weight", s.n_embd, s.n_embd_kv(), wt));
    p.push_back(matrix(b + "attn_v.weight", s.n_embd, s.n_embd_kv(), wt));
    if (s.qkv_bias) {
      p.push_back(vec(b + "attn_q.bias", s.n_embd, Fill::kNormal));
      p.push_back(vec(b + "attn_k.bias", s.n_embd_kv(), Fill::kNormal));
      p.push_back(vec(b + "attn_v.bias", s.n_embd_kv(), Fill::kNormal));
    }
    p.push_back(matrix(b + "attn_output.weight", s.n_embd, s.n_embd, wt));
    p.push_back(vec(b + "ffn_norm.weight", s.n_embd, Fill::kOnes));
    p.push_back(matrix(b + "ffn_gate.weight", s.n_embd, s.n_ff, wt));
    p.push_back(matrix(b + "ffn_up.weight", s.n_embd, s.n_ff, wt));
    p.push_back(matrix(b + "ffn_down.weight", s.n_ff, s.n_embd, wt));
  }
  p.push_back(vec("output_norm.weight", s.n_embd, Fill::kOnes));
  if (!s.tied_embeddings)
    p.push_back(matrix("output.weight", s.n_embd, s.n_vocab, s.output_type >= 0 ? static_cast<DType>(s.output_type) : wt));
  return p;
}

void add_metadata(Writer& w, const SyntheticSpec& s) {
  const std::string a = s.arch;
  const auto u32 = [](int64_t v) { return Writer::u32(static_cast<uint32_t>(v)); };
  w.set("general.architecture", Writer::string(a));
  w.set("general.name", Writer::string("synthetic " + s.name));
  w.set("general.description",
        Writer::string("strata gen-model: random weights (seed " + std::to_string(s.seed) + "): the output is gibberish"));
  w.set("general.file_type", Writer::u32(file_type_of(s.weight_type)));
  if (s.weight_type != DType::F32 && s.weight_type != DType::F16 && s.weight_type != DType::BF16)
    w.set("general.quantization_version", Writer::u32(2));
  w.set(a + ".vocab_size", u32(s.n_vocab));
  w.set(a + ".context_length", u32(s.n_ctx));
  w.set(a + ".embedding_length", u32(s.n_embd));
  w.set(a + ".block_count", u32(s.n_layer));
  w.set(a + ".feed_forward_length", u32(s.n_ff));
  w.set(a + ".rope.dimension_count", u32(s.head_dim()));
  w.set(a + ".attention.head_count", u32(s.n_head));
  w.set(a + ".attention.head_count_kv", u32(s.n_head_kv));
  w.set(a + ".attention.layer_norm_rms_epsilon", Writer::f32(s.rms_eps));
  w.set(a + ".rope.freq_base", Writer::f32(s.rope_freq_base));
  if (s.ffn_act != "silu") w.set("strata.ffn_act", Writer::string(s.ffn_act));
  detail::add_tokenizer(w, s);
}

}  // namespace

const std::vector<std::string>& synthetic_shape_names() {
  static const std::vector<std::string> v = [] {
    std::vector<std::string> n;
    for (const auto& s : shapes()) n.push_back(s.name);
    return n;
  }();
  return v;
}

SyntheticSpec synthetic_shape(const std::string& name) {
  for (const auto& s : shapes())
    if (s.name == name) return s;
  std::string names;
  for (const auto& n : synthetic_shape_names()) names += (names.empty() ? "" : ", ") + n;
  fail("unknown model shape '{}': use one of {} (and --n-embd, --n-layer, ... for custom dimensions)", name, names);
}

void validate(const SyntheticSpec& s) {
  const std::pair<const char*, int64_t> dims[] = {{"n_embd", s.n_embd}, {"n_layer", s.n_layer},
                                                  {"n_head", s.n_head}, {"n_head_kv", s.n_head_kv},
                                                  {"n_ff", s.n_ff},     {"n_vocab", s.n_vocab},
                                                  {"n_ctx", s.n_ctx}};
  for (const auto& [what, v] : dims)
    if (v <= 0 || v > (int64_t{1} << 31)) fail("gen-model: {} must be in [1, 2^31], got {}", what, v);
  if (s.arch != "llama" && s.arch != "qwen2") fail("gen-model: unknown architecture '{}': use llama or qwen2", s.arch);
  if (s.ffn_act != "silu" && s.ffn_act != "relu") fail("gen-model: unknown FFN activation '{}': use silu or relu", s.ffn_act);
  if (s.n_embd % s.n_head != 0) fail("gen-model: n_embd {} is not a multiple of n_head {}", s.n_embd, s.n_head);
  if (s.n_head % s.n_head_kv != 0)
    fail("gen-model: n_head {} is not a multiple of n_head_kv {} (grouped-query attention)", s.n_head, s.n_head_kv);
  if (s.head_dim() % 2 != 0) fail("gen-model: the head size n_embd / n_head = {} must be even for rope", s.head_dim());
  if (!(s.rope_freq_base > 0) || !(s.rms_eps > 0) || !(s.weight_std >= 0))
    fail("gen-model: rope base, rms epsilon and weight std must be positive");
  const auto check_type = [](DType t, const char* what) {
    const TypeTraits& tr = traits(t);
    if (!tr.supported || t == DType::Q8_1 || t == DType::Q8_K)
      fail("gen-model: {} {} cannot be written: use one of f32, f16, bf16, q4_0, q4_1, q5_0, q5_1, q8_0, q2_K, "
           "q3_K, q4_K, q5_K, q6_K, iq4_nl, iq4_xs, tq1_0, tq2_0", what, tr.name);
  };
  check_type(s.weight_type, "weight type");
  if (s.output_type >= 0) {
    if (!find_traits(static_cast<uint32_t>(s.output_type))) fail("gen-model: unknown output type id {}", s.output_type);
    check_type(static_cast<DType>(s.output_type), "output type");
  }
}

DType fallback_type(DType wanted, int64_t n_cols) {
  if (n_cols % traits(wanted).block_size == 0) return wanted;
  DType t = DType::F16;
  switch (wanted) {
    case DType::TQ1_0: case DType::TQ2_0: t = DType::Q4_0; break;
    case DType::Q2_K: case DType::Q3_K: case DType::IQ4_XS: t = DType::IQ4_NL; break;
    case DType::Q4_K: t = DType::Q5_0; break;
    case DType::Q5_K: t = DType::Q5_1; break;
    case DType::Q6_K: t = DType::Q8_0; break;
    default: t = DType::F16; break;
  }
  return n_cols % traits(t).block_size == 0 ? t : DType::F16;
}

uint32_t file_type_of(DType t) {
  switch (t) {
    case DType::F32: return 0;
    case DType::F16: return 1;
    case DType::Q4_0: return 2;
    case DType::Q4_1: return 3;
    case DType::Q8_0: return 7;
    case DType::Q5_0: return 8;
    case DType::Q5_1: return 9;
    case DType::Q2_K: return 10;
    case DType::Q3_K: return 11;   // Q3_K_S
    case DType::Q4_K: return 14;   // Q4_K_S
    case DType::Q5_K: return 16;   // Q5_K_S
    case DType::Q6_K: return 18;
    case DType::IQ4_NL: return 25;
    case DType::IQ4_XS: return 30;
    case DType::BF16: return 32;
    case DType::TQ1_0: return 36;
    case DType::TQ2_0: return 37;
    default: fail("gen-model: no llama.cpp file type for {}", dtype_name(t));
  }
}

bool pooled_type(DType t) {
  switch (t) {
    case DType::Q2_K: case DType::Q3_K: case DType::Q4_K: case DType::Q5_K: case DType::Q6_K:
    case DType::IQ4_NL: case DType::IQ4_XS:
      return true;
    default:
      return false;
  }
}

namespace {

constexpr int64_t kPoolBlocks = 8192;

// kPoolBlocks blocks of type t quantized from N(0, std) values, seeded by (seed, type).
std::vector<uint8_t> make_block_pool(DType t, uint64_t seed, float std_dev, ThreadPool& pool) {
  const TypeTraits& tr = traits(t);
  std::vector<uint8_t> out(static_cast<size_t>(kPoolBlocks) * tr.type_size);
  pool.parallel_for(kPoolBlocks, [&](int64_t b, int64_t e, int) {
    std::vector<float> f(static_cast<size_t>(tr.block_size));
    for (int64_t i = b; i < e; ++i) {
      uint64_t sm = seed ^ (0xA0761D6478BD642Full * (static_cast<uint64_t>(t) + 1)) ^ (static_cast<uint64_t>(i) << 20);
      Xoshiro256 rng(splitmix64(sm));
      for (auto& x : f) x = std_normal(rng.next()) * std_dev;
      quantize_row(t, f.data(), out.data() + static_cast<size_t>(i) * tr.type_size, tr.block_size);
    }
  });
  return out;
}

}  // namespace

uint64_t write_synthetic_gguf(const SyntheticSpec& spec, const std::string& path) {
  validate(spec);
  Writer meta;
  add_metadata(meta, spec);
  const std::vector<Planned> plan = plan_tensors(spec);
  std::vector<gguf::TensorDecl> decls;
  uint64_t total = 0;
  for (const auto& p : plan) decls.push_back(p.decl);
  gguf::StreamWriter out(path, meta, decls);
  for (size_t i = 0; i < plan.size(); ++i) total += out.tensor_nbytes(i);

  const int n_threads = spec.n_threads > 0 ? spec.n_threads : std::max(1u, std::thread::hardware_concurrency());
  ThreadPool pool(n_threads);
  std::unique_ptr<Progress> bar;
  if (spec.progress) bar = std::make_unique<Progress>("gen-model " + spec.name, total);
  uint64_t done = 0;
  std::vector<uint8_t> chunk;
  std::vector<std::vector<float>> row_buf(static_cast<size_t>(n_threads));
  std::map<DType, std::vector<uint8_t>> block_pools;
  constexpr size_t kChunkBytes = size_t{16} << 20;

  for (size_t ti = 0; ti < plan.size(); ++ti) {
    const auto& d = plan[ti].decl;
    const auto type = static_cast<DType>(d.type);
    const int64_t cols = d.ne[0];
    const int64_t rows = static_cast<int64_t>(out.tensor_nbytes(ti) / row_bytes(type, cols));
    const size_t rb = row_bytes(type, cols);
    const int64_t chunk_rows = std::clamp<int64_t>(static_cast<int64_t>(kChunkBytes / rb), 1, rows);
    chunk.resize(static_cast<size_t>(chunk_rows) * rb);
    const uint64_t tensor_seed = spec.seed ^ (fnv1a(d.name) * 0xD6E8FEB86659FD93ull);
    const float std_dev = spec.weight_std;
    const Fill fill = plan[ti].fill;
    const bool pooled = !spec.exact && fill == Fill::kNormal && pooled_type(type);
    if (pooled && !block_pools.count(type)) block_pools[type] = make_block_pool(type, spec.seed, std_dev, pool);
    const uint8_t* blocks = pooled ? block_pools[type].data() : nullptr;
    const size_t block_bytes = traits(type).type_size;
    const int64_t n_blocks = cols / traits(type).block_size;
    for (int64_t r0 = 0; r0 < rows; r0 += chunk_rows) {
      const int64_t n = std::min(chunk_rows, rows - r0);
      pool.parallel_for(n, [&](int64_t b, int64_t e, int w) {
        std::vector<float>& f = row_buf[static_cast<size_t>(w)];
        f.resize(static_cast<size_t>(cols));
        for (int64_t r = b; r < e; ++r) {
          uint8_t* dst = chunk.data() + static_cast<size_t>(r) * rb;
          if (pooled) {  // blocks drawn from the pool
            uint64_t sm = tensor_seed + static_cast<uint64_t>(r0 + r) * 0x9E3779B97F4A7C15ull;
            Xoshiro256 rng(splitmix64(sm));
            for (int64_t j = 0; j < n_blocks; ++j) {
              const uint64_t k = ((rng.next() >> 32) * static_cast<uint64_t>(kPoolBlocks)) >> 32;
              std::memcpy(dst + static_cast<size_t>(j) * block_bytes, blocks + k * block_bytes, block_bytes);
            }
            continue;
          }
          if (fill == Fill::kOnes) {
            std::fill(f.begin(), f.end(), 1.0f);
          } else {
            uint64_t sm = tensor_seed + static_cast<uint64_t>(r0 + r) * 0x9E3779B97F4A7C15ull;
            Xoshiro256 rng(splitmix64(sm));
            for (auto& x : f) x = std_normal(rng.next()) * std_dev;
          }
          quantize_row(type, f.data(), dst, cols);
        }
      });
      out.write(chunk.data(), static_cast<size_t>(n) * rb);
      done += static_cast<uint64_t>(n) * rb;
      if (bar) bar->update(done);
    }
  }
  out.finish();
  if (bar) bar->finish();
  return out.file_size();
}

}  // namespace strata::model
