// A quantize job's settings: what a request asks for (QuantizeRequest, every
// field optional), the one resolution of recipes and defaults into what runs
// (QuantizeSettings), and the versioned settings file that carries them from the
// job service to the worker (`signround-worker quantize --settings FILE`). The
// worker's flags build a QuantizeRequest too, so both paths resolve here.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"
#include "src/contract/layer_override.h"
#include "src/contract/scheme.h"

namespace signround::contract {

// The version of the settings file this build writes and reads.
inline constexpr int kSettingsFileVersion = 3;

// The worker's work directory inside its output directory: finished blocks and
// the settings they were made with (the service mirrors it to the output URI).
inline constexpr char kWorkDirName[] = ".signround-work";

// The torch_dtype a packed (auto_round, auto_gptq) config.json declares.
inline constexpr char kPackedDtypeNames[] = "float16, bfloat16";
// INVALID_ARGUMENT "'<dtype>' is not one of float16, bfloat16" (exact names).
absl::Status CheckPackedDtype(absl::string_view dtype);

// The most TEQ steps per block a job may ask for.
inline constexpr int kMaxTeqIters = 100000;

// A job as asked for: nullopt / empty is "the recipe's or the default value".
struct QuantizeRequest {
  std::string recipe;                // "": default
  std::vector<std::string> formats;  // empty: auto_round; names in any case
  std::optional<int> bits;
  std::optional<int> group_size;
  std::optional<bool> sym;
  std::optional<int> iters;
  std::optional<double> lr;
  std::optional<double> minmax_lr;
  std::optional<int> nsamples;
  std::optional<int> seqlen;
  std::optional<int> batch_size;
  std::optional<uint64_t> seed;
  std::optional<bool> scale_search;
  std::optional<bool> loss_filter;
  std::optional<double> target_bits;
  std::vector<std::string> scheme_candidates;  // any case
  std::optional<int> teq_iters;
  std::string packed_dtype;  // "": float16; any case
  std::vector<LayerOverride> layer_overrides;
  bool allow_split_fused = false;
  bool allow_gguf_without_vocab = false;
};

// The settings a job runs with once every default is applied.
struct QuantizeSettings {
  std::string recipe = "default";
  std::vector<std::string> formats = {"auto_round"};  // normalized names
  int bits = 4;
  int group_size = 128;
  bool sym = true;
  int iters = 200;
  double lr = 0;         // 0: 1 / iters (the engine's default)
  double minmax_lr = 0;  // 0: lr
  int nsamples = 128;
  int seqlen = 2048;
  int batch_size = 8;
  uint64_t seed = 42;
  // Integer layers start from the importance-weighted scale search (needs calibration
  // data; the opt_rtn recipe is this with iters 0).
  bool scale_search = false;
  // The block loss leaves out its largest 0.1% squared errors.
  bool loss_filter = false;
  // (Unset in the request, both are on for the default recipe tuning a uniform 2- or 3-bit
  // symmetric integer job, no target_bits, no k-quant mix: SignRoundV2 where it won.)
  // Mixed bits (src/contract/auto_scheme.h): 0 off; else the average weight bits of the
  // decoder Linears that AutoScheme allocates, from scheme_candidates (upper-case names;
  // with target_bits and none given, DefaultSchemeCandidates(group_size)).
  double target_bits = 0;
  std::vector<std::string> scheme_candidates;
  // TEQ (src/quant/teq.h): 0 off; else the Adam steps per block that train the per-channel
  // scales folded into the norms before the block is quantized (needs calibration data).
  int teq_iters = 0;
  std::string packed_dtype = "float16";  // normalized: "float16" or "bfloat16"
  std::vector<LayerOverride> layer_overrides;
  // Not settings: waivers of the worker's refusals of what a loader would refuse
  // (a format written anyway warns in report.json). Not part of ToJson.
  bool allow_split_fused = false;
  bool allow_gguf_without_vocab = false;

  // The job's scheme (before layer overrides and format zero points).
  QuantScheme scheme() const;
  // The settings (every field but the waivers), as the job service records them.
  nlohmann::json ToJson() const;
};

// The recipe, then every field the request sets, then the defaults that depend on others
// (a k-quant mix's scheme, AutoScheme's candidates, SignRoundV2 at 2 and 3 bits).
// INVALID_ARGUMENT "<field>: ..." ("recipe", "formats[1]", "packed_dtype") for an unknown
// recipe, format or packed dtype, or a format listed twice. Other values are the callers'
// to check (job_validation for the service, the engine for the worker's flags).
absl::StatusOr<QuantizeSettings> ResolveSettings(const QuantizeRequest& request);

// The settings file: {"version": 2, ToJson()..., "allow_split_fused": b,
// "allow_gguf_without_vocab": b}.
std::string SettingsFileText(const QuantizeSettings& settings);
// Reads one back; INVALID_ARGUMENT "<where>: ..." for another version, a missing,
// unknown or mistyped key, or a value ResolveSettings would not produce.
absl::StatusOr<QuantizeSettings> ParseSettingsFile(absl::string_view text, absl::string_view where);

}  // namespace signround::contract
