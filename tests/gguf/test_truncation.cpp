// Truncation and corruption of a valid Writer-made file: every cut point throws strata::Error naming the
// field it falls in, and no byte flip crashes the reader.
#include <random>

#include "gguf/gguf.h"
#include "gguf_test_helpers.h"

namespace strata::gguf::test {
namespace {

// End of the last tensor's bytes: the writer pads after it, and a cut inside that padding is harmless.
size_t data_end(const std::vector<uint8_t>& b) {
  const File f = parse(b);
  size_t end = 0;
  for (const TensorInfo& t : f.tensors()) end = std::max<size_t>(end, f.data_offset() + t.offset + t.nbytes);
  return end;
}

TEST(GgufTruncation, FieldMapCoversTheSample) {
  const std::vector<uint8_t> b = Sample().bytes();
  const std::vector<Field> fields = map_fields(b);
  ASSERT_FALSE(fields.empty());
  EXPECT_EQ(fields.front().begin, 0u);
  EXPECT_EQ(fields.back().end, b.size());
  for (size_t k = 1; k < fields.size(); ++k) EXPECT_LE(fields[k - 1].end, fields[k].begin);
}

// Every prefix of the sample shorter than its data is an error (never a crash, never a silent success).
TEST(GgufTruncation, EveryByteOffsetThrows) {
  const std::vector<uint8_t> b = Sample().bytes();
  const size_t end = data_end(b);
  ASSERT_LT(end, b.size() + 1);
  for (size_t cut = 0; cut < b.size(); ++cut) {
    const std::vector<uint8_t> prefix(b.begin(), b.begin() + static_cast<std::ptrdiff_t>(cut));
    if (cut < end) {
      EXPECT_THROW(parse(prefix), Error) << "cut at " << cut;
    } else {
      EXPECT_NO_THROW(parse(prefix)) << "cut at " << cut << " is in the padding after the last tensor";
    }
  }
}

// Where the first field with this label begins (a key's pair, a tensor's info).
size_t label_start(const std::vector<Field>& fields, const std::string& label) {
  for (const Field& f : fields)
    if (f.label == label) return f.begin;
  return 0;
}

// The "(byte N)" of the message lies in [lo, hi]: the error is reported at the field it is detected in,
// which may be an enclosing length or count (a string length longer than the bytes left) or the field itself.
void expect_byte_within(const std::string& msg, size_t lo, size_t hi) {
  const size_t at = msg.find("(byte ");
  ASSERT_NE(at, std::string::npos) << msg;
  const size_t n = std::stoull(msg.substr(at + 6));
  EXPECT_GE(n, lo) << msg;
  EXPECT_LE(n, hi) << msg;
}

// A cut at the start, middle and last byte of every field names that field (or the pair/tensor holding it)
// and says the file is truncated.
TEST(GgufTruncation, CutsNameTheirField) {
  const std::vector<uint8_t> b = Sample().bytes();
  const size_t end = data_end(b);
  size_t checked = 0;
  const std::vector<Field> fields = map_fields(b);
  for (const Field& fd : fields) {
    for (size_t cut : {fd.begin, (fd.begin + fd.end) / 2, fd.end - 1}) {
      if (cut >= end || cut < fd.begin || cut >= fd.end) continue;
      SCOPED_TRACE(fmt::format("cut at {} inside {} of {} [{}, {})", cut, fd.what, fd.label, fd.begin, fd.end));
      const std::vector<uint8_t> prefix(b.begin(), b.begin() + static_cast<std::ptrdiff_t>(cut));
      try {
        (void)parse(prefix);
        ADD_FAILURE() << "parsed";
      } catch (const Error& e) {
        const std::string msg = e.what();
        // The header counts are checked against the bytes left, so a short file fails there first.
        const bool counts = msg.find("is impossible") != std::string::npos;
        if (cut == 0 || fd.what == "magic") {
          EXPECT_NE(msg.find("too small"), std::string::npos) << msg;
        } else if (counts) {
          EXPECT_NE(msg.find("header (byte "), std::string::npos) << msg;
        } else if (fd.label == "padding") {
          EXPECT_NE(msg.find("tensor 'a' (header byte"), std::string::npos) << msg;
          EXPECT_NE(msg.find("ends past the end of the file"), std::string::npos) << msg;
        } else {
          EXPECT_NE(msg.find(fd.label), std::string::npos) << msg;
          EXPECT_NE(msg.find("the file is truncated"), std::string::npos) << msg;
          if (fd.what == "tensor data" || fd.what == "padding after the data")
            EXPECT_NE(msg.find("ends past the end of the file"), std::string::npos) << msg;
          else
            expect_byte_within(msg, label_start(fields, fd.label), cut);
        }
        ++checked;
      }
    }
  }
  EXPECT_GT(checked, 100u);
}

// Single-byte corruption anywhere in the header, and random multi-byte corruption: Error or success, and
// when it parses every tensor lies inside the file.
TEST(GgufTruncation, CorruptedBytesNeverCrash) {
  const std::vector<uint8_t> b = Sample().bytes();
  const size_t header_end = parse(b).data_offset();
  auto check = [&](const std::vector<uint8_t>& x) {
    try {
      const File f = parse(x);
      for (const TensorInfo& t : f.tensors()) {
        EXPECT_GE(t.data, x.data());
        EXPECT_LE(t.data + t.nbytes, x.data() + x.size());
      }
    } catch (const Error&) {
    }
  };
  for (size_t pos = 0; pos < header_end; ++pos) {
    for (uint8_t v : {uint8_t{0x00}, uint8_t{0xff}, uint8_t{0x80}, static_cast<uint8_t>(b[pos] + 1)}) {
      std::vector<uint8_t> x = b;
      x[pos] = v;
      check(x);
    }
  }
  std::mt19937 rng(7);
  for (int iter = 0; iter < 3000; ++iter) {
    std::vector<uint8_t> x = b;
    const int flips = 1 + static_cast<int>(rng() % 8);
    for (int k = 0; k < flips; ++k) x[rng() % header_end] = static_cast<uint8_t>(rng());
    check(x);
  }
}

}  // namespace
}  // namespace strata::gguf::test
