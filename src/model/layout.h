// The tensors a checkpoint must hold, derived from its config through its
// family's block layout (src/model/family.h).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "src/model/config.h"
#include "src/model/family.h"

namespace signround {

struct ExpectedTensor {
  std::string name;
  std::vector<int64_t> shape;
};

// One nn.Linear of a decoder block. `name` is the module prefix, e.g.
// "model.layers.3.mlp.down_proj"; the weight is `name + ".weight"`, [out, in].
struct LinearLayer {
  std::string name;
  int64_t layer = 0;
  int64_t in = 0;
  int64_t out = 0;
  bool bias = false;
  int64_t expert = -1;  // the MoE expert it belongs to, or -1
};

// The block layout of `layer` under the config's family.
BlockLayout DecoderBlockLayout(const ModelConfig& config, int64_t layer);

// Every Linear of every decoder block (q, k, v, o, gate, up, down for a Llama
// block; every expert's for an MoE block), in block order.
std::vector<LinearLayer> DecoderLinears(const ModelConfig& config);

// Every tensor the config implies (embedding, blocks, final norm, lm_head when
// untied), with its shape.
std::vector<ExpectedTensor> ExpectedTensors(const ModelConfig& config);

}  // namespace signround
