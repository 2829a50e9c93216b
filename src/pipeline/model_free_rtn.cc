#include "src/pipeline/model_free_rtn.h"

#include <chrono>
#include <exception>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "src/common/status_macros.h"
#include "src/quant/rtn_kernel.h"

namespace signround {

ExportSource RoundFromCheckpoint(const Checkpoint& ckpt, std::vector<LayerPlan> plans,
                                 std::vector<LayerPlan> ends, int threads, LayerMadeFn made) {
  auto compute = [&ckpt, threads](const LayerPlan& p,
                                  bool with_dequant) -> absl::StatusOr<ComputedLayer> {
    const auto start = std::chrono::steady_clock::now();
    const std::string name = p.layer.name + ".weight";
    SR_ASSIGN_OR_RETURN(Checkpoint::Tensor t, ckpt.Find(name));
    const TensorEntry& e = *t.entry;
    const int64_t out = p.layer.out, in = p.layer.in;
    if (e.shape != std::vector<int64_t>{out, in}) {
      return absl::InvalidArgumentError(
          absl::StrCat(t.file->path(), ": tensor '", name, "' is [", absl::StrJoin(e.shape, ", "),
                       "]; the config makes it [", out, ", ", in, "]"));
    }
    RtnOptions o;
    o.threads = threads;
    // W^ in the weight's dtype (an F64 checkpoint's in F32, as the fake export converts it).
    const DType dequant_dtype = e.dtype == DType::kF64 ? DType::kF32 : e.dtype;
    if (with_dequant) o.dequant_dtype = dequant_dtype;
    t.file->Prefetch(e);
    absl::StatusOr<RtnLayer> r;
    try {  // allocation and thread creation may throw; this runs on a background thread too
      r = RoundToNearest(name, t.file->Bytes(e), e.dtype, out, in, p.scheme, o);
    } catch (const std::exception& ex) {
      r = absl::ResourceExhaustedError(absl::StrCat(name, ": rounding failed: ", ex.what()));
    }
    t.file->Evict(e);
    if (!r.ok()) {
      return absl::Status(r.status().code(),
                          absl::StrCat(t.file->path(), ": ", r.status().message()));
    }
    auto keep = std::make_shared<const RtnLayer>(*std::move(r));
    ComputedLayer c;
    c.layer.name = p.layer.name;
    c.layer.scheme = p.scheme;
    c.layer.out = out;
    c.layer.in = in;
    c.layer.codes = keep->codes;
    c.layer.scales = keep->scales;
    c.layer.zeros = keep->zeros;
    c.layer.mins = keep->mins;
    c.layer.sub_scales = keep->sub_scales;
    c.layer.sub_mins = keep->sub_mins;
    c.layer.d = keep->d;
    c.layer.dmin = keep->dmin;
    c.dequant = keep->dequant;
    c.dequant_dtype = dequant_dtype;
    c.keep = keep;
    c.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return c;
  };
  auto prefetch = [&ckpt](const LayerPlan& p) {
    if (absl::StatusOr<Checkpoint::Tensor> t = ckpt.Find(p.layer.name + ".weight"); t.ok()) {
      t->file->Prefetch(*t->entry);
    }
  };
  return ExportSource::Computed(ckpt, std::move(plans), std::move(ends), std::move(compute),
                                std::move(made), std::move(prefetch));
}

ModelFreeBlocks::ModelFreeBlocks(const std::vector<LayerPlan>& plans, int64_t blocks,
                                 std::function<absl::Status(const contract::BlockStats&)> report)
    : report_(std::move(report)), quantized_(blocks, 0), seconds_(blocks, 0.0) {
  for (const LayerPlan& p : plans) {
    if (p.quantized && p.layer.layer >= 0 && p.layer.layer < blocks) ++quantized_[p.layer.layer];
  }
  remaining_ = quantized_;
}

absl::Status ModelFreeBlocks::Made(const LayerPlan& plan, double seconds) {
  const int64_t b = plan.layer.layer;
  if (b >= 0 && b < static_cast<int64_t>(remaining_.size()) &&
      seen_.insert(plan.layer.name).second) {
    --remaining_[b];
    seconds_[b] += seconds;
  }
  return ReportReady();
}

absl::Status ModelFreeBlocks::Flush() { return ReportReady(); }

absl::Status ModelFreeBlocks::ReportReady() {
  while (status_.ok() && next_ < static_cast<int64_t>(remaining_.size()) &&
         remaining_[next_] == 0) {
    contract::BlockStats stats;
    stats.index = next_;
    stats.layers_quantized = quantized_[next_];
    stats.seconds = seconds_[next_];
    status_ = report_(stats);
    ++next_;
  }
  return status_;
}

}  // namespace signround
