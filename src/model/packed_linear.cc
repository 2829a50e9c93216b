#include "src/model/packed_linear.h"

#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "src/common/json_util.h"
#include "src/common/status_macros.h"
#include "src/contract/scheme.h"
#include "src/tensor/bit_stream.h"
#include "src/tensor/float_bytes.h"

namespace signround {
namespace {

using ojson = nlohmann::ordered_json;

absl::Status Invalid(absl::string_view where, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(where, ": ", what));
}

absl::StatusOr<int> Bits(const ojson& v, const std::string& where) {
  if (!v.is_number_integer())
    return Invalid(where, absl::StrCat("'bits' must be an integer, got ", v.dump()));
  const int64_t bits = v.get<int64_t>();
  // Other tools write 16 (or 32) for layers they keep unquantized.
  if (bits < contract::kKeepBits && (bits < 0 || !contract::IsSchemeBits(static_cast<int>(bits)))) {
    return Invalid(where, absl::StrCat("'bits' must be ", contract::SchemeBitsList(),
                                       " or >= ", contract::kKeepBits, ", got ", bits));
  }
  return static_cast<int>(std::min<int64_t>(bits, contract::kKeepBits));
}

absl::StatusOr<int> GroupSize(const ojson& v, const std::string& where) {
  if (!v.is_number_integer()) {
    return Invalid(where, absl::StrCat("'group_size' must be an integer, got ", v.dump()));
  }
  const int64_t g = v.get<int64_t>();
  if (g != -1 && (g <= 0 || g > (int64_t{1} << 30))) {
    return Invalid(where, absl::StrCat("'group_size' must be positive or -1, got ", g));
  }
  return static_cast<int>(g);
}

bool IsFloatDataType(const ojson& v) {
  return v.is_string() && (v.get<std::string>() == "fp" || v.get<std::string>() == "float");
}

// The member `key` of `obj`, or nullptr when absent or null.
const ojson* Member(const ojson& obj, const char* key) {
  auto it = obj.find(key);
  return it == obj.end() || it->is_null() ? nullptr : &*it;
}

// Reads the optional bits / group_size / data_type of one extra_config or dynamic entry.
absl::Status ReadOverrides(const ojson& fields, const std::string& where, bool* fp,
                           std::optional<int>* bits, std::optional<int>* group_size) {
  if (!fields.is_object())
    return Invalid(where, absl::StrCat("must be an object, got ", fields.dump()));
  if (auto it = fields.find("bits"); it != fields.end()) {
    SR_ASSIGN_OR_RETURN(*bits, Bits(*it, where));
  }
  if (auto it = fields.find("group_size"); it != fields.end()) {
    SR_ASSIGN_OR_RETURN(*group_size, GroupSize(*it, where));
  }
  if (auto it = fields.find("data_type"); it != fields.end() && IsFloatDataType(*it)) *fp = true;
  return absl::OkStatus();
}

// Parse's steps (the rules, which need the private Rule, are methods).

// quant_method, normalized: "auto-round" or "gptq".
absl::StatusOr<std::string> QuantMethod(const ojson& config, const std::string& where) {
  const ojson* method = Member(config, "quant_method");
  if (method == nullptr || !method->is_string()) {
    return Invalid(where, "key 'quant_method' is missing or not a string");
  }
  const std::string m = method->get<std::string>();
  if (m == "auto-round" || m == "auto_round" || m == "intel/auto-round") return "auto-round";
  if (m == "gptq") return "gptq";
  return Invalid(
      where, absl::StrCat("quant_method '", m, "' is not supported (supported: auto-round, gptq)"));
}

// The scheme every layer has unless a rule says otherwise: bits, group_size,
// and an integer data_type.
absl::StatusOr<PackedScheme> BaseScheme(const ojson& config, const std::string& where) {
  const ojson* bits = Member(config, "bits");
  const ojson* group = Member(config, "group_size");
  if (bits == nullptr) return Invalid(where, "key 'bits' is missing");
  if (group == nullptr) return Invalid(where, "key 'group_size' is missing");
  PackedScheme scheme;
  SR_ASSIGN_OR_RETURN(scheme.bits, Bits(*bits, where));
  SR_ASSIGN_OR_RETURN(scheme.group_size, GroupSize(*group, where));
  if (scheme.bits >= 16) return Invalid(where, "'bits' must be 2, 3, 4 or 8 for the model");
  const ojson* data_type = Member(config, "data_type");
  if (data_type && !(data_type->is_string() && data_type->get<std::string>() == "int")) {
    return Invalid(where, absl::StrCat("data_type ", data_type->dump(), " is not supported (int)"));
  }
  return scheme;
}

// auto-round's packing_format (default "auto_round:auto_gptq": v1 zero points).
absl::StatusOr<ZeroPointFormat> AutoRoundZeroPoints(const ojson& config, const std::string& where) {
  const ojson* packing = Member(config, "packing_format");
  const std::string format =
      packing && packing->is_string() ? packing->get<std::string>() : "auto_round:auto_gptq";
  if (format == "auto_round:auto_gptq") return ZeroPointFormat::kV1;
  if (format == "auto_round") return ZeroPointFormat::kV2;
  return Invalid(where, absl::StrCat("packing_format '", format,
                                     "' is not supported (auto_round:auto_gptq, auto_round)"));
}

// auto-round's quantized block prefixes: the first of block_name_to_quantize
// and to_quant_block_names that names any (a comma-separated string or a list).
absl::StatusOr<std::vector<std::string>> BlockNames(const ojson& config, const std::string& where) {
  std::vector<std::string> blocks;
  for (const char* key : {"block_name_to_quantize", "to_quant_block_names"}) {
    const ojson* names = Member(config, key);
    if (names == nullptr || !blocks.empty()) continue;
    if (names->is_string()) {
      for (absl::string_view b :
           absl::StrSplit(names->get<std::string>(), ',', absl::SkipEmpty())) {
        blocks.emplace_back(b);
      }
    } else if (names->is_array()) {
      for (const ojson& b : *names) {
        if (!b.is_string()) return Invalid(where, absl::StrCat("'", key, "' must hold strings"));
        blocks.push_back(b.get<std::string>());
      }
    } else {
      return Invalid(where, absl::StrCat("'", key, "' must be a string or a list of strings"));
    }
  }
  return blocks;
}

// gptq's checkpoint_format (default "gptq": v1 zero points).
absl::StatusOr<ZeroPointFormat> GptqZeroPoints(const ojson& config, const std::string& where) {
  const ojson* format = Member(config, "checkpoint_format");
  const std::string f = format && format->is_string() ? format->get<std::string>() : "gptq";
  if (f == "gptq") return ZeroPointFormat::kV1;
  if (f == "gptq_v2") return ZeroPointFormat::kV2;
  return Invalid(where,
                 absl::StrCat("checkpoint_format '", f, "' is not supported (gptq, gptq_v2)"));
}

// Copies a tensor's bytes into aligned host memory.
template <typename T>
std::vector<T> CopyOut(const TensorRef& t) {
  absl::string_view bytes = t.file->Bytes(*t.entry);
  std::vector<T> out(bytes.size() / sizeof(T));
  std::memcpy(out.data(), bytes.data(), out.size() * sizeof(T));
  t.file->Evict(*t.entry);
  return out;
}

}  // namespace

absl::StatusOr<PackedQuantizationConfig> PackedQuantizationConfig::Parse(const ojson& config,
                                                                         const std::string& where) {
  if (!config.is_object())
    return Invalid(where, absl::StrCat("must be an object, got ", config.dump()));
  PackedQuantizationConfig c;
  SR_ASSIGN_OR_RETURN(c.method_, QuantMethod(config, where));
  SR_ASSIGN_OR_RETURN(c.scheme_, BaseScheme(config, where));
  if (c.method_ == "auto-round") {
    SR_ASSIGN_OR_RETURN(c.zeros_, AutoRoundZeroPoints(config, where));
    SR_ASSIGN_OR_RETURN(c.blocks_, BlockNames(config, where));
    SR_RETURN_IF_ERROR(c.ParseExtraConfig(config, where));
  } else {
    SR_ASSIGN_OR_RETURN(c.zeros_, GptqZeroPoints(config, where));
    SR_RETURN_IF_ERROR(c.ParseDynamic(config, where));
  }
  return c;
}

absl::Status PackedQuantizationConfig::ParseExtraConfig(const ojson& config,
                                                        const std::string& where) {
  const ojson* extra = Member(config, "extra_config");
  if (extra == nullptr) return absl::OkStatus();
  if (!extra->is_object()) return Invalid(where, "'extra_config' must be an object");
  for (const auto& [key, fields] : extra->items()) {
    Rule r;
    r.key = key;
    SR_RETURN_IF_ERROR(ReadOverrides(fields, absl::StrCat(where, ": extra_config '", key, "'"),
                                     &r.fp, &r.bits, &r.group_size));
    try {  // keys are layer names or regexes; one that does not compile matches exactly
      r.regex.emplace(key);
    } catch (const std::regex_error&) {
    }
    rules_.push_back(std::move(r));
  }
  return absl::OkStatus();
}

absl::Status PackedQuantizationConfig::ParseDynamic(const ojson& config, const std::string& where) {
  const ojson* dynamic = Member(config, "dynamic");
  if (dynamic == nullptr) return absl::OkStatus();
  if (!dynamic->is_object()) return Invalid(where, "'dynamic' must be an object");
  for (const auto& [key, fields] : dynamic->items()) {
    Rule r;
    r.key = key;
    std::string pattern = key;
    if (absl::StartsWith(key, "-:")) {
      r.skip = true;
      pattern = key.substr(2);
    } else if (absl::StartsWith(key, "+:")) {
      pattern = key.substr(2);
    }
    const std::string rule_where = absl::StrCat(where, ": dynamic '", key, "'");
    SR_RETURN_IF_ERROR(ReadOverrides(fields, rule_where, &r.fp, &r.bits, &r.group_size));
    try {
      r.regex.emplace(pattern);
    } catch (const std::regex_error& e) {
      return Invalid(rule_where, "not a valid regex");
    }
    rules_.push_back(std::move(r));
  }
  return absl::OkStatus();
}

std::optional<PackedScheme> PackedQuantizationConfig::Resolve(const std::string& name) const {
  PackedScheme s = scheme_;
  const Rule* hit = nullptr;
  if (method_ == "auto-round") {
    // An exact name wins; then the first regex that matches anywhere in the
    // name.
    for (const Rule& r : rules_) {
      if (r.key == name) hit = &r;
    }
    for (size_t i = 0; hit == nullptr && i < rules_.size(); ++i) {
      if (rules_[i].regex && std::regex_search(name, *rules_[i].regex)) hit = &rules_[i];
    }
    if (hit == nullptr && !blocks_.empty()) {
      bool in_block = false;
      for (const std::string& b : blocks_) in_block |= absl::StartsWith(name, b);
      if (!in_block) return std::nullopt;
    }
  } else {
    // GPTQModel's dynamic: the first rule whose regex matches at the start of
    // the name.
    for (const Rule& r : rules_) {
      if (std::regex_search(name, *r.regex, std::regex_constants::match_continuous)) {
        hit = &r;
        break;
      }
    }
  }
  if (hit != nullptr) {
    if (hit->skip || hit->fp) return std::nullopt;
    if (hit->bits) s.bits = *hit->bits;
    if (hit->group_size) s.group_size = *hit->group_size;
  }
  if (s.bits >= 16) return std::nullopt;
  return s;
}

absl::StatusOr<PackedLinear> OpenPackedLinear(const std::string& name, int64_t out, int64_t in,
                                              const PackedScheme& scheme, ZeroPointFormat zeros,
                                              const TensorLookup& lookup) {
  PackedLinear p;
  p.name = name;
  p.scheme = scheme;
  p.zeros = zeros;
  p.in = in;
  p.out = out;
  const int b = scheme.bits;
  p.groups = scheme.group_size > 0 ? (in + scheme.group_size - 1) / scheme.group_size : 1;
  if ((in * b) % 32 != 0 || (out * b) % 32 != 0) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": [", out, ", ", in,
                                                   "] cannot be packed at ", b,
                                                   " bits (in * bits and out * bits "
                                                   "must be multiples of 32)"));
  }
  struct Want {
    const char* suffix;
    TensorRef* ref;
    std::vector<DType> dtypes;
    std::vector<int64_t> shape;
    bool required;
  };
  const Want wants[] = {
      {".qweight", &p.qweight, {DType::kI32}, {in * b / 32, out}, true},
      {".qzeros", &p.qzeros, {DType::kI32}, {p.groups, out * b / 32}, true},
      {".scales", &p.scales, {DType::kF16, DType::kBF16, DType::kF32}, {p.groups, out}, true},
      {".g_idx", &p.g_idx, {DType::kI32}, {in}, false},
  };
  for (const Want& w : wants) {
    const std::string tensor = name + w.suffix;
    *w.ref = lookup(tensor);
    if (w.ref->entry == nullptr) {
      if (!w.required) continue;
      return absl::InvalidArgumentError(absl::StrCat(name, ": packed Linear has no tensor '",
                                                     tensor, "' (", b, "-bit, group size ",
                                                     scheme.group_size, ")"));
    }
    const TensorEntry& e = *w.ref->entry;
    bool dtype_ok = false;
    for (DType d : w.dtypes) dtype_ok |= e.dtype == d;
    if (!dtype_ok || e.shape != w.shape) {
      std::vector<std::string> names;
      for (DType d : w.dtypes) names.emplace_back(DTypeName(d));
      return absl::InvalidArgumentError(absl::StrCat(
          w.ref->file->path(), ": tensor '", tensor, "' is ", DescribeTensor(e), "; a ", b,
          "-bit, group-size-", scheme.group_size, " Linear [", out, ", ", in, "] needs ",
          absl::StrJoin(names, " or "), " [", absl::StrJoin(w.shape, ", "), "]"));
    }
  }
  return p;
}

absl::StatusOr<std::vector<float>> DequantizePackedLinear(const PackedLinear& p) {
  const int64_t K = p.in, N = p.out;
  const int b = p.scheme.bits;
  std::vector<int32_t> qweight = CopyOut<int32_t>(p.qweight);
  std::vector<int32_t> qzeros = CopyOut<int32_t>(p.qzeros);
  std::vector<float> scales =
      FloatsFromBytes(p.scales.file->Bytes(*p.scales.entry), p.scales.entry->dtype);
  p.scales.file->Evict(*p.scales.entry);
  std::vector<int32_t> g_idx;
  if (p.g_idx.entry != nullptr) {
    g_idx = CopyOut<int32_t>(p.g_idx);
    for (int64_t k = 0; k < K; ++k) {
      if (g_idx[k] < 0 || g_idx[k] >= p.groups) {
        return absl::InvalidArgumentError(absl::StrCat(p.g_idx.file->path(), ": tensor '", p.name,
                                                       ".g_idx': entry ", k, " is ", g_idx[k],
                                                       ", outside [0, ", p.groups, ")"));
      }
    }
  } else {
    const int64_t group = p.scheme.group_size > 0 ? p.scheme.group_size : K;
    g_idx.resize(K);
    for (int64_t k = 0; k < K; ++k) g_idx[k] = static_cast<int32_t>(k / group);
  }
  const int off = p.zeros == ZeroPointFormat::kV1 ? 1 : 0;
  const int64_t zero_words = N * b / 32;
  // Unpack each group's zero points once, then walk the codes column by column.
  std::vector<int32_t> zeros(p.groups * N);
  for (int64_t g = 0; g < p.groups; ++g) {
    for (int64_t n = 0; n < N; ++n) {
      zeros[g * N + n] =
          static_cast<int32_t>(UnpackBitStreamValue(qzeros.data() + g * zero_words, 1, b, n)) + off;
    }
  }
  std::vector<float> w(N * K);
  for (int64_t k = 0; k < K; ++k) {
    const int64_t g = g_idx[k];
    for (int64_t n = 0; n < N; ++n) {
      const int32_t code = static_cast<int32_t>(UnpackBitStreamValue(qweight.data() + n, N, b, k));
      w[n * K + k] = scales[g * N + n] * static_cast<float>(code - zeros[g * N + n]);
    }
  }
  return w;
}

}  // namespace signround
