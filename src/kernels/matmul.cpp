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

void run_int8(const Weight& w, const PanelFormat& f, int R, size_t row_stride, const float* x, int64_t n_tok,
              float* y, ThreadPool& pool) {
  const int64_t nb32 = w.cols / 32;
  auto* act = reinterpret_cast<QAct*>(thread_act_buffer(static_cast<size_t>(n_tok * nb32) * sizeof(QAct)));
  detail::Int8Args a;
  a.fmt = &f;
  a.R = R;
  a.data = static_cast<const uint8_t*>(w.data);
  a.row_stride = row_stride;
  a.rows = w.rows;
  a.cols = w.cols;
  a.n_tok = n_tok;
  a.act = act;
  a.y = y;
  a.meta_bytes = panel_meta_bytes(f, R, w.cols);
  a.tile_bytes = panel_tile_bytes(f, R, w.cols);
  const PackedPanel* p = packed_panel(w);
  if (p && p->R == R) a.panel = p->buf.data();  // else (packed for another target): pack per tile
  const int64_t n_tiles = (w.rows + R - 1) / R;
  const int n_workers = pool.size();
  std::atomic<int> arrived{0};
  pool.run([&](int worker) {
    // Each activation row is quantized once, its 32-column blocks split over the workers (x is one long
    // run of n_tok * cols / 32 blocks), then every worker computes its row tiles.
    int64_t b, e;
    split_range(n_tok * nb32, n_workers, worker, b, e);
    if (b < e) quantize_act_rows(x + b * 32, 1, (e - b) * 32, act + b, static_cast<float>(f.act_sum_scale));
    if (n_workers > 1) {
      arrived.fetch_add(1, std::memory_order_acq_rel);
      wait_for(arrived, n_workers);
    }
    split_range(n_tiles, n_workers, worker, b, e);
    if (b >= e) return;
    uint8_t* scratch = a.panel ? nullptr : thread_scratch(a.tile_bytes);
    detail::int8_matmul_tiles(a, b, e, scratch);
  });
}

void run_float(const Weight& w, KernelFamily family, size_t row_stride, const float* x, int64_t n_tok, float* y,
               ThreadPool& pool) {
  detail::FloatArgs a;
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

void matmul(const Weight& w, const float* x, int64_t n_tok, float* y, ThreadPool& pool) {
  STRATA_ASSERT(w.rows >= 0 && w.cols >= 0 && n_tok >= 0, "matmul: negative shape");
  require_supported(w.type, "matmul");
  const size_t row_stride = row_bytes(w.type, w.cols);
  if (n_tok == 0 || w.rows == 0) return;
  if (w.source) {  // a streamed weight: its bytes for the length of this call
    struct Release {
      WeightSource* s;
      ~Release() { s->release(); }
    };
    Weight v = w;
    v.source = nullptr;
    v.data = w.source->acquire();
    Release r{w.source};
    return matmul(v, x, n_tok, y, pool);
  }
  STRATA_ASSERT(x && y, "matmul: null pointer");
  if (!w.data) {  // only a repacked copy is kept: it must be for this target
    const PackedPanel* p = packed_panel(w);
    STRATA_ASSERT(p && p->R == detail::int8_tile_rows(),
                  "matmul: a weight whose file bytes were dropped after repacking runs on another SIMD target");
  }
  if (w.cols == 0) {
    std::fill(y, y + n_tok * w.rows, 0.0f);
    return;
  }
  const MatmulKernelInfo& k = matmul_kernel(w.type);
  if (k.family == KernelFamily::kInt8Panel) {
    if (const int R = detail::int8_tile_rows(); R > 0) {
      return run_int8(w, *panel_format(w.type), R, row_stride, x, n_tok, y, pool);
    }
  }
  // The scalar fallback target has no int8 kernels: it dequantizes.
  run_float(w, k.family == KernelFamily::kFloat ? KernelFamily::kFloat : KernelFamily::kDequant, row_stride, x,
            n_tok, y, pool);
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
