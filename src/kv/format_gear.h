// GEAR (Kang et al., "GEAR: An Efficient KV Cache Compression Recipe"): a chunk of `chunk` tokens × head_dim
// values of one KV head is stored as
//   X ≈ deq(Q) + A·B + S
//   Q: a `bits`-bit asymmetric base quantization (fp16 scale and min per group, refined by least squares
//      from the min-max grid). The group axis is chosen per chunk by lower error: per channel (a channel
//      over the chunk's tokens, as KIVI does for K: outlier channels get their own scale) or per token
//      (groups of up to 64 channels of one token);
//   S: sparse outliers, about outlier_frac of the values, kept exactly: chosen *before* quantizing as the
//      group extremes whose removal shrinks their group's range the most (so the base grid gets finer),
//      stored as (u16 index, fp16 correction);
//   A·B: rank-`rank` approximation of the remaining quantization error (A: chunk × rank, B: rank × head_dim,
//      fp16), from a few subspace (power) iterations. It spans tokens, which is why GEAR works per chunk.
// A cache keeps the last, partial chunk of each KV head in f16 (the "recent window" of GEAR) and encodes it
// once `chunk` tokens have arrived; a chunk is never re-encoded.
//
// Chunk layout (little endian, fixed size gear_chunk_bytes):
//   u8 bits, u8 axis (0 per channel, 1 per token), u8 rank, u8 0, u16 chunk, u16 max_outliers,
//   u16 n_outliers, u16 0
//   fp16 (scale, min) × max(head_dim, chunk × head_dim / token_group)
//   codes: chunk rows of head_dim × bits / 8 bytes (row-major [token][channel], low bits first)
//   fp16 A [chunk][rank], fp16 B [rank][head_dim]
//   u16 index (token * head_dim + channel, ascending) × max_outliers, fp16 correction × max_outliers
#pragma once
#include <cstddef>
#include <cstdint>

#include "kv/kv_format.h"

namespace strata::kv {

constexpr int32_t kGearMaxHeadDim = 512;

// Throws strata::Error when (head_dim, p) cannot be stored.
void check_gear(int32_t head_dim, const GearParams& p);
size_t gear_chunk_bytes(int32_t head_dim, const GearParams& p);
int32_t gear_max_outliers(int32_t head_dim, const GearParams& p);
// Channels per group when the base is quantized per token: 64, 32 or 16 (the largest dividing head_dim).
int32_t gear_token_group(int32_t head_dim);

// Encodes x [p.chunk][head_dim] into dst (gear_chunk_bytes).
void gear_encode_chunk(const float* x, uint8_t* dst, int32_t head_dim, const GearParams& p);

// Rows t0 .. t1-1 of a chunk (0 <= t0 <= t1 <= chunk):
// the decoded rows, row t at out + (t - t0) * ld (ld = 0 means head_dim).
void gear_decode_chunk(const uint8_t* src, int32_t head_dim, int32_t t0, int32_t t1, float* out,
                       int64_t ld = 0);
// scores[t - t0] = <q, decoded row t>, fused: base + low rank via B·q once + sparse corrections.
void gear_dot_chunk(const float* q, const uint8_t* src, int32_t head_dim, int32_t t0, int32_t t1,
                    float* scores);
// acc += sum_t w[t - t0] * decoded row t, fused likewise.
void gear_axpy_chunk(const float* w, const uint8_t* src, int32_t head_dim, int32_t t0, int32_t t1,
                     float* acc);

}  // namespace strata::kv
