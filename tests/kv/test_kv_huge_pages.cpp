// Huge pages for the KV cache (KvCache::collapse_filled_chunks, ReservedMemory::collapse_huge): a 2 MiB
// chunk of the memory file becomes one huge page once at most 1/8 of it is unwritten, and not before (a
// barely used cache stays small); the rows read back unchanged, and fork / truncate / release keep working
// over huge pages. Skipped where the kernel has no MADV_COLLAPSE (Linux < 6.1) or STRATA_HUGE_PAGES=0.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "core/reserved_memory.h"
#include "kv_seq_helpers.h"

namespace strata::kv {
namespace {

using namespace seqtest;

constexpr size_t kMiB = size_t{1} << 20;

size_t kv_huge() { return process_huge_shmem_bytes(kKvMemfdName); }

// Whether this kernel collapses a filled, shared memory-file mapping (what KvCache relies on).
bool kernel_collapses() {
  if (!ReservedMemory::huge_pages_enabled()) return false;
  ReservedMemory m(ReservedMemory::kHugePage, ReservedMemory::Backing::kSharedFile);
  if (!m.file()) return false;
  m.commit(0, m.reserved());
  std::memset(m.data(), 1, m.reserved());
  return m.collapse_huge(0, m.reserved()) == ReservedMemory::kHugePage;
}

// 2 layers × 2 KV heads × 64 dims, f16: 128 bytes per row and region; n_ctx 8200 makes each region 257
// pages (3 KiB of padding after its last row), 8 regions = 8.03 MiB: 4 whole 2 MiB chunks, 2 regions each.
constexpr int64_t kCtx = 8200;

TEST(KvHugePages, FilledChunksBecomeHugePagesWithTheSameRows) {
  if (!kernel_collapses()) GTEST_SKIP() << "no MADV_COLLAPSE of memory-file pages here (Linux < 6.1, THP deny, or STRATA_HUGE_PAGES=0)";
  const Rows r = make(8192, 7);
  const size_t h0 = kv_huge();
  KvCache kv(config(KvFormat::F16, 0, kCtx));
  // A reference with a context so long that no 2 MiB chunk (16384 positions of one region) fills up.
  KvCache ref(config(KvFormat::F16, 0, 131072));
  feed(kv, r, 0, 6000, 500);  // chunks 73% written: small pages still
  feed(ref, r, 0, 6000, 500);
  EXPECT_EQ(kv_huge(), h0);
  feed(kv, r, 6000, 8192, 500);  // 99.9%: all 4 chunks
  feed(ref, r, 6000, 8192, 500);
  EXPECT_EQ(kv_huge() - h0, 4 * 2 * kMiB);
  EXPECT_EQ(content(kv), content(ref));
  EXPECT_EQ(attention_out(kv, 3), attention_out(ref, 3));
  // Committed bytes still count positions, not the huge pages' early zeros.
  EXPECT_EQ(kv.committed_bytes(), static_cast<size_t>(kLayers * 2 * kHeadsKv) * 8192 * 128);
  // Truncate and write again over huge pages; release gives them back; refill collapses again.
  kv.truncate(4000);
  ref.truncate(4000);
  const Rows r2 = make(8192, 9);
  feed(kv, r2, 4000, 8192, 700);
  feed(ref, r2, 4000, 8192, 700);
  EXPECT_EQ(content(kv), content(ref));
  kv.release();
  EXPECT_EQ(kv_huge(), h0);
  feed(kv, r, 0, 8192, 1000);
  EXPECT_EQ(kv_huge() - h0, 4 * 2 * kMiB);
}

TEST(KvHugePages, ABarelyUsedCacheStaysInSmallPages) {
  if (!kernel_collapses()) GTEST_SKIP() << "no MADV_COLLAPSE of memory-file pages here";
  const size_t h0 = kv_huge(), p0 = process_pss_bytes(kKvMemfdName);
  KvCache kv(config(KvFormat::F16, 0, kCtx));
  feed(kv, make(100, 3), 0, 100, 50);
  EXPECT_EQ(kv_huge(), h0);
  // 100 rows × 128 bytes in 8 regions: a few pages each, far from 2 MiB chunks.
  if (p0 > 0) {
    EXPECT_LT(process_pss_bytes(kKvMemfdName) - p0, 1 * kMiB);
  }
}

TEST(KvHugePages, ForksOfAHugePageCacheShareAndKeepTheirWritesApart) {
  if (!kernel_collapses()) GTEST_SKIP() << "no MADV_COLLAPSE of memory-file pages here";
  const Rows r = make(8192, 11), a = make(8192, 12), b = make(8192, 13);
  KvCache src(config(KvFormat::F16, 0, kCtx)), ref(config(KvFormat::F16, 0, 131072));
  feed(src, r, 0, 8000, 1000);
  feed(ref, r, 0, 8000, 1000);
  ASSERT_GT(kv_huge(), 0u);
  const std::vector<float> src_before = content(src);
  KvCache f = src.fork(5000);
  KvCache fref = ref.fork(5000);
  feed(f, a, 5000, 8192, 600);  // the fork's own continuation
  feed(fref, a, 5000, 8192, 600);
  EXPECT_EQ(content(f), content(fref));
  EXPECT_EQ(content(src), src_before);  // the source is untouched
  feed(src, b, 8000, 8192, 192);        // and writes of the source stay in the source
  feed(ref, b, 8000, 8192, 192);
  EXPECT_EQ(content(src), content(ref));
  EXPECT_EQ(content(f), content(fref));
}

}  // namespace
}  // namespace strata::kv
