// llama.cpp's own GGUF reader and dequantizer (its Python package gguf-py: GGUFReader and
// gguf.quants.dequantize) for tests: the package comes from the llama.cpp git bundle inside
// the pinned node-llama-cpp npm package (tests/llama_cpp/install.sh), extracted once per
// test process into a temporary directory, and runs under Debian's /usr/bin/python3 with
// python3-numpy through tests/llama_cpp/gguf_dequant.py. Tests GTEST_SKIP() with
// LlamaGgufPyUnavailable()'s reason when any piece is missing.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace signround::testing {

// tests/llama_cpp/node_modules/node-llama-cpp/llama/gitRelease.bundle in the source tree.
std::string LlamaCppBundlePath();

// "" when llama.cpp's gguf-py can run here, else why not (no /usr/bin/python3, no numpy,
// no git, no bundle, or the extraction failed). The answer is computed once per process.
std::string LlamaGgufPyUnavailable();

// The extracted gguf-py directory (for PYTHONPATH), extracting it on the first call.
absl::StatusOr<std::string> LlamaGgufPyDir();

struct LlamaGgufTensor {
  std::string name;
  std::string type;            // llama.cpp's name of the ggml type: "F32", "Q4_K", ...
  uint32_t type_id = 0;        // the ggml type number
  std::vector<int64_t> shape;  // torch order (the GGUF's ne[] reversed)
  std::string values_path;     // raw little-endian float32, row-major in `shape`
};

// Runs tests/llama_cpp/gguf_dequant.py over `gguf_path`: every tensor dequantized by
// llama.cpp's Python into `out_dir`/<name>.f32. Errors carry the script's stderr.
absl::StatusOr<std::vector<LlamaGgufTensor>> DequantizeWithLlamaGgufPy(const std::string& gguf_path,
                                                                       const std::string& out_dir);

// The float32 values of a .f32 file written by DequantizeWithLlamaGgufPy.
absl::StatusOr<std::vector<float>> ReadF32File(const std::string& path);

}  // namespace signround::testing
