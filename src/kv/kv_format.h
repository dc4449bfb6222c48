// KV row formats: how one KV head's values at one position (a row of head_dim floats) are stored, and the
// operations attention needs on them without a full decode. One registry (STYLE.md practice 5): every format
// is one row of format_registry.cpp, and dispatch, tests and benchmarks iterate over it.
//
// Three kinds of format:
//  - ggml rows (f32, f16, bf16, q8_0, q4_0, q4_1): bit-compatible with ggml's tensor types, so a KvView of
//    `info.dtype` describes them too;
//  - strata rows: block floating point (bfp8, bfp4: a shared power-of-two exponent per 16 channels), with
//    an optional channel transform applied before encoding: a calibrated permutation (bfp4r, bfp8r) that
//    groups channels of similar magnitude, or a randomized Hadamard rotation (q4h, bfp4h) that spreads
//    outliers over all channels;
//  - GEAR chunks (gear2, gear4): `tokens_per_unit` tokens of one KV head encoded together (a low-bit base,
//    a low-rank approximation of its error spanning the tokens, and sparse exact outliers).
//
// The stored domain. A format with a transform T stores T·x. T is orthogonal (a permutation or a scaled
// Hadamard), so attention never needs to undo it per row: <q, x> = <T q, T x>, and sum_p w_p x_p =
// T^-1 (sum_p w_p T x_p). Attention therefore calls prepare_query() once per query head (q_t = T q), runs
// dot_range / axpy_range on stored rows, and finish_output() once on the accumulated output. The *_row
// convenience functions work in the logical (untransformed) domain and are for tests and slow paths.
//
// Layout. Position p of one KV head lives in unit p / tokens_per_unit at data + unit * unit_stride; for row
// formats (tokens_per_unit == 1) unit_stride is the usual pos_stride. unit_bytes is fixed per
// (format, head_dim), so a cache can reserve contiguous virtual memory for any format.
#pragma once
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "tensor/dtype.h"

namespace strata::kv {

enum class KvFormat : uint8_t {
  F32, F16, BF16, Q8_0, Q4_0, Q4_1,  // ggml-compatible rows
  BFP8, BFP4,                        // block floating point, 16 channels per shared exponent
  BFP8R, BFP4R,                      // + calibrated channel reordering
  Q4H, BFP4H,                        // + randomized Hadamard rotation
  GEAR2, GEAR4,                      // chunks of tokens: base + low rank + sparse outliers
};

enum class KvTransform : uint8_t {
  None,      // stored as is
  Permute,   // stored channel j holds channel perm[j] (FormatParams::perm, from calibration)
  Hadamard,  // stored row = H_b · (s ⊙ x) / sqrt(b) per block of b channels (format_hadamard.h)
};

// GEAR's parameters (stored in each chunk's header too, so decoding needs only head_dim).
struct GearParams {
  int32_t bits = 2;            // base quantization: 2 or 4 bits, asymmetric (scale + min per group)
  int32_t chunk = 64;          // tokens per chunk (the low-rank factors span them)
  int32_t rank = 2;            // rank of the error approximation (0: none)
  float outlier_frac = 0.01f;  // fraction of the chunk's values kept exactly (sparse part; 0: none)
  int32_t power_iters = 3;     // subspace iterations for the low-rank factors
};

struct KvFormatInfo {
  KvFormat format;
  const char* name;             // the -ctk / -ctv value
  const char* help;             // one line for --help and docs
  std::optional<DType> dtype;   // the ggml type these rows are bit-compatible with, if any
  int32_t channel_block;        // head_dim must be a multiple of this
  int32_t tokens_per_unit;      // 1 for row formats; GEAR: the chunk length
  KvTransform transform;
  GearParams gear;              // GEAR formats only
  bool needs_calibration() const { return transform == KvTransform::Permute; }
  bool is_row_format() const { return tokens_per_unit == 1; }
};

// ---- The registry ----
std::span<const KvFormatInfo> all_formats();
const KvFormatInfo& format_info(KvFormat f);
inline const char* format_name(KvFormat f) { return format_info(f).name; }
std::optional<KvFormat> format_from_name(std::string_view name);  // case-insensitive
// Parses a -ctk/-ctv value; throws strata::Error naming the flag and listing the formats.
KvFormat parse_format(std::string_view name, std::string_view flag);
std::string format_name_list();  // "f32, f16, bf16, ..."

// Throws strata::Error when the format cannot store rows of head_dim values (block size, Hadamard block).
void check_head_dim(KvFormat f, int32_t head_dim);
// Bytes of one unit (a row, or a GEAR chunk of tokens_per_unit rows) for one KV head.
size_t unit_bytes(KvFormat f, int32_t head_dim);
// Bytes per token for one KV head (unit_bytes / tokens_per_unit). Times 2 (K and V) × n_head_kv ×
// n_layer for a model's KV bytes per token.
double bytes_per_token(KvFormat f, int32_t head_dim);

// Per-(layer, KV head, K or V) parameters of a format.
struct FormatParams {
  int32_t head_dim = 0;
  const uint16_t* perm = nullptr;  // [head_dim]: Permute formats only (calibration.h); nullptr = identity
};

// ---- The stored domain (what attention uses) ----
// q_t = T q. q and q_t are [head_dim] and may not alias.
void prepare_query(KvFormat f, const FormatParams& p, const float* q, float* q_t);
// out = T^-1 acc_t (acc_t summed in the stored domain). May not alias.
void finish_output(KvFormat f, const FormatParams& p, const float* acc_t, float* out);

// scores[i] = <q_t, stored row of position p0 + i> for p in [p0, p1) (unscaled).
void dot_range(KvFormat f, int32_t head_dim, const float* q_t, const uint8_t* data, int64_t unit_stride,
               int64_t p0, int64_t p1, float* scores);
// acc_t += sum_i w[i] * (stored row of position p0 + i) for p in [p0, p1).
void axpy_range(KvFormat f, int32_t head_dim, const float* w, const uint8_t* data, int64_t unit_stride,
                int64_t p0, int64_t p1, float* acc_t);
// Row i of out (at out + i * ld; ld = 0 means head_dim) = the stored row of position p0 + i, float32, still
// in the stored domain: the tile loader of an attention kernel that computes on float tiles.
void decode_range_stored(KvFormat f, int32_t head_dim, const uint8_t* data, int64_t unit_stride, int64_t p0,
                         int64_t p1, float* out, int64_t ld = 0);

// decode_range_stored of format f as a plain function pointer, for an attention kernel's KV view (the
// kernels layer cannot include kv/, but can hold a pointer of this signature): one indirect call per tile.
using KvRowsDecoder = void (*)(const uint8_t* data, int64_t unit_stride, int64_t p0, int64_t p1, int32_t head_dim,
                               float* out, int64_t ld);
KvRowsDecoder rows_decoder(KvFormat f);

// ---- Encoding ----
// rows: [tokens_per_unit][head_dim] logical values -> one unit at dst (unit_bytes). GEAR needs a full chunk;
// the cache keeps the partial last chunk in f16 until it fills (see kv/format_gear.h).
void encode_unit(KvFormat f, const FormatParams& p, const float* rows, uint8_t* dst);
// One unit back to logical values [tokens_per_unit][head_dim].
void decode_unit(KvFormat f, const FormatParams& p, const uint8_t* src, float* rows);

// ---- Row formats, logical domain (tests, merging, slow paths; assert is_row_format) ----
void encode_row(KvFormat f, const FormatParams& p, const float* row, uint8_t* dst);
void decode_row(KvFormat f, const FormatParams& p, const uint8_t* src, float* out);
float dot_row(KvFormat f, const FormatParams& p, const float* q, const uint8_t* src);
void axpy_row(KvFormat f, const FormatParams& p, float w, const uint8_t* src, float* acc);

// ---- A cache's choice of formats (the -ctk / -ctv / --kv-window flags) ----
struct KvFormatSpec {
  KvFormat k = KvFormat::F16;
  KvFormat v = KvFormat::F16;
  int32_t recent_window = 0;  // the most recent W tokens of each sequence kept in f16 (row formats)
};
// KV bytes per token of a whole model (K and V, all layers and KV heads), excluding the f16 window.
double model_bytes_per_token(const KvFormatSpec& s, int32_t n_layer, int32_t n_head_kv, int32_t head_dim);

}  // namespace strata::kv
