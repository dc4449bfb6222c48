// Internal: how K-quants pack their sub-block scales (shared by the K-quant quantizers and dequantizers).
#pragma once
#include <cstdint>

namespace strata::ref::detail {

// q4_K / q5_K: 8 sub-blocks, each with a 6-bit scale and a 6-bit min, in 12 bytes:
//   j < 4 : scale = q[j] & 63,                          min = q[j + 4] & 63
//   j >= 4: scale = (q[j + 4] & 0xF) | (q[j - 4] >> 6) << 4,  min = (q[j + 4] >> 4) | (q[j] >> 6) << 4
// (the top two bits of scales/mins 4..7 ride in the spare top bits of bytes 0..7).
inline void get_scale_min_k4(int j, const uint8_t* q, uint8_t* d, uint8_t* m) {
  if (j < 4) {
    *d = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *d = static_cast<uint8_t>((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
    *m = static_cast<uint8_t>((q[j + 4] >> 4) | ((q[j - 0] >> 6) << 4));
  }
}

// q3_K: 16 six-bit scales (stored as scale + 32) in 12 bytes. Scale j has its low nibble in
// q[j] bits 0-3 (j < 8) or q[j - 8] bits 4-7 (j >= 8), and its top two bits in q[8 + j % 4] at bit 2*(j / 4).
inline void unpack_q3_K_scales(const uint8_t* q, int8_t* out /* [16], values 0..63 */) {
  for (int j = 0; j < 16; ++j) {
    const int lo = j < 8 ? (q[j] & 0xF) : (q[j - 8] >> 4);
    const int hi = (q[8 + j % 4] >> (2 * (j / 4))) & 3;
    out[j] = static_cast<int8_t>(lo | (hi << 4));
  }
}

}  // namespace strata::ref::detail
