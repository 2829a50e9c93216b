// Jobs and their events as the dashboard's JSON API returns them: the field names of
// proto/signround/v1 (snake_case), times as Unix epoch milliseconds, states by name, a NaN
// loss as null, 64-bit seeds as decimal strings (JavaScript numbers hold 53 bits).
#pragma once

#include <string>

#include "nlohmann/json.hpp"
#include "src/jobs/job.h"

namespace signround::dashboard {

nlohmann::json JobSpecJson(const jobs::JobSpec& spec);
nlohmann::json JobJson(const jobs::Job& job);
// {"job_id", "sequence", "time_ms", "attempt"} and one of "state_change", "block_progress",
// "artifact_uploaded" or "error", as in the proto's JobEvent.
nlohmann::json JobEventJson(const jobs::JobEvent& event);

// The JSON text of `value`: invalid UTF-8 in a string (a worker's error message, say) is
// replaced by U+FFFD rather than failing the reply.
std::string DumpJson(const nlohmann::json& value);

}  // namespace signround::dashboard
