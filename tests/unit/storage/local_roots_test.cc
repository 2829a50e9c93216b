// --allowed-local-roots (src/storage/local_roots.h): paths are judged where
// the kernel would take them, through '..' and symlinks, including output
// paths that do not exist yet.
#include "src/storage/local_roots.h"

#include <unistd.h>

#include <filesystem>

#include "gtest/gtest.h"
#include "tests/testing/test_files.h"

namespace signround {
namespace {

namespace fs = std::filesystem;

class LocalRootsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // The scratch dir itself may sit below a symlink (e.g. /tmp): use its real path.
    base_ = fs::canonical(dir_.path()).string();
    fs::create_directories(base_ + "/root/models/m");
    fs::create_directories(base_ + "/outside/secret");
    fs::create_directories(base_ + "/root2");
    fs::create_directory_symlink(base_ + "/outside", base_ + "/root/escape");
    fs::create_directory_symlink(base_ + "/root/models", base_ + "/root/alias");
    fs::create_directory_symlink(base_ + "/root/models", base_ + "/outside/into-root");
    absl::StatusOr<LocalRoots> roots = LocalRoots::Create({base_ + "/root", base_ + "/root2"});
    ASSERT_TRUE(roots.ok()) << roots.status();
    roots_ = *roots;
  }

  absl::StatusCode Code(const std::string& path) {
    return roots_.Check("spec.model_uri", path).code();
  }

  testing::TempDir dir_;
  std::string base_;
  LocalRoots roots_;
};

TEST_F(LocalRootsTest, InsideRootsIsAllowed) {
  EXPECT_EQ(Code(base_ + "/root"), absl::StatusCode::kOk);
  EXPECT_EQ(Code(base_ + "/root/models/m"), absl::StatusCode::kOk);
  EXPECT_EQ(Code(base_ + "/root2/new/output/dir"), absl::StatusCode::kOk) << "missing tail";
  EXPECT_EQ(Code(base_ + "/root/alias/m"), absl::StatusCode::kOk) << "a symlink within a root";
  EXPECT_EQ(Code(base_ + "/outside/into-root/m"), absl::StatusCode::kOk)
      << "a link from outside that leads into a root is judged where it leads";
  EXPECT_EQ(Code(base_ + "/root/models/../models/m"), absl::StatusCode::kOk);
}

TEST_F(LocalRootsTest, DotDotAndSymlinksOutsideAreDenied) {
  EXPECT_EQ(Code(base_ + "/outside/secret"), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(Code(base_ + "/root/../outside/secret"), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(Code(base_ + "/root/models/../../outside"), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(Code(base_ + "/root/escape/secret"), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(Code(base_ + "/root/escape/not-yet/out"), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(Code(base_ + "/root/missing/../../outside"), absl::StatusCode::kPermissionDenied)
      << "'..' after a missing directory";
  EXPECT_EQ(Code(base_ + "/rootX"), absl::StatusCode::kPermissionDenied)
      << "a prefix is not a root";
  EXPECT_EQ(Code("/"), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(Code("relative/path"), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(Code(base_ + "/root/models" + std::string("\0/../../x", 9)),
            absl::StatusCode::kPermissionDenied);
  // The message names the field, and not where the symlink leads.
  absl::Status s = roots_.Check("spec.output_uri", base_ + "/root/escape/secret");
  EXPECT_NE(s.message().find("spec.output_uri"), std::string::npos) << s;
  EXPECT_NE(s.message().find("outside the allowed local roots"), std::string::npos) << s;
  EXPECT_EQ(s.message().find(base_ + "/outside"), std::string::npos) << s;
}

TEST_F(LocalRootsTest, SymlinkLoopIsDenied) {
  fs::create_symlink(base_ + "/root/loop-b", base_ + "/root/loop-a");
  fs::create_symlink(base_ + "/root/loop-a", base_ + "/root/loop-b");
  // realpath fails on the loop: the deepest prefix that resolves is the root,
  // and the rest ("loop-a/../../outside") is normalized by hand.
  EXPECT_EQ(Code(base_ + "/root/loop-a/../../outside"), absl::StatusCode::kPermissionDenied);
}

TEST_F(LocalRootsTest, NoRootsAllowsEverything) {
  LocalRoots none;
  EXPECT_TRUE(none.Check("spec.model_uri", "/etc/passwd").ok());
}

TEST_F(LocalRootsTest, RootsMustBeExistingDirectories) {
  for (const std::string& bad : {base_ + "/nope", std::string("relative"),
                                 base_ + "/root/models/m/../../../outside/secret/file"}) {
    absl::StatusOr<LocalRoots> r = LocalRoots::Create({bad});
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_NE(r.status().message().find("--allowed-local-roots"), std::string::npos);
  }
  absl::StatusOr<LocalRoots> linked = LocalRoots::Create({base_ + "/root/escape"});
  ASSERT_TRUE(linked.ok());
  EXPECT_EQ(linked->roots()[0], base_ + "/outside") << "roots are kept resolved";
}

TEST(FileUriPathTest, TakesTheTextLiterally) {
  EXPECT_EQ(FileUriPath("file:///a/../b"), "/a/../b");
  EXPECT_EQ(FileUriPath("FILE:///a"), "/a");
  EXPECT_EQ(FileUriPath("/plain"), "/plain");
  EXPECT_EQ(FileUriPath("s3://bucket/key"), "");
  EXPECT_EQ(FileUriPath("file://host/a"), "");
  EXPECT_EQ(FileUriPath(""), "");
}

}  // namespace
}  // namespace signround
