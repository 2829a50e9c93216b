#include "client/spec_flags.h"

#include <cmath>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "src/common/status_macros.h"
#include "src/contract/export_formats.h"
#include "src/contract/layer_override.h"
#include "src/contract/recipe.h"

namespace signround::cli {
namespace {

namespace v1 = ::signround::v1;

absl::Status BadValue(absl::string_view flag, absl::string_view text, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(flag, ": '", text, "' is not ", what));
}

absl::StatusOr<int32_t> ParseInt32(absl::string_view flag, const std::string& text) {
  int32_t v = 0;
  if (!absl::SimpleAtoi(text, &v)) return BadValue(flag, text, "a 32-bit integer");
  return v;
}

absl::StatusOr<uint64_t> ParseUint64(absl::string_view flag, const std::string& text) {
  uint64_t v = 0;
  if (!absl::SimpleAtoi(text, &v)) return BadValue(flag, text, "an unsigned 64-bit integer");
  return v;
}

absl::StatusOr<float> ParseFloat(absl::string_view flag, const std::string& text) {
  float v = 0;
  if (!absl::SimpleAtof(text, &v) || !std::isfinite(v)) {
    return BadValue(flag, text, "a finite number");
  }
  return v;
}

absl::Status SetFormats(const std::vector<std::string>& formats, v1::JobSpec* spec) {
  for (const std::string& f : formats) {
    std::string name(absl::StripAsciiWhitespace(f));
    if (name.empty()) {
      return absl::InvalidArgumentError("--format: empty format name in the list");
    }
    spec->add_formats(name);
  }
  return absl::OkStatus();
}

// The number flags that set a plain JobSpec field (0 when not given).
template <typename T>
struct NumberFlag {
  const char* flag;
  std::optional<std::string> SpecFlags::*text;
  void (v1::JobSpec::*set)(T);
};

absl::Status SetNumbers(const SpecFlags& f, v1::JobSpec* spec) {
  static const NumberFlag<int32_t> kInts[] = {
      {"--bits", &SpecFlags::bits, &v1::JobSpec::set_bits},
      {"--group-size", &SpecFlags::group_size, &v1::JobSpec::set_group_size},
      {"--nsamples", &SpecFlags::nsamples, &v1::JobSpec::set_nsamples},
      {"--seqlen", &SpecFlags::seqlen, &v1::JobSpec::set_seqlen},
      {"--batch-size", &SpecFlags::batch_size, &v1::JobSpec::set_batch_size},
      {"--priority", &SpecFlags::priority, &v1::JobSpec::set_priority},
      {"--teq-iters", &SpecFlags::teq_iters, &v1::JobSpec::set_teq_iters},
  };
  static const NumberFlag<float> kFloats[] = {
      {"--lr", &SpecFlags::lr, &v1::JobSpec::set_lr},
      {"--minmax-lr", &SpecFlags::minmax_lr, &v1::JobSpec::set_minmax_lr},
  };
  for (const NumberFlag<int32_t>& n : kInts) {
    if (!(f.*n.text)) continue;
    SR_ASSIGN_OR_RETURN(int32_t v, ParseInt32(n.flag, *(f.*n.text)));
    (spec->*n.set)(v);
  }
  for (const NumberFlag<float>& n : kFloats) {
    if (!(f.*n.text)) continue;
    SR_ASSIGN_OR_RETURN(float v, ParseFloat(n.flag, *(f.*n.text)));
    (spec->*n.set)(v);
  }
  // Wrapped fields: set means given, even to 0.
  if (f.sym) spec->mutable_sym()->set_value(*f.sym);
  if (f.iters) {
    SR_ASSIGN_OR_RETURN(int32_t iters, ParseInt32("--iters", *f.iters));
    spec->mutable_iters()->set_value(iters);
  }
  if (f.seed) {
    SR_ASSIGN_OR_RETURN(uint64_t seed, ParseUint64("--seed", *f.seed));
    spec->mutable_seed()->set_value(seed);
  }
  if (f.scale_search) spec->mutable_scale_search()->set_value(*f.scale_search);
  if (f.loss_filter) spec->mutable_loss_filter()->set_value(*f.loss_filter);
  if (f.target_bits) {
    double bits = 0;
    if (!absl::SimpleAtod(*f.target_bits, &bits) || !std::isfinite(bits) || bits < 0) {
      return BadValue("--target-bits", *f.target_bits, "a number of bits >= 0");
    }
    spec->set_target_bits(bits);
  }
  for (const std::string& c : f.scheme_candidates) spec->add_scheme_candidates(c);
  return absl::OkStatus();
}

}  // namespace

void AddSpecFlags(CLI::App* cmd, SpecFlags* f) {
  // Keeps a flag's text for BuildJobSpec, which parses and names it.
  auto text_option = [cmd](const std::string& name, std::optional<std::string>* field,
                           const std::string& help) {
    return cmd->add_option_function<std::string>(
        name, [field](const std::string& v) { *field = v; }, help);
  };
  cmd->add_option("--model", f->model, "Model checkpoint URI (file:///dir or s3://bucket/prefix)")
      ->required();
  cmd->add_option("--calib", f->calib, "Calibration JSONL URI (may be empty for --recipe rtn)");
  cmd->add_option("--out", f->out, "Output URI for the artifacts")->required();
  cmd->add_option("--format", f->formats,
                  absl::StrCat("Export format(s), repeatable or comma-separated: ",
                               contract::kExportFormatNames))
      ->allow_extra_args(false)
      ->delimiter(',');
  text_option("--bits", &f->bits, absl::StrCat("Weight bits: ", contract::SchemeBitsList(" or ")));
  text_option("--group-size", &f->group_size, "Group size: -1 or a power of two >= 32");
  CLI::Option* sym = cmd->add_flag_function(
      "--sym", [f](int64_t) { f->sym = true; }, "Symmetric quantization");
  CLI::Option* asym = cmd->add_flag_function(
      "--asym", [f](int64_t) { f->sym = false; }, "Asymmetric quantization");
  sym->excludes(asym);
  text_option("--iters", &f->iters, "Tuning iterations per block (0: round to nearest)");
  text_option("--lr", &f->lr, "Learning rate of the rounding offsets");
  text_option("--minmax-lr", &f->minmax_lr, "Learning rate of the clipping ranges");
  text_option("--nsamples", &f->nsamples, "Calibration samples");
  text_option("--seqlen", &f->seqlen, "Tokens per calibration sample");
  text_option("--batch-size", &f->batch_size, "Samples per tuning step");
  text_option("--seed", &f->seed, "Random seed (unsigned 64-bit)");
  text_option("--recipe", &f->recipe, absl::StrCat("Defaults: ", contract::kRecipeNames));
  // Each a pair: --x sets the field true, --no-x false, neither leaves it unset.
  auto on_off = [cmd](const std::string& name, std::optional<bool>* field,
                      const std::string& help) {
    CLI::Option* on = cmd->add_flag_function(
        "--" + name, [field](int64_t) { *field = true; }, help);
    CLI::Option* off = cmd->add_flag_function(
        "--no-" + name, [field](int64_t) { *field = false; }, "Turns --" + name + " off");
    on->excludes(off);
  };
  on_off("scale-search", &f->scale_search,
         "Start integer layers from the importance-weighted scale search (needs --calib; "
         "default: the recipe's, on in opt_rtn, and on for the default recipe at --bits 2 "
         "or 3 --sym)");
  on_off("loss-filter", &f->loss_filter,
         "Leave the largest 0.1% squared errors out of the block loss (default off; on for "
         "the default recipe at --bits 2 or 3 --sym)");
  text_option("--target-bits", &f->target_bits,
              "Mixed bits: the average weight bits AutoScheme allocates (needs --calib)");
  text_option("--teq-iters", &f->teq_iters,
              "TEQ: Adam steps per block on per-channel scales folded into the norms (0: off; "
              "needs --calib)");
  cmd->add_option("--scheme-candidates", f->scheme_candidates,
                  "Schemes AutoScheme picks from, comma-separated: W<bits>G<group_size> or W16")
      ->allow_extra_args(false)
      ->delimiter(',');
  cmd->add_option("--layer-config", f->layer_config,
                  "JSON file of per-layer overrides: {\"<regex>\": {\"bits\": 2|3|4|8|16, "
                  "\"group_size\": g, \"sym\": bool}}, applied in file order");
  cmd->add_option("--device", f->device, "Device: any, cpu, cuda or cuda:N");
  text_option("--priority", &f->priority, "Priority, -1000..1000 (higher runs first)");
  cmd->add_option("--label", f->labels, "Label key=value (repeatable)")->allow_extra_args(false);
  cmd->add_option("--idempotency-key", f->idempotency_key,
                  "Submissions with the same key return the same job");
  cmd->add_flag("--allow-split-fused", f->allow_split_fused,
                "Write auto_round/auto_gptq even when fused layers (q/k/v, gate/up) have "
                "different schemes (report.json warns)");
  cmd->add_flag("--allow-gguf-without-vocab", f->allow_gguf_without_vocab,
                "Write GGUF from a checkpoint without a tokenizer (report.json warns)");
  cmd->add_option("--packed-dtype", f->packed_dtype,
                  "torch_dtype of packed auto_round/auto_gptq configs: float16 (default) or "
                  "bfloat16");
}

absl::StatusOr<v1::JobSpec> BuildJobSpec(const SpecFlags& f) {
  v1::JobSpec spec;
  spec.set_model_uri(f.model);
  spec.set_calibration_uri(f.calib);
  spec.set_output_uri(f.out);
  SR_RETURN_IF_ERROR(SetFormats(f.formats, &spec));
  SR_RETURN_IF_ERROR(SetNumbers(f, &spec));
  if (f.recipe) {
    SR_ASSIGN_OR_RETURN(v1::Recipe recipe, ParseRecipe(*f.recipe));
    spec.set_recipe(recipe);
  }
  if (!f.layer_config.empty()) {
    SR_ASSIGN_OR_RETURN(std::vector<v1::LayerOverride> overrides,
                        LoadLayerOverrides(f.layer_config));
    for (v1::LayerOverride& o : overrides) *spec.add_layer_overrides() = std::move(o);
  }
  spec.set_device(f.device);
  SR_ASSIGN_OR_RETURN(auto labels, ParseLabels(f.labels, "--label"));
  spec.mutable_labels()->insert(labels.begin(), labels.end());
  spec.set_idempotency_key(f.idempotency_key);
  spec.set_allow_split_fused(f.allow_split_fused);
  spec.set_allow_gguf_without_vocab(f.allow_gguf_without_vocab);
  spec.set_packed_dtype(f.packed_dtype);
  return spec;
}

absl::StatusOr<std::vector<v1::LayerOverride>> LoadLayerOverrides(const std::string& path) {
  // The contract's reader: the CLI accepts exactly what the worker does.
  absl::StatusOr<std::vector<contract::LayerOverride>> parsed = contract::LoadLayerConfig(path);
  if (!parsed.ok()) {
    std::string message(parsed.status().message());
    if (!absl::StrContains(message, path)) message = absl::StrCat(path, ": ", message);
    return absl::InvalidArgumentError(absl::StrCat("--layer-config: ", message));
  }
  std::vector<v1::LayerOverride> out;
  for (const contract::LayerOverride& o : *parsed) {
    v1::LayerOverride p;
    p.set_pattern(o.pattern);
    if (o.bits) p.set_bits(*o.bits);
    if (o.group_size) p.set_group_size(*o.group_size);
    if (o.sym) p.mutable_sym()->set_value(*o.sym);
    out.push_back(std::move(p));
  }
  return out;
}

absl::StatusOr<std::map<std::string, std::string>> ParseLabels(
    const std::vector<std::string>& pairs, absl::string_view flag) {
  std::map<std::string, std::string> out;
  for (const std::string& pair : pairs) {
    size_t eq = pair.find('=');
    if (eq == std::string::npos || eq == 0) {
      return BadValue(flag, pair, "key=value with a non-empty key");
    }
    std::string key = pair.substr(0, eq);
    if (!out.emplace(key, pair.substr(eq + 1)).second) {
      return absl::InvalidArgumentError(absl::StrCat(flag, ": key '", key, "' given twice"));
    }
  }
  return out;
}

absl::StatusOr<v1::JobState> ParseJobState(absl::string_view name) {
  std::string upper = absl::AsciiStrToUpper(name);
  if (!absl::StartsWith(upper, "JOB_STATE_")) upper = absl::StrCat("JOB_STATE_", upper);
  v1::JobState state = v1::JOB_STATE_UNSPECIFIED;
  if (!v1::JobState_Parse(upper, &state) || state == v1::JOB_STATE_UNSPECIFIED) {
    return BadValue("--state", name,
                    "a job state (queued, running, uploading, succeeded, failed, cancelled)");
  }
  return state;
}

absl::StatusOr<v1::Recipe> ParseRecipe(absl::string_view name) {
  if (name == "default") return v1::RECIPE_DEFAULT;
  if (name == "best") return v1::RECIPE_BEST;
  if (name == "light") return v1::RECIPE_LIGHT;
  if (name == "rtn") return v1::RECIPE_RTN;
  if (name == "opt_rtn") return v1::RECIPE_OPT_RTN;
  return BadValue("--recipe", name, absl::StrCat("a recipe (", contract::kRecipeNames, ")"));
}

}  // namespace signround::cli
