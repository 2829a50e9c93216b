// signround-server's log lines: --log-format=json gives one JSON object per
// line with the job id split out; text keeps the message as written.
#include "server/logging.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <functional>
#include <sstream>
#include <vector>

#include "nlohmann/json.hpp"
#include "spdlog/spdlog.h"
#include "tests/testing/test_files.h"

namespace signround::server {
namespace {

// The lines written to stderr while `log` runs.
std::vector<std::string> CaptureStderr(const std::function<void()>& log) {
  testing::TempDir dir;
  const std::string path = dir.path() + "/stderr";
  std::fflush(stderr);
  const int saved = ::dup(STDERR_FILENO);
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  ::dup2(fd, STDERR_FILENO);
  ::close(fd);
  log();
  spdlog::default_logger()->flush();
  std::fflush(stderr);
  ::dup2(saved, STDERR_FILENO);
  ::close(saved);
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

TEST(ServerLogging, JsonLinesCarryTheJobIdAndEscapeTheMessage) {
  ASSERT_TRUE(ConfigureLogging("json").ok());
  std::vector<std::string> lines = CaptureStderr([] {
    spdlog::info("job=j-0123456789abcdef block 1/2 \"quoted\" back\\slash\nnext\x01");
    spdlog::warn("no job here");
  });
  ASSERT_EQ(lines.size(), 2u);
  nlohmann::json first = nlohmann::json::parse(lines[0]);
  EXPECT_EQ(first["job"], "j-0123456789abcdef");
  EXPECT_EQ(first["msg"], "block 1/2 \"quoted\" back\\slash\nnext\x01");
  EXPECT_EQ(first["level"], "info");
  EXPECT_TRUE(first["time"].get<std::string>().find('T') != std::string::npos);
  nlohmann::json second = nlohmann::json::parse(lines[1]);
  EXPECT_FALSE(second.contains("job"));
  EXPECT_EQ(second["msg"], "no job here");
  EXPECT_EQ(second["level"], "warning");
}

TEST(ServerLogging, TextAndUnknownFormats) {
  ASSERT_TRUE(ConfigureLogging("text").ok());
  std::vector<std::string> lines = CaptureStderr([] { spdlog::info("job=j-1 started"); });
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_NE(lines[0].find("info job=j-1 started"), std::string::npos) << lines[0];
  absl::Status bad = ConfigureLogging("xml");
  EXPECT_EQ(bad.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.message().find("--log-format"), std::string::npos);
}

}  // namespace
}  // namespace signround::server
