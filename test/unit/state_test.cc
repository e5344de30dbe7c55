#include "agent/state.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "common/file_util.h"

namespace tendril {
namespace {

class StateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/tendril-state-test-XXXXXX";
    dir_ = mkdtemp(tmpl);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string dir_;
};

TEST_F(StateTest, MissingFileIsEmptyState) {
  auto s = StateStore(dir_).Load();
  ASSERT_TRUE(s.ok());
  EXPECT_TRUE(s->prefilter.empty());
}

TEST_F(StateTest, RoundTrips) {
  StateStore store(dir_);
  DesiredState s;
  s.prefilter.insert(*ParseCidr("10.0.0.0/8"));
  s.prefilter.insert(*ParseCidr("fd00::/16"));
  ASSERT_TRUE(store.Save(s).ok());
  auto back = store.Load();
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->prefilter, s.prefilter);
  // No temp files left behind by the atomic write.
  int files = 0;
  for (auto& e : std::filesystem::directory_iterator(dir_)) (void)e, ++files;
  EXPECT_EQ(files, 1);
}

TEST_F(StateTest, CorruptFileIsAnErrorNamingIt) {
  ASSERT_TRUE(WriteFileAtomic(dir_ + "/state.json", "{not json").ok());
  auto s = StateStore(dir_).Load();
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("state.json"), std::string::npos);
  ASSERT_TRUE(WriteFileAtomic(dir_ + "/state.json", "{\"prefilter\": [\"10.0.0.0/33\"]}").ok());
  EXPECT_FALSE(StateStore(dir_).Load().ok());
}

}  // namespace
}  // namespace tendril
