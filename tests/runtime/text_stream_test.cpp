// TextStream: text released as tokens come, held back inside a UTF-8 character or a possible stop string, stop
// strings found across token boundaries.
#include "eigenformer/runtime/text_stream.hpp"

#include <string>
#include <vector>

#include "support/test_support.hpp"

using namespace eigenformer;

namespace text_stream_test {

TEST(TextStream, StopStringsAreFoundAcrossTokensAndTheTextEndsBeforeThem) {
  TextStream s({"o w", "zzz"});
  EXPECT_EQ(s.push("Hel"), "Hel");
  EXPECT_EQ(s.push("lo"), "l");  // "o" may begin "o w": held back
  EXPECT_EQ(s.push(" wor"), "");
  EXPECT_TRUE(s.stopped());
  EXPECT_EQ(s.text(), "Hell");
  EXPECT_EQ(s.push("more"), "");
  EXPECT_EQ(s.flush(), "");
  EXPECT_EQ(s.text(), "Hell");
}

TEST(TextStream, AHeldBackPrefixIsReleasedOnceTheNextBytesRuleTheStopOut) {
  TextStream s({"\n\n"});
  EXPECT_EQ(s.push("a\n"), "a");
  EXPECT_EQ(s.push("b"), "\nb");
  EXPECT_EQ(s.push("c\n"), "c");
  EXPECT_EQ(s.flush(), "\n");
  EXPECT_FALSE(s.stopped());
  EXPECT_EQ(s.text(), "a\nbc\n");
}

TEST(TextStream, IncompleteUtf8CharactersWaitForTheirLastByte) {
  TextStream s;
  EXPECT_EQ(s.push("caf\xC3"), "caf");
  EXPECT_EQ(s.push("\xA9 \xF0\x9F"), "\xC3\xA9 ");
  EXPECT_EQ(s.push("\x98"), "");
  EXPECT_EQ(s.push("\x80!"), "\xF0\x9F\x98\x80!");
  EXPECT_EQ(s.push("\xE2\x82"), "");
  EXPECT_EQ(s.flush(), "\xE2\x82");   // what never completed is released as its bytes
  EXPECT_EQ(s.push("\xFF"), "\xFF");  // not UTF-8 at all: released as is
}

TEST(TextStream, EmptyStopStringsAreRefused) {
  EXPECT_THROW_WITH(TextStream({"a", ""}), ValueError, {"TextStream", "stop string 1 is empty"});
}

}  // namespace text_stream_test
