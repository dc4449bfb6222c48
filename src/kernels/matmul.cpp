// matmul: validation, the choice of kernel family (matmul_registry.h), activation quantization, repacking
// and the split of the work over the thread pool. The SIMD work is in gemm_int8_*.cpp and gemm_float.cpp
// (Highway dynamic dispatch picks the instruction set on each call).
#include "kernels/matmul.h"

#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "core/error.h"
#include "kernels/int8_panel.h"
#include "kernels/matmul_internal.h"
#include "kernels/matmul_registry.h"
#include "kernels/quantize_act.h"

namespace strata::kernels {

namespace {

constexpr MatmulKernelInfo kKernels[] = {
#define STRATA_X(T, SB, G, META, VAL, SUM) {DType::T, KernelFamily::kInt8Panel, #T " x q8 int8-panel"},
    STRATA_INT8_PANEL_KERNELS(STRATA_X)
#undef STRATA_X
#define STRATA_X(T) {DType::T, KernelFamily::kFloat, #T " x f32 dot-tile"},
    STRATA_FLOAT_KERNELS(STRATA_X)
#undef STRATA_X
    {DType::Q5_1, KernelFamily::kDequant, "Q5_1 dequant + f32 dot"},
    {DType::Q8_1, KernelFamily::kDequant, "Q8_1 dequant + f32 dot"},
    {DType::Q2_K, KernelFamily::kDequant, "Q2_K dequant + f32 dot"},
    {DType::Q3_K, KernelFamily::kDequant, "Q3_K dequant + f32 dot"},
    {DType::Q8_K, KernelFamily::kDequant, "Q8_K dequant + f32 dot"},
    {DType::IQ4_NL, KernelFamily::kDequant, "IQ4_NL dequant + f32 dot"},
    {DType::IQ4_XS, KernelFamily::kDequant, "IQ4_XS dequant + f32 dot"},
    {DType::TQ1_0, KernelFamily::kDequant, "TQ1_0 dequant + f32 dot"},
    {DType::TQ2_0, KernelFamily::kDequant, "TQ2_0 dequant + f32 dot"},
};

// A 64-byte aligned buffer that only grows (thread-local scratch, packed weights).
class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  explicit AlignedBuffer(size_t n) { reserve(n); }
  ~AlignedBuffer() { std::free(p_); }
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;
  // Big buffers (packed weights) get transparent huge pages where the kernel allows: a streaming GEMV
  // then walks the page table once per 2 MiB instead of once per 4 KiB.
  uint8_t* reserve(size_t n) {
    if (n > cap_) {
      std::free(p_);
      constexpr size_t kHuge = size_t{2} << 20;
      const size_t align = n >= 2 * kHuge ? kHuge : 64;
      cap_ = (n + 63) & ~size_t{63};
      void* p = nullptr;
      if (posix_memalign(&p, align, cap_) != 0) throw std::bad_alloc();
      p_ = static_cast<uint8_t*>(p);
#ifdef MADV_HUGEPAGE
      // Whole huge pages only: a partly used one at the end would waste up to 2 MiB per weight.
      if (align == kHuge) ::madvise(p_, cap_ & ~(kHuge - 1), MADV_HUGEPAGE);
#endif
    }
    return p_;
  }
  uint8_t* data() const { return p_; }
  size_t size() const { return cap_; }

 private:
  uint8_t* p_ = nullptr;
  size_t cap_ = 0;
};

// The repacked copy of an int8-panel weight (Weight::packed points to one).
struct PackedPanel {
  static constexpr uint32_t kMagic = 0x504e4c38;  // "8LNP"
  uint32_t magic = kMagic;
  int R = 0;  // rows per tile: the target it was packed for
  size_t tile_bytes = 0;
  AlignedBuffer buf;  // n_tiles * tile_bytes
};

const PackedPanel* packed_panel(const Weight& w) {
  if (!w.packed) return nullptr;
  const auto* p = static_cast<const PackedPanel*>(w.packed.get());
  STRATA_ASSERT(p->magic == PackedPanel::kMagic, "Weight::packed was not made by prepare_weight");
  return p;
}

// Per-thread scratch: the calling thread's activation buffer, every worker's tile/row buffer.
uint8_t* thread_act_buffer(size_t n) {
  thread_local AlignedBuffer b;
  return b.reserve(n);
}
uint8_t* thread_scratch(size_t n) {
  thread_local AlignedBuffer b;
  return b.reserve(n);
}

// Spin until `count` workers arrived (a barrier inside one pool.run job; yields so that a worker the
// OS has not scheduled yet can run).
void wait_for(const std::atomic<int>& arrived, int count) {
  while (arrived.load(std::memory_order_acquire) < count) std::this_thread::yield();
}

// One int8-panel weight of a parallel section.
struct Int8Item {
  const Weight* w;
  const PanelFormat* f;
  float* y;
  bool accumulate;
};

// Distinct activation formats (act_sum_scale) in one section, and the most weights in one section.
constexpr int kMaxActSlots = 4;
constexpr size_t kMaxSectionItems = 8;
// Up to this many 32-column activation blocks per section, every worker quantizes all of them for
// itself (a decode step: 64-176 blocks, about a microsecond) instead of splitting them and meeting at a
// barrier: no worker then waits for another before it starts streaming weights.
constexpr int64_t kPrivateQuantBlocks = 512;

// One parallel section over int8-panel weights that share the activations x (all with the same cols, at
// most kMaxSectionItems). The row tiles of all weights are cut into chunks of about equal bytes, which
// the workers take from a shared counter: an unevenly loaded or late-woken worker takes fewer chunks,
// and a small matrix (k/v: 16 tiles) still spreads over every worker.
// Activation formats found in in.q are read from there (quantized by a fused producer); the others are
// quantized from in.x here.
void run_int8(std::span<const Int8Item> items, const Acts& in, int64_t n_tok, ThreadPool& pool) {
  const float* x = in.x;
  STRATA_ASSERT(!items.empty() && items.size() <= kMaxSectionItems, "run_int8: bad section size");
  const int R = detail::int8_tile_rows();
  const int64_t cols = items[0].w->cols, nb32 = cols / 32, act_blocks = n_tok * nb32;
  struct Part {
    detail::Int8Args a;
    int64_t n_tiles, chunk_tiles, chunk_begin;
    int slot;
  };
  Part parts[kMaxSectionItems];
  float slot_scale[kMaxActSlots];  // the activation formats: sum scale and u8 offset
  bool slot_u8[kMaxActSlots];
  const QAct* slot_pre[kMaxActSlots];  // the format's rows from in.q, or null: quantized here
  int slot_qi[kMaxActSlots];           // else its place among the formats quantized here
  int n_slots = 0, n_quant = 0;
  int quant_slot[kMaxActSlots];        // the slots quantized here
  size_t total_bytes = 0, max_tile_bytes = 0;
  bool need_scratch = false;
  for (size_t i = 0; i < items.size(); ++i) {
    const Weight& w = *items[i].w;
    const PanelFormat& f = *items[i].f;
    STRATA_ASSERT(w.cols == cols, "run_int8: weights of one section must have the same columns");
    Part& p = parts[i];
    detail::Int8Args& a = p.a;
    a.fmt = &f;
    a.R = R;
    a.data = static_cast<const uint8_t*>(w.data);
    a.row_stride = row_bytes(w.type, w.cols);
    a.rows = w.rows;
    a.cols = w.cols;
    a.n_tok = n_tok;
    a.y = items[i].y;
    a.accumulate = items[i].accumulate;
    a.meta_bytes = panel_meta_bytes(f, R, w.cols);
    a.tile_bytes = panel_tile_bytes(f, R, w.cols);
    const PackedPanel* pp = packed_panel(w);
    if (pp && pp->R == R) a.panel = pp->buf.data();  // else (packed for another target): pack per tile
    need_scratch |= a.panel == nullptr;
    p.n_tiles = (w.rows + R - 1) / R;
    total_bytes += static_cast<size_t>(p.n_tiles) * a.tile_bytes;
    max_tile_bytes = std::max(max_tile_bytes, a.tile_bytes);
    const float scale = static_cast<float>(f.act_sum_scale);
    const bool u8 = detail::int8_act_u8(f.type);
    p.slot = 0;
    while (p.slot < n_slots && (slot_scale[p.slot] != scale || slot_u8[p.slot] != u8)) ++p.slot;
    if (p.slot == n_slots) {
      STRATA_ASSERT(n_slots < kMaxActSlots, "run_int8: too many activation formats in one section");
      slot_scale[n_slots] = scale;
      slot_u8[n_slots] = u8;
      slot_pre[n_slots] = nullptr;
      for (const ActSlot& q : in.q)
        if (q.fmt == ActFormat{scale, u8}) slot_pre[n_slots] = q.q;
      if (!slot_pre[n_slots]) {
        slot_qi[n_slots] = n_quant;
        quant_slot[n_quant++] = n_slots;
      }
      ++n_slots;
    }
  }
  // About 8 chunks per worker, each 32-256 KiB of weights: long enough runs for the prefetchers, small
  // enough to even out the workers.
  const int n_workers = pool.size();
  const size_t target =
      std::clamp(total_bytes / (static_cast<size_t>(n_workers) * 8), size_t{32} << 10, size_t{256} << 10);
  int64_t n_chunks = 0;
  for (size_t i = 0; i < items.size(); ++i) {
    Part& p = parts[i];
    p.chunk_tiles = std::clamp<int64_t>(static_cast<int64_t>(target / p.a.tile_bytes), 1, p.n_tiles);
    p.chunk_begin = n_chunks;
    n_chunks += (p.n_tiles + p.chunk_tiles - 1) / p.chunk_tiles;
  }
  STRATA_ASSERT(n_quant == 0 || x != nullptr, "matmul: activations in a format nobody quantized, and no float rows");
  const int64_t quant_blocks = n_quant * act_blocks;
  const bool private_act = n_workers == 1 || quant_blocks <= kPrivateQuantBlocks;
  QAct* shared_act =
      private_act ? nullptr
                  : reinterpret_cast<QAct*>(thread_act_buffer(static_cast<size_t>(quant_blocks) * sizeof(QAct)));
  std::atomic<int> arrived{0};
  std::atomic<int64_t> next_chunk{0};
  pool.run([&](int worker) {
    QAct* act = shared_act;
    if (quant_blocks == 0) {
      // every format was quantized ahead (a fused producer): nothing to do before the tiles
    } else if (private_act) {
      act = reinterpret_cast<QAct*>(thread_act_buffer(static_cast<size_t>(quant_blocks) * sizeof(QAct)));
      for (int qi = 0; qi < n_quant; ++qi) {
        const int s = quant_slot[qi];
        quantize_act_rows(x, n_tok, cols, act + qi * act_blocks, slot_scale[s], slot_u8[s]);
      }
    } else {
      // Each activation row is quantized once per format, the 32-column blocks split over the workers (x
      // is one long run of n_tok * cols / 32 blocks), then every worker computes its chunks.
      int64_t b, e;
      split_range(quant_blocks, n_workers, worker, b, e);
      while (b < e) {
        const int64_t qi = b / act_blocks, b0 = b % act_blocks, n = std::min(e - b, act_blocks - b0);
        const int s = quant_slot[qi];
        quantize_act_rows(x + b0 * 32, 1, n * 32, act + qi * act_blocks + b0, slot_scale[s], slot_u8[s]);
        b += n;
      }
      arrived.fetch_add(1, std::memory_order_acq_rel);
      wait_for(arrived, n_workers);
    }
    uint8_t* scratch = need_scratch ? thread_scratch(max_tile_bytes) : nullptr;
    size_t i = 0;
    for (int64_t c; (c = next_chunk.fetch_add(1, std::memory_order_relaxed)) < n_chunks;) {
      while (i + 1 < items.size() && parts[i + 1].chunk_begin <= c) ++i;  // chunks are taken in order
      const Part& p = parts[i];
      detail::Int8Args a = p.a;
      a.act = slot_pre[p.slot] ? slot_pre[p.slot] : act + slot_qi[p.slot] * act_blocks;
      const int64_t t0 = (c - p.chunk_begin) * p.chunk_tiles;
      detail::int8_matmul_tiles(a, t0, std::min(p.n_tiles, t0 + p.chunk_tiles), scratch);
    }
  });
}

void run_float(const Weight& w, KernelFamily family, size_t row_stride, const float* x, int64_t n_tok, float* y,
               bool accumulate, ThreadPool& pool) {
  STRATA_ASSERT(x != nullptr, "matmul: a float or dequantized weight without float activations");
  detail::FloatArgs a;
  a.accumulate = accumulate;
  a.type = w.type;
  a.data = static_cast<const uint8_t*>(w.data);
  a.row_stride = row_stride;
  a.rows = w.rows;
  a.cols = w.cols;
  a.n_tok = n_tok;
  a.x = x;
  a.y = y;
  const int rt = detail::float_tile_rows();
  const int64_t n_tiles = (w.rows + rt - 1) / rt;
  pool.run([&](int worker) {
    int64_t b, e;
    split_range(n_tiles, pool.size(), worker, b, e);
    if (b >= e) return;
    const int64_t r0 = b * rt, r1 = std::min(w.rows, e * rt);
    if (family == KernelFamily::kFloat) {
      detail::float_matmul_rows(a, r0, r1);
    } else {
      auto* scratch = reinterpret_cast<float*>(thread_scratch(static_cast<size_t>(rt * w.cols) * sizeof(float)));
      detail::dequant_matmul_rows(a, r0, r1, scratch);
    }
  });
}

}  // namespace

std::span<const MatmulKernelInfo> matmul_kernels() { return kKernels; }

const MatmulKernelInfo& matmul_kernel(DType t) {
  for (const auto& k : kKernels)
    if (k.type == t) return k;
  require_supported(t, "matmul");
  STRATA_ASSERT(false, "a supported type is missing from the matmul kernel registry");
}

namespace {

// Checks a matmul's arguments. Returns the int8 panel format when the int8 kernels compute it, else null
// (the float / dequantize path); sets `trivial` when there is nothing to compute after y is zero-filled.
const PanelFormat* check_matmul(const Weight& w, const Acts& x, int64_t n_tok, float* y, bool accumulate,
                                bool& trivial) {
  STRATA_ASSERT(w.rows >= 0 && w.cols >= 0 && n_tok >= 0, "matmul: negative shape");
  require_supported(w.type, "matmul");
  (void)row_bytes(w.type, w.cols);  // throws when cols is not a multiple of the block size
  trivial = n_tok == 0 || w.rows == 0;
  if (trivial) return nullptr;
  STRATA_ASSERT((x.x || !x.q.empty()) && y, "matmul: null pointer");
  if (w.source) return nullptr;  // matmul() handles streamed weights
  if (!w.data) {  // only a repacked copy is kept: it must be for this target
    const PackedPanel* p = packed_panel(w);
    STRATA_ASSERT(p && p->R == detail::int8_tile_rows(),
                  "matmul: a weight whose file bytes were dropped after repacking runs on another SIMD target");
  }
  if (w.cols == 0) {
    if (!accumulate) std::fill(y, y + n_tok * w.rows, 0.0f);
    trivial = true;
    return nullptr;
  }
  if (matmul_kernel(w.type).family != KernelFamily::kInt8Panel || detail::int8_tile_rows() == 0) return nullptr;
  return panel_format(w.type);
}

}  // namespace

void matmul(const Weight& w, const float* x, int64_t n_tok, float* y, ThreadPool& pool) {
  matmul(w, Acts{x, {}}, n_tok, y, pool);
}

void matmul(const Weight& w, const Acts& x, int64_t n_tok, float* y, ThreadPool& pool, bool accumulate) {
  bool trivial;
  const PanelFormat* f = check_matmul(w, x, n_tok, y, accumulate, trivial);
  if (trivial) return;
  if (w.source) {  // a streamed weight: its bytes for the length of this call
    struct Release {
      WeightSource* s;
      ~Release() { s->release(); }
    };
    Weight v = w;
    v.source = nullptr;
    v.data = w.source->acquire();
    Release r{w.source};
    return matmul(v, x, n_tok, y, pool, accumulate);
  }
  if (f) {
    const Int8Item item{&w, f, y, accumulate};
    return run_int8(std::span<const Int8Item>(&item, 1), x, n_tok, pool);
  }
  // Float types, and the scalar fallback target (no int8 kernels): it dequantizes.
  const KernelFamily family = matmul_kernel(w.type).family;
  run_float(w, family == KernelFamily::kFloat ? KernelFamily::kFloat : KernelFamily::kDequant,
            row_bytes(w.type, w.cols), x.x, n_tok, y, accumulate, pool);
}

void matmul_multi(std::span<const Weight* const> ws, const float* x, int64_t n_tok, std::span<float* const> ys,
                  ThreadPool& pool) {
  matmul_multi(ws, Acts{x, {}}, n_tok, ys, pool);
}

ActNeeds act_needs(std::span<const Weight* const> ws) {
  ActNeeds n;
  const bool int8 = detail::int8_tile_rows() != 0;
  for (const Weight* w : ws) {
    const PanelFormat* f = panel_format(w->type);
    if (!int8 || !f || matmul_kernel(w->type).family != KernelFamily::kInt8Panel) {
      n.f32 = true;
      continue;
    }
    const ActFormat a{static_cast<float>(f->act_sum_scale), detail::int8_act_u8(w->type)};
    int i = 0;
    while (i < n.n_fmt && !(n.fmt[i] == a)) ++i;
    if (i < n.n_fmt) continue;
    if (n.n_fmt == kMaxActFormats) {  // more formats than slots: the rest quantize from the float rows
      n.f32 = true;
      continue;
    }
    n.fmt[n.n_fmt++] = a;
  }
  return n;
}

void matmul_multi(std::span<const Weight* const> ws, const Acts& x, int64_t n_tok, std::span<float* const> ys,
                  ThreadPool& pool) {
  STRATA_ASSERT(ws.size() == ys.size(), "matmul_multi: one output per weight");
  Int8Item items[kMaxSectionItems];
  size_t n_items = 0;
  auto flush = [&] {
    if (n_items > 0) run_int8(std::span<const Int8Item>(items, n_items), x, n_tok, pool);
    n_items = 0;
  };
  for (size_t i = 0; i < ws.size(); ++i) {
    const Weight& w = *ws[i];
    STRATA_ASSERT(w.cols == ws[0]->cols, "matmul_multi: the weights must have the same number of columns");
    bool trivial;
    const PanelFormat* f = check_matmul(w, x, n_tok, ys[i], false, trivial);
    if (trivial) continue;
    if (!f) {  // streamed, float or dequantized: on its own, in the given order (the streamer reads ahead)
      matmul(w, x, n_tok, ys[i], pool);
      continue;
    }
    if (n_items == kMaxSectionItems) flush();
    items[n_items++] = Int8Item{&w, f, ys[i], false};
  }
  flush();
}

Weight prepare_weight(DType type, const void* data, int64_t rows, int64_t cols) {
  Weight w;
  w.type = type;
  w.data = data;
  w.rows = rows;
  w.cols = cols;
  require_supported(type, "prepare_weight");
  const size_t row_stride = row_bytes(type, cols);
  const PanelFormat* f = panel_format(type);
  const int R = f ? detail::int8_tile_rows() : 0;
  if (!f || R == 0 || rows == 0 || cols == 0) return w;
  auto p = std::make_shared<PackedPanel>();
  p->R = R;
  p->tile_bytes = panel_tile_bytes(*f, R, cols);
  const int64_t n_tiles = (rows + R - 1) / R;
  uint8_t* dst = p->buf.reserve(static_cast<size_t>(n_tiles) * p->tile_bytes);
  for (int64_t t = 0; t < n_tiles; ++t) {
    const int n = static_cast<int>(std::min<int64_t>(R, rows - t * R));
    pack_panel_tile(*f, R, static_cast<const uint8_t*>(data) + t * R * row_stride, row_stride, n, cols,
                    dst + t * p->tile_bytes);
  }
  w.packed = std::move(p);
  return w;
}

size_t packed_bytes(const Weight& w) {
  const PackedPanel* p = packed_panel(w);
  return p ? p->buf.size() : 0;
}

}  // namespace strata::kernels
