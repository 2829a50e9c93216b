// The flags of `signround submit` that mirror JobSpec, and their conversion
// into a SubmitJob request: a flag not given leaves its field unset (the server
// applies the recipe's defaults); a flag given sets its field, even to 0.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "signround/v1/quantization_service.pb.h"

namespace signround::cli {

// The submit flags as given. Numbers stay text until BuildJobSpec so that a
// bad value is reported with its flag; nullopt: the flag was not given.
struct SpecFlags {
  std::string model;
  std::string calib;
  std::string out;
  std::vector<std::string> formats;
  std::optional<std::string> bits;
  std::optional<std::string> group_size;
  std::optional<bool> sym;
  std::optional<std::string> iters;
  std::optional<std::string> lr;
  std::optional<std::string> minmax_lr;
  std::optional<std::string> nsamples;
  std::optional<std::string> seqlen;
  std::optional<std::string> batch_size;
  std::optional<std::string> seed;
  std::optional<bool> scale_search;
  std::optional<bool> loss_filter;
  std::optional<std::string> target_bits;
  std::optional<std::string> teq_iters;
  std::vector<std::string> scheme_candidates;
  std::optional<std::string> recipe;
  std::string layer_config;  // a file path; "" for none
  std::string device;
  std::optional<std::string> priority;
  std::vector<std::string> labels;  // key=value
  std::string idempotency_key;
  bool allow_split_fused = false;
  bool allow_gguf_without_vocab = false;
  std::string packed_dtype;  // "" when not given (the server's default, float16)
};

// Adds the JobSpec flags to `cmd`, storing into `flags` (which must outlive it).
void AddSpecFlags(CLI::App* cmd, SpecFlags* flags);

// The JobSpec for `flags`, reading --layer-config. INVALID_ARGUMENT names the
// flag (and for --layer-config the file and the key) that is wrong.
absl::StatusOr<signround::v1::JobSpec> BuildJobSpec(const SpecFlags& flags);

// The overrides of a layer config file (the worker's format: {"<regex>":
// {"bits": 2|3|4|8|16, "group_size": g, "sym": bool}}) in file order.
absl::StatusOr<std::vector<signround::v1::LayerOverride>> LoadLayerOverrides(
    const std::string& path);

// key=value pairs (split at the first '='; the key must not be empty, and no
// key twice). `flag` names the option in errors.
absl::StatusOr<std::map<std::string, std::string>> ParseLabels(
    const std::vector<std::string>& pairs, absl::string_view flag);

// A job state by name: "running", "RUNNING" or "JOB_STATE_RUNNING".
absl::StatusOr<signround::v1::JobState> ParseJobState(absl::string_view name);

// A recipe by name: default, best, light or rtn.
absl::StatusOr<signround::v1::Recipe> ParseRecipe(absl::string_view name);

}  // namespace signround::cli
