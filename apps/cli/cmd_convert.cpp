// `strata convert --bundle -m IN -o OUT`: rewrites a GGUF for sparse FFN loading (LLM in a flash's
// row-column bundling, storage/ffn_bundle.h). The bundled file is strata-only: llama.cpp cannot read it.
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>

#include "cli/command.h"
#include "core/error.h"
#include "storage/ffn_bundle.h"
#include "tensor/dtype.h"

namespace strata::cli {
namespace {

struct ConvertOptions {
  std::string input, output;
  bool bundle = false, force = false;
  int threads = 0;
};

int run_convert(const ConvertOptions& o) {
  if (!o.bundle) fail("convert: say what to convert to: --bundle (the only conversion so far)");
  if (o.input.empty() || o.output.empty()) fail("convert --bundle: give the input (-m IN.gguf) and the output (-o OUT.gguf)");
  storage::BundleOptions bo;
  bo.overwrite = o.force;
  bo.n_threads = o.threads;
  const auto t0 = std::chrono::steady_clock::now();
  const storage::BundleResult r = storage::write_ffn_bundle(o.input, o.output, bo);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("wrote %s: %lld layers bundled (ffn_up + ffn_down -> ffn_up_down, %s%s), %.1f MiB in %.1f s; "
              "strata-only (llama.cpp cannot read it)\n",
              o.output.c_str(), static_cast<long long>(r.layers), dtype_name(r.type),
              r.requantized ? ", down columns re-quantized" : ", exact", static_cast<double>(r.file_bytes) / (1 << 20),
              secs);
  return 0;
}

RunFn setup_convert(CLI::App& sub) {
  auto o = std::make_shared<ConvertOptions>();
  sub.add_flag("--bundle", o->bundle,
               "row-column bundling (LLM in a flash): blk.N.ffn_up_down holds [up row i | down column i] so the "
               "sparse FFN reads only active neurons, one read per run. The file is strata-only: llama.cpp "
               "cannot read it. Quantized down columns are re-quantized (small error; F32/F16 exact)");
  sub.add_option("-m,--model", o->input, "input GGUF (llama, mistral, qwen2)")->required();
  sub.add_option("-o,--output", o->output, "output GGUF")->required();
  sub.add_flag("-f,--force", o->force, "replace the output file if it exists");
  sub.add_option("-t,--threads", o->threads, "threads for re-quantization (default: all)");
  return [o] { return run_convert(*o); };
}

const Command kCmd{"convert", "rewrite a GGUF: --bundle for sparse FFN loading (strata-only file)", setup_convert};

}  // namespace
}  // namespace strata::cli
