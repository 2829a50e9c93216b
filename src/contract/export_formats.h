// The export formats a job can write and what scheme each can hold: the one
// table the service's validation, the worker's flags, the engine's planning and
// the exporters read. Adding a format starts here (README "Adding a format").
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "src/contract/scheme.h"

namespace signround::contract {

enum class FormatKind { kFake, kAutoRound, kAutoGptq, kGguf };

struct ExportFormat {
  FormatKind kind = FormatKind::kAutoRound;
  std::string name;      // as written on the command line: "auto_round", "gguf:q4_0"
  std::string dir_name;  // its subdirectory of the output: "auto_round", "gguf-q4_0"
};

// Every format name, for help texts and messages.
inline constexpr char kExportFormatNames[] =
    "fake, auto_round, auto_gptq, gguf:q4_0, gguf:q4_1, gguf:q8_0, gguf:q2_k, gguf:q3_k_s, "
    "gguf:q3_k_m, gguf:q4_k_s, gguf:q4_k_m, gguf:q5_k_s, gguf:q5_k_m, gguf:q6_k";

// The format called exactly `name`; INVALID_ARGUMENT "'<name>' is not one of <names>".
absl::StatusOr<ExportFormat> FindExportFormat(absl::string_view name);

// The format whose output subdirectory is `dir_name` ("gguf-q4_0" -> gguf:q4_0), or nullopt.
std::optional<ExportFormat> FindExportFormatByDir(absl::string_view dir_name);

// A comma-separated list ("auto_round,gguf:q4_0", entries trimmed). INVALID_ARGUMENT
// "format '<name>' is not one of ..." / "format '<name>' is listed twice".
absl::StatusOr<std::vector<ExportFormat>> ParseExportFormats(absl::string_view list);

// Whether the format stores integer zero points only (auto_round, auto_gptq): it
// cannot hold a float_min layer.
bool HoldsOnlyIntegerZeros(FormatKind kind);

// --- GGUF block types ---------------------------------------------------------
// The legacy GGUF formats store every quantized layer in one ggml block type of
// groups of kGgufGroupSize. The k-quant formats are llama.cpp's mixes (its
// llama-quantize presets): a base k-quant type (`kquant`) that most layers get,
// and more bits for some tensors by their role and layer (src/export/gguf_mix.h).
// GgufFormatOf's table has a row per format (static_assert).
enum class GgufFormat {
  kQ4_0,
  kQ4_1,
  kQ8_0,
  kQ2_K,
  kQ3_K_S,
  kQ3_K_M,
  kQ4_K_S,
  kQ4_K_M,
  kQ5_K_S,
  kQ5_K_M,
  kQ6_K,
};
inline constexpr GgufFormat kGgufFormats[] = {
    GgufFormat::kQ4_0,   GgufFormat::kQ4_1,   GgufFormat::kQ8_0,   GgufFormat::kQ2_K,
    GgufFormat::kQ3_K_S, GgufFormat::kQ3_K_M, GgufFormat::kQ4_K_S, GgufFormat::kQ4_K_M,
    GgufFormat::kQ5_K_S, GgufFormat::kQ5_K_M, GgufFormat::kQ6_K};
inline constexpr int kGgufGroupSize = 32;

struct GgufFormatInfo {
  const char* name;    // "gguf:q4_0"
  uint32_t ggml_type;  // ggml's enum ggml_type of the (base) type (Q4_0 = 2, Q4_K = 12)
  uint32_t file_type;  // llama.cpp's LLAMA_FTYPE_MOSTLY_* (general.file_type)
  int bits;
  bool sym;
  // The block holds a real-valued minimum (Q4_1: d and m): the job tunes its
  // layers with one (QuantScheme::float_min).
  bool float_min;
  // A k-quant mix: its base type (kInt for the legacy formats).
  DataType kquant;
  const char* suffix;  // llama.cpp's file name suffix: "Q4_0", "Q4_K_M"
};
const GgufFormatInfo& GgufFormatOf(GgufFormat format);
std::optional<GgufFormat> ParseGgufFormat(absl::string_view name);
bool IsKQuantMix(GgufFormat format);
// The scheme a GGUF format's layers have (group kGgufGroupSize), or a mix's base type's.
QuantScheme GgufScheme(GgufFormat format);
// The legacy GGUF format whose block type stores `scheme` exactly (integer data,
// bits, symmetry, group kGgufGroupSize; either zero representation for an
// asymmetric type), or nullopt.
std::optional<GgufFormat> GgufFormatForScheme(const QuantScheme& scheme);
// "4-bit symmetric group-size-32" / "Q4_K (4-bit asymmetric, sub-blocks of 32)":
// what the format's layers must be.
std::string GgufFormatNeeds(GgufFormat format);
// The k-quant mix among `formats`, or nullopt.
std::optional<GgufFormat> KQuantMixOf(const std::vector<std::string>& formats);

// INVALID_ARGUMENT "<format> holds exactly bits 4, sym, group_size 32; the job has ..."
// when `format` is a GGUF format that cannot store a job whose layers have `scheme`
// (a k-quant mix: the base type's bits, group_size and sym, which a request that
// leaves them unset gets: ResolveSettings).
absl::Status CheckFormatScheme(absl::string_view format, const QuantScheme& scheme);

// Whether a job writing `formats` tunes a layer of `scheme` with a real-valued
// minimum: some GGUF format in the job stores that scheme in a float_min block type.
bool UsesFloatMin(const std::vector<ExportFormat>& formats, const QuantScheme& scheme);

}  // namespace signround::contract
