// Writes the binary seeds of tests/fuzz/corpus/ (the text seeds, config.json
// and URIs, are written by hand):
//   safetensors_header_fuzz/  files from the project's safetensors writer
//   gguf_check_fuzz/          files from the project's GGUF writer (a tiny
//                             Llama with random weights and the exporter's
//                             metadata keys), plus hand-built corner cases
//   job_request_fuzz/         a selector byte (0 Submit, 1 List, 2 Watch,
//                             3 Get) and the request's wire encoding
// Usage: build-fuzz/bin/fuzz_seeds tests/fuzz/corpus   (ninja -C build-fuzz fuzz_seeds)
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "signround/v1/quantization_service.pb.h"
#include "src/export/gguf_check.h"
#include "src/export/gguf_file.h"
#include "src/tensor/safetensors_writer.h"

namespace {

using namespace signround;  // NOLINT: a tool
namespace pb = ::signround::v1;

void Die(const absl::Status& s) {
  std::fprintf(stderr, "fuzz_seeds: %s\n", std::string(s.message()).c_str());
  std::exit(1);
}

void WriteBytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
  if (!out) Die(absl::InternalError(absl::StrCat("cannot write ", path)));
}

std::string ReadBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

// --- safetensors ---

void Safetensors(const std::string& path, const std::vector<TensorSpec>& specs,
                 const std::map<std::string, std::string>& metadata = {}) {
  std::mt19937 rng(7);
  std::string buf;
  absl::Status s = WriteSafetensors(
      path, specs,
      [&](const TensorSpec& spec) -> absl::StatusOr<absl::string_view> {
        buf.resize(spec.nbytes());
        for (char& c : buf) c = static_cast<char>(rng());
        return absl::string_view(buf);
      },
      metadata);
  if (!s.ok()) Die(s);
}

void SafetensorsSeeds(const std::string& dir) {
  // A tiny Llama checkpoint (hidden 8, 1 layer), bf16.
  std::vector<TensorSpec> llama = {
      {"model.embed_tokens.weight", DType::kBF16, {4, 8}},
      {"model.layers.0.input_layernorm.weight", DType::kBF16, {8}},
      {"model.layers.0.self_attn.q_proj.weight", DType::kBF16, {8, 8}},
      {"model.layers.0.self_attn.k_proj.weight", DType::kBF16, {4, 8}},
      {"model.layers.0.self_attn.v_proj.weight", DType::kBF16, {4, 8}},
      {"model.layers.0.self_attn.o_proj.weight", DType::kBF16, {8, 8}},
      {"model.layers.0.post_attention_layernorm.weight", DType::kBF16, {8}},
      {"model.layers.0.mlp.gate_proj.weight", DType::kBF16, {8, 8}},
      {"model.layers.0.mlp.up_proj.weight", DType::kBF16, {8, 8}},
      {"model.layers.0.mlp.down_proj.weight", DType::kBF16, {8, 8}},
      {"model.norm.weight", DType::kBF16, {8}},
      {"lm_head.weight", DType::kBF16, {4, 8}},
  };
  Safetensors(dir + "/tiny_llama_bf16.safetensors", llama);
  // Every dtype, scalars and empty tensors, extra metadata.
  std::vector<TensorSpec> every;
  for (DType d : {DType::kBool, DType::kU8, DType::kI8, DType::kI16, DType::kU16, DType::kF16,
                  DType::kBF16, DType::kI32, DType::kU32, DType::kF32, DType::kF64, DType::kI64,
                  DType::kU64, DType::kF8E4M3, DType::kF8E5M2}) {
    every.push_back({absl::StrCat("t.", DTypeName(d)), d, {2, 1}});
  }
  every.push_back({"scalar", DType::kF32, {}});
  every.push_back({"empty", DType::kF16, {0, 3}});
  Safetensors(dir + "/every_dtype.safetensors", every, {{"source", "fuzz_seeds"}});
  // A block file as the pipeline writes them (codes, scales, zeros).
  Safetensors(dir + "/block_codes.safetensors",
              {{"model.layers.0.mlp.up_proj.codes", DType::kU8, {4, 32}},
               {"model.layers.0.mlp.up_proj.scales", DType::kF16, {4, 1}},
               {"model.layers.0.mlp.up_proj.zeros", DType::kU8, {4, 1}}});
  Safetensors(dir + "/no_tensors.safetensors", {});
}

// --- GGUF ---

void Gguf(const std::string& path, const GgufMetadata& m, const std::vector<GgufTensorInfo>& t) {
  std::mt19937 rng(11);
  absl::Status s =
      WriteGgufFile(path, m, t, [&](size_t, const GgufTensorInfo& info, const GgufWriteFn& w) {
        std::string bytes(*GgufTensorBytes(info), '\0');
        for (char& c : bytes) c = static_cast<char>(rng());
        return w(bytes);
      });
  if (!s.ok()) Die(s);
}

// A tiny Llama as ExportGguf writes it: hidden 32, 1 layer, 2 heads (1 kv),
// vocab 4, Q4_0 linears, Q8_0 embeddings, F32 norms.
void TinyLlamaGguf(const std::string& path) {
  GgufMetadata m;
  m.AddString("general.architecture", "llama");
  m.AddString("general.name", "tiny");
  m.AddU32("general.quantization_version", 2);
  m.AddU32("general.file_type", 2);
  m.AddU32("llama.context_length", 128);
  m.AddU32("llama.embedding_length", 32);
  m.AddU32("llama.block_count", 1);
  m.AddU32("llama.feed_forward_length", 32);
  m.AddU32("llama.attention.head_count", 2);
  m.AddU32("llama.attention.head_count_kv", 1);
  m.AddF32("llama.attention.layer_norm_rms_epsilon", 1e-5f);
  m.AddF32("llama.rope.freq_base", 500000.0f);
  m.AddU32("llama.rope.dimension_count", 16);
  m.AddU32("llama.vocab_size", 4);
  m.AddString("tokenizer.ggml.model", "llama");
  m.AddStringArray("tokenizer.ggml.tokens", {"<unk>", "<s>", "</s>", "\xe2\x96\x81hi"});
  m.AddArray("tokenizer.ggml.scores", std::vector<float>{0, 0, 0, -1.5f});
  m.AddArray("tokenizer.ggml.token_type", std::vector<int32_t>{2, 3, 3, 1});
  m.AddU32("tokenizer.ggml.bos_token_id", 1);
  m.AddU32("tokenizer.ggml.eos_token_id", 2);
  m.AddBool("tokenizer.ggml.add_bos_token", true);
  Gguf(path, m,
       {{"token_embd.weight", {4, 32}, GgmlType::kQ8_0},
        {"blk.0.attn_norm.weight", {32}, GgmlType::kF32},
        {"blk.0.attn_q.weight", {32, 32}, GgmlType::kQ4_0},
        {"blk.0.attn_k.weight", {16, 32}, GgmlType::kQ4_0},
        {"blk.0.attn_v.weight", {16, 32}, GgmlType::kQ4_0},
        {"blk.0.attn_output.weight", {32, 32}, GgmlType::kQ4_0},
        {"blk.0.ffn_norm.weight", {32}, GgmlType::kF32},
        {"blk.0.ffn_gate.weight", {32, 32}, GgmlType::kQ4_1},
        {"blk.0.ffn_up.weight", {32, 32}, GgmlType::kQ4_1},
        {"blk.0.ffn_down.weight", {32, 32}, GgmlType::kQ8_0},
        {"output_norm.weight", {32}, GgmlType::kF32},
        {"output.weight", {4, 32}, GgmlType::kF16}});
}

void U32(std::string* out, uint32_t v) { out->append(reinterpret_cast<char*>(&v), 4); }
void U64(std::string* out, uint64_t v) { out->append(reinterpret_cast<char*>(&v), 8); }
void Str(std::string* out, absl::string_view s) {
  U64(out, s.size());
  out->append(s.data(), s.size());
}

void GgufSeeds(const std::string& dir) {
  const std::string tiny = dir + "/tiny_llama_q4_0.gguf";
  TinyLlamaGguf(tiny);
  // The same file cut after its tensor infos (what a head-only read sees).
  absl::StatusOr<GgufLayout> layout = CheckGgufFile(tiny);
  if (!layout.ok()) Die(layout.status());
  WriteBytes(dir + "/tiny_llama_head_only.gguf", ReadBytes(tiny).substr(0, layout->infos_end));

  // Every metadata type, and 1-, 3- and 4-dim tensors of every ggml type.
  GgufMetadata m;
  m.AddU8("a.u8", 200);
  m.AddI8("a.i8", -100);
  m.AddU16("a.u16", 60000);
  m.AddI16("a.i16", -30000);
  m.AddU32("a.u32", 4000000000u);
  m.AddI32("a.i32", -2000000000);
  m.AddF32("a.f32", 1.5f);
  m.AddBool("a.bool", false);
  m.AddString("a.str", std::string("h\0i", 3));
  m.AddU64("a.u64", 1ull << 60);
  m.AddI64("a.i64", -(1ll << 60));
  m.AddF64("a.f64", 0.1);
  m.AddArray("a.arr_u16", std::vector<uint16_t>{1, 2});
  m.AddArray("a.arr_f64", std::vector<double>{0.25});
  m.AddArray("a.arr_bool", std::vector<bool>{true, false, true});
  m.AddArray("a.arr_u8", std::vector<uint8_t>{});
  m.AddStringArray("a.arr_str", {"x", "", "yz"});
  Gguf(dir + "/every_type.gguf", m,
       {{"f32", {3}, GgmlType::kF32},
        {"f16", {2, 1, 5}, GgmlType::kF16},
        {"q4_0", {1, 1, 1, 32}, GgmlType::kQ4_0},
        {"q4_1", {2, 32}, GgmlType::kQ4_1},
        {"q8_0", {1, 64}, GgmlType::kQ8_0}});

  // No tensors, no metadata: the smallest valid file.
  Gguf(dir + "/empty.gguf", GgufMetadata(), {});

  // By hand: general.alignment 16 with tightly packed tensors, a gap between
  // tensors, and arrays of arrays (which the writer never makes).
  std::string h = "GGUF";
  U32(&h, 3);
  U64(&h, 2);  // tensors
  U64(&h, 2);  // pairs
  Str(&h, "general.alignment");
  U32(&h, 4);
  U32(&h, 16);
  Str(&h, "a.nested");
  U32(&h, 9);
  U32(&h, 9);  // an array of 2 arrays: [[1, 2], []] of i32
  U64(&h, 2);
  U32(&h, 5);
  U64(&h, 2);
  U32(&h, 1);
  U32(&h, 2);
  U32(&h, 5);
  U64(&h, 0);
  for (const auto& [name, offset] : {std::pair<const char*, uint64_t>{"a", 0}, {"b", 32}}) {
    Str(&h, name);
    U32(&h, 1);
    U64(&h, 4);  // 4 x F32 = 16 bytes
    U32(&h, 0);
    U64(&h, offset);
  }
  h.append((16 - h.size() % 16) % 16, '\0');
  h.append(48, '\x01');
  WriteBytes(dir + "/hand_alignment16_nested.gguf", h);
}

// --- requests ---

void Request(const std::string& path, char selector, const google::protobuf::Message& m) {
  WriteBytes(path, std::string(1, selector) + m.SerializeAsString());
}

void RequestSeeds(const std::string& dir) {
  pb::SubmitJobRequest minimal;
  minimal.mutable_spec()->set_model_uri("file:///models/tiny");
  minimal.mutable_spec()->set_output_uri("file:///out/tiny-rtn/");
  minimal.mutable_spec()->set_recipe(pb::RECIPE_RTN);
  Request(dir + "/submit_rtn", 0, minimal);

  pb::SubmitJobRequest waivers = minimal;
  waivers.mutable_spec()->set_allow_split_fused(true);
  waivers.mutable_spec()->set_allow_gguf_without_vocab(true);
  waivers.mutable_spec()->set_packed_dtype("BFloat16");
  Request(dir + "/submit_waivers", 0, waivers);

  pb::SubmitJobRequest full;
  pb::JobSpec* s = full.mutable_spec();
  s->set_model_uri("s3://models-bucket/llama/3.2-1b/");
  s->set_calibration_uri("s3://data.bucket/pile-10k.tokens");
  s->set_output_uri("file:///srv/out/job");
  s->add_formats("auto_round");
  s->add_formats("GGUF:Q4_0");
  s->set_bits(4);
  s->set_group_size(32);
  s->mutable_sym()->set_value(true);
  s->mutable_iters()->set_value(200);
  s->set_lr(0.005f);
  s->set_minmax_lr(0.001f);
  s->set_nsamples(128);
  s->set_seqlen(2048);
  s->set_batch_size(8);
  s->mutable_seed()->set_value(42);
  s->mutable_scale_search()->set_value(true);
  s->mutable_loss_filter()->set_value(true);
  s->set_target_bits(4.5);
  s->set_teq_iters(25);
  s->add_scheme_candidates("W4G32");
  s->add_scheme_candidates("W16");
  s->set_recipe(pb::RECIPE_DEFAULT);
  pb::LayerOverride* o = s->add_layer_overrides();
  o->set_pattern("mlp\\.down_proj$");
  o->set_bits(8);
  o->set_group_size(-1);
  o->mutable_sym()->set_value(false);
  s->add_layer_overrides()->set_pattern("lm_head|layers\\.(0|1)\\.");
  s->mutable_layer_overrides(1)->set_bits(16);
  s->set_device("cuda:0");
  s->set_priority(-5);
  (*s->mutable_labels())["team"] = "research";
  (*s->mutable_labels())["run/id"] = "r-\xc3\xa9t\xc3\xa9";
  s->set_idempotency_key("submit-2026-11-22-a");
  Request(dir + "/submit_full", 0, full);

  pb::SubmitJobRequest bad = full;
  bad.mutable_spec()->set_bits(5);
  bad.mutable_spec()->set_model_uri("file://host/x");
  bad.mutable_spec()->set_recipe(static_cast<pb::Recipe>(9));
  bad.mutable_spec()->mutable_layer_overrides(0)->set_pattern("([a-");
  Request(dir + "/submit_invalid", 0, bad);

  pb::ListJobsRequest list;
  list.set_state(pb::JOB_STATE_RUNNING);
  (*list.mutable_labels())["team"] = "research";
  list.set_page_size(100);
  list.set_page_token("eyJvZmZzZXQiOjEwMH0");
  Request(dir + "/list_running", 1, list);

  pb::WatchJobRequest watch;
  watch.set_job_id("j-0123456789abcdef");
  watch.set_from_sequence(3);
  Request(dir + "/watch", 2, watch);

  pb::GetJobRequest get;
  get.set_job_id("j-0123456789ABCDEF");
  Request(dir + "/get_bad_id", 3, get);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR (tests/fuzz/corpus)\n", argv[0]);
    return 2;
  }
  const std::string corpus = argv[1];
  SafetensorsSeeds(corpus + "/safetensors_header_fuzz");
  GgufSeeds(corpus + "/gguf_check_fuzz");
  RequestSeeds(corpus + "/job_request_fuzz");
  std::printf("fuzz_seeds: wrote the binary seeds under %s\n", corpus.c_str());
  return 0;
}
