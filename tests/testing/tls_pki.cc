#include "tests/testing/tls_pki.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "tests/testing/spawn.h"

namespace signround::testing {
namespace {

// Our own configuration, so the system's openssl.cnf defaults do not matter.
constexpr const char* kConfig = R"([req]
distinguished_name = dn
prompt = no

[dn]
CN = signround-test

[ca_ext]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash

[server_ext]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost,IP:127.0.0.1
authorityKeyIdentifier = keyid

[client_ext]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
authorityKeyIdentifier = keyid
)";

std::string FindOpenssl() {
  const char* path = std::getenv("PATH");
  std::string dirs = path != nullptr && path[0] != '\0' ? path : "/usr/local/bin:/usr/bin:/bin";
  for (absl::string_view d : absl::StrSplit(dirs, ':', absl::SkipEmpty())) {
    std::string candidate = absl::StrCat(d, "/openssl");
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

class Openssl {
 public:
  Openssl(std::string binary, std::string dir)
      : binary_(std::move(binary)), dir_(std::move(dir)), log_(dir_ + "/openssl.log") {}

  // Runs `openssl ARGS...` in no shell, cwd irrelevant (absolute paths), with
  // its output appended to openssl.log; INTERNAL with that log on failure.
  absl::Status Run(std::vector<std::string> args) {
    SpawnOptions spawn;
    spawn.argv = {binary_};
    spawn.argv.insert(spawn.argv.end(), args.begin(), args.end());
    for (const char* name : {"PATH", "HOME", "TMPDIR"}) {
      const char* value = std::getenv(name);
      if (value != nullptr) spawn.env.push_back(absl::StrCat(name, "=", value));
    }
    spawn.stdout_path = log_;
    spawn.stderr_path = log_;
    spawn.append = true;
    pid_t pid = SpawnProcess(spawn);
    if (pid < 0) return absl::InternalError(absl::StrCat("cannot start openssl: errno ", errno));
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    int status = 0;
    while (true) {
      pid_t r = ::waitpid(pid, &status, WNOHANG);
      if (r == pid) break;
      if (r < 0 && errno != EINTR) return absl::InternalError("waitpid failed");
      if (std::chrono::steady_clock::now() > deadline) {
        ::kill(pid, SIGKILL);
        ::waitpid(pid, &status, 0);
        return absl::DeadlineExceededError("openssl did not finish within 60 s");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return absl::OkStatus();
    return absl::InternalError(absl::StrCat("openssl ", absl::StrJoin(args, " "), " failed (",
                                            WIFEXITED(status) ? WEXITSTATUS(status) : -1, "):\n",
                                            ReadFileOrEmpty(log_)));
  }

 private:
  std::string binary_, dir_, log_;
};

std::string RandomSerial(std::mt19937_64& rng) {
  // Positive, 63 bits: distinct per certificate, as X.509 wants.
  return absl::StrCat("0x", absl::Hex(rng() >> 1, absl::kZeroPad16));
}

}  // namespace

absl::StatusOr<TestPki> MakeTestPki(const std::string& dir) {
  const std::string openssl = FindOpenssl();
  if (openssl.empty()) return absl::NotFoundError("openssl: not found on PATH");
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create ", dir, ": ", ec.message()));
  const std::string config = dir + "/pki.cnf";
  {
    std::ofstream out(config, std::ios::trunc);
    out << kConfig;
    if (!out) return absl::InternalError(absl::StrCat("cannot write ", config));
  }
  TestPki pki;
  pki.dir = dir;
  pki.ca_cert = dir + "/ca.pem";
  pki.ca_key = dir + "/ca.key";
  pki.server_cert = dir + "/server.pem";
  pki.server_key = dir + "/server.key";
  pki.client_cert = dir + "/client.pem";
  pki.client_key = dir + "/client.key";
  pki.rogue_ca_cert = dir + "/rogue-ca.pem";
  const std::string rogue_ca_key = dir + "/rogue-ca.key";
  pki.rogue_client_cert = dir + "/rogue-client.pem";
  pki.rogue_client_key = dir + "/rogue-client.key";

  Openssl run(openssl, dir);
  const std::vector<std::string> new_key = {"-newkey", "ec", "-pkeyopt",
                                            "ec_paramgen_curve:prime256v1", "-nodes"};
  auto make_ca = [&](const std::string& cert, const std::string& key, const std::string& cn) {
    std::vector<std::string> args = {"req", "-config", config, "-x509"};
    args.insert(args.end(), new_key.begin(), new_key.end());
    args.insert(args.end(), {"-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=" + cn,
                             "-extensions", "ca_ext"});
    return run.Run(args);
  };
  std::mt19937_64 rng(std::random_device{}());
  auto make_leaf = [&](const std::string& cert, const std::string& key, const std::string& cn,
                       const std::string& ca_cert, const std::string& ca_key,
                       const std::string& extensions) -> absl::Status {
    const std::string csr = cert + ".csr";
    std::vector<std::string> req = {"req", "-config", config, "-new"};
    req.insert(req.end(), new_key.begin(), new_key.end());
    req.insert(req.end(), {"-keyout", key, "-out", csr, "-subj", "/CN=" + cn});
    if (absl::Status s = run.Run(req); !s.ok()) return s;
    absl::Status s = run.Run({"x509", "-req", "-in", csr, "-CA", ca_cert, "-CAkey", ca_key,
                              "-set_serial", RandomSerial(rng), "-days", "1", "-out", cert,
                              "-extfile", config, "-extensions", extensions});
    std::filesystem::remove(csr, ec);
    return s;
  };

  if (absl::Status s = make_ca(pki.ca_cert, pki.ca_key, "signround-test-ca"); !s.ok()) return s;
  if (absl::Status s = make_leaf(pki.server_cert, pki.server_key, "localhost", pki.ca_cert,
                                 pki.ca_key, "server_ext");
      !s.ok()) {
    return s;
  }
  if (absl::Status s = make_leaf(pki.client_cert, pki.client_key, "signround-test-client",
                                 pki.ca_cert, pki.ca_key, "client_ext");
      !s.ok()) {
    return s;
  }
  if (absl::Status s = make_ca(pki.rogue_ca_cert, rogue_ca_key, "signround-rogue-ca"); !s.ok()) {
    return s;
  }
  if (absl::Status s =
          make_leaf(pki.rogue_client_cert, pki.rogue_client_key, "signround-rogue-client",
                    pki.rogue_ca_cert, rogue_ca_key, "client_ext");
      !s.ok()) {
    return s;
  }
  return pki;
}

}  // namespace signround::testing
