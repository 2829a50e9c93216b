#include "src/common/file_util.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "absl/strings/match.h"
#include "tests/testing/test_files.h"

namespace signround {
namespace {

namespace fs = std::filesystem;

TEST(FileUtil, MakeDirectoriesAndRemoveTree) {
  testing::TempDir dir;
  std::string deep = dir.File("a/b/c");
  ASSERT_TRUE(MakeDirectories(deep).ok());
  ASSERT_TRUE(MakeDirectories(deep).ok()) << "an existing directory is fine";
  EXPECT_TRUE(fs::is_directory(deep));
  testing::WriteFile(deep + "/f", "x");
  // A symlink to outside the tree is removed, not followed.
  testing::WriteFile(dir.File("keep"), "y");
  ASSERT_EQ(::symlink(dir.File("keep").c_str(), dir.File("a/b/link").c_str()), 0);
  ASSERT_TRUE(RemoveTree(dir.File("a")).ok());
  EXPECT_FALSE(fs::exists(dir.File("a")));
  EXPECT_TRUE(fs::exists(dir.File("keep")));
  EXPECT_TRUE(RemoveTree(dir.File("missing")).ok());
  ASSERT_TRUE(RemoveTree(dir.File("keep")).ok()) << "a plain file";
  EXPECT_FALSE(fs::exists(dir.File("keep")));
}

TEST(FileUtil, AtomicWriteReplacesAndReadEnforcesLimit) {
  testing::TempDir dir;
  std::string path = dir.File("f");
  ASSERT_TRUE(WriteFileAtomically(path, "first").ok());
  ASSERT_TRUE(WriteFileAtomically(path, "second").ok());
  EXPECT_EQ(*ReadFileToString(path, 100), "second");
  auto big = ReadFileToString(path, 3);
  EXPECT_EQ(big.status().message(), path + ": file is 6 bytes, over the limit of 3");
  EXPECT_EQ(ReadFileToString(dir.File("none"), 3).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(fs::directory_iterator(dir.path())->path().filename(), "f") << "no temporary left";
}

TEST(FileUtil, PlainFileNames) {
  EXPECT_TRUE(IsPlainFileName("model-00001-of-00002.safetensors"));
  for (const char* bad : {"", ".", "..", "../x", "a/b", "/abs"})
    EXPECT_FALSE(IsPlainFileName(bad)) << bad;
}

TEST(ReadPemFileTest, NamesTheOptionAndPathNeverTheContent) {
  testing::TempDir dir;
  const std::string cert = dir.File("cert.pem"), key = dir.File("key.pem");
  const std::string other = dir.File("other.txt");
  ASSERT_TRUE(WriteFileAtomically(cert, "-----BEGIN CERTIFICATE-----\nMIIB\n").ok());
  ASSERT_TRUE(WriteFileAtomically(key, "-----BEGIN EC PRIVATE KEY-----\nMHc\n").ok());
  ASSERT_TRUE(WriteFileAtomically(other, "hunter2-not-a-pem").ok());
  EXPECT_TRUE(ReadPemFile("--tls-cert", cert, PemKind::kCertificates).ok());
  EXPECT_TRUE(ReadPemFile("--tls-key", key, PemKind::kPrivateKey).ok());
  absl::StatusOr<std::string> swapped = ReadPemFile("--tls-cert", key, PemKind::kCertificates);
  ASSERT_FALSE(swapped.ok());
  EXPECT_EQ(swapped.status().message(), "--tls-cert: " + key + ": no PEM certificate in it");
  absl::StatusOr<std::string> bad = ReadPemFile("--tls-key", other, PemKind::kPrivateKey);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(bad.status().message().find("hunter2"), std::string::npos) << bad.status();
  absl::StatusOr<std::string> missing =
      ReadPemFile("--tls-client-ca", dir.File("none.pem"), PemKind::kCertificates);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StartsWith(missing.status().message(), "--tls-client-ca: "))
      << missing.status();
}

}  // namespace
}  // namespace signround
