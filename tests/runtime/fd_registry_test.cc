// FdRegistry: tokens map to live handles; a released token never finds anything again, even
// after its slot is reused; releasing a stale token changes nothing.
#include "runtime/fd_registry.h"

#include <gtest/gtest.h>

#include <set>
#include <vector>

namespace shardloop {
namespace {

struct NullHandle final : IoHandle {
  void on_io(const PollEvent&) override {}
};

TEST(FdRegistryTest, AddThenFind) {
  FdRegistry reg;
  NullHandle a, b;
  Token ta = reg.add(&a);
  Token tb = reg.add(&b);
  EXPECT_NE(ta.slot, tb.slot);
  EXPECT_EQ(ta.op, 0);
  EXPECT_EQ(reg.find(ta.encode()), &a);
  EXPECT_EQ(reg.find(tb.encode()), &b);
  EXPECT_EQ(reg.live(), 2u);
}

TEST(FdRegistryTest, FindIgnoresTheOpByte) {
  // Backends may tag several operations of one fd with op (io_uring); they reach the same handle.
  FdRegistry reg;
  NullHandle a;
  Token t = reg.add(&a);
  Token tagged = t;
  tagged.op = 3;
  EXPECT_EQ(reg.find(tagged.encode()), &a);
}

TEST(FdRegistryTest, UnknownTokensFindNothing) {
  FdRegistry reg;
  EXPECT_EQ(reg.find(Token{0, 0, 0}.encode()), nullptr);
  EXPECT_EQ(reg.find(kWakeupToken), nullptr);
  NullHandle a;
  Token t = reg.add(&a);
  EXPECT_EQ(reg.find(Token{t.slot + 1, 0, 0}.encode()), nullptr);
  EXPECT_EQ(reg.find(Token{t.slot, t.generation + 1, 0}.encode()), nullptr) << "future generation";
  EXPECT_EQ(reg.find(kWakeupToken), nullptr);
}

TEST(FdRegistryTest, ReleasedTokenFindsNothing) {
  FdRegistry reg;
  NullHandle a;
  Token t = reg.add(&a);
  reg.release(t);
  EXPECT_EQ(reg.find(t.encode()), nullptr);
  EXPECT_EQ(reg.live(), 0u);
}

TEST(FdRegistryTest, ReusedSlotGetsNewGenerationAndOldTokenStaysStale) {
  FdRegistry reg;
  NullHandle a, b;
  Token old_token = reg.add(&a);
  reg.release(old_token);
  Token new_token = reg.add(&b);

  EXPECT_EQ(new_token.slot, old_token.slot) << "freed slots are reused";
  EXPECT_NE(new_token.generation, old_token.generation);
  EXPECT_NE(new_token.encode(), old_token.encode());
  EXPECT_EQ(reg.find(old_token.encode()), nullptr) << "stale event reached the slot's new owner";
  EXPECT_EQ(reg.find(new_token.encode()), &b);
}

TEST(FdRegistryTest, ReleasingAStaleTokenIsANoOp) {
  FdRegistry reg;
  NullHandle a, b;
  Token old_token = reg.add(&a);
  reg.release(old_token);
  Token new_token = reg.add(&b);
  ASSERT_EQ(new_token.slot, old_token.slot);

  reg.release(old_token);  // stale: must not evict b
  EXPECT_EQ(reg.find(new_token.encode()), &b);
  EXPECT_EQ(reg.live(), 1u);

  reg.release(Token{1000, 0, 0});  // never issued
  EXPECT_EQ(reg.live(), 1u);
}

TEST(FdRegistryTest, DoubleReleaseDoesNotFreeTheSlotTwice) {
  // If the second release pushed the slot onto the free list again, two later adds would share
  // it and one handle would receive the other's events.
  FdRegistry reg;
  NullHandle a, b, c;
  Token t = reg.add(&a);
  reg.release(t);
  reg.release(t);
  EXPECT_EQ(reg.live(), 0u);

  Token tb = reg.add(&b);
  Token tc = reg.add(&c);
  EXPECT_NE(tb.slot, tc.slot);
  EXPECT_EQ(reg.find(tb.encode()), &b);
  EXPECT_EQ(reg.find(tc.encode()), &c);
  EXPECT_EQ(reg.live(), 2u);
}

TEST(FdRegistryTest, RepeatedReuseOfOneSlotInvalidatesEveryOldToken) {
  FdRegistry reg;
  NullHandle h[8];
  std::vector<Token> old_tokens;
  for (auto& handle : h) {
    Token t = reg.add(&handle);
    if (!old_tokens.empty()) {
      EXPECT_EQ(t.slot, old_tokens.front().slot);
    }
    for (const Token& old : old_tokens) {
      EXPECT_EQ(reg.find(old.encode()), nullptr) << "generation " << old.generation;
    }
    EXPECT_EQ(reg.find(t.encode()), &handle);
    reg.release(t);
    old_tokens.push_back(t);
  }
  std::set<uint32_t> generations;
  for (const Token& t : old_tokens) generations.insert(t.generation);
  EXPECT_EQ(generations.size(), old_tokens.size());
}

TEST(FdRegistryTest, SlotsStayDenseUnderChurn) {
  FdRegistry reg;
  NullHandle h[64];
  std::vector<Token> tokens;
  for (auto& handle : h) tokens.push_back(reg.add(&handle));
  // Release every other one, then add as many again: they must land in the freed slots.
  std::set<uint32_t> freed;
  for (size_t i = 0; i < tokens.size(); i += 2) {
    reg.release(tokens[i]);
    freed.insert(tokens[i].slot);
  }
  EXPECT_EQ(reg.live(), 32u);
  NullHandle more[32];
  for (auto& handle : more) {
    Token t = reg.add(&handle);
    EXPECT_EQ(freed.erase(t.slot), 1u) << "slot " << t.slot << " was not a freed one";
    EXPECT_EQ(reg.find(t.encode()), &handle);
  }
  EXPECT_TRUE(freed.empty());
  EXPECT_EQ(reg.live(), 64u);
  for (size_t i = 1; i < tokens.size(); i += 2) EXPECT_EQ(reg.find(tokens[i].encode()), &h[i]);
  for (size_t i = 0; i < tokens.size(); i += 2) EXPECT_EQ(reg.find(tokens[i].encode()), nullptr);
}

}  // namespace
}  // namespace shardloop
