#include "tests/testing/llama_gguf_py.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "tests/testing/spawn.h"
#include "tests/testing/test_files.h"

#ifndef SIGNROUND_LLAMA_CPP_TEST_DIR
#error "SIGNROUND_LLAMA_CPP_TEST_DIR (tests/llama_cpp) must be defined"
#endif

namespace signround::testing {
namespace {

constexpr char kPython[] = "/usr/bin/python3";
constexpr char kGit[] = "/usr/bin/git";
constexpr char kTar[] = "/bin/tar";

bool Executable(const char* path) { return ::access(path, X_OK) == 0; }

struct RunResult {
  int exit_code = -1;  // -1: not started or killed by a signal
  std::string out, err;
};

// Runs argv (argv[0] a full path) with `env`, collecting stdout and stderr through files in
// `scratch`.
RunResult Run(std::vector<std::string> argv, std::vector<std::string> env,
              const std::string& scratch) {
  RunResult r;
  SpawnOptions options;
  options.argv = std::move(argv);
  options.env = std::move(env);
  options.stdout_path = scratch + "/run.out";
  options.stderr_path = scratch + "/run.err";
  const pid_t pid = SpawnProcess(options);
  if (pid < 0) {
    r.err = absl::StrCat("cannot start ", options.argv[0], ": ", std::strerror(errno));
    return r;
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
  r.out = ReadFileOrEmpty(options.stdout_path);
  r.err = ReadFileOrEmpty(options.stderr_path);
  return r;
}

std::vector<std::string> BaseEnv() { return {"PATH=/usr/bin:/bin", "LC_ALL=C.UTF-8"}; }

// The extracted package, or why there is none; made once per process.
struct Extracted {
  TempDir dir;
  std::string gguf_py;  // dir/gguf-py when extracted
  std::string unavailable;

  Extracted() {
    const std::string bundle = LlamaCppBundlePath();
    if (!Executable(kPython)) {
      unavailable = absl::StrCat(kPython, " is missing");
      return;
    }
    if (!Executable(kGit) || !Executable(kTar)) {
      unavailable = absl::StrCat(kGit, " or ", kTar, " is missing");
      return;
    }
    if (!std::filesystem::is_regular_file(bundle)) {
      unavailable = absl::StrCat(bundle, " is missing (run tests/llama_cpp/install.sh)");
      return;
    }
    RunResult numpy = Run({kPython, "-c", "import numpy"}, BaseEnv(), dir.path());
    if (numpy.exit_code != 0) {
      unavailable = absl::StrCat(kPython, " has no numpy (Debian's python3-numpy): ", numpy.err);
      return;
    }
    const std::string git_dir = dir.File("llama.git");
    const std::string tar = dir.File("gguf-py.tar");
    std::vector<std::string> env = BaseEnv();
    env.push_back("HOME=" + dir.path());  // no user git configuration
    env.push_back("GIT_CONFIG_NOSYSTEM=1");
    for (std::vector<std::string> argv : std::vector<std::vector<std::string>>{
             {kGit, "init", "-q", "--bare", git_dir},
             {kGit, "-C", git_dir, "fetch", "-q", bundle, "HEAD"},
             {kGit, "-C", git_dir, "archive", "-o", tar, "FETCH_HEAD", "gguf-py"},
             {kTar, "-x", "-f", tar, "-C", dir.path()}}) {
      RunResult r = Run(argv, env, dir.path());
      if (r.exit_code != 0) {
        unavailable = absl::StrCat("extracting gguf-py from ", bundle, ": ", argv[0], " ", argv[1],
                                   " ", argv[2], " exited ", r.exit_code, ": ", r.err);
        return;
      }
    }
    std::error_code ec;
    std::filesystem::remove_all(git_dir, ec);
    std::filesystem::remove(tar, ec);
    gguf_py = dir.File("gguf-py");
    if (!std::filesystem::is_regular_file(gguf_py + "/gguf/quants.py")) {
      unavailable = absl::StrCat("the bundle's gguf-py has no gguf/quants.py (", bundle, ")");
    }
  }
};

const Extracted& GetExtracted() {
  static const Extracted* extracted = new Extracted();  // the directory stays until exit
  return *extracted;
}

}  // namespace

std::string LlamaCppBundlePath() {
  return std::string(SIGNROUND_LLAMA_CPP_TEST_DIR) +
         "/node_modules/node-llama-cpp/llama/gitRelease.bundle";
}

std::string LlamaGgufPyUnavailable() { return GetExtracted().unavailable; }

absl::StatusOr<std::string> LlamaGgufPyDir() {
  const Extracted& e = GetExtracted();
  if (!e.unavailable.empty()) return absl::FailedPreconditionError(e.unavailable);
  return e.gguf_py;
}

absl::StatusOr<std::vector<LlamaGgufTensor>> DequantizeWithLlamaGgufPy(const std::string& gguf_path,
                                                                       const std::string& out_dir) {
  absl::StatusOr<std::string> gguf_py = LlamaGgufPyDir();
  if (!gguf_py.ok()) return gguf_py.status();
  std::error_code ec;
  std::filesystem::create_directories(out_dir, ec);
  std::vector<std::string> env = BaseEnv();
  env.push_back("PYTHONPATH=" + *gguf_py);
  env.push_back("PYTHONDONTWRITEBYTECODE=1");
  const std::string script = std::string(SIGNROUND_LLAMA_CPP_TEST_DIR) + "/gguf_dequant.py";
  TempDir scratch;
  RunResult r = Run({kPython, script, gguf_path, out_dir}, env, scratch.path());
  if (r.exit_code != 0) {
    return absl::InternalError(
        absl::StrCat(script, " ", gguf_path, " exited ", r.exit_code, ": ", r.err));
  }
  nlohmann::json listing = nlohmann::json::parse(r.out, nullptr, /*allow_exceptions=*/false);
  if (!listing.is_array()) {
    return absl::InternalError(absl::StrCat(script, " printed no JSON list: ", r.out));
  }
  std::vector<LlamaGgufTensor> tensors;
  for (const nlohmann::json& t : listing) {
    LlamaGgufTensor tensor;
    tensor.name = t.value("name", "");
    tensor.type = t.value("type", "");
    tensor.type_id = t.value("type_id", 0u);
    tensor.shape = t.value("shape", std::vector<int64_t>{});
    tensor.values_path = t.value("file", "");
    tensors.push_back(std::move(tensor));
  }
  return tensors;
}

absl::StatusOr<std::vector<float>> ReadF32File(const std::string& path) {
  std::optional<std::string> bytes = ReadWholeFile(path);
  if (!bytes) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  if (bytes->size() % sizeof(float) != 0) {
    return absl::InternalError(absl::StrCat(path, ": ", bytes->size(), " bytes, not float32s"));
  }
  std::vector<float> values(bytes->size() / sizeof(float));
  std::memcpy(values.data(), bytes->data(), bytes->size());
  return values;
}

}  // namespace signround::testing
