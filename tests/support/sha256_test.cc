#include "tests/support/sha256.h"

#include <gtest/gtest.h>

namespace shardloop::testing {
namespace {

std::string sha(const std::string& s) {
  Sha256 h;
  h.update(absl::MakeConstSpan(s.data(), s.size()));
  return h.hex();
}

TEST(Sha256, KnownVectors) {
  EXPECT_EQ(sha(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(sha(std::string(1000000, 'a')),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Sha256, IncrementalEqualsOneShot) {
  std::string s(10000, '\0');
  for (size_t i = 0; i < s.size(); ++i) s[i] = static_cast<char>(i * 131 + 7);
  Sha256 h;
  for (size_t i = 0; i < s.size(); i += 97)
    h.update(absl::MakeConstSpan(s.data() + i, std::min<size_t>(97, s.size() - i)));
  EXPECT_EQ(h.hex(), sha(s));
}

}  // namespace
}  // namespace shardloop::testing
