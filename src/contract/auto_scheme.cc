#include "src/contract/auto_scheme.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "src/common/utf8.h"
#include "src/contract/export_formats.h"
#include "src/contract/scheme.h"
#include "src/contract/settings.h"

namespace signround::contract {
namespace {

absl::Status Bad(absl::string_view field, absl::string_view message) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", message));
}

}  // namespace

bool SchemeCandidate::keep() const { return bits == kKeepBits; }

absl::StatusOr<SchemeCandidate> ParseSchemeCandidate(absl::string_view text) {
  const std::string upper = absl::AsciiStrToUpper(text);
  auto bad = [&] {
    return absl::InvalidArgumentError(
        absl::StrCat(QuoteUntrusted(text), " is not W<bits>G<group_size> or W16"));
  };
  if (upper.size() < 2 || upper.size() > 16 || upper[0] != 'W') return bad();
  for (char ch : absl::string_view(upper).substr(1)) {
    if (!absl::ascii_isdigit(ch) && ch != 'G' && ch != '-') return bad();
  }
  SchemeCandidate c;
  const size_t g = upper.find('G');
  if (g == std::string::npos) {
    if (upper != "W16") return bad();
    c.bits = kKeepBits;
    c.group_size = 0;
    return c;
  }
  if (!absl::SimpleAtoi(absl::string_view(upper).substr(1, g - 1), &c.bits) ||
      !absl::SimpleAtoi(absl::string_view(upper).substr(g + 1), &c.group_size)) {
    return bad();
  }
  if (!IsSchemeBits(c.bits)) {
    return absl::InvalidArgumentError(
        absl::StrCat(QuoteUntrusted(text), ": bits must be ", SchemeBitsList(" or ", true)));
  }
  if (!IsRequestGroupSize(c.group_size)) {
    return absl::InvalidArgumentError(absl::StrCat(
        QuoteUntrusted(text), ": the group size must be -1 or a power of two from 32 to 65536"));
  }
  return c;
}

std::string SchemeCandidateName(const SchemeCandidate& c) {
  if (c.keep()) return "W16";
  return absl::StrCat("W", c.bits, "G", c.group_size);
}

std::vector<std::string> DefaultSchemeCandidates(int group_size) {
  std::vector<std::string> out;
  for (int bits : kSchemeBits) out.push_back(SchemeCandidateName({bits, group_size}));
  out.push_back("W16");
  return out;
}

absl::Status CheckAutoScheme(const QuantizeSettings& s) {
  if (!std::isfinite(s.target_bits) || s.target_bits < 0) {
    return Bad("target_bits", "must be 0 (off) or a number of bits");
  }
  if (s.target_bits == 0) {
    if (!s.scheme_candidates.empty()) {
      return Bad("scheme_candidates", "given without target_bits");
    }
    return absl::OkStatus();
  }
  if (KQuantMixOf(s.formats)) {
    return Bad("target_bits", "a GGUF k-quant mix has llama.cpp's types; no mixed bits with it");
  }
  if (s.scheme_candidates.size() < 2 ||
      s.scheme_candidates.size() > static_cast<size_t>(kMaxSchemeCandidates)) {
    return Bad("scheme_candidates", absl::StrCat("needs 2 to ", kMaxSchemeCandidates, ", got ",
                                                 s.scheme_candidates.size()));
  }
  std::set<std::string> seen;
  int lo = kKeepBits, hi = 0;
  for (size_t i = 0; i < s.scheme_candidates.size(); ++i) {
    const std::string field = absl::StrCat("scheme_candidates[", i, "]");
    absl::StatusOr<SchemeCandidate> c = ParseSchemeCandidate(s.scheme_candidates[i]);
    if (!c.ok()) return Bad(field, c.status().message());
    const std::string name = SchemeCandidateName(*c);
    if (!seen.insert(name).second) return Bad(field, absl::StrCat(name, " is listed twice"));
    lo = std::min(lo, c->bits);
    hi = std::max(hi, c->bits);
    if (c->keep()) continue;
    QuantScheme scheme = s.scheme();
    scheme.bits = c->bits;
    scheme.group_size = c->group_size;
    for (const std::string& format : s.formats) {
      if (absl::Status st = CheckFormatScheme(format, scheme); !st.ok()) {
        return Bad(field, absl::StrCat(format, " cannot hold ", name, ": ", st.message()));
      }
    }
  }
  if (s.target_bits < lo || s.target_bits > hi) {
    return Bad("target_bits",
               absl::StrCat(s.target_bits, " is outside the candidates' ", lo, "..", hi, " bits"));
  }
  return absl::OkStatus();
}

}  // namespace signround::contract
