#include "worker/make_test_model_command.h"

#include <chrono>
#include <cstdio>

#include "absl/status/status.h"
#include "src/model/family.h"
#include "worker/command.h"

namespace signround::worker {

CLI::App* AddMakeTestModelCommand(CLI::App& app, MakeTestModelOptions& o) {
  CLI::App* cmd = app.add_subcommand(
      "make-test-model",
      "Write a random-initialised checkpoint of any supported family (deterministic per seed)");
  RandomCheckpointOptions& m = o.model;
  cmd->add_option("--out", o.out_dir, "Output directory (must not exist or be empty)")->required();
  cmd->add_option("--model-type", m.model_type, SupportedModelTypes())->capture_default_str();
  cmd->add_option("--hidden", m.hidden_size, "hidden_size")->capture_default_str();
  cmd->add_option("--intermediate", m.intermediate_size, "intermediate_size")
      ->capture_default_str();
  cmd->add_option("--layers", m.num_layers, "num_hidden_layers")->capture_default_str();
  cmd->add_option("--heads", m.num_heads, "num_attention_heads")->capture_default_str();
  cmd->add_option("--kv-heads", m.num_kv_heads, "num_key_value_heads")->capture_default_str();
  cmd->add_option("--vocab", m.vocab_size, "vocab_size")->capture_default_str();
  cmd->add_option("--dtype", o.dtype, "bf16, f16 or f32")
      ->check(CLI::IsMember({"bf16", "f16", "f32"}))
      ->capture_default_str();
  cmd->add_option("--seed", m.seed, "Random seed")->capture_default_str();
  cmd->add_option("--shards", m.shards, "Number of safetensors files")->capture_default_str();
  cmd->add_flag("--tie-embeddings", m.tie_word_embeddings, "Tie lm_head to the embedding");
  cmd->add_option("--experts", m.num_experts,
                  "MoE families: experts per layer (0: the family's default), each with "
                  "--intermediate hidden units");
  cmd->add_option("--experts-per-token", m.experts_per_token,
                  "MoE families: experts each token is routed to (0: the family's default)");
  return cmd;
}

int RunMakeTestModel(MakeTestModelOptions o) {
  o.model.dtype = o.dtype == "f32" ? DType::kF32 : o.dtype == "f16" ? DType::kF16 : DType::kBF16;
  auto start = std::chrono::steady_clock::now();
  absl::Status s = WriteRandomCheckpoint(o.out_dir, o.model);
  if (!s.ok()) return ReportError(s);
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("wrote %s (%s, %lld layers, hidden %lld) in %.2f s\n", o.out_dir.c_str(),
              o.model.model_type.c_str(), static_cast<long long>(o.model.num_layers),
              static_cast<long long>(o.model.hidden_size), seconds);
  return 0;
}

}  // namespace signround::worker
