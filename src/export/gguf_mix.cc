#include "src/export/gguf_mix.h"

#include <optional>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "src/export/gguf_exporter.h"

namespace signround {
namespace {

using contract::DataType;
using contract::GgufFormat;

bool UseMoreBits(int64_t layer, int64_t n) {
  return layer < n / 8 || layer >= 7 * n / 8 || (layer - n / 8) % 3 == 2;
}

// The type llama.cpp's preset gives a Linear named blk.L.<gguf> (before fallbacks).
DataType MixType(GgufFormat f, const ModelConfig& c, absl::string_view gguf, int64_t layer,
                 DataType base, bool* q8_0) {
  using F = GgufFormat;
  const int64_t n = c.num_hidden_layers;
  const bool eight_experts = c.moe && c.moe->num_experts == 8;
  const int64_t gqa = c.num_key_value_heads > 0 ? c.num_attention_heads / c.num_key_value_heads : 1;
  DataType t = base;
  if (gguf == "attn_v" || gguf == "attn_qkv") {
    if (f == F::kQ2_K) {
      t = gqa >= 4 ? DataType::kQ4_K : DataType::kQ3_K;
    } else if (f == F::kQ3_K_M) {
      t = layer < 2 ? DataType::kQ5_K : DataType::kQ4_K;
    } else if ((f == F::kQ4_K_M || f == F::kQ5_K_M) && UseMoreBits(layer, n)) {
      t = DataType::kQ6_K;
    } else if (f == F::kQ4_K_S && layer < 4) {
      t = DataType::kQ5_K;
    }
    if (eight_experts) *q8_0 = true;
    return t;
  }
  if (gguf == "attn_k") {
    if (eight_experts) *q8_0 = true;
    return t;
  }
  if (absl::StartsWith(gguf, "ffn_down")) {
    if (f == F::kQ2_K) {
      t = DataType::kQ3_K;
    } else if (f == F::kQ3_K_M) {
      t = layer < n / 16 ? DataType::kQ5_K : DataType::kQ4_K;
    } else if ((f == F::kQ4_K_M || f == F::kQ5_K_M) && UseMoreBits(layer, n)) {
      t = DataType::kQ6_K;
    } else if (f == F::kQ4_K_S && layer < n / 8) {
      t = DataType::kQ5_K;
    }
    return t;
  }
  if (gguf == "attn_output") {
    if (eight_experts) {
      if (f == F::kQ2_K || f == F::kQ3_K_S || f == F::kQ3_K_M || f == F::kQ4_K_S ||
          f == F::kQ4_K_M) {
        t = DataType::kQ5_K;
      }
    } else if (f == F::kQ2_K) {
      t = DataType::kQ3_K;
    } else if (f == F::kQ3_K_M) {
      t = DataType::kQ4_K;
    }
  }
  return t;
}

QuantScheme LegacyScheme(int bits, bool sym) {
  QuantScheme s;
  s.bits = bits;
  s.group_size = contract::kGgufGroupSize;
  s.sym = sym;
  s.float_min = !sym;  // GGUF's asymmetric legacy types store a real-valued minimum
  return s;
}

std::string TypeName(const QuantScheme& s) {
  if (contract::IsKQuant(s.data_type)) return contract::DescribeSchemeLong(s);
  std::optional<GgufFormat> f = contract::GgufFormatForScheme(s);
  return f ? contract::GgufFormatOf(*f).suffix : contract::DescribeScheme(s);
}

// Gives `p` the type `t` (or Q8_0), falling back when its rows do not split into
// super-blocks; a line for the report when it falls back.
void SetType(LayerPlan& p, DataType t, bool q8_0, std::vector<std::string>& notes) {
  p.scheme = q8_0 ? LegacyScheme(8, true) : contract::KQuantScheme(t);
  if (p.layer.in % contract::kKQuantSuperBlock == 0 || q8_0) return;
  const std::string wanted = TypeName(p.scheme);
  switch (t) {
    case DataType::kQ2_K:
    case DataType::kQ3_K:
      p.scheme = LegacyScheme(4, true);
      break;
    case DataType::kQ4_K:
      p.scheme = LegacyScheme(4, false);
      break;
    default:
      p.scheme = LegacyScheme(8, true);
      break;
  }
  if (p.layer.in % contract::kGgufGroupSize != 0) {
    p.quantized = false;
    p.reason = absl::StrCat(p.layer.in, " inputs, not a multiple of 32 (", wanted, ")");
    notes.push_back(absl::StrCat(p.layer.name, ": ", p.reason, ": 16-bit instead of ", wanted));
    return;
  }
  notes.push_back(absl::StrCat(p.layer.name, ": ", p.layer.in, " inputs, not a multiple of ",
                               contract::kKQuantSuperBlock, ": ", TypeName(p.scheme),
                               " instead of ", wanted));
}

}  // namespace

std::vector<std::string> ApplyGgufMix(GgufFormat format, const ModelConfig& config,
                                      std::vector<LayerPlan>& plans) {
  const DataType base = contract::GgufFormatOf(format).kquant;
  std::vector<std::string> notes;
  for (LayerPlan& p : plans) {
    if (!p.quantized) continue;
    bool q8_0 = false;
    const DataType t =
        MixType(format, config, GgufLinearName(config, p.layer), p.layer.layer, base, &q8_0);
    SetType(p, t, q8_0, notes);
  }
  return notes;
}

std::vector<LayerPlan> GgufMixEnds(GgufFormat format, const ModelConfig& config,
                                   std::vector<std::string>* notes) {
  const DataType base = contract::GgufFormatOf(format).kquant;
  const int64_t hidden = config.hidden_size;
  // output.weight: Q6_K, or Q8_0 when its rows do not split into super-blocks.
  auto output = [&](LayerPlan& p) {
    SetType(p, DataType::kQ6_K, hidden % contract::kKQuantSuperBlock != 0, *notes);
  };
  std::vector<LayerPlan> out;
  LayerPlan embed;
  embed.layer = {"model.embed_tokens", -1, hidden, config.vocab_size};
  embed.quantized = true;
  if (config.tie_word_embeddings) {
    output(embed);  // shared with the output: its type
  } else {
    SetType(embed, base, false, *notes);
  }
  out.push_back(embed);
  if (!config.tie_word_embeddings) {
    LayerPlan head;
    head.layer = {"lm_head", -1, hidden, config.vocab_size};
    head.quantized = true;
    output(head);
    out.push_back(head);
  }
  return out;
}

}  // namespace signround
