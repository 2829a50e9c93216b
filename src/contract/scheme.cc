#include "src/contract/scheme.h"

#include "absl/strings/str_cat.h"

namespace signround::contract {

bool SameScheme(const QuantScheme& a, const QuantScheme& b) {
  return a.data_type == b.data_type && a.bits == b.bits && a.group_size == b.group_size &&
         a.sym == b.sym && a.float_min == b.float_min;
}

bool IsSchemeBits(int bits) {
  for (int b : kSchemeBits) {
    if (b == bits) return true;
  }
  return false;
}

std::string SchemeBitsList(const char* last, bool with_keep) {
  std::vector<int> bits(std::begin(kSchemeBits), std::end(kSchemeBits));
  if (with_keep) bits.push_back(kKeepBits);
  std::string out;
  for (size_t i = 0; i < bits.size(); ++i) {
    if (i > 0) out += i + 1 == bits.size() ? last : ", ";
    absl::StrAppend(&out, bits[i]);
  }
  return out;
}

bool IsRequestGroupSize(int g) { return g == -1 || (g >= 32 && g <= 65536 && (g & (g - 1)) == 0); }

absl::Status ValidateQuantScheme(const QuantScheme& s) {
  if (!IsSchemeBits(s.bits)) {
    return absl::InvalidArgumentError(
        absl::StrCat("bits must be ", SchemeBitsList(" or "), ", got ", s.bits));
  }
  if (s.group_size != -1 && s.group_size <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("group_size must be positive or -1 (per output channel), got ", s.group_size));
  }
  if (s.float_min && s.sym) {
    return absl::InvalidArgumentError("a real-valued minimum needs an asymmetric scheme");
  }
  return absl::OkStatus();
}

std::string DescribeScheme(const QuantScheme& s) {
  return absl::StrCat(s.bits, "-bit g", s.group_size, s.sym ? " sym" : " asym",
                      s.float_min ? " float-min" : "");
}

std::string DescribeSchemeLong(const QuantScheme& s) {
  return absl::StrCat(s.bits, "-bit ", s.sym ? "symmetric" : "asymmetric", " group ", s.group_size);
}

}  // namespace signround::contract
