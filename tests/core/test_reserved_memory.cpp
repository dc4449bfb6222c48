// ReservedMemory backed by a memory file: committed ranges read zero and keep what is written, decommit
// frees the file's pages, and map_private gives copy-on-write views that share pages until written and
// are isolated from each other once nobody writes the file through a shared mapping.
#include <gtest/gtest.h>

#include <cstring>

#include "core/reserved_memory.h"

namespace strata {
namespace {

TEST(ReservedMemoryFile, CommitDecommitAndFilePages) {
  const size_t ps = ReservedMemory::page_size();
  ReservedMemory m(64 * ps + 100, ReservedMemory::Backing::kSharedFile);
  if (!m.file()) GTEST_SKIP() << "memfd_create is not available: the anonymous fallback is in use";
  EXPECT_EQ(m.reserved(), 65 * ps);
  EXPECT_EQ(m.file()->allocated_bytes(), 0u);
  m.commit(3 * ps + 10, 5 * ps);  // pages 3..8
  for (size_t i = 3 * ps; i < 9 * ps; ++i) ASSERT_EQ(m.data()[i], 0) << i;
  std::memset(m.data() + 3 * ps, 7, 6 * ps);
  EXPECT_EQ(m.file()->allocated_bytes(), 6 * ps);
  m.commit(8 * ps, 2 * ps);  // overlapping the last page: its bytes stay (the same file page)
  EXPECT_EQ(m.data()[9 * ps - 1], 7);
  m.decommit(3 * ps, 3 * ps);  // pages 3..5 back to the system
  EXPECT_EQ(m.file()->allocated_bytes(), 3 * ps);
  m.commit(3 * ps, ps);
  EXPECT_EQ(m.data()[3 * ps], 0);  // a decommitted page reads zero again
  EXPECT_EQ(m.data()[6 * ps], 7);
}

TEST(ReservedMemoryFile, CopyOnWriteViews) {
  const size_t ps = ReservedMemory::page_size();
  ReservedMemory a(16 * ps, ReservedMemory::Backing::kSharedFile), b(16 * ps, ReservedMemory::Backing::kSharedFile);
  if (!a.file() || !b.file()) GTEST_SKIP() << "memfd_create is not available";
  a.commit(0, 8 * ps);
  for (size_t i = 0; i < 8 * ps; ++i) a.data()[i] = static_cast<uint8_t>(i * 31 + 5);
  // Freeze pages 0..3 of a: both a and b map them copy-on-write from a's file.
  a.map_private(0, 4 * ps, *a.file());
  b.commit(0, 8 * ps);
  b.map_private(0, 4 * ps, *a.file());
  for (size_t i = 0; i < 4 * ps; ++i) ASSERT_EQ(b.data()[i], static_cast<uint8_t>(i * 31 + 5)) << i;
  EXPECT_EQ(a.file()->allocated_bytes(), 8 * ps);  // nothing copied
  EXPECT_EQ(b.file()->allocated_bytes(), 0u);
  // Writes by either stay private.
  a.data()[10] = 1;
  b.data()[2 * ps + 3] = 2;
  EXPECT_EQ(b.data()[10], static_cast<uint8_t>(10 * 31 + 5));
  EXPECT_EQ(a.data()[2 * ps + 3], static_cast<uint8_t>((2 * ps + 3) * 31 + 5));
  // a's pages above the frozen ones are still shared with its file only.
  a.data()[5 * ps] = 9;
  EXPECT_NE(b.data()[5 * ps], 9);
  // a continues on a new file; b's view of the old one stays.
  a.unmap(0, a.reserved());
  a.renew_file();
  a.commit(0, 4 * ps);
  EXPECT_EQ(a.data()[0], 0);
  EXPECT_EQ(b.data()[0], 5);
  EXPECT_EQ(b.data()[4 * ps - 1], static_cast<uint8_t>((4 * ps - 1) * 31 + 5));
}

TEST(ReservedMemoryFile, PssCountsASharedPageOnce) {
  const size_t ps = ReservedMemory::page_size();
  if (process_pss_bytes() == 0) GTEST_SKIP() << "/proc/self/smaps_rollup has no Pss on this kernel";
  const size_t before = process_pss_bytes(kKvMemfdName);
  ReservedMemory a(256 * ps, ReservedMemory::Backing::kSharedFile), b(256 * ps, ReservedMemory::Backing::kSharedFile);
  if (!a.file()) GTEST_SKIP() << "memfd_create is not available";
  a.commit(0, 256 * ps);
  std::memset(a.data(), 1, 256 * ps);
  const size_t one = process_pss_bytes(kKvMemfdName) - before;
  EXPECT_EQ(one, 256 * ps);
  a.map_private(0, 256 * ps, *a.file());
  b.map_private(0, 256 * ps, *a.file());
  volatile uint8_t sum = 0;
  for (size_t i = 0; i < 256 * ps; i += ps) sum = sum + a.data()[i] + b.data()[i];  // map every page in both
  EXPECT_EQ(process_pss_bytes(kKvMemfdName) - before, 256 * ps);
  std::memset(b.data(), 2, 16 * ps);  // 16 private copies
  EXPECT_EQ(process_pss_bytes(kKvMemfdName) - before, 272 * ps);
}

}  // namespace
}  // namespace strata
