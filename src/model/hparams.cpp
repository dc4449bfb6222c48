#include "model/hparams.h"

#include <cmath>
#include <numbers>

#include "core/error.h"
#include "gguf/gguf.h"

namespace strata::model {

const char* supported_architectures() { return "llama, mistral, qwen2"; }

namespace {

Arch arch_from_name(const std::string& a) {
  if (a == "llama") return Arch::kLlama;
  if (a == "mistral") return Arch::kMistral;
  if (a == "qwen2") return Arch::kQwen2;
  fail("model architecture '{}' is not supported (general.architecture); supported: {}", a,
       supported_architectures());
}

int64_t positive(const std::string& key, int64_t v) {
  if (v <= 0) fail("{} = {}: must be positive", key, v);
  return v;
}

}  // namespace

HParams read_hparams(const gguf::File& f) {
  HParams hp;
  hp.arch_name = f.require_string("general.architecture");
  hp.arch = arch_from_name(hp.arch_name);
  hp.name = f.get_string("general.name", "");
  const std::string a = hp.arch_name + ".";
  auto req = [&](const std::string& k) { return positive(a + k, f.require_int(a + k)); };
  auto opt = [&](const std::string& k, int64_t def) { return positive(a + k, f.get_int(a + k, def)); };

  hp.n_ctx_train = req("context_length");
  hp.n_embd = req("embedding_length");
  hp.n_layer = req("block_count");
  hp.n_ff = req("feed_forward_length");
  hp.n_head = req("attention.head_count");
  hp.n_head_kv = opt("attention.head_count_kv", hp.n_head);
  if (hp.n_head % hp.n_head_kv != 0)
    fail("{}attention.head_count ({}) is not a multiple of {}attention.head_count_kv ({})", a, hp.n_head, a,
         hp.n_head_kv);
  if (hp.n_embd % hp.n_head != 0 && !f.has(a + "attention.key_length"))
    fail("{}embedding_length ({}) is not a multiple of {}attention.head_count ({}) and {}attention.key_length "
         "is absent", a, hp.n_embd, a, hp.n_head, a);
  hp.head_dim = opt("attention.key_length", hp.n_embd / hp.n_head);
  hp.head_dim_v = opt("attention.value_length", hp.n_embd / hp.n_head);
  hp.n_rot = opt("rope.dimension_count", hp.head_dim);
  if (hp.n_rot > hp.head_dim || hp.n_rot % 2 != 0)
    fail("{}rope.dimension_count = {}: must be even and at most the head size {}", a, hp.n_rot, hp.head_dim);

  if (!f.has(a + "attention.layer_norm_rms_epsilon"))
    fail("missing required key {}attention.layer_norm_rms_epsilon", a);
  hp.rms_eps = static_cast<float>(f.get_float(a + "attention.layer_norm_rms_epsilon", 1e-5));
  if (!(hp.rms_eps >= 0)) fail("{}attention.layer_norm_rms_epsilon = {}: must be >= 0", a, hp.rms_eps);

  hp.rope_freq_base = f.get_float(a + "rope.freq_base", 10000.0);
  if (!(hp.rope_freq_base > 0)) fail("{}rope.freq_base = {}: must be positive", a, hp.rope_freq_base);
  hp.rope_mode = hp.arch == Arch::kQwen2 ? kernels::RopeMode::kNeox : kernels::RopeMode::kNormal;

  // Rope scaling: "linear" divides positions by the factor; "llama3" scales frequencies per pair (usually
  // stored as the rope_freqs.weight tensor instead); "none" or absent: no scaling.
  const double factor =
      f.get_float(a + "rope.scaling.factor", f.get_float(a + "rope.scale_linear", 0.0));
  hp.rope_scaling = f.get_string(a + "rope.scaling.type", factor > 0 && factor != 1 ? "linear" : "none");
  if (hp.rope_scaling == "linear") {
    if (factor > 0) hp.rope_freq_scale = 1.0 / factor;
  } else if (hp.rope_scaling == "llama3") {
    if (factor > 0) hp.rope_llama3_factor = factor;
    hp.rope_llama3_low = f.get_float(a + "rope.scaling.low_freq_factor", 1.0);
    hp.rope_llama3_high = f.get_float(a + "rope.scaling.high_freq_factor", 4.0);
    hp.rope_llama3_orig_ctx = f.get_float(a + "rope.scaling.original_context_length", 8192.0);
  } else if (hp.rope_scaling != "none") {
    fail("{}rope.scaling.type = '{}' is not supported yet (supported: none, linear, llama3)", a,
         hp.rope_scaling);
  }
  const std::string act = f.get_string("strata.ffn_act", "silu");
  if (act == "relu") hp.ffn_act = FfnAct::kRelu;
  else if (act != "silu") fail("strata.ffn_act = '{}': unknown FFN activation (known: silu, relu)", act);
  hp.ffn_bundle = f.get_bool("strata.ffn_bundle", false);
  return hp;
}

std::vector<float> llama3_freq_factors(const HParams& hp) {
  // For each pair: wavelength 2π/freq. Long wavelengths (low frequencies) are divided by `factor`, short
  // ones kept, and those in between interpolated smoothly.
  const double low_wavelen = hp.rope_llama3_orig_ctx / hp.rope_llama3_low;
  const double high_wavelen = hp.rope_llama3_orig_ctx / hp.rope_llama3_high;
  std::vector<float> ff(static_cast<size_t>(hp.n_rot / 2));
  for (int64_t i = 0; i < hp.n_rot / 2; ++i) {
    const double freq = std::pow(hp.rope_freq_base, -2.0 * static_cast<double>(i) / static_cast<double>(hp.n_rot));
    const double wavelen = 2 * std::numbers::pi / freq;
    double div;
    if (wavelen < high_wavelen) {
      div = 1;
    } else if (wavelen > low_wavelen) {
      div = hp.rope_llama3_factor;
    } else {
      const double smooth = (hp.rope_llama3_orig_ctx / wavelen - hp.rope_llama3_low) /
                            (hp.rope_llama3_high - hp.rope_llama3_low);
      div = 1.0 / ((1 - smooth) / hp.rope_llama3_factor + smooth);
    }
    ff[static_cast<size_t>(i)] = static_cast<float>(div);
  }
  return ff;
}

}  // namespace strata::model
