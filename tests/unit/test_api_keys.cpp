// The gateway's API keys: digests of keys in clear and digests given as such
// both match, nothing else does, labels never carry the key.
#include <gtest/gtest.h>

#include "services/gateway/api_keys.h"

using moemesh::ApiKeys;

TEST(ApiKeys, KeysInClearAndDigestsMatchAndNothingElse) {
  // sha256("kept-elsewhere"), as sha256sum prints it.
  const std::string digest = ApiKeys::digest_hex("kept-elsewhere");
  ASSERT_EQ(digest.size(), 64u);
  EXPECT_EQ(ApiKeys::digest_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad") << "the FIPS 180-2 vector";
  const ApiKeys keys({"sk-one"}, {"sha256:" + digest});
  EXPECT_FALSE(keys.empty());
  const auto one = keys.match("sk-one"), other = keys.match("kept-elsewhere");
  ASSERT_TRUE(one && other);
  EXPECT_NE(*one, *other);
  EXPECT_EQ(one->find("sk-one"), std::string::npos) << "the label is not the key";
  EXPECT_EQ(*one, "key-" + ApiKeys::digest_hex("sk-one").substr(0, 8));
  for (const char* wrong : {"", "sk-on", "sk-one ", "SK-ONE", "sha256:" , "kept-elsewhere\n"}) EXPECT_FALSE(keys.match(wrong)) << wrong;
  // Upper-case hex and no prefix are digests too.
  std::string upper = digest;
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  EXPECT_TRUE(ApiKeys({}, {upper}).match("kept-elsewhere"));
  EXPECT_TRUE(ApiKeys({}, {}).empty());
}

TEST(ApiKeys, MalformedDigestsAndEmptyKeysAreRefused) {
  for (const std::string bad : {std::string("sha256:abc"), std::string(64, 'g'), "md5:" + std::string(64, 'a'), std::string(65, 'a')})
    EXPECT_THROW(ApiKeys({}, {bad}), std::invalid_argument) << bad;
  EXPECT_THROW(ApiKeys({""}, {}), std::invalid_argument);
}
