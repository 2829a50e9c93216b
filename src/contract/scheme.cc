#include "src/contract/scheme.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace signround::contract {

bool SameScheme(const QuantScheme& a, const QuantScheme& b) {
  return a.data_type == b.data_type && a.bits == b.bits && a.group_size == b.group_size &&
         a.sym == b.sym && a.float_min == b.float_min;
}

bool IsKQuant(DataType type) { return type != DataType::kInt; }

const KQuantInfo& KQuantOf(DataType type) {
  static constexpr KQuantInfo kQ2 = {"q2_k", 2, 16, false, 4};
  static constexpr KQuantInfo kQ3 = {"q3_k", 3, 16, true, 6};
  static constexpr KQuantInfo kQ4 = {"q4_k", 4, 32, false, 6};
  static constexpr KQuantInfo kQ5 = {"q5_k", 5, 32, false, 6};
  static constexpr KQuantInfo kQ6 = {"q6_k", 6, 16, true, 8};
  switch (type) {
    case DataType::kQ2_K:
      return kQ2;
    case DataType::kQ3_K:
      return kQ3;
    case DataType::kInt:
    case DataType::kQ4_K:
      return kQ4;
    case DataType::kQ5_K:
      return kQ5;
    case DataType::kQ6_K:
      return kQ6;
  }
  return kQ4;
}

QuantScheme KQuantScheme(DataType type) {
  const KQuantInfo& k = KQuantOf(type);
  QuantScheme s;
  s.bits = k.bits;
  s.group_size = k.group_size;
  s.sym = k.sym;
  s.data_type = type;
  return s;
}

const char* DataTypeName(DataType type) { return IsKQuant(type) ? KQuantOf(type).name : "int"; }

std::optional<DataType> ParseDataType(absl::string_view name) {
  if (name == "int") return DataType::kInt;
  for (DataType t : kKQuantTypes) {
    if (name == KQuantOf(t).name) return t;
  }
  return std::nullopt;
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
  if (IsKQuant(s.data_type)) {
    const KQuantInfo& k = KQuantOf(s.data_type);
    if (s.bits != k.bits || s.group_size != k.group_size || s.sym != k.sym || s.float_min) {
      return absl::InvalidArgumentError(
          absl::StrCat(k.name, " is ", k.bits, "-bit ", k.sym ? "sym" : "asym",
                       " with sub-blocks of ", k.group_size, "; got bits ", s.bits, ", group_size ",
                       s.group_size, ", ", s.sym ? "sym" : "asym"));
    }
    return absl::OkStatus();
  }
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
  if (IsKQuant(s.data_type)) return KQuantOf(s.data_type).name;
  return absl::StrCat(s.bits, "-bit g", s.group_size, s.sym ? " sym" : " asym",
                      s.float_min ? " float-min" : "");
}

std::string DescribeSchemeLong(const QuantScheme& s) {
  if (IsKQuant(s.data_type)) return absl::AsciiStrToUpper(KQuantOf(s.data_type).name);
  return absl::StrCat(s.bits, "-bit ", s.sym ? "symmetric" : "asymmetric", " group ", s.group_size);
}

}  // namespace signround::contract
