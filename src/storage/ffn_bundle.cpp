#include "storage/ffn_bundle.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <thread>
#include <vector>

#include "core/error.h"
#include "core/progress.h"
#include "core/thread_pool.h"
#include "gguf/gguf.h"
#include "gguf/stream_writer.h"

namespace strata::storage {

std::string ffn_bundle_tensor(int64_t layer) { return fmt::format("blk.{}.ffn_up_down.weight", layer); }

namespace {

double bits_per_weight(DType t) {
  const TypeTraits& tr = traits(t);
  return 8.0 * static_cast<double>(tr.type_size) / static_cast<double>(tr.block_size);
}

// "blk.12.ffn_up.weight" -> 12 with suffix "ffn_up.weight"; -1 otherwise.
int64_t layer_of(const std::string& name, const std::string& suffix) {
  if (name.rfind("blk.", 0) != 0) return -1;
  const size_t dot = name.find('.', 4);
  if (dot == std::string::npos || name.compare(dot + 1, std::string::npos, suffix) != 0) return -1;
  try {
    return std::stoll(name.substr(4, dot - 4));
  } catch (...) {
    return -1;
  }
}

struct LayerFfn {
  const gguf::TensorInfo* up = nullptr;
  const gguf::TensorInfo* down = nullptr;
};

}  // namespace

BundleResult write_ffn_bundle(const std::string& in, const std::string& out, const BundleOptions& opts) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::exists(out, ec)) {
    if (fs::equivalent(in, out, ec)) fail("convert --bundle: the output {} is the input file", out);
    if (!opts.overwrite) fail("convert --bundle: {} exists (pass --force to replace it)", out);
  }
  const gguf::File f = gguf::File::open(in);
  if (f.get_bool(kFfnBundleKey, false)) fail("convert --bundle: {} is already bundled ({} = true)", in, kFfnBundleKey);
  const std::string arch = f.get_string("general.architecture", "");
  if (arch != "llama" && arch != "mistral" && arch != "qwen2")
    fail("convert --bundle: architecture '{}' is not supported (llama, mistral, qwen2: gated FFNs)", arch);

  std::map<int64_t, LayerFfn> layers;
  for (const gguf::TensorInfo& t : f.tensors()) {
    if (const int64_t l = layer_of(t.name, "ffn_up.weight"); l >= 0) layers[l].up = &t;
    if (const int64_t l = layer_of(t.name, "ffn_down.weight"); l >= 0) layers[l].down = &t;
  }
  if (layers.empty()) fail("convert --bundle: {} has no blk.N.ffn_up.weight tensors", in);
  const auto type_of = [](const gguf::TensorInfo& t) {
    const TypeTraits* tr = find_traits(t.type);
    if (!tr) fail("convert --bundle: tensor '{}' has unknown type id {}", t.name, t.type);
    require_supported(tr->type, fmt::format("tensor '{}'", t.name));
    return tr->type;
  };

  // The output's tensors: the bundle takes ffn_up's place, ffn_down is dropped.
  struct Plan {
    const gguf::TensorInfo* src = nullptr;  // copied as is, or null for a bundle
    int64_t layer = -1;
    DType type = DType::F32;
  };
  std::vector<Plan> plan;
  std::vector<gguf::TensorDecl> decls;
  BundleResult res;
  for (const gguf::TensorInfo& t : f.tensors()) {
    if (layer_of(t.name, "ffn_down.weight") >= 0) continue;
    const int64_t l = layer_of(t.name, "ffn_up.weight");
    if (l < 0) {
      plan.push_back({&t, -1, DType::F32});
      decls.push_back({t.name, t.type, t.ne});
      continue;
    }
    const LayerFfn& lf = layers[l];
    if (!lf.down) fail("convert --bundle: layer {} has ffn_up but no ffn_down", l);
    const std::vector<int64_t>& un = lf.up->ne;
    const std::vector<int64_t>& dn = lf.down->ne;
    if (un.size() != 2 || dn.size() != 2 || un[0] != dn[1] || un[1] != dn[0])
      fail("convert --bundle: layer {}: ffn_up [{}, {}] and ffn_down [{}, {}] are not (n_embd, n_ff) and (n_ff, "
           "n_embd)", l, un[0], un.size() > 1 ? un[1] : 1, dn[0], dn.size() > 1 ? dn[1] : 1);
    const DType tu = type_of(*lf.up), td = type_of(*lf.down);
    const DType tb = bits_per_weight(td) > bits_per_weight(tu) ? td : tu;
    if (un[0] % traits(tb).block_size != 0)
      fail("convert --bundle: layer {}: n_embd {} is not a multiple of the {} block ({})", l, un[0], dtype_name(tb),
           traits(tb).block_size);
    if (tu != td || (tb != DType::F32 && tb != DType::F16 && tb != DType::BF16)) res.requantized = true;
    plan.push_back({nullptr, l, tb});
    decls.push_back({ffn_bundle_tensor(l), static_cast<uint32_t>(tb), {2 * un[0], un[1]}});
    res.layers++;
    res.type = tb;
  }
  for (const auto& [l, lf] : layers)
    if (!lf.up) fail("convert --bundle: layer {} has ffn_down but no ffn_up", l);

  gguf::Writer meta;
  for (const auto& [k, v] : f.metadata()) meta.set(k, v);
  meta.set(kFfnBundleKey, gguf::Writer::boolean(true));
  gguf::StreamWriter w(out, meta, decls, f.alignment());

  uint64_t total = 0, done = 0;
  for (size_t i = 0; i < decls.size(); ++i) total += w.tensor_nbytes(i);
  std::unique_ptr<Progress> bar;
  if (opts.progress) bar = std::make_unique<Progress>("convert --bundle", total);
  const int n_threads = opts.n_threads > 0 ? opts.n_threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  ThreadPool pool(n_threads);
  constexpr size_t kChunk = size_t{8} << 20;

  for (size_t pi = 0; pi < plan.size(); ++pi) {
    const Plan& p = plan[pi];
    if (p.src) {
      for (uint64_t o = 0; o < p.src->nbytes; o += kChunk) {
        const size_t n = static_cast<size_t>(std::min<uint64_t>(kChunk, p.src->nbytes - o));
        w.write(p.src->data + o, n);
        done += n;
        if (bar) bar->update(done);
      }
      continue;
    }
    const LayerFfn& lf = layers[p.layer];
    const int64_t n_embd = lf.up->ne[0], n_ff = lf.up->ne[1];
    const DType tu = type_of(*lf.up), td = type_of(*lf.down), tb = p.type;
    const size_t up_rb = row_bytes(tu, n_embd), down_rb = row_bytes(td, n_ff), half = row_bytes(tb, n_embd);
    if (lf.up->nbytes != up_rb * static_cast<size_t>(n_ff) || lf.down->nbytes != down_rb * static_cast<size_t>(n_embd))
      fail("convert --bundle: layer {}: ffn_up/ffn_down sizes do not match their shapes", p.layer);
    // down^T as float (n_ff, n_embd): column i of down is row i here.
    std::vector<float> down_t(static_cast<size_t>(n_ff * n_embd));
    pool.parallel_for(n_embd, [&](int64_t b, int64_t e, int) {
      std::vector<float> row(static_cast<size_t>(n_ff));
      for (int64_t r = b; r < e; ++r) {
        dequantize_row(td, lf.down->data + static_cast<size_t>(r) * down_rb, row.data(), n_ff);
        for (int64_t i = 0; i < n_ff; ++i) down_t[static_cast<size_t>(i * n_embd + r)] = row[static_cast<size_t>(i)];
      }
    });
    const int64_t chunk_rows = std::clamp<int64_t>(static_cast<int64_t>(kChunk / (2 * half)), 1, n_ff);
    std::vector<uint8_t> chunk(static_cast<size_t>(chunk_rows) * 2 * half);
    for (int64_t r0 = 0; r0 < n_ff; r0 += chunk_rows) {
      const int64_t n = std::min(chunk_rows, n_ff - r0);
      pool.parallel_for(n, [&](int64_t b, int64_t e, int) {
        std::vector<float> tmp(static_cast<size_t>(n_embd));
        for (int64_t r = b; r < e; ++r) {
          const int64_t i = r0 + r;
          uint8_t* dst = chunk.data() + static_cast<size_t>(r) * 2 * half;
          const uint8_t* up = lf.up->data + static_cast<size_t>(i) * up_rb;
          if (tu == tb) {
            std::memcpy(dst, up, half);
          } else {
            dequantize_row(tu, up, tmp.data(), n_embd);
            quantize_row(tb, tmp.data(), dst, n_embd);
          }
          quantize_row(tb, down_t.data() + static_cast<size_t>(i * n_embd), dst + half, n_embd);
        }
      });
      w.write(chunk.data(), static_cast<size_t>(n) * 2 * half);
      done += static_cast<uint64_t>(n) * 2 * half;
      if (bar) bar->update(done);
    }
  }
  w.finish();
  if (bar) bar->finish();
  res.file_bytes = w.file_size();
  return res;
}

}  // namespace strata::storage
