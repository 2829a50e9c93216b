#include "src/export/gguf_quants.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "src/contract/export_formats.h"
#include "src/export/gguf_kquants.h"
#include "src/tensor/half.h"

namespace signround {
namespace {

constexpr int64_t kBlock = 32;

void AppendU16(std::string* out, uint16_t v) {
  out->push_back(static_cast<char>(v & 0xff));
  out->push_back(static_cast<char>(v >> 8));
}

absl::Status BadCode(const IntegerLayer& l, int64_t n, int64_t g, absl::string_view what) {
  return absl::InternalError(absl::StrCat(l.name, ": row ", n, " group ", g, ": ", what));
}

// Appends row `n` of k-quant layer `l` as `type` super-blocks.
absl::Status EncodeKQuantRow(const IntegerLayer& l, int64_t n, GgmlType type, std::string* out) {
  const int64_t per_super = contract::kKQuantSuperBlock / l.group();
  const bool asym = !l.scheme.sym;
  auto byte = [](absl::string_view b, int64_t i) { return static_cast<uint8_t>(b[i]); };
  KQuantBlock block;
  for (int64_t sb = 0; sb < l.supers(); ++sb) {
    const int64_t k0 = sb * contract::kKQuantSuperBlock;
    std::memcpy(block.q, l.codes.data() + n * l.in + k0, contract::kKQuantSuperBlock);
    for (int64_t j = 0; j < per_super; ++j) {
      const int64_t g = n * l.groups() + sb * per_super + j;
      block.scales[j] = byte(l.sub_scales, g);
      block.mins[j] = asym ? byte(l.sub_mins, g) : 0;
    }
    block.d = l.d_bits(n, sb);
    block.dmin = asym ? l.dmin_bits(n, sb) : 0;
    absl::Status s = PackKQuantBlock(type, block, out);
    if (!s.ok()) {
      return absl::InternalError(
          absl::StrCat(l.name, ": row ", n, " super-block ", sb, ": ", s.message()));
    }
  }
  return absl::OkStatus();
}

}  // namespace

std::optional<GgmlType> GgmlTypeForScheme(const QuantScheme& s) {
  switch (s.data_type) {
    case contract::DataType::kInt:
      break;
    case contract::DataType::kQ2_K:
      return GgmlType::kQ2_K;
    case contract::DataType::kQ3_K:
      return GgmlType::kQ3_K;
    case contract::DataType::kQ4_K:
      return GgmlType::kQ4_K;
    case contract::DataType::kQ5_K:
      return GgmlType::kQ5_K;
    case contract::DataType::kQ6_K:
      return GgmlType::kQ6_K;
  }
  std::optional<contract::GgufFormat> format = contract::GgufFormatForScheme(s);
  if (!format) return std::nullopt;
  return static_cast<GgmlType>(contract::GgufFormatOf(*format).ggml_type);
}

absl::Status EncodeIntegerRow(const IntegerLayer& l, int64_t n, GgmlType type, std::string* out) {
  if (contract::IsKQuant(l.scheme.data_type) && GgmlTypeForScheme(l.scheme) == type &&
      l.in % contract::kKQuantSuperBlock == 0 && n >= 0 && n < l.out) {
    return EncodeKQuantRow(l, n, type, out);
  }
  if (GgmlTypeForScheme(l.scheme) != type || l.in % kBlock != 0 || n < 0 || n >= l.out) {
    return absl::InternalError(absl::StrCat(l.name, ": cannot encode row ", n, " as ",
                                            GgmlTypeName(type), " (", l.scheme.bits, "-bit group ",
                                            l.scheme.group_size, ", in ", l.in, ")"));
  }
  const int max_code = (1 << l.scheme.bits) - 1;
  const int sym_zero = 1 << (l.scheme.bits - 1);
  for (int64_t g = 0; g < l.in / kBlock; ++g) {
    const uint16_t d = l.scale_bits(n, g);
    const int zp = l.scheme.float_min ? 0 : l.zero(n, g);
    const unsigned char* code =
        reinterpret_cast<const unsigned char*>(l.codes.data()) + n * l.in + g * kBlock;
    for (int j = 0; j < kBlock; ++j) {
      if (code[j] > max_code) {
        return BadCode(l, n, g, absl::StrCat("code ", int{code[j]}, " exceeds ", max_code));
      }
    }
    if (l.scheme.sym && zp != sym_zero) {
      return BadCode(l, n, g, absl::StrCat("symmetric zero point is ", zp, ", not ", sym_zero));
    }
    AppendU16(out, d);
    switch (type) {
      case GgmlType::kQ4_1:
        // A float_min layer's m as tuned; an integer zero point as m = -zp * d (exact in fp32:
        // zp < 16 times an 11-bit mantissa; one rounding to fp16).
        AppendU16(out, l.scheme.float_min ? l.min_bits(n, g)
                                          : FloatToF16(-static_cast<float>(zp) * F16ToFloat(d)));
        [[fallthrough]];
      case GgmlType::kQ4_0:
        for (int j = 0; j < kBlock / 2; ++j) {
          out->push_back(static_cast<char>(code[j] | (code[j + kBlock / 2] << 4)));
        }
        break;
      case GgmlType::kQ8_0:
        for (int j = 0; j < kBlock; ++j) out->push_back(static_cast<char>(code[j] - 128));
        break;
      default:
        break;
    }
  }
  return absl::OkStatus();
}

void QuantizeRowQ8_0(absl::Span<const float> x, std::string* out) {
  for (size_t b = 0; b + kBlock <= x.size(); b += kBlock) {
    float amax = 0.0f;
    for (int j = 0; j < kBlock; ++j) amax = std::max(amax, std::fabs(x[b + j]));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    AppendU16(out, FloatToF16(d));
    for (int j = 0; j < kBlock; ++j) {
      out->push_back(static_cast<char>(static_cast<int8_t>(std::roundf(x[b + j] * id))));
    }
  }
}

absl::Status EncodeFloatRow(absl::Span<const float> x, GgmlType type, std::string* out) {
  switch (type) {
    case GgmlType::kF32:
      out->append(reinterpret_cast<const char*>(x.data()), x.size() * sizeof(float));
      return absl::OkStatus();
    case GgmlType::kF16:
      for (float v : x) AppendU16(out, FloatToF16(v));
      return absl::OkStatus();
    case GgmlType::kQ8_0:
      if (x.size() % kBlock != 0) break;
      QuantizeRowQ8_0(x, out);
      return absl::OkStatus();
    default:
      break;
  }
  return absl::InternalError(
      absl::StrCat("cannot encode ", x.size(), " floats as ", GgmlTypeName(type)));
}

}  // namespace signround
