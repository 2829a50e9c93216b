#include "server/proto_convert.h"

#include <map>

#include "absl/strings/str_cat.h"
#include "google/protobuf/util/time_util.h"
#include "src/jobs/list_validation.h"

namespace signround::server {
namespace {

using google::protobuf::util::TimeUtil;

// By the proto's Recipe values.
const char* const kRecipes[] = {"", "default", "best", "light", "rtn", "opt_rtn"};
constexpr int kRecipeCount = sizeof(kRecipes) / sizeof(kRecipes[0]);

std::string RecipeName(pb::Recipe r) {
  const int i = static_cast<int>(r);
  // An unknown enum value is kept visible, so validation can name it.
  if (i < 0 || i >= kRecipeCount) return absl::StrCat("recipe#", i);
  return kRecipes[i];
}

pb::Recipe RecipeOf(const std::string& name) {
  for (int i = 1; i < kRecipeCount; ++i) {
    if (name == kRecipes[i]) return static_cast<pb::Recipe>(i);
  }
  return pb::RECIPE_UNSPECIFIED;
}

void SetTime(int64_t ms, google::protobuf::Timestamp* t) {
  *t = TimeUtil::MillisecondsToTimestamp(ms);
}

void ToProto(const jobs::Artifact& a, pb::Artifact* out) {
  out->set_format(a.format);
  out->set_uri(a.uri);
  out->set_bytes(a.bytes);
  out->set_sha256(a.sha256);
}

}  // namespace

jobs::JobSpec FromProto(const pb::JobSpec& p) {
  jobs::JobSpec s;
  s.model_uri = p.model_uri();
  s.calibration_uri = p.calibration_uri();
  s.output_uri = p.output_uri();
  s.formats.assign(p.formats().begin(), p.formats().end());
  s.bits = p.bits();
  s.group_size = p.group_size();
  if (p.has_sym()) s.sym = p.sym().value();
  if (p.has_iters()) s.iters = p.iters().value();
  s.lr = p.lr();
  s.minmax_lr = p.minmax_lr();
  s.nsamples = p.nsamples();
  s.seqlen = p.seqlen();
  s.batch_size = p.batch_size();
  if (p.has_seed()) s.seed = p.seed().value();
  if (p.has_scale_search()) s.scale_search = p.scale_search().value();
  if (p.has_loss_filter()) s.loss_filter = p.loss_filter().value();
  s.recipe = RecipeName(p.recipe());
  for (const pb::LayerOverride& o : p.layer_overrides()) {
    // The proto's 0 is "unset".
    contract::LayerOverride l;
    l.pattern = o.pattern();
    if (o.bits() != 0) l.bits = o.bits();
    if (o.group_size() != 0) l.group_size = o.group_size();
    if (o.has_sym()) l.sym = o.sym().value();
    s.layer_overrides.push_back(std::move(l));
  }
  s.device = p.device();
  s.priority = p.priority();
  s.labels.insert(p.labels().begin(), p.labels().end());
  s.idempotency_key = p.idempotency_key();
  s.allow_split_fused = p.allow_split_fused();
  s.allow_gguf_without_vocab = p.allow_gguf_without_vocab();
  s.packed_dtype = p.packed_dtype();
  s.target_bits = p.target_bits();
  s.scheme_candidates.assign(p.scheme_candidates().begin(), p.scheme_candidates().end());
  s.teq_iters = p.teq_iters();
  return s;
}

absl::StatusOr<jobs::ListQuery> FromProto(const pb::ListJobsRequest& r) {
  jobs::ListRequest request;
  request.state = static_cast<int>(r.state());
  request.page_size = r.page_size();
  request.labels.insert(r.labels().begin(), r.labels().end());
  request.page_token = r.page_token();
  return jobs::ValidateListRequest(request);
}

void ToProto(const jobs::JobSpec& s, pb::JobSpec* p) {
  p->set_model_uri(s.model_uri);
  p->set_calibration_uri(s.calibration_uri);
  p->set_output_uri(s.output_uri);
  for (const std::string& f : s.formats) p->add_formats(f);
  p->set_bits(s.bits);
  p->set_group_size(s.group_size);
  if (s.sym) p->mutable_sym()->set_value(*s.sym);
  if (s.iters) p->mutable_iters()->set_value(*s.iters);
  p->set_lr(static_cast<float>(s.lr));
  p->set_minmax_lr(static_cast<float>(s.minmax_lr));
  p->set_nsamples(s.nsamples);
  p->set_seqlen(s.seqlen);
  p->set_batch_size(s.batch_size);
  if (s.seed) p->mutable_seed()->set_value(*s.seed);
  if (s.scale_search) p->mutable_scale_search()->set_value(*s.scale_search);
  if (s.loss_filter) p->mutable_loss_filter()->set_value(*s.loss_filter);
  p->set_recipe(RecipeOf(s.recipe));
  for (const contract::LayerOverride& l : s.layer_overrides) {
    pb::LayerOverride* o = p->add_layer_overrides();
    o->set_pattern(l.pattern);
    o->set_bits(l.bits.value_or(0));
    o->set_group_size(l.group_size.value_or(0));
    if (l.sym) o->mutable_sym()->set_value(*l.sym);
  }
  p->set_device(s.device);
  p->set_priority(s.priority);
  p->mutable_labels()->insert(s.labels.begin(), s.labels.end());
  p->set_idempotency_key(s.idempotency_key);
  p->set_allow_split_fused(s.allow_split_fused);
  p->set_allow_gguf_without_vocab(s.allow_gguf_without_vocab);
  p->set_packed_dtype(s.packed_dtype);
  p->set_target_bits(s.target_bits);
  for (const std::string& c : s.scheme_candidates) p->add_scheme_candidates(c);
  p->set_teq_iters(s.teq_iters);
}

void ToProto(const jobs::Job& j, pb::Job* p) {
  p->set_id(j.id);
  ToProto(j.spec, p->mutable_spec());
  p->set_state(static_cast<pb::JobState>(j.state));
  SetTime(j.create_time_ms, p->mutable_create_time());
  if (j.start_time_ms != 0) SetTime(j.start_time_ms, p->mutable_start_time());
  if (j.end_time_ms != 0) SetTime(j.end_time_ms, p->mutable_end_time());
  p->set_attempts(j.attempts);
  // An earlier attempt's error means nothing once the job has succeeded.
  if (j.state != jobs::JobState::kSucceeded) p->set_error(j.error);
  p->set_blocks_done(j.blocks_done);
  p->set_block_count(j.block_count);
  p->set_latest_loss(j.latest_loss);
  // A retried upload records a file again: the latest record of each URI counts.
  std::map<std::string, size_t> index;
  for (const jobs::Artifact& a : j.artifacts) {
    auto [it, inserted] = index.emplace(a.uri, p->artifacts_size());
    ToProto(a, inserted ? p->add_artifacts() : p->mutable_artifacts(static_cast<int>(it->second)));
  }
  p->set_last_sequence(j.last_sequence);
  p->set_device(j.device);
  p->set_effective_settings_json(j.effective_settings_json);
  p->set_tenant(j.tenant);
}

void ToProto(const jobs::JobEvent& e, pb::JobEvent* p) {
  p->set_job_id(e.job_id);
  p->set_sequence(e.sequence);
  SetTime(e.time_ms, p->mutable_time());
  p->set_attempt(e.attempt);
  if (const auto* c = std::get_if<jobs::StateChange>(&e.payload)) {
    pb::StateChange* out = p->mutable_state_change();
    out->set_from(static_cast<pb::JobState>(c->from));
    out->set_to(static_cast<pb::JobState>(c->to));
    out->set_reason(c->reason);
  } else if (const auto* b = std::get_if<jobs::BlockProgress>(&e.payload)) {
    pb::BlockProgress* out = p->mutable_block_progress();
    out->set_block_index(b->stats.index);
    out->set_block_count(b->block_count);
    out->set_layers_quantized(b->stats.layers_quantized);
    out->set_loss_iter0(b->stats.loss_iter0);
    out->set_best_loss(b->stats.loss_best);
    out->set_best_iteration(b->stats.best_iter);
    out->set_seconds(b->stats.seconds);
    out->set_resumed(b->resumed);
    out->mutable_expert_tokens()->Add(b->stats.expert_tokens.begin(), b->stats.expert_tokens.end());
    out->mutable_rounded_experts()->Add(b->stats.rounded_experts.begin(),
                                        b->stats.rounded_experts.end());
  } else if (const auto* a = std::get_if<jobs::Artifact>(&e.payload)) {
    ToProto(*a, p->mutable_artifact_uploaded()->mutable_artifact());
  } else if (const auto* err = std::get_if<jobs::JobError>(&e.payload)) {
    p->mutable_error()->set_message(err->message);
    p->mutable_error()->set_will_retry(err->will_retry);
  }
}

}  // namespace signround::server
