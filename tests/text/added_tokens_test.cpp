#include "eigenformer/text/added_tokens.hpp"

#include <string>
#include <vector>

#include "support/test_support.hpp"

using namespace eigenformer;
using namespace eigenformer::text;

namespace added_tokens_test {

using Parts = std::vector<std::string>;

namespace {

AddedToken token(const std::string& content, std::int64_t id) {
  AddedToken t;
  t.content = content;
  t.id = id;
  return t;
}

// Text parts as they are, matches as "#id".
Parts split(const AddedTokenMatcher& m, std::string_view text) {
  Parts out;
  m.split(
      text, [&](std::string_view s) { out.emplace_back(s); },
      [&](const AddedToken& t) { out.push_back("#" + std::to_string(t.id)); });
  return out;
}

}  // namespace

TEST(AddedTokenMatcher, LeftmostLongestNonOverlapping) {
  const AddedTokenMatcher m({token("[SEP]", 1), token("[SEP][SEP]", 2), token("<s>", 3)});
  EXPECT_EQ(split(m, "a[SEP]b"), (Parts{"a", "#1", "b"}));
  EXPECT_EQ(split(m, "[SEP][SEP][SEP]"), (Parts{"#2", "#1"}));
  EXPECT_EQ(split(m, "<s><s>x<s"), (Parts{"#3", "#3", "x<s"}));
  EXPECT_EQ(split(m, ""), Parts{});
  EXPECT_EQ(split(AddedTokenMatcher(), "plain"), (Parts{"plain"}));
}

TEST(AddedTokenMatcher, StripAndSingleWord) {
  AddedToken mask = token("<mask>", 4);
  mask.lstrip = true;
  mask.rstrip = true;
  EXPECT_EQ(split(AddedTokenMatcher({mask}), "a  <mask>\t b"), (Parts{"a", "#4", "b"}));
  AddedToken word = token("ab", 5);
  word.single_word = true;
  EXPECT_EQ(split(AddedTokenMatcher({word}), "ab xab ab_ ab."), (Parts{"#5", " xab ab_ ", "#5", "."}));
}

TEST(AddedTokenMatcher, RejectsEmptyTokensAndNegativeIds) {
  EXPECT_THROW_WITH(AddedTokenMatcher({token("", 1)}), ValueError, {"AddedTokenMatcher", "token 0", "empty"});
  EXPECT_THROW_WITH(AddedTokenMatcher({token("x", -2)}), ValueError, {"\"x\"", "id -2"});
}

}  // namespace added_tokens_test
