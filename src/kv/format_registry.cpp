// The one registry of KV formats and the dispatch from a runtime KvFormat to typed loops (the visitor below).
// Adding a format: one row in kFormats, one case in visit_codec; the tests and benches iterate all_formats().
#include <algorithm>
#include <array>
#include <cctype>
#include <string>
#include <type_traits>
#include <vector>

#include "core/error.h"
#include "kv/format_gear.h"
#include "kv/format_hadamard.h"
#include "kv/format_rows.h"
#include "kv/format_rows_simd.h"
#include "kv/kv_format.h"

namespace strata::kv {

namespace {

// Presets chosen on strata-tiny-256 (mean KL vs f16 KV over tinystories-heldout, see the KV quality table):
// at 2 bits a rank-1 error term and 2% exact outliers pay for their bytes; at 4 bits the base error is
// too small and unstructured for a low-rank term to pay for itself, so gear4 keeps only 0.5% outliers.
constexpr GearParams kGear2{2, 64, 1, 0.02f, 3};
constexpr GearParams kGear4{4, 64, 0, 0.005f, 3};

// clang-format off
const KvFormatInfo kFormats[] = {
  // format          name     help                                                                  ggml type          block tok  transform
  {KvFormat::F32,   "f32",   "32-bit float (exact; 32 bits per value)",                             DType::F32,        1,    1,   KvTransform::None,     {}},
  {KvFormat::F16,   "f16",   "IEEE half (16 bits per value)",                                      DType::F16,        1,    1,   KvTransform::None,     {}},
  {KvFormat::BF16,  "bf16",  "bfloat16 (16 bits per value)",                                       DType::BF16,       1,    1,   KvTransform::None,     {}},
  {KvFormat::Q8_0,  "q8_0",  "ggml q8_0: int8, fp16 scale per 32 values (8.5 bits)",               DType::Q8_0,       32,   1,   KvTransform::None,     {}},
  {KvFormat::Q4_0,  "q4_0",  "ggml q4_0: 4-bit, fp16 scale per 32 values (4.5 bits)",              DType::Q4_0,       32,   1,   KvTransform::None,     {}},
  {KvFormat::Q4_1,  "q4_1",  "ggml q4_1: 4-bit, fp16 scale and min per 32 values (5 bits)",        DType::Q4_1,       32,   1,   KvTransform::None,     {}},
  {KvFormat::BFP8,  "bfp8",  "block floating point: int8 mantissas, shared exponent per 16 (8.5 bits)", std::nullopt, 16,   1,   KvTransform::None,     {}},
  {KvFormat::BFP4,  "bfp4",  "block floating point: 4-bit mantissas, shared exponent per 16 (4.5 bits)", std::nullopt, 16,  1,   KvTransform::None,     {}},
  {KvFormat::BFP8R, "bfp8r", "bfp8 with channels reordered by calibrated magnitude",                std::nullopt,      16,   1,   KvTransform::Permute,  {}},
  {KvFormat::BFP4R, "bfp4r", "bfp4 with channels reordered by calibrated magnitude",                std::nullopt,      16,   1,   KvTransform::Permute,  {}},
  {KvFormat::Q4H,   "q4h",   "q4_0 of the randomized-Hadamard-rotated row (4.5 bits)",              std::nullopt,      32,   1,   KvTransform::Hadamard, {}},
  {KvFormat::BFP4H, "bfp4h", "bfp4 of the randomized-Hadamard-rotated row (4.5 bits)",              std::nullopt,      16,   1,   KvTransform::Hadamard, {}},
  {KvFormat::GEAR2, "gear2", "GEAR: 2-bit base + rank-1 error + 2% exact outliers per 64 tokens",   std::nullopt,      16,   64,  KvTransform::None,     kGear2},
  {KvFormat::GEAR4, "gear4", "GEAR: 4-bit base + 0.5% exact outliers per 64 tokens (no low rank)",  std::nullopt,      16,   64,  KvTransform::None,     kGear4},
};
// clang-format on

struct GearTag {};

// The visitor: the one place a runtime format becomes a codec type.
template <class Fn>
decltype(auto) visit_codec(KvFormat f, Fn&& fn) {
  switch (f) {
    case KvFormat::F32: return fn(rows::F32{});
    case KvFormat::F16: return fn(rows::F16{});
    case KvFormat::BF16: return fn(rows::BF16{});
    case KvFormat::Q8_0: return fn(rows::Q8_0{});
    case KvFormat::Q4_0:
    case KvFormat::Q4H: return fn(rows::Q4_0{});
    case KvFormat::Q4_1: return fn(rows::Q4_1{});
    case KvFormat::BFP8:
    case KvFormat::BFP8R: return fn(rows::Bfp8{});
    case KvFormat::BFP4:
    case KvFormat::BFP4R:
    case KvFormat::BFP4H: return fn(rows::Bfp4{});
    case KvFormat::GEAR2:
    case KvFormat::GEAR4: return fn(GearTag{});
  }
  STRATA_ASSERT(false, "visit_codec: unknown KV format");
  return fn(rows::F32{});
}

template <class C>
constexpr bool kIsGear = std::is_same_v<C, GearTag>;

// Calls fn(unit_index, t0, t1, out_offset) for the units covering positions [p0, p1).
template <class Fn>
void for_units(int64_t tpu, int64_t p0, int64_t p1, Fn&& fn) {
  for (int64_t p = p0; p < p1;) {
    const int64_t u = p / tpu, t0 = p - u * tpu, t1 = std::min<int64_t>(tpu, p1 - u * tpu);
    fn(u, static_cast<int32_t>(t0), static_cast<int32_t>(t1), p - p0);
    p = u * tpu + t1;
  }
}

// head_dim floats of scratch, on the stack for the usual sizes (encode/decode run once per stored row).
class RowScratch {
 public:
  explicit RowScratch(int d, float fill = 0.f) {
    p_ = d <= static_cast<int>(a_.size()) ? a_.data() : (v_.resize(d), v_.data());
    std::fill(p_, p_ + d, fill);
  }
  float* data() { return p_; }

 private:
  std::array<float, 512> a_;
  std::vector<float> v_;
  float* p_;
};

void check_params(KvFormat f, const FormatParams& p) {
  STRATA_ASSERT(p.head_dim > 0, "KV format: FormatParams::head_dim is not set");
  (void)f;
}

}  // namespace

std::span<const KvFormatInfo> all_formats() { return kFormats; }

const KvFormatInfo& format_info(KvFormat f) {
  for (const auto& i : kFormats)
    if (i.format == f) return i;
  STRATA_ASSERT(false, "format_info: KV format missing from the registry");
  return kFormats[0];
}

std::optional<KvFormat> format_from_name(std::string_view name) {
  std::string lower(name);
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
  for (const auto& i : kFormats)
    if (lower == i.name) return i.format;
  return std::nullopt;
}

std::string format_name_list() {
  std::string s;
  for (const auto& i : kFormats) {
    if (!s.empty()) s += ", ";
    s += i.name;
  }
  return s;
}

KvFormat parse_format(std::string_view name, std::string_view flag) {
  if (auto f = format_from_name(name)) return *f;
  fail("{}: unknown KV cache type '{}' (known: {})", flag, name, format_name_list());
}

void check_head_dim(KvFormat f, int32_t head_dim) {
  const KvFormatInfo& i = format_info(f);
  if (head_dim <= 0 || head_dim % i.channel_block != 0)
    fail("KV cache type {} needs head_dim to be a multiple of {} (the model's head_dim is {}): use f32, f16 or bf16",
         i.name, i.channel_block, head_dim);
  if (i.transform == KvTransform::Hadamard && hadamard_block(head_dim) < 16)
    fail("KV cache type {}: head_dim {} has no power-of-two block of at least 16 for the Hadamard rotation",
         i.name, head_dim);
  if (i.tokens_per_unit > 1) check_gear(head_dim, i.gear);
}

size_t unit_bytes(KvFormat f, int32_t head_dim) {
  check_head_dim(f, head_dim);
  return visit_codec(f, [&]<class C>(C) -> size_t {
    if constexpr (kIsGear<C>) return gear_chunk_bytes(head_dim, format_info(f).gear);
    else return C::bytes(head_dim);
  });
}

double bytes_per_token(KvFormat f, int32_t head_dim) {
  return static_cast<double>(unit_bytes(f, head_dim)) / format_info(f).tokens_per_unit;
}

void prepare_query(KvFormat f, const FormatParams& p, const float* q, float* q_t) {
  check_params(f, p);
  const int d = p.head_dim;
  switch (format_info(f).transform) {
    case KvTransform::None: std::copy(q, q + d, q_t); return;
    case KvTransform::Permute:
      for (int j = 0; j < d; ++j) q_t[j] = q[p.perm ? p.perm[j] : j];
      return;
    case KvTransform::Hadamard: hadamard_forward(q, q_t, d); return;
  }
}

void finish_output(KvFormat f, const FormatParams& p, const float* acc_t, float* out) {
  check_params(f, p);
  const int d = p.head_dim;
  switch (format_info(f).transform) {
    case KvTransform::None: std::copy(acc_t, acc_t + d, out); return;
    case KvTransform::Permute:
      for (int j = 0; j < d; ++j) out[p.perm ? p.perm[j] : j] = acc_t[j];
      return;
    case KvTransform::Hadamard: hadamard_inverse(acc_t, out, d); return;
  }
}

void dot_range(KvFormat f, int32_t head_dim, const float* q_t, const uint8_t* data, int64_t unit_stride,
               int64_t p0, int64_t p1, float* scores) {
  visit_codec(f, [&]<class C>(C) {
    if constexpr (kIsGear<C>) {
      for_units(format_info(f).tokens_per_unit, p0, p1, [&](int64_t u, int32_t t0, int32_t t1, int64_t o) {
        gear_dot_chunk(q_t, data + u * unit_stride, head_dim, t0, t1, scores + o);
      });
    } else {
      for (int64_t p = p0; p < p1; ++p) scores[p - p0] = C::dot(q_t, data + p * unit_stride, head_dim);
    }
  });
}

void axpy_range(KvFormat f, int32_t head_dim, const float* w, const uint8_t* data, int64_t unit_stride,
                int64_t p0, int64_t p1, float* acc_t) {
  visit_codec(f, [&]<class C>(C) {
    if constexpr (kIsGear<C>) {
      for_units(format_info(f).tokens_per_unit, p0, p1, [&](int64_t u, int32_t t0, int32_t t1, int64_t o) {
        gear_axpy_chunk(w + o, data + u * unit_stride, head_dim, t0, t1, acc_t);
      });
    } else {
      for (int64_t p = p0; p < p1; ++p) C::axpy(w[p - p0], data + p * unit_stride, acc_t, head_dim);
    }
  });
}

void decode_range_stored(KvFormat f, int32_t head_dim, const uint8_t* data, int64_t unit_stride, int64_t p0,
                         int64_t p1, float* out, int64_t ld) {
  if (ld == 0) ld = head_dim;
  STRATA_ASSERT(ld >= head_dim, "decode_range_stored: ld must be at least head_dim");
  visit_codec(f, [&]<class C>(C) {
    if constexpr (kIsGear<C>) {
      for_units(format_info(f).tokens_per_unit, p0, p1, [&](int64_t u, int32_t t0, int32_t t1, int64_t o) {
        gear_decode_chunk(data + u * unit_stride, head_dim, t0, t1, out + o * ld, ld);
      });
    } else if constexpr (std::is_same_v<C, rows::Bfp4>) {
      simd::decode_bfp4(data, unit_stride, p0, p1, head_dim, out, ld);  // vector decoders: the hot path
    } else if constexpr (std::is_same_v<C, rows::Bfp8>) {             // of attention over these formats
      simd::decode_bfp8(data, unit_stride, p0, p1, head_dim, out, ld);
    } else if constexpr (std::is_same_v<C, rows::Q4_0>) {
      simd::decode_q4_0(data, unit_stride, p0, p1, head_dim, out, ld);
    } else {
      for (int64_t p = p0; p < p1; ++p) C::decode(data + p * unit_stride, out + (p - p0) * ld, head_dim);
    }
  });
}

namespace {
template <KvFormat F>
void decode_rows_of(const uint8_t* data, int64_t unit_stride, int64_t p0, int64_t p1, int32_t head_dim, float* out,
                    int64_t ld) {
  decode_range_stored(F, head_dim, data, unit_stride, p0, p1, out, ld);
}
}  // namespace

KvRowsDecoder rows_decoder(KvFormat f) {
  switch (f) {
    case KvFormat::F32: return decode_rows_of<KvFormat::F32>;
    case KvFormat::F16: return decode_rows_of<KvFormat::F16>;
    case KvFormat::BF16: return decode_rows_of<KvFormat::BF16>;
    case KvFormat::Q8_0: return decode_rows_of<KvFormat::Q8_0>;
    case KvFormat::Q4_0: return decode_rows_of<KvFormat::Q4_0>;
    case KvFormat::Q4_1: return decode_rows_of<KvFormat::Q4_1>;
    case KvFormat::BFP8: return decode_rows_of<KvFormat::BFP8>;
    case KvFormat::BFP4: return decode_rows_of<KvFormat::BFP4>;
    case KvFormat::BFP8R: return decode_rows_of<KvFormat::BFP8R>;
    case KvFormat::BFP4R: return decode_rows_of<KvFormat::BFP4R>;
    case KvFormat::Q4H: return decode_rows_of<KvFormat::Q4H>;
    case KvFormat::BFP4H: return decode_rows_of<KvFormat::BFP4H>;
    case KvFormat::GEAR2: return decode_rows_of<KvFormat::GEAR2>;
    case KvFormat::GEAR4: return decode_rows_of<KvFormat::GEAR4>;
  }
  STRATA_ASSERT(false, "rows_decoder: unknown KV format");
  return nullptr;
}

void encode_unit(KvFormat f, const FormatParams& p, const float* rows, uint8_t* dst) {
  check_params(f, p);
  const KvFormatInfo& info = format_info(f);
  const int d = p.head_dim;
  visit_codec(f, [&]<class C>(C) {
    if constexpr (kIsGear<C>) {
      gear_encode_chunk(rows, dst, d, info.gear);
    } else if (info.transform == KvTransform::None) {
      C::encode(rows, dst, d);
    } else {
      RowScratch t(d);
      prepare_query(f, p, rows, t.data());  // the same transform as the query's
      C::encode(t.data(), dst, d);
    }
  });
}

void decode_unit(KvFormat f, const FormatParams& p, const uint8_t* src, float* rows) {
  check_params(f, p);
  const KvFormatInfo& info = format_info(f);
  const int d = p.head_dim;
  if (info.transform == KvTransform::None) {
    decode_range_stored(f, d, src, 0, 0, info.tokens_per_unit, rows);
    return;
  }
  RowScratch t(d);
  decode_range_stored(f, d, src, 0, 0, 1, t.data());
  finish_output(f, p, t.data(), rows);
}

void encode_row(KvFormat f, const FormatParams& p, const float* row, uint8_t* dst) {
  STRATA_ASSERT(format_info(f).is_row_format(), "encode_row: GEAR encodes chunks (encode_unit)");
  encode_unit(f, p, row, dst);
}

void decode_row(KvFormat f, const FormatParams& p, const uint8_t* src, float* out) {
  STRATA_ASSERT(format_info(f).is_row_format(), "decode_row: GEAR decodes chunks (decode_unit)");
  decode_unit(f, p, src, out);
}

float dot_row(KvFormat f, const FormatParams& p, const float* q, const uint8_t* src) {
  STRATA_ASSERT(format_info(f).is_row_format(), "dot_row: GEAR works on chunks (dot_range)");
  RowScratch q_t(p.head_dim);
  prepare_query(f, p, q, q_t.data());
  float s = 0;
  dot_range(f, p.head_dim, q_t.data(), src, 0, 0, 1, &s);
  return s;
}

void axpy_row(KvFormat f, const FormatParams& p, float w, const uint8_t* src, float* acc) {
  STRATA_ASSERT(format_info(f).is_row_format(), "axpy_row: GEAR works on chunks (axpy_range)");
  if (format_info(f).transform == KvTransform::None) {
    axpy_range(f, p.head_dim, &w, src, 0, 0, 1, acc);
    return;
  }
  RowScratch t(p.head_dim), o(p.head_dim);
  axpy_range(f, p.head_dim, &w, src, 0, 0, 1, t.data());
  finish_output(f, p, t.data(), o.data());
  for (int c = 0; c < p.head_dim; ++c) acc[c] += o.data()[c];
}

double model_bytes_per_token(const KvFormatSpec& s, int32_t n_layer, int32_t n_head_kv, int32_t head_dim) {
  return (bytes_per_token(s.k, head_dim) + bytes_per_token(s.v, head_dim)) * n_head_kv * n_layer;
}

}  // namespace strata::kv
