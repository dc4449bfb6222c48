// A shared prefix stored once (kv_share.cpp): forks of a 2000-token cache map its pages copy-on-write, so
// 8 forks grow the process's Pss (/proc/self/smaps_rollup: a page mapped by n caches counts 1/n in each)
// by far less than one copy of the prefix, while a real copy (a swap image restored) grows it by a whole
// prefix. Writes after the fork — by the source, by a fork into the shared part (after a truncate), by
// every fork after the prefix — stay in the cache that made them, and releasing or destroying caches
// keeps the others intact.
#include <gtest/gtest.h>

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "core/reserved_memory.h"
#include "kv_seq_helpers.h"

namespace strata::kv {
namespace {

using namespace seqtest;

constexpr int64_t kPrefix = 2000, kForks = 8;

double mib(double b) { return b / (1 << 20); }

// Pss of the KV caches' memory-file mappings (private copies in them included): the heap's noise (freed
// vectors glibc keeps) stays out of the measurement.
size_t kv_pss() { return process_pss_bytes(kKvMemfdName); }

struct Case {
  KvFormat format;
  int32_t window;
};

TEST(KvShare, ForksShareThePrefixAndWritesStayPrivate) {
  if (process_pss_bytes() == 0) GTEST_SKIP() << "/proc/self/smaps_rollup has no Pss on this kernel";
  const Rows r = make(kPrefix + 300, 51);
  std::vector<Rows> cont;  // each fork's own continuation
  for (int i = 0; i < kForks + 2; ++i) cont.push_back(make(kPrefix + 300, 60 + i));
  for (Case c : {Case{KvFormat::F16, 0}, Case{KvFormat::Q4_0, 32}, Case{KvFormat::GEAR4, 16}}) {
    SCOPED_TRACE(format_name(c.format));
    const KvCacheConfig cfg = config(c.format, c.window, 4096);
    auto src = std::make_unique<KvCache>(cfg);
    feed(*src, r, 0, kPrefix, 500);
    (void)content(*src);
    // The encoded prefix's bytes (the f16 tail lives on the heap, outside the memory files).
    const double prefix_bytes = src->bytes_per_token() * static_cast<double>(src->n_encoded());

    // A copy costs a whole prefix: the yardstick of the measurement.
    const size_t pss0 = kv_pss();
    using Clock = std::chrono::steady_clock;
    const auto t0 = Clock::now();
    std::vector<std::byte> img(src->saved_size());
    src->save(img);
    auto copy = std::make_unique<KvCache>(cfg);
    copy->restore(img);
    const double copy_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    (void)content(*copy);
    const size_t pss_copy = kv_pss();
    copy.reset();
    std::vector<std::byte>().swap(img);

    // Pss counts mapped pages only, and a fresh mapping is filled in lazily: read every cache whole before
    // each measurement, so every page the caches hold is mapped.
    (void)content(*src);
    const size_t pss1 = kv_pss();
    std::vector<std::unique_ptr<KvCache>> forks;
    const auto t1 = Clock::now();
    for (int i = 0; i < kForks; ++i) forks.push_back(std::make_unique<KvCache>(src->fork(kPrefix)));
    const double fork_ms = std::chrono::duration<double, std::milli>(Clock::now() - t1).count() / kForks;
    (void)content(*src);
    for (auto& f : forks) (void)content(*f);
    const size_t pss2 = kv_pss();
    std::printf("  %-5s prefix %.2f MiB: one copy +%.2f MiB Pss, %lld forks +%.3f MiB Pss; "
                "fork 0 shares %.2f of %.2f MiB committed; save+restore %.2f ms, fork %.3f ms\n",
                format_name(c.format), mib(prefix_bytes), mib(static_cast<double>(pss_copy) - pss0),
                static_cast<long long>(kForks), mib(static_cast<double>(pss2) - pss1),
                mib(static_cast<double>(forks[0]->shared_bytes())), mib(static_cast<double>(forks[0]->committed_bytes())), copy_ms, fork_ms);
    EXPECT_GT(static_cast<double>(pss_copy) - pss0, 0.9 * prefix_bytes);
    EXPECT_LT(static_cast<double>(pss2) - pss1, 0.1 * kForks * prefix_bytes);
    EXPECT_GT(static_cast<double>(forks[0]->shared_bytes()), 0.8 * prefix_bytes);

    // References: caches fed the same rows, never forked.
    const auto reference = [&](int64_t n, const Rows* more, int64_t from, int64_t to) {
      auto k = std::make_unique<KvCache>(cfg);
      feed(*k, r, 0, kPrefix, 500);
      k->truncate(n);
      if (more) feed(*k, *more, from, to, 25, n);
      return k;
    };
    // Every fork continues after the prefix; fork 3 also rewrites shared positions (500..700) after a
    // truncate; the source rewrites positions 1000..1100.
    for (int i = 0; i < kForks; ++i) feed(*forks[i], cont[i], kPrefix, kPrefix + 100, 25);
    forks[3]->truncate(500);
    feed(*forks[3], cont[3], 500, 700, 25);
    src->truncate(1000);
    feed(*src, cont[kForks], 1000, 1100, 25);
    for (int i = 0; i < kForks; ++i) {
      const auto want = i == 3 ? reference(500, &cont[3], 500, 700) : reference(kPrefix, &cont[i], kPrefix, kPrefix + 100);
      ASSERT_EQ(first_bit_difference(content(*forks[i]), content(*want)), -1) << "fork " << i;
    }
    EXPECT_EQ(first_bit_difference(content(*src), content(*reference(1000, &cont[kForks], 1000, 1100))), -1);

    // A fork of a fork shares the same pages; the source's release and one fork's destruction leave the
    // rest intact.
    KvCache g = forks[5]->fork(1500);
    EXPECT_GT(g.shared_bytes(), 0u);
    // A fork of a cache that rewrote part of its shared prefix shares only what it did not rewrite.
    KvCache h = forks[3]->fork(650);
    EXPECT_GT(h.shared_bytes(), 0u);
    EXPECT_LT(h.shared_bytes(), forks[3]->shared_bytes());
    {
      auto want = reference(500, &cont[3], 500, 700);
      want->truncate(650);
      EXPECT_EQ(first_bit_difference(content(h), content(*want)), -1);
    }
    src->release();
    EXPECT_EQ(src->committed_bytes(), 0u);
    forks[0].reset();
    for (int i = 1; i < kForks; ++i) {
      const auto want = i == 3 ? reference(500, &cont[3], 500, 700) : reference(kPrefix, &cont[i], kPrefix, kPrefix + 100);
      ASSERT_EQ(first_bit_difference(content(*forks[i]), content(*want)), -1) << "fork " << i << " after release";
    }
    EXPECT_EQ(first_bit_difference(content(g), content(*reference(1500, nullptr, 0, 0))), -1);
    {
      auto want = reference(500, &cont[3], 500, 700);
      want->truncate(650);
      EXPECT_EQ(first_bit_difference(content(h), content(*want)), -1) << "after the source's release";
    }
    // The released source is usable again (on a new memory file: its old pages are still shared).
    feed(*src, cont[kForks + 1], 0, 300, 100);
    EXPECT_EQ(first_bit_difference(content(*forks[1]), content(*reference(kPrefix, &cont[1], kPrefix, kPrefix + 100))), -1);
  }
}

// Open KV memory files (/proc/self/fd): each lives while a cache or a FrozenPages still holds it.
int open_kv_files() {
  int n = 0;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/proc/self/fd", ec)) {
    const auto target = std::filesystem::read_symlink(e.path(), ec);
    if (!ec && target.string().find(kKvMemfdName) != std::string::npos) ++n;
  }
  return n;
}

// Dropping every cache frees the shared pages too: Pss comes back to where it started and no memory file
// stays open (an unmapped file's pages would not show in Pss).
TEST(KvShare, NothingStaysAfterTheLastCache) {
  if (process_pss_bytes() == 0) GTEST_SKIP() << "/proc/self/smaps_rollup has no Pss on this kernel";
  const Rows r = make(kPrefix + 50, 52);  // the prefix, and the 50 rows each fork appends
  const size_t pss0 = kv_pss();
  const int files0 = open_kv_files();
  {
    auto src = std::make_unique<KvCache>(config(KvFormat::F16, 0, 4096));
    feed(*src, r, 0, kPrefix, 1000);
    std::vector<KvCache> forks;
    for (int i = 0; i < 4; ++i) forks.push_back(src->fork(kPrefix - 100 * i));
    EXPECT_EQ(open_kv_files(), files0 + 5);
    src.reset();  // the forks hold the frozen pages now
    EXPECT_EQ(open_kv_files(), files0 + 5);  // the source's file lives on for its frozen pages
    for (auto& f : forks) feed(f, r, f.n_used(), f.n_used() + 50, 50);
    for (auto& f : forks) (void)content(f);
  }
  const double grown = static_cast<double>(kv_pss()) - static_cast<double>(pss0);
  std::printf("  Pss after the last cache: %+.3f MiB\n", mib(grown));
  EXPECT_LT(grown, 0.25 * (1 << 20));
  EXPECT_EQ(open_kv_files(), files0);
}

}  // namespace
}  // namespace strata::kv

namespace strata::kv {
namespace {

// Committing a region piece by piece (64 positions at a time) extends one mapping per region rather than
// adding one per commit: a long context would otherwise run into the kernel's limit on mappings
// (vm.max_map_count, 65530 by default).
TEST(KvShare, CommitsDoNotMultiplyMappings) {
  const auto mappings = [] {
    std::FILE* f = std::fopen("/proc/self/maps", "r");
    if (!f) return -1;
    int n = 0;
    for (int c; (c = std::fgetc(f)) != EOF;) n += c == '\n';
    std::fclose(f);
    return n;
  };
  if (mappings() < 0) GTEST_SKIP() << "no /proc/self/maps";
  KvCache kv(config(KvFormat::F16, 0, 16384));
  const int before = mappings();
  for (int64_t n = 64; n <= 8192; n += 64) kv.reserve(n);
  const int regions = 2 * kLayers * kHeadsKv;
  EXPECT_LE(mappings() - before, 2 * regions + 2) << "128 commits per region";
}

}  // namespace
}  // namespace strata::kv
