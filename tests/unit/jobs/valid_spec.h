// A minimal valid job request, for the tests of what is built from one.
#pragma once

#include "src/jobs/job.h"

namespace signround::jobs {

inline JobSpec ValidSpec() {
  JobSpec s;
  s.model_uri = "file:///models/llama";
  s.calibration_uri = "s3://bucket/calib.jsonl";
  s.output_uri = "s3://bucket/out/";
  return s;
}

}  // namespace signround::jobs
