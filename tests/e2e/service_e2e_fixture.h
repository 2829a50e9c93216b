// The fixture of the job service end-to-end tests: the suite's inputs (two
// make-test-model checkpoints and a calibration file, made once), servers on
// data dirs in the test's scratch directory, job submission through the CLI, and
// the reference output of the long job run without interruption.
#pragma once

#include <gtest/gtest.h>
#include <sys/types.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "tests/e2e/service_e2e_util.h"
#include "tests/testing/server_process.h"
#include "tests/testing/test_files.h"

namespace signround::e2e {

inline constexpr int kSmallLayers = 4;
// The long job: 8 blocks of ~0.4-0.8 s each on one core (120 iterations), so that
// a kill or a cancel after its first block event lands mid-job.
inline constexpr int kLongLayers = 8;
inline constexpr int kLongIters = 120;

inline std::string FileUri(const std::string& path) { return "file://" + path; }

// The process's command line with NULs as spaces ("" when it is gone).
std::string CmdLine(pid_t pid);
// kill(pid, 0) succeeds: the process (or its zombie) exists.
bool Alive(pid_t pid);
// The server's live signround-worker children.
std::vector<pid_t> WorkerPids(const testing::ServerProcess& server);

class ServiceE2ETest : public ::testing::Test {
 protected:
  static void SetUpTestSuite();
  static void TearDownTestSuite();
  void SetUp() override;

  // Starts a server on DIR/<name> (reuse the name to restart on the same data);
  // null and a test failure when it does not get ready.
  std::unique_ptr<testing::ServerProcess> StartServer(const std::string& name,
                                                      std::vector<std::string> extra_args = {},
                                                      std::map<std::string, std::string> env = {});
  std::string DataDir(const std::string& name) const { return dir_.File(name); }

  // 4 blocks, 5 iterations; the long job: 8 blocks, kLongIters iterations.
  static JobFlags SmallJob(const std::string& out_dir);
  static JobFlags LongJob(const std::string& out_dir);

  // `signround --json submit FLAGS`: the new job's id ("" and a failure otherwise).
  static std::string Submit(const testing::ServerProcess& server, const JobFlags& flags);

  // The files of `out` except report.json equal, byte for byte, those of the long
  // job run once without interruption by a server of its own (run once per suite).
  void ExpectSameAsLongReference(const std::string& out);

  static testing::TempDir* inputs_;
  static std::string small_model_, long_model_, calib_;
  testing::TempDir dir_;

 private:
  const std::map<std::string, std::string>& LongReference();
  static std::map<std::string, std::string>* long_reference_;
};

}  // namespace signround::e2e
