#include "src/dashboard/job_json.h"

#include <cmath>
#include <type_traits>
#include <variant>

#include "src/store/job_json.h"

namespace signround::dashboard {
namespace {

using nlohmann::json;

// NaN and infinities have no JSON form.
json Number(double value) { return std::isfinite(value) ? json(value) : json(nullptr); }

json BlockJson(const jobs::BlockProgress& block) {
  const contract::BlockStats& s = block.stats;
  return {{"block_index", s.index},
          {"block_count", block.block_count},
          {"layers_quantized", s.layers_quantized},
          {"loss_iter0", Number(s.loss_iter0)},
          {"best_loss", Number(s.loss_best)},
          {"best_iteration", s.best_iter},
          {"seconds", Number(s.seconds)},
          {"resumed", block.resumed},
          {"expert_tokens", s.expert_tokens},
          {"rounded_experts", s.rounded_experts}};
}

}  // namespace

json JobSpecJson(const jobs::JobSpec& spec) {
  // The store's form (src/store/job_json.h; the spec's doubles are finite by validation),
  // with every optional field present (null when unset) and the seed as a string.
  json j = jobs::JobSpecToJson(spec);
  for (const char* key : {"sym", "iters", "seed", "scale_search", "loss_filter"}) {
    if (!j.contains(key)) j[key] = nullptr;
  }
  if (spec.seed) j["seed"] = std::to_string(*spec.seed);
  return j;
}

json JobJson(const jobs::Job& job) {
  return {{"id", job.id},
          {"tenant", job.tenant},
          {"spec", JobSpecJson(job.spec)},
          {"state", std::string(jobs::JobStateName(job.state))},
          {"create_time_ms", job.create_time_ms},
          {"start_time_ms", job.start_time_ms},
          {"end_time_ms", job.end_time_ms},
          {"attempts", job.attempts},
          {"error", job.error},
          {"blocks_done", job.blocks_done},
          {"block_count", job.block_count},
          {"latest_loss", Number(job.latest_loss)},
          {"artifacts", jobs::ArtifactListToJson(job.artifacts)},
          {"last_sequence", job.last_sequence},
          {"device", job.device},
          {"effective_settings_json", job.effective_settings_json}};
}

json JobEventJson(const jobs::JobEvent& event) {
  json out = {{"job_id", event.job_id},
              {"sequence", event.sequence},
              {"time_ms", event.time_ms},
              {"attempt", event.attempt}};
  std::visit(
      [&out](const auto& p) {
        using T = std::decay_t<decltype(p)>;
        if constexpr (std::is_same_v<T, jobs::StateChange>) {
          out["state_change"] = {{"from", std::string(jobs::JobStateName(p.from))},
                                 {"to", std::string(jobs::JobStateName(p.to))},
                                 {"reason", p.reason}};
        } else if constexpr (std::is_same_v<T, jobs::BlockProgress>) {
          out["block_progress"] = BlockJson(p);
        } else if constexpr (std::is_same_v<T, jobs::Artifact>) {
          out["artifact_uploaded"] = {{"artifact", jobs::ArtifactToJson(p)}};
        } else {
          static_assert(std::is_same_v<T, jobs::JobError>);
          out["error"] = {{"message", p.message}, {"will_retry", p.will_retry}};
        }
      },
      event.payload);
  return out;
}

std::string DumpJson(const json& value) {
  return value.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace signround::dashboard
