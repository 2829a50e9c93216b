// Exports a quantized job as one GGUF file for llama.cpp. Every quantized layer
// maps exactly onto a ggml block type (group size 32: 4-bit sym -> Q4_0, 4-bit
// asym -> Q4_1, 8-bit sym -> Q8_0; a k-quant mix's layers Q2_K ... Q6_K, its
// quantized token embedding and lm_head too), built from the engine's integer
// codes, never from float weights; 16-bit layers are written as F16. What differs per
// model family (architecture name, tensor names, stacked MoE experts, norm
// shift, extra metadata, what llama.cpp cannot compute) is the family's
// GgufNaming (src/model/family.h); the code here is the same for all.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "src/contract/export_formats.h"
#include "src/export/export_source.h"
#include "src/model/config.h"
#include "src/quant/layer_plan.h"

namespace signround {

// The GGUF file formats ("gguf:q4_0", ...) and the scheme each holds are the
// contract's (src/contract/export_formats.h).
using contract::GgufFormat;
using contract::ParseGgufFormat;
// "gguf:q4_0", ...
absl::string_view GgufFormatName(GgufFormat format);
// The file name llama.cpp's tools would give: "<model_name>-Q4_0.gguf", "-Q4_K_M.gguf".
std::string GgufFileName(absl::string_view model_name, GgufFormat format);

// INVALID_ARGUMENT with the reason when the job cannot be written exactly in
// `format`: a model_type without a GGUF architecture; rope_scaling other than
// none, linear or llama3 (llama3 where the architecture has rope_freqs); a
// hidden_act the architecture does not compute; what the family's
// GgufNaming::check refuses (e.g. qwen3_moe dense layers, a gemma3
// query_pre_attn_scalar llama.cpp ignores); for a legacy format, the job's default
// scheme (the most common one among the quantized layers) not being `format`'s
// type, or a k-quant layer; a k-quant layer whose rows are not a multiple of 256;
// a quantized layer with no exact block type; a block tensor the architecture
// has no name for, or a bias it does not load; or the experts stacked into one
// tensor having different schemes. A job with no quantized layer is accepted.
absl::Status CheckGgufExport(GgufFormat format, const ModelConfig& config,
                             const std::vector<LayerPlan>& plans);

// Writes the GGUF file at `path` (atomically: a failure leaves no file).
// Runs CheckGgufExport first. Tokenizer metadata comes from the model
// directory's tokenizer.model or tokenizer.json (none when both are absent).
absl::Status ExportGguf(const ExportSource& source, GgufFormat format, const std::string& path);

// The GGUF name of decoder Linear `layer` after "blk.N." ("attn_v", "ffn_down_exps"),
// or "" when the family has none for it.
absl::string_view GgufLinearName(const ModelConfig& config, const LinearLayer& layer);

// The q/k row order llama.cpp expects: GGUF row r holds Hugging Face row
// order[r]. Rows viewed as [n_head, 2, rows / n_head / 2], the last two dims
// swapped (rotate-half -> interleaved RoPE). `rows` must divide by 2 * n_head.
std::vector<int64_t> LlamaQkRowOrder(int64_t rows, int64_t n_head);

// The rope_freqs.weight values for llama3 rope_scaling ([head_dim / 2] factors
// that llama.cpp divides the frequencies by), as convert_hf_to_gguf.py
// computes them. `config.rope_scaling` must be the llama3 type.
std::vector<float> Llama3RopeFactors(const ModelConfig& config);

}  // namespace signround
