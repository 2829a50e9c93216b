// JSON forms of the job model as the job store keeps them in its SQLite
// columns (jobs.spec, jobs.artifacts, events.payload). Writing is total;
// reading back validates every type and range and answers DATA_LOSS naming
// `where` (the column) and the key, never throws.
//
// Doubles that are not finite (a loss can be inf or NaN) are written as the
// strings "NaN", "Infinity" and "-Infinity", which JSON numbers cannot hold.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"
#include "src/jobs/job.h"

namespace signround::jobs {

nlohmann::json JobSpecToJson(const JobSpec& spec);
absl::StatusOr<JobSpec> JobSpecFromJson(const nlohmann::json& json, absl::string_view where);

nlohmann::json ArtifactToJson(const Artifact& artifact);
absl::StatusOr<Artifact> ArtifactFromJson(const nlohmann::json& json, absl::string_view where);
nlohmann::json ArtifactListToJson(const std::vector<Artifact>& artifacts);
absl::StatusOr<std::vector<Artifact>> ArtifactListFromJson(const nlohmann::json& json,
                                                           absl::string_view where);

// The events.kind of a payload: "state_change", "block_progress", "artifact" or "error".
absl::string_view EventKind(const EventPayload& payload);
// The payload's fields (without the kind).
nlohmann::json EventPayloadToJson(const EventPayload& payload);
// DATA_LOSS for an unknown `kind` or a bad field.
absl::StatusOr<EventPayload> EventPayloadFromJson(absl::string_view kind,
                                                  const nlohmann::json& json,
                                                  absl::string_view where);

// Compact text of `json`. INVALID_ARGUMENT naming `where` when a string in it
// is not valid UTF-8 (JSON text cannot carry it).
absl::StatusOr<std::string> DumpJson(const nlohmann::json& json, absl::string_view where);
// Parses a stored column; DATA_LOSS naming `where` when it is not JSON.
absl::StatusOr<nlohmann::json> ParseStoredJson(absl::string_view text, absl::string_view where);

}  // namespace signround::jobs
