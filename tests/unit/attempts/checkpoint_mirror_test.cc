// The block checkpoint mirror over a file:// output: push, pull into another
// work directory (only what is missing), hostile names in the store refused,
// delete.
#include "src/attempts/checkpoint_mirror.h"

#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "gtest/gtest.h"
#include "tests/testing/test_files.h"

namespace signround::jobs {
namespace {

using ::signround::testing::TempDir;
using ::signround::testing::WriteFile;

std::string Read(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

class CheckpointMirrorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::filesystem::create_directories(work_a_);
    WriteFile(work_a_ + "/settings.json", "{\"bits\":4}");
    WriteFile(work_a_ + "/block-00000.safetensors", std::string(1000, 'a'));
    WriteFile(work_a_ + "/block-00001.safetensors", std::string(2000, 'b'));
  }
  TempDir dir_;
  const std::string output_ = "file://" + dir_.File("out") + "/";
  const std::string mirror_ = dir_.File("out/.signround-work");
  const std::string work_a_ = dir_.File("a/.signround-work");
  const std::string work_b_ = dir_.File("b/.signround-work");
  S3Options s3_;
};

TEST_F(CheckpointMirrorTest, PushPullDelete) {
  EXPECT_EQ(CheckpointUri(output_), "file://" + dir_.File("out") + "/.signround-work");
  ASSERT_TRUE(PushCheckpoint(output_, work_a_, 0, s3_).ok());
  ASSERT_TRUE(PushCheckpoint(output_, work_a_, 1, s3_).ok());
  EXPECT_EQ(Read(mirror_ + "/block-00001.safetensors"), std::string(2000, 'b'));

  // Another machine's work directory, which already has block 0.
  std::filesystem::create_directories(work_b_);
  WriteFile(work_b_ + "/block-00000.safetensors", "kept");
  absl::StatusOr<int> pulled = PullCheckpoints(output_, work_b_, s3_);
  ASSERT_TRUE(pulled.ok()) << pulled.status();
  EXPECT_EQ(*pulled, 2);  // settings.json and block 1
  EXPECT_EQ(Read(work_b_ + "/settings.json"), "{\"bits\":4}");
  EXPECT_EQ(Read(work_b_ + "/block-00000.safetensors"), "kept");
  EXPECT_EQ(Read(work_b_ + "/block-00001.safetensors"), std::string(2000, 'b'));

  ASSERT_TRUE(DeleteCheckpoints(output_, s3_).ok());
  EXPECT_FALSE(std::filesystem::exists(mirror_));
  EXPECT_TRUE(DeleteCheckpoints(output_, s3_).ok()) << "deleting nothing is fine";
}

TEST_F(CheckpointMirrorTest, NothingMirroredPullsNothing) {
  absl::StatusOr<int> pulled = PullCheckpoints(output_, work_b_, s3_);
  ASSERT_TRUE(pulled.ok()) << pulled.status();
  EXPECT_EQ(*pulled, 0);
}

TEST_F(CheckpointMirrorTest, StrangeNamesInTheStoreAreRefused) {
  ASSERT_TRUE(PushCheckpoint(output_, work_a_, 0, s3_).ok());
  for (const char* name : {"evil.sh", "block-1.safetensors", "block-0000x.safetensors",
                           "settings.json.bak"}) {
    SCOPED_TRACE(name);
    WriteFile(mirror_ + "/" + name, "x");
    absl::StatusOr<int> pulled = PullCheckpoints(output_, work_b_, s3_);
    EXPECT_EQ(pulled.status().code(), absl::StatusCode::kInvalidArgument) << pulled.status();
    EXPECT_NE(pulled.status().message().find(name), std::string::npos) << pulled.status();
    EXPECT_FALSE(std::filesystem::exists(work_b_ + "/" + name));
    std::filesystem::remove(mirror_ + "/" + name);
  }
}

TEST_F(CheckpointMirrorTest, MissingLocalBlockIsAnError) {
  absl::Status pushed = PushCheckpoint(output_, work_a_, 7, s3_);
  EXPECT_FALSE(pushed.ok());
  EXPECT_NE(pushed.message().find("block-00007.safetensors"), std::string::npos) << pushed;
}

}  // namespace
}  // namespace signround::jobs
