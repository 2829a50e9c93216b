#include "worker/inspect_command.h"

#include <cstdio>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "nlohmann/json.hpp"
#include "src/model/checkpoint.h"
#include "src/model/family.h"
#include "src/model/layout.h"
#include "worker/command.h"

namespace signround::worker {
namespace {

using nlohmann::json;

std::string FileName(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

json BuildReport(const Checkpoint& ckpt, const std::vector<LayerPlan>& plans,
                 const QuantScheme& scheme) {
  std::map<std::string, uint64_t> dtypes;
  for (const auto& [name, t] : ckpt.tensors()) dtypes[std::string(DTypeName(t.entry->dtype))]++;
  json files = json::array();
  for (const auto& f : ckpt.files()) {
    files.push_back({{"name", FileName(f->path())},
                     {"bytes", f->file_size()},
                     {"tensors", f->header().tensors.size()}});
  }
  json linears = json::array();
  int quantized = 0;
  for (const LayerPlan& p : plans) {
    // A packed checkpoint's layers are already quantized: show how they are stored.
    auto packed = ckpt.packed_linears().find(p.layer.name);
    if (packed != ckpt.packed_linears().end()) {
      const PackedScheme& s = packed->second.scheme;
      linears.push_back({{"name", p.layer.name},
                         {"layer", p.layer.layer},
                         {"out", p.layer.out},
                         {"in", p.layer.in},
                         {"dtype", "packed"},
                         {"bias", p.layer.bias},
                         {"quantized", true},
                         {"bits", s.bits},
                         {"group_size", s.group_size}});
      ++quantized;
      continue;
    }
    const TensorEntry& w = *ckpt.tensors().at(p.layer.name + ".weight").entry;
    json row = {{"name", p.layer.name},    {"layer", p.layer.layer},      {"out", p.layer.out},
                {"in", p.layer.in},        {"dtype", DTypeName(w.dtype)}, {"bias", p.layer.bias},
                {"quantized", p.quantized}};
    if (p.quantized) {
      ++quantized;
      row["bits"] = p.scheme.bits;
      row["group_size"] = p.scheme.group_size;
      row["sym"] = p.scheme.sym;
    } else {
      row["bits"] = 16;
      row["reason"] = p.reason;
    }
    linears.push_back(std::move(row));
  }
  json report = {{"model_dir", ckpt.dir()},
                 {"model_type", ckpt.config().model_type},
                 {"architectures", ckpt.config().architectures},
                 {"config", ModelConfigToJson(ckpt.config())},
                 {"parameters", ckpt.parameter_count()},
                 {"tensor_count", ckpt.tensors().size()},
                 {"dtypes", dtypes},
                 {"files", files},
                 {"quantization",
                  {{"bits", scheme.bits}, {"group_size", scheme.group_size}, {"sym", scheme.sym}}},
                 {"summary",
                  {{"linears", plans.size()},
                   {"quantized", quantized},
                   {"kept_16bit", static_cast<int>(plans.size()) - quantized}}},
                 {"linears", linears}};
  if (ckpt.quantization()) report["quant_method"] = ckpt.quantization()->method();
  std::string kept = "embeddings, norms, lm_head";
  const ModelFamily* family = FindModelFamily(ckpt.config().model_type);
  if (family != nullptr && !family->kept_16bit.empty()) {
    absl::StrAppend(&kept, ", ", family->kept_16bit);
  }
  report["kept_16bit_always"] = kept;
  if (const std::optional<MoeConfig>& moe = ckpt.config().moe; moe) {
    int64_t moe_layers = 0;
    for (int64_t i = 0; i < ckpt.config().num_hidden_layers; ++i) {
      moe_layers += ckpt.config().IsMoeLayer(i) ? 1 : 0;
    }
    report["experts"] = {{"num_experts", moe->num_experts},
                         {"experts_per_token", moe->experts_per_token},
                         {"expert_intermediate_size", moe->expert_intermediate_size},
                         {"norm_topk_prob", moe->norm_topk_prob},
                         {"moe_layers", moe_layers}};
  }
  return report;
}

void PrintText(const json& r) {
  const json& c = r["config"];
  std::printf("model:        %s\n", r["model_dir"].get<std::string>().c_str());
  std::printf("architecture: %s (%s)\n", r["model_type"].get<std::string>().c_str(),
              absl::StrJoin(r["architectures"].get<std::vector<std::string>>(), ", ").c_str());
  std::printf(
      "config:       hidden %lld, intermediate %lld, layers %lld, heads %lld (kv %lld, "
      "head_dim %lld), vocab %lld, context %lld, rope_theta %g, %s embeddings\n",
      c["hidden_size"].get<long long>(), c["intermediate_size"].get<long long>(),
      c["num_hidden_layers"].get<long long>(), c["num_attention_heads"].get<long long>(),
      c["num_key_value_heads"].get<long long>(), c["head_dim"].get<long long>(),
      c["vocab_size"].get<long long>(), c["max_position_embeddings"].get<long long>(),
      c["rope_theta"].get<double>(), c["tie_word_embeddings"].get<bool>() ? "tied" : "untied");
  std::vector<std::string> dtypes;
  for (const auto& [k, v] : r["dtypes"].items())
    dtypes.push_back(absl::StrCat(k, " x", v.get<int>()));
  std::printf("parameters:   %llu in %llu tensors (%s)\n",
              r["parameters"].get<unsigned long long>(),
              r["tensor_count"].get<unsigned long long>(), absl::StrJoin(dtypes, ", ").c_str());
  for (const json& f : r["files"]) {
    std::printf("file:         %s, %llu bytes, %llu tensors\n",
                f["name"].get<std::string>().c_str(), f["bytes"].get<unsigned long long>(),
                f["tensors"].get<unsigned long long>());
  }
  if (r.contains("experts")) {
    const json& e = r["experts"];
    std::printf("experts:      %lld per MoE layer (%lld MoE layers), top-%lld%s, expert ffn %lld\n",
                e["num_experts"].get<long long>(), e["moe_layers"].get<long long>(),
                e["experts_per_token"].get<long long>(),
                e["norm_topk_prob"].get<bool>() ? " renormalised" : "",
                e["expert_intermediate_size"].get<long long>());
  }
  std::printf("16-bit:       %s stay 16-bit whatever the scheme\n",
              r["kept_16bit_always"].get<std::string>().c_str());
  const json& q = r["quantization"];
  const json& s = r["summary"];
  if (r.contains("quant_method")) {
    std::printf("packed:       quant_method %s: the rows marked 'packed' are stored quantized\n",
                r["quant_method"].get<std::string>().c_str());
  }
  std::printf("quantization: W%d G%d %s: %d of %d decoder Linears quantized, %d stay 16-bit\n\n",
              q["bits"].get<int>(), q["group_size"].get<int>(),
              q["sym"].get<bool>() ? "sym" : "asym", s["quantized"].get<int>(),
              s["linears"].get<int>(), s["kept_16bit"].get<int>());
  std::printf("%-44s %-6s %14s  %s\n", "linear", "dtype", "out x in", "quantized");
  for (const json& l : r["linears"]) {
    std::string shape = absl::StrCat(l["out"].get<int64_t>(), " x ", l["in"].get<int64_t>());
    std::string verdict =
        l["quantized"].get<bool>()
            ? absl::StrCat("yes (W", l["bits"].get<int>(), " G", l["group_size"].get<int>(), ")")
            : absl::StrCat("no: ", l["reason"].get<std::string>());
    std::printf("%-44s %-6s %14s  %s\n", l["name"].get<std::string>().c_str(),
                l["dtype"].get<std::string>().c_str(), shape.c_str(), verdict.c_str());
  }
}

}  // namespace

CLI::App* AddInspectCommand(CLI::App& app, InspectOptions& o) {
  CLI::App* cmd = app.add_subcommand(
      "inspect", "Print a checkpoint's architecture, parameters and per-layer quantization plan");
  cmd->add_option("--model", o.model_dir, "Hugging Face checkpoint directory")->required();
  cmd->add_option("--bits", o.scheme.bits, "Weight bits: 2, 3, 4 or 8")->capture_default_str();
  cmd->add_option("--group-size", o.scheme.group_size, "Group size (-1: per output channel)")
      ->capture_default_str();
  cmd->add_flag("--json", o.json, "Print one JSON object instead of text");
  return cmd;
}

int RunInspect(const InspectOptions& o) {
  if (absl::Status s = ValidateQuantScheme(o.scheme); !s.ok()) return ReportError(s);
  absl::StatusOr<Checkpoint> ckpt = Checkpoint::Open(o.model_dir);
  if (!ckpt.ok()) return ReportError(ckpt.status());
  std::vector<LayerPlan> plans = PlanLayers(DecoderLinears(ckpt->config()), o.scheme);
  json report = BuildReport(*ckpt, plans, o.scheme);
  if (o.json) {
    std::printf("%s\n", report.dump(2).c_str());
  } else {
    PrintText(report);
  }
  return 0;
}

}  // namespace signround::worker
