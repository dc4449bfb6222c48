#include "model/model.h"

#include <fmt/format.h>

#include <map>

#include "core/error.h"

namespace strata::model {

namespace {

std::string shape_str(const std::vector<int64_t>& ne) {
  std::string s = "[";
  for (size_t i = 0; i < ne.size(); ++i) s += (i ? ", " : "") + std::to_string(ne[i]);
  return s + "]";
}

// Binds tensors by name and checks their shapes (in ggml order: ne[0] = the contiguous dimension).
class Binder {
 public:
  Binder(const gguf::File& f, bool prepare) : f_(f), prepare_(prepare) {}

  const gguf::TensorInfo* find(const std::string& name, const std::vector<int64_t>& ne, bool required) {
    const gguf::TensorInfo* t = f_.find_tensor(name);
    if (!t) {
      if (required) fail("model file is missing the tensor '{}' (expected shape {})", name, shape_str(ne));
      return nullptr;
    }
    std::vector<int64_t> got = t->ne;
    while (got.size() > ne.size() && got.back() == 1) got.pop_back();  // trailing 1s do not count
    if (got != ne)
      fail("tensor '{}' has shape {}, expected {} for this model's hyper-parameters", name, shape_str(t->ne),
           shape_str(ne));
    const TypeTraits* tr = find_traits(t->type);
    if (!tr) fail("tensor '{}' has unknown type id {}", name, t->type);
    require_supported(tr->type, fmt::format("tensor '{}'", name));
    bytes_ += t->nbytes;
    return t;
  }

  // A (rows, cols) matrix: ggml shape [cols, rows].
  Matrix matrix(const std::string& name, int64_t rows, int64_t cols, bool required = true) {
    Matrix m;
    const gguf::TensorInfo* t = find(name, {cols, rows}, required);
    if (!t) return m;
    m.name = name;
    m.type = static_cast<DType>(t->type);
    m.data = t->data;
    m.rows = rows;
    m.cols = cols;
    if (cols % traits(m.type).block_size != 0)
      fail("tensor '{}': rows of {} values do not fill whole {} blocks of {}", name, cols, dtype_name(m.type),
           traits(m.type).block_size);
    m.row_bytes = row_bytes(m.type, cols);
    if (m.row_bytes * static_cast<size_t>(rows) != t->nbytes)
      fail("tensor '{}': {} bytes, expected {}", name, t->nbytes, m.row_bytes * static_cast<size_t>(rows));
    if (prepare_) m.kw = kernels::prepare_weight(m.type, m.data, rows, cols);
    else m.kw = kernels::Weight{m.type, m.data, rows, cols, nullptr};
    return m;
  }

  // A vector of n values, copied out as float32 (empty when absent and not required).
  std::vector<float> vec(const std::string& name, int64_t n, bool required = true) {
    const gguf::TensorInfo* t = find(name, {n}, required);
    if (!t) return {};
    const DType type = static_cast<DType>(t->type);
    if (n % traits(type).block_size != 0) fail("tensor '{}': {} values do not fill whole blocks", name, n);
    std::vector<float> v(static_cast<size_t>(n));
    dequantize_row(type, t->data, v.data(), n);
    return v;
  }

  uint64_t bytes() const { return bytes_; }

 private:
  const gguf::File& f_;
  bool prepare_;
  uint64_t bytes_ = 0;
};

}  // namespace

std::unique_ptr<Model> Model::load(const std::string& path, const LoadOptions& opts) {
  gguf::ReadOptions ro;
  ro.progress = opts.progress;
  return from_file(gguf::File::open(path, ro), opts);
}

std::unique_ptr<Model> Model::from_file(gguf::File file, const LoadOptions& opts) {
  std::unique_ptr<Model> m(new Model());
  m->file_ = std::move(file);
  const gguf::File& f = m->file_;
  HParams& hp = m->hp_;
  hp = read_hparams(f);

  const gguf::TensorInfo* te = f.find_tensor("token_embd.weight");
  if (!te) fail("model file is missing the tensor 'token_embd.weight'");
  if (te->ne.size() < 2) fail("tensor 'token_embd.weight' has shape {}, expected [n_embd, n_vocab]", shape_str(te->ne));
  hp.n_vocab = te->ne[1];

  Binder b(f, opts.prepare_kernels);
  Weights& w = m->w_;
  w.tok_embd = b.matrix("token_embd.weight", hp.n_vocab, hp.n_embd);
  w.output_norm = b.vec("output_norm.weight", hp.n_embd);
  w.output = b.matrix("output.weight", hp.n_vocab, hp.n_embd, /*required=*/false);
  if (!w.output.data) {
    w.tied_output = true;
    w.output = w.tok_embd;
    w.output.name = "token_embd.weight (tied output)";
  }
  w.rope_freq_factors = b.vec("rope_freqs.weight", hp.n_rot / 2, /*required=*/false);
  if (w.rope_freq_factors.empty() && hp.rope_scaling == "llama3") w.rope_freq_factors = llama3_freq_factors(hp);

  const bool qkv_bias_required = hp.arch == Arch::kQwen2;
  w.layers.resize(static_cast<size_t>(hp.n_layer));
  for (int64_t i = 0; i < hp.n_layer; ++i) {
    LayerWeights& l = w.layers[static_cast<size_t>(i)];
    const std::string p = fmt::format("blk.{}.", i);
    l.attn_norm = b.vec(p + "attn_norm.weight", hp.n_embd);
    l.wq = b.matrix(p + "attn_q.weight", hp.q_dim(), hp.n_embd);
    l.wk = b.matrix(p + "attn_k.weight", hp.k_dim(), hp.n_embd);
    l.wv = b.matrix(p + "attn_v.weight", hp.v_dim(), hp.n_embd);
    l.wo = b.matrix(p + "attn_output.weight", hp.n_embd, hp.o_dim());
    l.bq = b.vec(p + "attn_q.bias", hp.q_dim(), qkv_bias_required);
    l.bk = b.vec(p + "attn_k.bias", hp.k_dim(), qkv_bias_required);
    l.bv = b.vec(p + "attn_v.bias", hp.v_dim(), qkv_bias_required);
    l.bo = b.vec(p + "attn_output.bias", hp.n_embd, false);
    l.ffn_norm = b.vec(p + "ffn_norm.weight", hp.n_embd);
    l.w_gate = b.matrix(p + "ffn_gate.weight", hp.n_ff, hp.n_embd);
    l.w_up = b.matrix(p + "ffn_up.weight", hp.n_ff, hp.n_embd);
    l.w_down = b.matrix(p + "ffn_down.weight", hp.n_embd, hp.n_ff);
  }
  m->weight_bytes_ = b.bytes();
  return m;
}

std::string Model::describe() const {
  std::map<std::string, int> types;
  auto count = [&](const Matrix& mx) { types[dtype_name(mx.type)]++; };
  count(w_.tok_embd);
  for (const auto& l : w_.layers) {
    for (const Matrix* mx : {&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down}) count(*mx);
  }
  if (!w_.tied_output) count(w_.output);
  std::string ts;
  for (const auto& [t, n] : types) ts += (ts.empty() ? "" : " ") + fmt::format("{}×{}", t, n);
  return fmt::format("{} ({}): {} layers, n_embd {}, n_ff {}, heads {}/{} (kv), head_dim {}, vocab {}, "
                     "ctx_train {}, {:.1f} MiB of weights [{}]",
                     hp_.arch_name, hp_.name.empty() ? "unnamed" : hp_.name, hp_.n_layer, hp_.n_embd, hp_.n_ff,
                     hp_.n_head, hp_.n_head_kv, hp_.head_dim, hp_.n_vocab, hp_.n_ctx_train,
                     static_cast<double>(weight_bytes_) / (1 << 20), ts);
}

}  // namespace strata::model
