// Model-free RTN (no calibration data, iters 0): nothing is tuned and nothing is measured,
// so no block phase and no work directory. Each quantized layer is rounded to nearest
// straight from the checkpoint's bytes (RoundToNearest: the same integers and W^ as the
// LibTorch quantizer) when an export or the eval asks for it, and dropped after use: the
// run streams the checkpoint at about disk speed with one layer resident. A rerun redoes
// it all (nothing to resume).
#pragma once

#include <cstdint>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "src/contract/progress.h"
#include "src/export/export_source.h"
#include "src/model/checkpoint.h"

namespace signround {

// The source of the layers of `plans` and `ends`, rounded on `threads` threads when asked
// (and the next one ahead, on a background thread, when the exporter says its order);
// `made` is told of each rounding.
ExportSource RoundFromCheckpoint(const Checkpoint& ckpt, std::vector<LayerPlan> plans,
                                 std::vector<LayerPlan> ends, int threads, LayerMadeFn made);

// The "block" progress of a model-free run: a block is done when each of its quantized
// layers has been rounded once (by whichever export or eval asked first), and blocks are
// reported in order, each as soon as it and every block before it is done.
class ModelFreeBlocks {
 public:
  // `report(stats)` lists and sends one block; an error (CANCELLED) stops the run.
  ModelFreeBlocks(const std::vector<LayerPlan>& plans, int64_t blocks,
                  std::function<absl::Status(const contract::BlockStats&)> report);

  // For RoundFromCheckpoint: counts `plan`'s first rounding and reports what it finished.
  absl::Status Made(const LayerPlan& plan, double seconds);
  // Reports the blocks that are done but not yet reported (trailing blocks without
  // quantized layers); after the exports.
  absl::Status Flush();
  // The first error a report returned (CANCELLED), OK when none.
  const absl::Status& status() const { return status_; }

 private:
  absl::Status ReportReady();

  std::function<absl::Status(const contract::BlockStats&)> report_;
  std::vector<int> quantized_, remaining_;
  std::vector<double> seconds_;
  std::set<std::string> seen_;
  int64_t next_ = 0;
  absl::Status status_;
};

}  // namespace signround
