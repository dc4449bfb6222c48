#include "model/model.h"

#include <fmt/format.h>

#include <fcntl.h>
#include <sys/mman.h>

#include <map>
#include <set>

#include "core/error.h"
#include "kernels/ops.h"

namespace strata::model {

namespace {

std::string shape_str(const std::vector<int64_t>& ne) {
  std::string s = "[";
  for (size_t i = 0; i < ne.size(); ++i) s += (i ? ", " : "") + std::to_string(ne[i]);
  return s + "]";
}

// Under a placement: where resident copies go, and which matrices stream.
struct Residency {
  const storage::DirectFile* file = nullptr;
  std::set<std::string> streamed;
  std::vector<storage::AlignedBuffer>* buffers = nullptr;
  uint64_t* bytes = nullptr;
  std::string keep_file_bytes;  // this matrix keeps its file-layout bytes even when repacked (the embeddings)
  bool prepare_kept = true;     // prepare (repack) that matrix too (only when it is also the output)
};

// Streamed matrices read their bytes from the ring for each matmul.
class StreamSource final : public kernels::WeightSource {
 public:
  StreamSource(storage::WeightStreamer& s, size_t i) : s_(s), i_(i) {}
  const void* acquire() override { return s_.acquire(i_); }
  void release() override { s_.release(i_); }

 private:
  storage::WeightStreamer& s_;
  size_t i_;
};

// Binds tensors by name and checks their shapes (in ggml order: ne[0] = the contiguous dimension).
class Binder {
 public:
  Binder(const gguf::File& f, bool prepare, Residency* res = nullptr) : f_(f), prepare_(prepare), res_(res) {}

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
    m.file_offset = static_cast<uint64_t>(t->data - f_.bytes().data());
    if (res_) return place(m, t->nbytes);
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
  // Under a placement: streamed (no bytes in memory; the source is set once the sequence is known), or
  // read with direct I/O into anonymous memory; a repacked copy replaces the file-layout bytes.
  Matrix place(Matrix& m, uint64_t nbytes) {
    const size_t n = static_cast<size_t>(nbytes);
    if (res_->streamed.count(m.name)) {
      m.streamed = true;
      m.data = nullptr;
      m.kw = kernels::Weight{m.type, nullptr, m.rows, m.cols, nullptr, nullptr};
      return m;
    }
    storage::AlignedBuffer buf(storage::aligned_span(m.file_offset, n).bytes);
    m.data = res_->file->read(m.file_offset, n, buf.data(), fmt::format("tensor '{}'", m.name));
    const bool keep = m.name == res_->keep_file_bytes;
    const bool prepare = prepare_ && (!keep || res_->prepare_kept);
    m.kw = prepare ? kernels::prepare_weight(m.type, m.data, m.rows, m.cols)
                   : kernels::Weight{m.type, m.data, m.rows, m.cols, nullptr, nullptr};
    const size_t packed = kernels::packed_bytes(m.kw);
    *res_->bytes += packed;
    if (packed > 0 && !keep) {  // the repacked copy is all the kernels read
      m.data = nullptr;
      m.kw.data = nullptr;
    } else {
      *res_->bytes += buf.size();
      res_->buffers->push_back(std::move(buf));
    }
    return m;
  }

  const gguf::File& f_;
  bool prepare_;
  Residency* res_;
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

  std::unique_ptr<Residency> res;
  if (opts.placement) {
    m->direct_ = std::make_unique<storage::DirectFile>(storage::DirectFile::open(f.path()));
    res = std::make_unique<Residency>();
    res->file = m->direct_.get();
    res->streamed.insert(opts.placement->streamed.begin(), opts.placement->streamed.end());
    res->buffers = &m->resident_;
    res->bytes = &m->resident_bytes_;
    res->keep_file_bytes = "token_embd.weight";  // the embedding gathers rows from it
    res->prepare_kept = f.find_tensor("output.weight") == nullptr;  // tied: it is also the output matrix
    for (const std::string& name : opts.placement->streamed)
      if (!f.find_tensor(name)) fail("the placement streams '{}', which the model file does not have", name);
  }
  Binder b(f, opts.prepare_kernels, res.get());
  Binder raw(f, /*prepare=*/false, res.get());  // FFN bundles (hparams.ffn_bundle)
  Weights& w = m->w_;
  w.tok_embd = b.matrix("token_embd.weight", hp.n_vocab, hp.n_embd);
  w.output_norm = b.vec("output_norm.weight", hp.n_embd);
  w.output = b.matrix("output.weight", hp.n_vocab, hp.n_embd, /*required=*/false);
  if (w.output.name.empty()) {
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
    if (hp.ffn_bundle) {  // file layout kept: the sparse FFN reads rows of it (model/sparse_ffn.h)
      l.w_up_down = raw.matrix(p + "ffn_up_down.weight", hp.n_ff, 2 * hp.n_embd);
    } else {
      l.w_up = b.matrix(p + "ffn_up.weight", hp.n_ff, hp.n_embd);
      l.w_down = b.matrix(p + "ffn_down.weight", hp.n_embd, hp.n_ff);
    }
  }
  m->weight_bytes_ = b.bytes() + raw.bytes();
  if (opts.placement) m->start_streaming(*opts.placement);
  return m;
}

void Model::start_streaming(const WeightPlacement& pl) {
  // The streamed matrices in the order the forward pass multiplies by them (llama_forward.cpp), then the
  // output matrix. Streamed embeddings are gathered row by row (embed()), not ringed.
  std::vector<Matrix*> seq;
  for (LayerWeights& l : w_.layers)
    for (Matrix* mx : {&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down})
      if (mx->streamed) seq.push_back(mx);
  if (w_.output.streamed) seq.push_back(&w_.output);
  if (!seq.empty()) {
    std::vector<storage::Extent> ext;
    for (const Matrix* mx : seq) ext.push_back({mx->name, mx->file_offset, mx->row_bytes * static_cast<size_t>(mx->rows)});
    streamer_ = std::make_unique<storage::WeightStreamer>(*direct_, std::move(ext), pl.ring_slots, pl.verify);
    for (size_t i = 0; i < seq.size(); ++i) {
      sources_.push_back(std::make_unique<StreamSource>(*streamer_, i));
      seq[i]->kw.source = sources_.back().get();
    }
  }
  if (w_.tok_embd.streamed) embed_buf_ = storage::AlignedBuffer(2 * storage::kDirectAlign + w_.tok_embd.row_bytes);
  // Nothing reads the weights through the mapping any more: drop its pages (the header stays parsed in
  // memory) and the file's cached pages, so that the budget is not charged for them.
  const auto bytes = file_.bytes();
  if (!bytes.empty()) {
    madvise(const_cast<uint8_t*>(bytes.data()), bytes.size(), MADV_DONTNEED);
    direct_->drop_page_cache();
  }
}

void Model::embed(const int32_t* tokens, int64_t n, float* out) const {
  const Matrix& e = w_.tok_embd;
  if (e.data) return kernels::embedding(e.type, e.data, hp_.n_vocab, hp_.n_embd, tokens, n, out);
  std::lock_guard<std::mutex> lk(embed_mu_);
  for (int64_t t = 0; t < n; ++t) {
    if (tokens[t] < 0 || tokens[t] >= hp_.n_vocab)
      fail("token id {} is out of range: the vocabulary has {} tokens", tokens[t], hp_.n_vocab);
    const uint8_t* row = direct_->read(e.file_offset + static_cast<uint64_t>(tokens[t]) * e.row_bytes, e.row_bytes,
                                       embed_buf_.data(), fmt::format("row {} of '{}'", tokens[t], e.name));
    dequantize_row(e.type, row, out + t * hp_.n_embd, hp_.n_embd);
  }
}

std::string Model::describe() const {
  std::map<std::string, int> types;
  auto count = [&](const Matrix& mx) { if (!mx.name.empty()) types[dtype_name(mx.type)]++; };
  count(w_.tok_embd);
  for (const auto& l : w_.layers) {
    for (const Matrix* mx : {&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down, &l.w_up_down}) count(*mx);
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
