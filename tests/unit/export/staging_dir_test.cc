// Staging directories (src/export/staging_dir.h): a commit replaces the export, an abandoned
// one leaves nothing.
#include "src/export/staging_dir.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <iterator>

#include "src/common/file_util.h"
#include "tests/testing/test_files.h"

namespace signround {
namespace {

namespace fs = std::filesystem;

TEST(StagingDir, CommitReplacesAndAbandonedLeavesNothing) {
  testing::TempDir dir;
  {
    auto s = StagingDir::Create(dir.path(), "auto_round");
    ASSERT_TRUE(s.ok()) << s.status();
    testing::WriteFile(s->path() + "/a", "first");
    ASSERT_TRUE(s->Commit().ok());
  }
  EXPECT_EQ(*ReadFileToString(dir.File("auto_round/a"), 100), "first");
  {
    auto s = StagingDir::Create(dir.path(), "auto_round");
    ASSERT_TRUE(s.ok());
    testing::WriteFile(s->path() + "/a", "second");
    // Not committed: a failed export. The earlier one is untouched.
  }
  EXPECT_EQ(*ReadFileToString(dir.File("auto_round/a"), 100), "first");
  EXPECT_FALSE(fs::exists(dir.File(".auto_round.partial")));
  {
    auto s = StagingDir::Create(dir.path(), "auto_round");
    testing::WriteFile(s->path() + "/b", "third");
    ASSERT_TRUE(s->Commit().ok());
  }
  EXPECT_FALSE(fs::exists(dir.File("auto_round/a")));
  EXPECT_EQ(*ReadFileToString(dir.File("auto_round/b"), 100), "third");
  EXPECT_EQ(std::distance(fs::directory_iterator(dir.path()), fs::directory_iterator()), 1);
}

}  // namespace
}  // namespace signround
