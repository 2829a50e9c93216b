#include "src/storage/storage_uri.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "absl/strings/match.h"

namespace signround {
namespace {

StorageUri Parse(absl::string_view uri) {
  absl::StatusOr<StorageUri> parsed = ParseStorageUri(uri);
  EXPECT_TRUE(parsed.ok()) << parsed.status();
  return parsed.value_or(StorageUri{});
}

TEST(StorageUri, Files) {
  StorageUri u = Parse("file:///data/out");
  EXPECT_EQ(u.scheme, StorageUri::Scheme::kFile);
  EXPECT_EQ(u.path, "/data/out");
  EXPECT_EQ(u.ToString(), "file:///data/out");

  u = Parse("/data/out/");  // a plain absolute path is a file location
  EXPECT_EQ(u.scheme, StorageUri::Scheme::kFile);
  EXPECT_EQ(u.path, "/data/out/");
  EXPECT_EQ(u.ToString(), "file:///data/out/");

  EXPECT_EQ(Parse("FILE:///x").ToString(), "file:///x");
  EXPECT_EQ(Parse("file:///").path, "/");
  EXPECT_EQ(Parse("/").path, "/");
  // Taken literally: no percent-decoding; '?', '#', spaces and UTF-8 are characters.
  EXPECT_EQ(Parse("file:///a%20b/c?d#e f/\xc3\xa9t\xc3\xa9").path,
            "/a%20b/c?d#e f/\xc3\xa9t\xc3\xa9");
  EXPECT_EQ(Parse("/a/...b/..c/.d").path, "/a/...b/..c/.d")
      << "only exact '.' and '..' are refused";
}

TEST(StorageUri, S3) {
  StorageUri u = Parse("s3://my-bucket/runs/llama/");
  EXPECT_EQ(u.scheme, StorageUri::Scheme::kS3);
  EXPECT_EQ(u.bucket, "my-bucket");
  EXPECT_EQ(u.key, "runs/llama/");
  EXPECT_EQ(u.ToString(), "s3://my-bucket/runs/llama/");

  u = Parse("s3://my.bucket.1");
  EXPECT_EQ(u.bucket, "my.bucket.1");
  EXPECT_EQ(u.key, "");
  EXPECT_EQ(u.ToString(), "s3://my.bucket.1");
  EXPECT_EQ(Parse("s3://abc/").key, "");
  EXPECT_EQ(Parse("S3://abc/k").ToString(), "s3://abc/k");
  EXPECT_EQ(Parse("s3://abc/a b/c%2F?x=1#y/\xe2\x82\xac").key, "a b/c%2F?x=1#y/\xe2\x82\xac");
  EXPECT_EQ(Parse("s3://" + std::string(63, 'a') + "/k").bucket, std::string(63, 'a'));
  EXPECT_EQ(Parse("s3://abc/" + std::string(1024, 'k')).key.size(), 1024u);
}

TEST(StorageUri, HostileInputs) {
  struct Case {
    std::string uri;
    std::string message;  // a fragment of the message
  };
  const std::string long_key(1025, 'k');
  std::string long_path;  // 41 segments of 99 bytes
  for (int i = 0; i < 41; ++i) long_path += "/" + std::string(99, 'a');
  const std::vector<Case> cases = {
      {"relative/path",
       "a relative path; use an absolute path, file:///abs/path or s3://bucket/key"},
      {"./x", "a relative path"},
      {"out:1/model", "a relative path"},
      {"C:\\data", "a relative path"},
      {"file:relative", "expected 'file://'"},
      {"file:/abs", "expected 'file://'"},
      {"file://", "no path after file://"},
      {"file://host/x", "file URIs take no host ('host'); write file:///abs/path"},
      {"file://localhost/x", "file URIs take no host ('localhost')"},
      {"file:////x", "empty segment ('//') in the path"},
      {"http://h/x", "unsupported scheme 'http' (expected file:// or s3://)"},
      {"gs://b/k", "unsupported scheme 'gs'"},
      {"s3:bucket/k", "expected 's3://'"},
      {"s3://", "no bucket name after s3://"},
      {"s3:///k", "no bucket name after s3://"},
      {"s3://ab/k", "bucket name 'ab' is not 3 to 63 characters long"},
      {"s3://" + std::string(64, 'a'), "is not 3 to 63 characters long"},
      {"s3://My-Bucket/k",
       "bucket name 'My-Bucket' may hold only lowercase letters, digits, '.' and '-'"},
      {"s3://my_bucket/k", "may hold only lowercase letters"},
      {"s3://bucket:9000/k", "may hold only lowercase letters"},
      {"s3://user@bucket/k", "may hold only lowercase letters"},
      {"s3://-bucket/k", "must start and end with a letter or digit"},
      {"s3://bucket./k", "must start and end with a letter or digit"},
      {"s3://my..bucket/k", "has two adjacent periods"},
      {"s3://192.168.1.1/k", "is formatted as an IP address"},
      {"s3://xn--bucket/k", "starts with 'xn--'"},
      {"s3://sthree-bucket/k", "starts with 'sthree-'"},
      {"s3://bucket-s3alias/k", "ends with '-s3alias'"},
      {"s3://bucket--ol-s3/k", "ends with '--ol-s3'"},
      {"s3://bucket//k", "empty segment ('//') in the key"},
      {"s3://bucket/a//b", "empty segment ('//') in the key"},
      {"s3://bucket/a/../b", "'..' segment in the key (name the location directly)"},
      {"s3://bucket/./b", "'.' segment in the key"},
      {"s3://bucket/..", "'..' segment in the key"},
      {"s3://bucket/" + long_key, "the key is 1025 bytes, over S3's limit of 1024"},
      {"/data/../etc/passwd", "'..' segment in the path"},
      {"file:///data/..", "'..' segment in the path"},
      {"/a/./b", "'.' segment in the path"},
      {"/data//x", "empty segment ('//') in the path"},
      {"//data", "empty segment ('//') in the path"},
      {"/" + std::string(256, 'x'), "a segment of the path is 256 bytes, over the limit of 255"},
      {long_path, "the path is 4100 bytes, over the limit of 4095"},
      {std::string("/a\0b", 4), "control character 0x00 at byte 2"},
      {"s3://bucket/a\nb", "control character 0x0A at byte 13"},
      {"/a\x7f", "control character 0x7F at byte 2"},
      {"/a\xff", "not valid UTF-8 at byte 2"},
      {"/a\xc0\xaf", "not valid UTF-8 at byte 2"},      // overlong '/'
      {"/a\xed\xa0\x80", "not valid UTF-8 at byte 2"},  // a surrogate
      {"/a\xe2\x82", "not valid UTF-8 at byte 2"},      // truncated
      {" /data", "leading or trailing whitespace"},
      {"s3://bucket/k ", "leading or trailing whitespace"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.uri.substr(0, 80));
    absl::StatusOr<StorageUri> parsed = ParseStorageUri(c.uri);
    ASSERT_FALSE(parsed.ok());
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_TRUE(absl::StartsWith(parsed.status().message(), "storage URI '"))
        << parsed.status().message();
    EXPECT_TRUE(absl::StrContains(parsed.status().message(), c.message))
        << parsed.status().message();
    EXPECT_LT(parsed.status().message().size(), 400u) << "long URIs are shortened";
    for (char ch : parsed.status().message()) {
      EXPECT_FALSE(static_cast<unsigned char>(ch) < 0x20) << "control bytes are escaped";
    }
  }
  EXPECT_EQ(ParseStorageUri("").status().message(), "empty storage URI");
  EXPECT_EQ(ParseStorageUri("s3://bucket/a/../b").status().message(),
            "storage URI 's3://bucket/a/../b': '..' segment in the key (name the location "
            "directly)");
  EXPECT_EQ(ParseStorageUri("/a\nb").status().message(),
            "storage URI '/a\\nb': control character 0x0A at byte 2");
}

TEST(StorageUri, BucketNames) {
  for (const char* good : {"abc", "a.b-c", "0123", "my-bucket.example.com", "1.2.3"}) {
    EXPECT_TRUE(ValidateS3BucketName(good).ok()) << good;
  }
  for (const char* bad : {"", "ab", "a_b", "ABC", "abc-", ".abc", "a..b", "1.2.3.4", "a b c",
                          "xn--abc", "abc.mrap", "abc--x-s3", "abc--table-s3"}) {
    EXPECT_EQ(ValidateS3BucketName(bad).code(), absl::StatusCode::kInvalidArgument) << bad;
  }
}

}  // namespace
}  // namespace signround
