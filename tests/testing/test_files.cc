#include "tests/testing/test_files.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>

namespace signround::testing {

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = std::string(base && *base ? base : "/tmp") + "/signround-test-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::string TempDir::File(absl::string_view name) const { return path_ + "/" + std::string(name); }

void WriteFile(const std::string& path, absl::string_view contents) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(contents.data(), static_cast<std::streamsize>(contents.size()));
  if (!out) throw std::runtime_error("cannot write " + path);
}

std::string WithHeaderLength(uint64_t header_len, absl::string_view rest) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((header_len >> (8 * i)) & 0xff);
  out.append(rest.data(), rest.size());
  return out;
}

std::string SafetensorsBytes(absl::string_view header_json, absl::string_view data) {
  return WithHeaderLength(header_json.size(), std::string(header_json) + std::string(data));
}

std::string SharedDir() {
  const char* env = std::getenv("SIGNROUND_SHARED_DIR");
  std::string dir = env && *env ? env : SIGNROUND_SHARED_DIR;
  struct stat st;
  if (::stat((dir + "/models").c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) return "";
  return dir;
}

}  // namespace signround::testing
