// Checks a submitted JobSpec field by field before anything is stored, and
// resolves its defaults (the recipe, then explicit settings) into the
// effective settings a worker runs with. Every error is INVALID_ARGUMENT whose
// message starts with the field's path: "spec.bits: 5 is not one of 2, 3, 4, 8".
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "src/contract/settings.h"
#include "src/jobs/job.h"

namespace signround::jobs {

// Limits on a job request.
inline constexpr int kMaxFormats = 8;
inline constexpr int kMaxLayerOverrides = 256;
inline constexpr int kMaxLabels = 32;
inline constexpr size_t kMaxPatternBytes = 1024;
inline constexpr size_t kMaxLabelValueBytes = 255;
inline constexpr size_t kMaxIdempotencyKeyBytes = 128;
inline constexpr int kMaxPriority = 1000;

// The settings a job runs with once every default is applied (the contract's
// type: src/contract/settings.h).
using EffectiveSettings = contract::QuantizeSettings;

// OK when every field of `spec` is acceptable and some device in `devices`
// (when there are any: an API server has none)
// (slot names: "cpu", "cuda:0", ...) can run it.
absl::Status ValidateJobSpec(const JobSpec& spec, const std::vector<std::string>& devices);

// The effective settings of a valid spec: contract::ResolveSettings of its request,
// errors naming the spec's field ("spec.recipe: ...").
absl::StatusOr<EffectiveSettings> ResolveSettings(const JobSpec& spec);

// Whether a slot on `device` ("cpu", "cuda:1") may run a job that asked for
// `preference` ("", "any", "cpu", "cuda", "cuda:N").
bool DeviceAccepts(absl::string_view device, absl::string_view preference);

// INVALID_ARGUMENT "<field>: ..." unless `id` looks like a job id ("j-" + 16 hex).
absl::Status ValidateJobId(absl::string_view id, absl::string_view field = "job_id");

// Label checks shared by SubmitJob and ListJobs (`field` is "spec.labels" or "labels").
absl::Status ValidateLabel(absl::string_view field, const std::string& key,
                           const std::string& value);

// A regex for layer names that compiles (ECMAScript) within the limits.
absl::Status ValidatePattern(absl::string_view field, const std::string& pattern);

}  // namespace signround::jobs
