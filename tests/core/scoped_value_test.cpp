#include "eigenformer/core/scoped_value.hpp"

#include <gtest/gtest.h>

#include <thread>

namespace eigenformer::detail {
namespace {

struct Hook {
  int id = 0;
};
struct OtherHook {};

TEST(ScopedValue, SetsForItsScopeAndRestoresWhatWasThereWhenNested) {
  int slot = 1;
  {
    ScopedValue<int> outer(slot, 2);
    EXPECT_EQ(slot, 2);
    {
      ScopedValue<int> inner(slot, 3);
      EXPECT_EQ(slot, 3);
    }
    EXPECT_EQ(slot, 2);
  }
  EXPECT_EQ(slot, 1);
}

TEST(ThreadCurrent, IsNullUntilSetAndIsOneSlotPerTypeAndThread) {
  Hook a{1}, b{2};
  ASSERT_EQ(thread_current<Hook>(), nullptr);
  {
    ScopedValue<Hook*> outer(thread_current<Hook>(), &a);
    EXPECT_EQ(thread_current<Hook>(), &a);
    EXPECT_EQ(thread_current<OtherHook>(), nullptr);  // another type, another slot
    {
      ScopedValue<Hook*> inner(thread_current<Hook>(), &b);
      EXPECT_EQ(thread_current<Hook>()->id, 2);
      Hook* seen_elsewhere = &a;
      std::thread([&] { seen_elsewhere = thread_current<Hook>(); }).join();
      EXPECT_EQ(seen_elsewhere, nullptr);  // another thread, another slot
    }
    EXPECT_EQ(thread_current<Hook>(), &a);
  }
  EXPECT_EQ(thread_current<Hook>(), nullptr);
}

}  // namespace
}  // namespace eigenformer::detail
