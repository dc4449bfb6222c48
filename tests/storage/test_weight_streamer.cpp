// storage/: direct reads at any offset, the streaming ring (in order, out of order, several cycles), and
// the errors a truncated or modified file gives while streaming.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <thread>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "storage/direct_file.h"
#include "storage/weight_streamer.h"

namespace strata::storage {
namespace {

// A file of `n` seeded random bytes; returns them.
std::vector<uint8_t> write_random_file(const std::string& path, size_t n, uint32_t seed) {
  std::vector<uint8_t> b(n);
  std::mt19937 rng(seed);
  for (auto& x : b) x = static_cast<uint8_t>(rng());
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(n));
  return b;
}

std::string temp(const std::string& name) { return ::testing::TempDir() + "storage-" + name; }

TEST(DirectFile, ReadsAnyOffsetAndLength) {
  const std::string path = temp("direct.bin");
  const size_t n = 3 * kDirectAlign * 7 + 123;  // not a multiple of the block
  const auto bytes = write_random_file(path, n, 1);
  const DirectFile f = DirectFile::open(path);
  EXPECT_EQ(f.size_at_open(), n);
  // Offsets and lengths below, at and across the 4 KiB block, and up to the very end of the file.
  for (uint64_t off : {uint64_t{0}, uint64_t{1}, uint64_t{4095}, uint64_t{4096}, uint64_t{10001}, uint64_t{n - 77}}) {
    for (size_t len : {size_t{1}, size_t{31}, size_t{4096}, size_t{9000}}) {
      if (off + len > n) len = n - off;
      const AlignedSpan s = aligned_span(off, len);
      EXPECT_EQ(s.offset % kDirectAlign, 0u);
      EXPECT_EQ(s.bytes % kDirectAlign, 0u);
      AlignedBuffer buf(s.bytes);
      const uint8_t* p = f.read(off, len, buf.data(), "test bytes");
      EXPECT_EQ(std::vector<uint8_t>(p, p + len), std::vector<uint8_t>(bytes.begin() + off, bytes.begin() + off + len))
          << "offset " << off << " length " << len;
    }
  }
  AlignedBuffer buf(3 * kDirectAlign);
  try {
    f.read(n - 10, 20, buf.data(), "the tail");
    FAIL() << "a read past the end must throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("truncated"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("the tail"), std::string::npos) << e.what();
  }
  EXPECT_THROW(DirectFile::open(temp("does-not-exist.bin")), Error);
}

std::vector<Extent> some_extents() {
  // Unaligned offsets and sizes; one larger than the others (the slot size).
  return {{"a", 100, 5000}, {"b", 5100, 4096}, {"c", 9196, 70001}, {"d", 81920, 1}, {"e", 81921, 12345}};
}

// Acquires and releases tensors 0..n-1, `passes` times over, until the first error: which tensor threw
// (-1: none did) and its message.
struct FirstError {
  long index = -1;
  std::string what;
};
FirstError acquire_until_first_error(WeightStreamer& s, size_t n, int passes) {
  for (int pass = 0; pass < passes; ++pass)
    for (size_t i = 0; i < n; ++i) {
      try {
        s.acquire(i);
        s.release(i);
      } catch (const Error& e) {
        return {static_cast<long>(i), e.what()};
      }
    }
  return {};
}

TEST(WeightStreamer, InOrderOutOfOrderAndRepeated) {
  const std::string path = temp("ring.bin");
  const auto bytes = write_random_file(path, 100000, 2);
  const DirectFile f = DirectFile::open(path);
  const auto ext = some_extents();
  for (int slots : {1, 2, 3, 7}) {
    WeightStreamer s(f, ext, slots);
    EXPECT_EQ(s.slot_bytes(), aligned_span(9196, 70001).bytes);
    auto check = [&](size_t i) {
      const uint8_t* p = s.acquire(i);
      EXPECT_EQ(std::vector<uint8_t>(p, p + ext[i].bytes),
                std::vector<uint8_t>(bytes.begin() + ext[i].offset, bytes.begin() + ext[i].offset + ext[i].bytes))
          << "tensor " << i << " with " << slots << " slots";
      s.release(i);
    };
    for (int pass = 0; pass < 3; ++pass)
      for (size_t i = 0; i < ext.size(); ++i) check(i);
    EXPECT_EQ(s.stats().resyncs, 0u);
    // A pass that skips tensors (the output matrix when no logits are wanted) and one that jumps back.
    for (size_t i : {size_t{0}, size_t{1}, size_t{3}, size_t{0}, size_t{4}, size_t{2}}) check(i);
    EXPECT_GT(s.stats().resyncs, 0u);
  }
}

// Two forward passes sharing one model from two threads: each gets the right bytes (they take turns).
TEST(WeightStreamer, TwoThreadsTakeTurns) {
  const std::string path = temp("threads.bin");
  const auto bytes = write_random_file(path, 100000, 5);
  const DirectFile f = DirectFile::open(path);
  const auto ext = some_extents();
  WeightStreamer s(f, ext, 2);
  std::atomic<int> bad{0};
  auto pass = [&] {
    for (int p = 0; p < 20; ++p)
      for (size_t i = 0; i < ext.size(); ++i) {
        const uint8_t* d = s.acquire(i);
        if (std::memcmp(d, bytes.data() + ext[i].offset, ext[i].bytes) != 0) ++bad;
        s.release(i);
      }
  };
  std::thread a(pass), b(pass);
  a.join();
  b.join();
  EXPECT_EQ(bad.load(), 0);
}

TEST(WeightStreamer, TruncatedFileIsAClearError) {
  const std::string path = temp("trunc.bin");
  write_random_file(path, 100000, 3);
  const DirectFile f = DirectFile::open(path);
  const auto ext = some_extents();
  WeightStreamer s(f, ext, 2);
  for (size_t i = 0; i < ext.size(); ++i) s.acquire(i), s.release(i);
  ASSERT_EQ(truncate(path.c_str(), 50000), 0);
  // The read-ahead may already hold tensors 0 and 1 (read before the truncation): c is past the new end.
  const FirstError e = acquire_until_first_error(s, ext.size(), 1);
  EXPECT_EQ(e.index, 2);
  EXPECT_NE(e.what.find("'c'"), std::string::npos) << e.what;
  EXPECT_NE(e.what.find("truncated"), std::string::npos) << e.what;
  EXPECT_THROW(s.acquire(2), Error);  // and again: the error persists, nothing crashes
}

TEST(WeightStreamer, ModifiedFileIsAClearError) {
  const std::string path = temp("modified.bin");
  write_random_file(path, 100000, 4);
  const DirectFile f = DirectFile::open(path);
  const auto ext = some_extents();
  WeightStreamer s(f, ext, 2);
  for (size_t i = 0; i < ext.size(); ++i) s.acquire(i), s.release(i);  // first reads: checksums recorded
  const int fd = ::open(path.c_str(), O_WRONLY);
  ASSERT_GE(fd, 0);
  const uint8_t junk[3] = {0xde, 0xad, 0xbf};
  ASSERT_EQ(pwrite(fd, junk, 3, 40000), 3);  // inside 'c'
  ::close(fd);
  const FirstError e = acquire_until_first_error(s, ext.size(), 2);
  EXPECT_EQ(e.index, 2);
  EXPECT_NE(e.what.find("modified"), std::string::npos) << e.what;
}

// Reads split into many chunks (4 KiB here; 2 MiB by default), both readers on the earliest tensor: the
// same bytes, at any slot count, in order and out of order.
TEST(WeightStreamer, ChunkedReadsGiveTheSameBytes) {
  const std::string path = temp("chunks.bin");
  const auto bytes = write_random_file(path, 100000, 6);
  const DirectFile f = DirectFile::open(path);
  const auto ext = some_extents();
  for (int slots : {1, 2, 3}) {
    WeightStreamer s(f, ext, slots, true, 4096);
    for (size_t i : {0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 2, 4, 0}) {
      const uint8_t* p = s.acquire(i);
      EXPECT_EQ(std::memcmp(p, bytes.data() + ext[i].offset, ext[i].bytes), 0) << "tensor " << i << ", " << slots << " slots";
      s.release(i);
    }
    EXPECT_GE(s.stats().reads, 13u);
  }
}

// A large tensor (over kSampleMin) is checked one window per read while the file is unchanged (every byte
// at the first read, then an eighth), and a write is still caught at the next read: the file's times
// changed, so every window of every read is checked from then on.
TEST(WeightStreamer, LargeTensorsAreCheckedByWindowAndWritesStillCaught) {
  const std::string path = temp("large.bin");
  const size_t n = 3 << 20;
  write_random_file(path, n + 8192, 7);
  const DirectFile f = DirectFile::open(path);
  const std::vector<Extent> ext = {{"big", 4096, n}, {"small", n + 4096, 4000}};
  WeightStreamer s(f, ext, 2);
  for (int pass = 0; pass < 9; ++pass)
    for (size_t i = 0; i < ext.size(); ++i) s.acquire(i), s.release(i);
  // The read-ahead may have checked one more 'big' and 'small' read (up to 2 reads past the 18 acquired).
  // 'big': all of it at the first read, then reads 2-9 check windows 1..7, 0 (all of it once more), a
  // 10th read one more window; 'small' (under kSampleMin): all of it at each of its 9-10 reads.
  const uint64_t checked = s.stats().bytes_checked;
  EXPECT_GE(checked, 2 * n + 9 * 4000);
  EXPECT_LE(checked, 2 * n + n / 8 + 64 + 10 * 4000);  // every byte of every read would be 9-10 x n
  const int fd = ::open(path.c_str(), O_WRONLY);
  ASSERT_GE(fd, 0);
  const uint8_t junk[1] = {0x5a};
  ASSERT_EQ(pwrite(fd, junk, 1, 4096 + 123457), 1);  // inside 'big', in window 0
  ::close(fd);
  ASSERT_TRUE(f.changed_since_open());
  const FirstError e = acquire_until_first_error(s, ext.size(), 2);
  EXPECT_EQ(e.index, 0);
  EXPECT_NE(e.what.find("'big'"), std::string::npos) << e.what;
  EXPECT_NE(e.what.find("modified"), std::string::npos) << e.what;
}

TEST(Checksum, SeesChangedAndMovedBytes) {
  std::vector<uint8_t> a(1000);
  for (size_t i = 0; i < a.size(); ++i) a[i] = static_cast<uint8_t>(i * 7);
  const uint64_t h = checksum(a.data(), a.size());
  auto b = a;
  b[500] ^= 1;
  EXPECT_NE(checksum(b.data(), b.size()), h);
  b = a;
  std::swap_ranges(b.begin(), b.begin() + 32, b.begin() + 64);  // two 32-byte blocks swapped
  EXPECT_NE(checksum(b.data(), b.size()), h);
  b = a;
  std::swap_ranges(b.begin(), b.begin() + 32, b.begin() + 32);  // adjacent halves of one 64-byte step
  EXPECT_NE(checksum(b.data(), b.size()), h);
  b = a;
  std::swap_ranges(b.begin() + 8, b.begin() + 16, b.begin() + 16);  // two words of one lane group
  EXPECT_NE(checksum(b.data(), b.size()), h);
  EXPECT_NE(checksum(a.data(), a.size() - 1), h);
  EXPECT_EQ(checksum(a.data(), a.size()), h);
}

}  // namespace
}  // namespace strata::storage
