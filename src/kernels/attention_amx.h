// Internal: the attention work item on AMX tiles (Intel Sapphire Rapids and later), for items of at most 16
// query rows (decoding: one position × the query heads of a KV group) over bf16 K/V rows.
// Q·Kᵀ and P·V are bf16 tile products (TDPBF16PS) accumulated in float32. K and V are exact in bf16; q and
// p are split into a bf16 "hi" part and the bf16 of its rounding residual "lo", so hi·k + lo·k is within
// ~2^-17 of the float32 product. The tile unit does the multiply-adds straight from the cache's K rows; the
// vector units only interleave V rows, transpose the score tile and run the softmax: 2.4x less work per
// key than the float32 path (docs/PERFORMANCE.md). f16 K/V stay on the float32 path: converting them to
// bf16 hi + lo costs as much as the FMAs it saves (measured).
#pragma once
#include "kernels/attention_item.h"

namespace strata::kernels::detail {

// Whether this CPU has AMX-BF16 and AVX512-BF16 and the OS granted this process the tile state (asked
// once, by arch_prctl(ARCH_REQ_XCOMP_PERM)). False on other CPUs and architectures.
bool amx_usable();

// Runs the item on AMX tiles if it qualifies (item.amx set, amx_usable(), K and V read natively as bf16,
// head_dim a multiple of 32 up to 256, q_count × group <= 16); returns false, doing nothing, otherwise.
bool run_attention_item_amx(const AttnItem& item, AttentionIoStats& stats);

}  // namespace strata::kernels::detail
