#include "model/sparse_ffn.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "core/error.h"
#include "kernels/ops.h"
#include "kernels/sparse_ffn_simd.h"
#include "storage/weight_streamer.h"  // checksum

namespace strata::model {

namespace {
constexpr size_t kMaxRead = size_t{1} << 20;  // a coalesced run is read in pieces of at most this
// FfnSparsity::gap_bytes: gaps of inactive rows up to this size are read through rather than split into
// two requests. The default 16 KiB was measured on the synthetic TinyLlama ReLU Q8_0 (4352-byte rows, 50%
// active) under --mem 600M, loaded machine (docs/PLANNING.md, session 5): reads/token 7292 -> 4448 and
// 1.30 -> 1.83 tok/s with window 4, 30954 -> 3873 and 0.27 -> 0.87 tok/s with window 0, for 1.5-1.7x the
// bytes; 64 KiB was no faster for 2.2x the bytes. STRATA_FFN_GAP_BYTES sets another size (0: only adjacent rows coalesce).
size_t gap_bytes(uint64_t configured) {
  const char* e = std::getenv("STRATA_FFN_GAP_BYTES");
  return e && *e ? static_cast<size_t>(std::strtoull(e, nullptr, 10)) : static_cast<size_t>(configured);
}

inline float silu(float g) { return g / (1.0f + std::exp(-g)); }
}  // namespace

bool SparseFfn::needed(const Model& m) {
  const HParams& hp = m.hparams();
  return hp.ffn_act == FfnAct::kRelu || hp.ffn_bundle || m.ffn_sparsity().threshold > 0;
}

SparseFfn::SparseFfn(const Model& m, ThreadPool& pool, int64_t n_batch)
    : m_(m), pool_(pool), n_batch_(n_batch < 1 ? 1 : n_batch) {
  const HParams& hp = m_.hparams();
  relu_ = hp.ffn_act == FfnAct::kRelu;
  threshold_ = m_.ffn_sparsity().threshold;
  window_ = m_.ffn_sparsity().window;
  cache_cap_ = m_.ffn_sparsity().cache_bytes;
  gap_ = gap_bytes(m_.ffn_sparsity().gap_bytes);
  // A summary of the counters when the forward pass ends (for measurement).
  if (const char* e = std::getenv("STRATA_FFN_STATS"); e && *e && *e != '0') print_stats_ = true;
  if (threshold_ < 0 || !std::isfinite(threshold_)) fail("--ffn-threshold {}: must be 0 or more", threshold_);
  if (window_ < 0) fail("--ffn-window {}: must be 0 or more", window_);
  const auto sz = [&](int64_t w) { return static_cast<size_t>(n_batch_ * w); };
  xb_.resize(sz(hp.n_embd));
  gate_.resize(sz(hp.n_ff));
  coef_.resize(sz(hp.n_ff));
  if (!hp.ffn_bundle) {
    up_.resize(sz(hp.n_ff));
    proj_.resize(sz(hp.n_embd));
    return;
  }
  acc_.resize(static_cast<size_t>(pool_.size()));
  deq_.resize(static_cast<size_t>(pool_.size()));
  for (auto& d : deq_) d.resize(static_cast<size_t>(2 * hp.n_embd));
  bool streamed = false;
  for (const LayerWeights& lw : m_.weights().layers) streamed |= lw.w_up_down.streamed;
  if (!streamed) return;
  if (!m_.direct_file()) fail("streamed FFN bundles need the model's direct file");
  caches_.resize(static_cast<size_t>(hp.n_layer));
  size_t n_rows = 0;
  for (size_t l = 0; l < caches_.size(); ++l) {
    const Matrix& b = m_.weights().layers[l].w_up_down;
    if (!b.streamed) continue;
    NeuronCache& c = caches_[l];
    c.slot_of.assign(static_cast<size_t>(hp.n_ff), -1);
    c.last.assign(static_cast<size_t>(hp.n_ff), -1);
    c.sum.assign(static_cast<size_t>(hp.n_ff), 0);
    c.have_sum.assign(static_cast<size_t>(hp.n_ff), 0);
    slot_bytes_ = std::max(slot_bytes_, b.row_bytes);
    n_rows += static_cast<size_t>(hp.n_ff);
    ++n_streamed_;
  }
  slots_ = storage::AlignedBuffer(slot_bytes_ * n_rows);
  staging_ = storage::AlignedBuffer(std::max(kMaxRead, slot_bytes_) + 2 * storage::kDirectAlign);
}

SparseFfn::~SparseFfn() {
  if (!print_stats_) return;
  const FfnCounters& k = m_.ffn_counters();
  const double tok = std::max<double>(1.0, static_cast<double>(k.tokens.load()));
  std::fprintf(stderr,
               "strata: sparse FFN: %.1f%% of neurons skipped over %llu tokens; bundle rows read: %.2f MiB/token in "
               "%.1f reads/token (window %d, gap %zu B); neuron caches peak %.1f MiB; row checks %.3f ms/token\n",
               100.0 * k.sparsity(), static_cast<unsigned long long>(k.tokens.load()),
               static_cast<double>(k.bytes_read.load()) / tok / 1048576.0, static_cast<double>(k.reads.load()) / tok,
               window_, gap_, static_cast<double>(k.cache_peak.load()) / 1048576.0,
               static_cast<double>(k.check_ns.load()) / tok / 1e6);
}

bool SparseFfn::active(float g) const {
  if (relu_) return g > 0;
  return threshold_ <= 0 || std::fabs(silu(g)) >= threshold_;
}

float SparseFfn::act(float g) const { return relu_ ? std::max(g, 0.0f) : silu(g); }

void SparseFfn::run(const LayerWeights& lw, int64_t l, float* x, int64_t n) {
  STRATA_ASSERT(n <= n_batch_, "sparse FFN: more rows than its batch");
  if (l == 0) {
    tokens_ += n;
    m_.ffn_counters().tokens += static_cast<uint64_t>(n);
  }
  if (m_.hparams().ffn_bundle) run_bundled(lw, l, x, n);
  else run_dense(lw, x, n);
}

// Unbundled: the dense block with the activation of the model and inactive neurons zeroed.
void SparseFfn::run_dense(const LayerWeights& lw, float* x, int64_t n) {
  const HParams& hp = m_.hparams();
  const int64_t nf = n * hp.n_ff;
  kernels::rmsnorm(x, lw.ffn_norm.data(), xb_.data(), n, hp.n_embd, hp.rms_eps);
  const kernels::Weight* gate_up[] = {&lw.w_gate.kw, &lw.w_up.kw};
  float* const gate_up_out[] = {gate_.data(), up_.data()};
  kernels::matmul_multi(gate_up, xb_.data(), n, gate_up_out, pool_);
  uint64_t n_active = 0;
  if (relu_) {
    for (int64_t i = 0; i < nf; ++i) {
      const float g = gate_[static_cast<size_t>(i)];
      n_active += g > 0;
      up_[static_cast<size_t>(i)] = g > 0 ? g * up_[static_cast<size_t>(i)] : 0.0f;
    }
  } else {
    // The dense SwiGLU (the same kernel as LlamaForward), then the thresholded neurons zeroed.
    for (int64_t i = 0; i < nf; ++i) coef_[static_cast<size_t>(i)] = gate_[static_cast<size_t>(i)];
    kernels::swiglu(gate_.data(), up_.data(), up_.data(), nf);
    for (int64_t i = 0; i < nf; ++i) {
      const bool on = active(coef_[static_cast<size_t>(i)]);
      n_active += on;
      if (!on) up_[static_cast<size_t>(i)] = 0.0f;
    }
  }
  m_.ffn_counters().neurons += static_cast<uint64_t>(nf);
  m_.ffn_counters().active += n_active;
  kernels::matmul(lw.w_down.kw, up_.data(), n, proj_.data(), pool_);
  kernels::add(x, proj_.data(), x, n * hp.n_embd);
}

void SparseFfn::run_bundled(const LayerWeights& lw, int64_t l, float* x, int64_t n) {
  const HParams& hp = m_.hparams();
  const int64_t ne = hp.n_embd, nff = hp.n_ff;
  kernels::rmsnorm(x, lw.ffn_norm.data(), xb_.data(), n, ne, hp.rms_eps);
  kernels::matmul(lw.w_gate.kw, xb_.data(), n, gate_.data(), pool_);

  // Active neurons: per row the coefficient act(gate) (0: skipped), and their union over the rows.
  active_.clear();
  uint64_t n_active = 0;
  for (int64_t i = 0; i < nff; ++i) {
    bool any = false;
    for (int64_t t = 0; t < n; ++t) {
      const size_t k = static_cast<size_t>(t * nff + i);
      const bool on = active(gate_[k]);
      coef_[k] = on ? act(gate_[k]) : 0.0f;
      any |= on;
      n_active += on;
    }
    if (any) active_.push_back(static_cast<int32_t>(i));
  }
  m_.ffn_counters().neurons += static_cast<uint64_t>(n * nff);
  m_.ffn_counters().active += n_active;
  fetch_rows(lw, l);

  // Each worker takes a share of the active neurons and accumulates its partial output.
  const int64_t n_act = static_cast<int64_t>(active_.size());
  kernels::SparseFfnJob job;
  job.type = lw.w_up_down.type;
  job.n_embd = ne;
  job.n_tok = n;
  job.x = xb_.data();
  job.coef = coef_.data();
  job.coef_stride = nff;
  job.neurons = active_.data();
  job.rows = rows_.data();
  std::vector<char> used(acc_.size(), 0);
  pool_.parallel_for(n_act, [&](int64_t b, int64_t e, int w) {
    if (b >= e) return;
    used[static_cast<size_t>(w)] = 1;
    std::vector<float>& acc = acc_[static_cast<size_t>(w)];
    acc.assign(static_cast<size_t>(n * ne), 0.0f);
    kernels::sparse_ffn_accumulate(job, b, e, acc.data(), deq_[static_cast<size_t>(w)].data());
  });
  for (size_t w = 0; w < acc_.size(); ++w)
    if (used[w]) kernels::add(x, acc_[w].data(), x, n * ne);
  if (!caches_.empty() && lw.w_up_down.streamed) evict(l);
}

void SparseFfn::fetch_rows(const LayerWeights& lw, int64_t l) {
  const Matrix& b = lw.w_up_down;
  rows_.resize(active_.size());
  if (!b.streamed) {
    for (size_t a = 0; a < active_.size(); ++a) rows_[a] = b.row(active_[a]);
    return;
  }
  NeuronCache& c = caches_[static_cast<size_t>(l)];
  const size_t rb = b.row_bytes;
  // Slots for the missing neurons, then runs of adjacent missing neurons read in one piece each.
  std::vector<int32_t> missing;
  for (int32_t i : active_) {
    c.last[static_cast<size_t>(i)] = tokens_;
    if (c.slot_of[static_cast<size_t>(i)] >= 0) continue;
    int32_t s;
    if (!free_slots_.empty()) s = free_slots_.back(), free_slots_.pop_back();
    else s = next_slot_++;
    c.slot_of[static_cast<size_t>(i)] = s;
    c.cached.push_back(i);
    missing.push_back(i);
  }
  cache_bytes_ += missing.size() * rb;
  FfnCounters& k = m_.ffn_counters();
  const storage::DirectFile& f = *m_.direct_file();
  // A run also spans gaps of up to gap_rows inactive rows (reading them costs less than another request).
  const int32_t per_read = static_cast<int32_t>(std::max<size_t>(1, kMaxRead / rb));
  const int32_t gap_rows = static_cast<int32_t>(std::min<size_t>(gap_ / rb, kMaxRead / rb));
  // Once the file's size or times changed, a row never read before cannot be checked (checked reads below).
  const bool changed = !missing.empty() && f.changed_since_open();
  uint64_t check_ns = 0;
  int64_t unchecked = -1;  // a row read for the first time after the file changed
  // A failed read or check drops the missing rows' slots again: a later step reads them anew instead of
  // using slots that were never filled.
  const auto drop_missing = [&] {
    for (int32_t i : missing) {
      free_slots_.push_back(c.slot_of[static_cast<size_t>(i)]);
      c.slot_of[static_cast<size_t>(i)] = -1;
    }
    c.cached.resize(c.cached.size() - missing.size());  // they were appended last
    cache_bytes_ -= missing.size() * rb;
  };
  try {
    for (size_t a = 0; a < missing.size();) {
      size_t e = a + 1;
      while (e < missing.size() && missing[e] - missing[e - 1] <= gap_rows + 1 && missing[e] - missing[a] < per_read) ++e;
      const uint64_t off = b.file_offset + static_cast<uint64_t>(missing[a]) * rb;
      const size_t bytes = static_cast<size_t>(missing[e - 1] - missing[a] + 1) * rb;
      const uint8_t* src =
          f.read(off, bytes, staging_.data(), fmt::format("rows {}..{} of '{}'", missing[a], missing[e - 1], b.name));
      const auto t0 = std::chrono::steady_clock::now();
      for (size_t r = a; r < e; ++r) {
        const size_t i = static_cast<size_t>(missing[r]);
        if (!check_row(c, b, l, i, src + static_cast<size_t>(missing[r] - missing[a]) * rb, changed) && unchecked < 0)
          unchecked = static_cast<int64_t>(i);
      }
      check_ns += static_cast<uint64_t>(
          std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0).count());
      for (size_t r = a; r < e; ++r)
        std::memcpy(slots_.data() + static_cast<size_t>(c.slot_of[static_cast<size_t>(missing[r])]) * slot_bytes_,
                    src + static_cast<size_t>(missing[r] - missing[a]) * rb, rb);
      k.bytes_read += bytes;
      k.reads += 1;
      a = e;
    }
  } catch (...) {
    drop_missing();
    throw;
  }
  k.check_ns += check_ns;
  // Rows that read other bytes are reported first (above); then a row that cannot be checked.
  if (unchecked >= 0) {
    drop_missing();
    fail("the model file '{}' was modified (its size or times changed) while strata was streaming it, and row {} "
         "of the streamed FFN bundle '{}' was not read before, so its bytes cannot be checked; do not modify a "
         "model file in use",
         f.path(), unchecked, b.name);
  }
  for (size_t a = 0; a < active_.size(); ++a)
    rows_[a] = slots_.data() + static_cast<size_t>(c.slot_of[static_cast<size_t>(active_[a])]) * slot_bytes_;
  uint64_t peak = k.cache_peak.load();
  while (cache_bytes_ > peak && !k.cache_peak.compare_exchange_weak(peak, cache_bytes_)) {}
}

// Checked reads: the first read of a row records its checksum, every later read must match it (else fail).
// A row read for the first time after the file changed (fstat: size, mtime, ctime) cannot be trusted: false,
// and fetch_rows fails after checking the rest of the read.
bool SparseFfn::check_row(NeuronCache& c, const Matrix& b, int64_t l, size_t i, const uint8_t* row, bool changed) {
  const uint64_t sum = storage::checksum(row, b.row_bytes);
  if (c.have_sum[i]) {
    if (c.sum[i] == sum) return true;
    fail("row {} of the streamed FFN bundle '{}' (layer {}, offset {}, {} bytes) of the model file '{}' reads "
         "different bytes than at its first read: the file was modified while strata was streaming it; do not "
         "modify a model file in use",
         i, b.name, l, b.file_offset + i * b.row_bytes, b.row_bytes, m_.direct_file()->path());
  }
  if (changed) return false;  // the caller fails once the other rows of the read are checked
  c.sum[i] = sum;
  c.have_sum[i] = 1;
  return true;
}

// Drops the neurons not active in the last `window` tokens (all of them without a window).
void SparseFfn::evict(int64_t l) {
  NeuronCache& c = caches_[static_cast<size_t>(l)];
  const size_t rb = m_.weights().layers[static_cast<size_t>(l)].w_up_down.row_bytes;
  size_t kept = 0;
  for (int32_t i : c.cached) {
    if (window_ > 0 && tokens_ - c.last[static_cast<size_t>(i)] < window_) {
      c.cached[kept++] = i;
      continue;
    }
    free_slots_.push_back(c.slot_of[static_cast<size_t>(i)]);
    c.slot_of[static_cast<size_t>(i)] = -1;
    cache_bytes_ -= rb;
  }
  c.cached.resize(kept);
  // The cap: this layer keeps its share, the most recently active rows first.
  if (cache_cap_ == 0 || n_streamed_ == 0) return;
  const size_t share = static_cast<size_t>(cache_cap_ / static_cast<uint64_t>(n_streamed_) / rb);
  if (c.cached.size() <= share) return;
  std::sort(c.cached.begin(), c.cached.end(), [&](int32_t a, int32_t b) {
    return c.last[static_cast<size_t>(a)] > c.last[static_cast<size_t>(b)];
  });
  for (size_t k = share; k < c.cached.size(); ++k) {
    const int32_t i = c.cached[k];
    free_slots_.push_back(c.slot_of[static_cast<size_t>(i)]);
    c.slot_of[static_cast<size_t>(i)] = -1;
    cache_bytes_ -= rb;
  }
  c.cached.resize(share);
}

}  // namespace strata::model
