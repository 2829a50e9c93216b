#include "src/export/sharded_safetensors.h"

#include <algorithm>
#include <cctype>
#include <cstdio>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "src/common/file_util.h"
#include "src/common/status_macros.h"
#include "src/model/checkpoint.h"

namespace signround {
namespace {

std::string ShardName(size_t index, size_t count) {
  char name[64];
  std::snprintf(name, sizeof(name), "model-%05zu-of-%05zu.safetensors", index + 1, count);
  return name;
}

}  // namespace

bool NaturalLess(absl::string_view a, absl::string_view b) {
  size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    if (absl::ascii_isdigit(a[i]) && absl::ascii_isdigit(b[j])) {
      size_t i2 = i, j2 = j;
      while (i2 < a.size() && absl::ascii_isdigit(a[i2])) ++i2;
      while (j2 < b.size() && absl::ascii_isdigit(b[j2])) ++j2;
      // Compare digit runs by value: strip leading zeros, then by length, then text.
      absl::string_view x = a.substr(i, i2 - i), y = b.substr(j, j2 - j);
      while (x.size() > 1 && x[0] == '0') x.remove_prefix(1);
      while (y.size() > 1 && y[0] == '0') y.remove_prefix(1);
      if (x.size() != y.size()) return x.size() < y.size();
      if (x != y) return x < y;
      i = i2;
      j = j2;
      continue;
    }
    if (a[i] != b[j]) return a[i] < b[j];
    ++i;
    ++j;
  }
  return a.size() - i < b.size() - j;
}

absl::Status WriteShardedSafetensors(const std::string& dir, std::vector<TensorSpec> specs,
                                     const TensorBytesFn& bytes, uint64_t max_shard_bytes) {
  std::sort(specs.begin(), specs.end(),
            [](const TensorSpec& a, const TensorSpec& b) { return NaturalLess(a.name, b.name); });
  std::vector<std::vector<TensorSpec>> shards(1);
  uint64_t shard_bytes = 0, total = 0;
  for (TensorSpec& spec : specs) {
    const uint64_t n = spec.nbytes();
    if (!shards.back().empty() && shard_bytes + n > max_shard_bytes) {
      shards.emplace_back();
      shard_bytes = 0;
    }
    shard_bytes += n;
    total += n;
    shards.back().push_back(std::move(spec));
  }
  if (shards.size() == 1) {
    return WriteSafetensors(JoinPath(dir, kSingleFileName), std::move(shards[0]), bytes);
  }
  nlohmann::json weight_map = nlohmann::json::object();
  for (size_t i = 0; i < shards.size(); ++i) {
    const std::string name = ShardName(i, shards.size());
    for (const TensorSpec& s : shards[i]) weight_map[s.name] = name;
    SR_RETURN_IF_ERROR(WriteSafetensors(JoinPath(dir, name), std::move(shards[i]), bytes));
  }
  nlohmann::json index = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
  return WriteFileAtomically(JoinPath(dir, kIndexFileName), index.dump(2) + "\n");
}

absl::StatusOr<uint64_t> ParseByteSize(absl::string_view text) {
  std::string t = absl::AsciiStrToUpper(absl::StripAsciiWhitespace(text));
  struct Unit {
    const char* suffix;
    uint64_t scale;
  };
  static constexpr Unit kUnits[] = {
      {"KIB", 1ull << 10},   {"MIB", 1ull << 20},      {"GIB", 1ull << 30},
      {"TIB", 1ull << 40},   {"KB", 1000ull},          {"MB", 1000000ull},
      {"GB", 1000000000ull}, {"TB", 1000000000000ull}, {"B", 1}};
  uint64_t scale = 1;
  for (const Unit& u : kUnits) {
    const size_t n = std::char_traits<char>::length(u.suffix);
    if (t.size() > n && t.compare(t.size() - n, n, u.suffix) == 0) {
      t.resize(t.size() - n);
      scale = u.scale;
      break;
    }
  }
  uint64_t value = 0;
  if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(t), &value) || value == 0 ||
      value > UINT64_MAX / scale) {
    return absl::InvalidArgumentError(absl::StrCat(
        "size '", text, "' is not a positive byte count like 5GB, 500MB, 2GiB or 1000000"));
  }
  return value * scale;
}

}  // namespace signround
