// The tensors a Llama-family checkpoint must hold, derived from its config.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "src/model/config.h"

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
};

// q, k, v, o, gate, up, down of every decoder block, in block order.
std::vector<LinearLayer> DecoderLinears(const ModelConfig& config);

// Every tensor the config implies (embedding, blocks, final norm, lm_head when
// untied), with its shape.
std::vector<ExpectedTensor> ExpectedTensors(const ModelConfig& config);

}  // namespace signround
