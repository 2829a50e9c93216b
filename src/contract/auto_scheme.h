// Mixed bits (AutoScheme): a job with target_bits gets one scheme per group of layers
// from its scheme candidates, chosen to minimise the summed sensitivity of the layers
// under that average of weight bits (src/pipeline/auto_scheme.h measures and allocates).
// Here: the candidates' names, their defaults and the rules a job's settings must meet.
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace signround::contract {

struct QuantizeSettings;

// One candidate: "W<bits>G<group_size>" (the job's sym), e.g. "W3G32", "W4G-1", or "W16"
// (the layer stays 16-bit). Names are case-insensitive on input, upper case once resolved.
struct SchemeCandidate {
  int bits = 4;  // kKeepBits: 16-bit
  int group_size = 128;
  bool keep() const;
};

// INVALID_ARGUMENT "'<text>' is not W<bits>G<group_size> or W16" or the scheme's rule.
absl::StatusOr<SchemeCandidate> ParseSchemeCandidate(absl::string_view text);
std::string SchemeCandidateName(const SchemeCandidate& candidate);

// What a job with target_bits and no candidates picks from: 2, 3, 4 and 8 bits at
// `group_size`, and 16-bit.
std::vector<std::string> DefaultSchemeCandidates(int group_size);

inline constexpr int kMaxSchemeCandidates = 8;

// The AutoScheme settings of `s`, INVALID_ARGUMENT "target_bits: ..." or
// "scheme_candidates[i]: ...": target_bits 0 (off, and then no candidates) or between the
// smallest and the largest candidate's bits; 2 to kMaxSchemeCandidates distinct valid
// candidates; no GGUF k-quant mix (its types are llama.cpp's); every format able to hold
// every candidate.
absl::Status CheckAutoScheme(const QuantizeSettings& s);

}  // namespace signround::contract
