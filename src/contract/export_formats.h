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
    "fake, auto_round, auto_gptq, gguf:q4_0, gguf:q4_1, gguf:q8_0";

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
// Each GGUF format stores its quantized layers in one ggml block type of groups
// of kGgufGroupSize; the switch in GgufFormatOf is exhaustive.
enum class GgufFormat { kQ4_0, kQ4_1, kQ8_0 };
inline constexpr GgufFormat kGgufFormats[] = {GgufFormat::kQ4_0, GgufFormat::kQ4_1,
                                              GgufFormat::kQ8_0};
inline constexpr int kGgufGroupSize = 32;

struct GgufFormatInfo {
  const char* name;    // "gguf:q4_0"
  uint32_t ggml_type;  // ggml's enum ggml_type (Q4_0 = 2)
  uint32_t file_type;  // llama.cpp's LLAMA_FTYPE_MOSTLY_* (general.file_type)
  int bits;
  bool sym;
  // The block holds a real-valued minimum (Q4_1: d and m): the job tunes its
  // layers with one (QuantScheme::float_min).
  bool float_min;
};
const GgufFormatInfo& GgufFormatOf(GgufFormat format);
std::optional<GgufFormat> ParseGgufFormat(absl::string_view name);
// The scheme a GGUF format's layers have (group kGgufGroupSize).
QuantScheme GgufScheme(GgufFormat format);
// The GGUF format whose block type stores `scheme` exactly (bits, symmetry,
// group kGgufGroupSize; either zero representation for an asymmetric type), or nullopt.
std::optional<GgufFormat> GgufFormatForScheme(const QuantScheme& scheme);
// "4-bit symmetric group-size-32": what the format's layers must be.
std::string GgufFormatNeeds(GgufFormat format);

// INVALID_ARGUMENT "<format> holds exactly bits 4, sym, group_size 32; the job has ..."
// when `format` is a GGUF format that cannot store a job whose layers have `scheme`.
absl::Status CheckFormatScheme(absl::string_view format, const QuantScheme& scheme);

// Whether a job writing `formats` tunes a layer of `scheme` with a real-valued
// minimum: some GGUF format in the job stores that scheme in a float_min block type.
bool UsesFloatMin(const std::vector<ExportFormat>& formats, const QuantScheme& scheme);

}  // namespace signround::contract
