// llama.cpp's k-quant mixes: which type each Linear of a Q4_K_M (Q2_K, Q3_K_S,
// ...) file gets, as llama-quantize's presets choose them (src/llama-quant.cpp,
// llama_tensor_get_type_impl and tensor_type_fallback), so that our Q4_K_M is a
// Q4_K_M by llama.cpp's definition.
#pragma once

#include <string>
#include <vector>

#include "src/contract/export_formats.h"
#include "src/model/config.h"
#include "src/quant/layer_plan.h"

namespace signround {

// Gives every quantized Linear of `plans` its type in the k-quant mix `format`:
// the mix's base type, except (with L the layer, n the layer count, and
// more(L) = L < n/8 || L >= 7n/8 || (L - n/8) % 3 == 2, llama.cpp's use_more_bits):
//   attn_v and attn_qkv (llama.cpp's attn_v-like tensors): Q2_K: Q4_K when
//     n_head / n_kv_head >= 4, else Q3_K; Q3_K_M: Q5_K for L < 2, else Q4_K;
//     Q4_K_S: Q5_K for L < 4; Q4_K_M, Q5_K_M: Q6_K where more(L); 8 experts: Q8_0.
//   attn_k: 8 experts: Q8_0.
//   ffn_down (and the experts'): Q2_K: Q3_K; Q3_K_M: Q5_K for L < n/16, else Q4_K;
//     Q4_K_S: Q5_K for L < n/8; Q4_K_M, Q5_K_M: Q6_K where more(L).
//   attn_output: 8 experts: Q5_K for Q2_K, Q3_K_*, Q4_K_*; else Q2_K: Q3_K, Q3_K_M: Q4_K.
// A Linear whose input width (the GGUF row) is not a multiple of 256 falls back to a
// legacy type of group 32: Q4_0 for Q2_K and Q3_K (as llama.cpp), Q4_1 for Q4_K
// (llama.cpp: Q5_0, which we do not write), Q8_0 for Q5_K (llama.cpp: Q5_1) and
// Q6_K; one that is not a multiple of 32 either stays 16-bit. Returns one line per
// Linear that fell back ("model.layers.0.mlp.down_proj: 172 inputs, not a multiple
// of 256: Q4_0 instead of Q3_K"), for the report.
std::vector<std::string> ApplyGgufMix(contract::GgufFormat format, const ModelConfig& config,
                                      std::vector<LayerPlan>& plans);

// The model's ends in the mix, as llama.cpp's preset types them: lm_head (output)
// Q6_K, or Q8_0 when hidden_size is not a multiple of 256; the token embedding
// the mix's base type (with the fallback above), or the output's type when the
// embeddings are tied. Named "model.embed_tokens" / "lm_head" (layer -1, in =
// hidden_size, out = vocab_size). Fallbacks are added to `notes`.
std::vector<LayerPlan> GgufMixEnds(contract::GgufFormat format, const ModelConfig& config,
                                   std::vector<std::string>* notes);

}  // namespace signround
