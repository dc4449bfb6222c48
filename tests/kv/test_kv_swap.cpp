// KvCache swap images (kv_swap.cpp): save -> release -> restore gives back a bit-identical cache in every
// format (with and without an f16 window; GEAR with a partial chunk in its tail), the pages really go back
// to the OS, the restored cache continues exactly like one that was never swapped, and bad images throw.
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdio>
#include <vector>

#include "core/error.h"
#include "kv_seq_helpers.h"

namespace strata::kv {
namespace {

using namespace seqtest;

std::vector<std::byte> image_of(const KvCache& kv) {
  std::vector<std::byte> img(kv.saved_size());
  kv.save(img);
  return img;
}

TEST(KvSwap, RoundTripEveryFormatIsBitIdentical) {
  const Rows r = make(260, 31);
  for (const auto& info : all_formats())
    for (int32_t window : {0, 24}) {
      SCOPED_TRACE(std::string(info.name) + " window " + std::to_string(window));
      // Two caches fed the same rows: `kv` goes through the swap, `twin` never does.
      KvCache kv(config(info.format, window, 400)), twin(config(info.format, window, 400));
      for (KvCache* c : {&kv, &twin}) {
        feed(*c, r, 0, 150, 150);  // a prompt
        feed(*c, r, 150, 187, 1);  // decoding: 187 = 2 GEAR chunks + 59 (a partial chunk)
      }
      const std::vector<float> rows = content(kv), att = attention_out(kv, 5);
      const int64_t n_enc = kv.n_encoded();
      const std::vector<std::byte> img = image_of(kv);
      // The image holds what the cache holds, not its reservation.
      EXPECT_LT(img.size(), 187 * 2 * kLayers * kHeadsKv * kDim * 4 + 4096);

      kv.release();
      EXPECT_EQ(kv.committed_bytes(), 0u);
      EXPECT_EQ(kv.n_used(), 0);
      kv.restore(img);
      EXPECT_EQ(kv.n_used(), 187);
      EXPECT_EQ(kv.n_encoded(), n_enc);
      EXPECT_EQ(first_bit_difference(content(kv), rows), -1);
      EXPECT_EQ(first_bit_difference(attention_out(kv, 5), att), -1);

      // Both continue: rows leave the window / fill the GEAR chunk after the restore.
      feed(kv, r, 187, 260, 9);
      feed(twin, r, 187, 260, 9);
      EXPECT_EQ(kv.n_encoded(), twin.n_encoded());
      EXPECT_EQ(first_bit_difference(content(kv), content(twin)), -1);
      EXPECT_EQ(first_bit_difference(attention_out(kv, 6), attention_out(twin, 6)), -1);
    }
}

// An image restores into another cache of the same config, including one with a larger --ctx, and an
// empty cache round-trips.
TEST(KvSwap, RestoresIntoAnotherCache) {
  const Rows r = make(100, 32);
  KvCache a(config(KvFormat::Q4_0, 16, 128));
  feed(a, r, 0, 100, 33);
  KvCache b(config(KvFormat::Q4_0, 16, 4096));
  b.restore(image_of(a));
  EXPECT_EQ(first_bit_difference(content(b), content(a)), -1);
  KvCache empty(config(KvFormat::Q4_0, 16, 64));
  const std::vector<std::byte> img = image_of(empty);
  a.restore(img);
  EXPECT_EQ(a.n_used(), 0);
  feed(a, r, 0, 10, 10);
  EXPECT_EQ(a.n_used(), 10);
}

// release() returns the pages: none of the reservation is resident afterwards (mincore on the f16
// cache's memory, which its K view of layer 0 starts at).
TEST(KvSwap, ReleaseReturnsThePagesToTheOs) {
  const Rows r = make(1000, 33);
  KvCache kv(config(KvFormat::F16, 0, 1000));
  feed(kv, r, 0, 1000, 500);
  const auto resident_pages = [&] {
    const size_t ps = static_cast<size_t>(::sysconf(_SC_PAGESIZE)), n = kv.reserved_bytes() / ps;
    std::vector<unsigned char> vec(n);
    EXPECT_EQ(::mincore(const_cast<void*>(kv.k_view(0).data), kv.reserved_bytes(), vec.data()), 0);
    size_t count = 0;
    for (unsigned char v : vec) count += v & 1;
    return count * ps;
  };
  const size_t before = resident_pages();
  EXPECT_GE(before, 2u * kLayers * kHeadsKv * 1000 * kDim * 2 * 9 / 10);
  kv.release();
  EXPECT_EQ(resident_pages(), 0u);
  EXPECT_EQ(kv.committed_bytes(), 0u);
  feed(kv, r, 0, 10, 10);  // usable again
  EXPECT_EQ(kv.n_used(), 10);
}

TEST(KvSwap, BadImagesThrow) {
  const Rows r = make(80, 34);
  KvCache a(config(KvFormat::GEAR4, 8, 256));
  feed(a, r, 0, 80, 80);
  const std::vector<std::byte> img = image_of(a);
  KvCache b(config(KvFormat::GEAR4, 8, 256));
  // Truncated anywhere: in the header, in the units, in the tail.
  for (size_t cut : {size_t{0}, size_t{50}, size_t{200}, img.size() / 2, img.size() - 1})
    EXPECT_THROW(b.restore(std::span(img).first(cut)), Error) << cut;
  // Another config: format, window, heads, calibration; too small a context.
  for (KvCacheConfig c : {config(KvFormat::GEAR2, 8, 256), config(KvFormat::GEAR4, 0, 256),
                          config(KvFormat::GEAR4, 8, 64)}) {
    KvCache other(c);
    EXPECT_THROW(other.restore(img), Error);
  }
  KvCacheConfig heads = config(KvFormat::GEAR4, 8, 256);
  heads.n_head_kv = 1;
  KvCache one_head(heads);
  EXPECT_THROW(one_head.restore(img), Error);
  KvCache r1(config(KvFormat::BFP4R, 0, 256));
  feed(r1, r, 0, 40, 40);
  KvCacheConfig other_perm = config(KvFormat::BFP4R, 0, 256);
  other_perm.calibration = KvCalibration::identity(kLayers, kHeadsKv, kDim);
  KvCache r2(other_perm);
  EXPECT_THROW(r2.restore(image_of(r1)), Error);
  // Corrupt bytes: the magic, a counter (the header checksum catches it).
  std::vector<std::byte> bad = img;
  bad[0] = std::byte{'X'};
  EXPECT_THROW(b.restore(bad), Error);
  bad = img;
  bad[90] ^= std::byte{1};
  EXPECT_THROW(b.restore(bad), Error);
  // A buffer too small for save().
  std::vector<std::byte> small(img.size() - 1);
  EXPECT_THROW(a.save(small), Error);
  // b still works after the failed restores, and the good image restores.
  b.restore(img);
  EXPECT_EQ(first_bit_difference(content(b), content(a)), -1);
}

}  // namespace
}  // namespace strata::kv
