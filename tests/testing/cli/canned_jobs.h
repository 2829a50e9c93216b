// Test-only: canned jobs and event sequences for the fake QuantizationService
// (tests/testing/cli/fake_service.h). Header-only.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "signround/v1/quantization_service.pb.h"

namespace signround::cli::testing {

namespace v1 = ::signround::v1;

inline v1::JobEvent StateEvent(int64_t seq, v1::JobState from, v1::JobState to) {
  v1::JobEvent e;
  e.set_job_id("j-1");
  e.set_sequence(seq);
  e.mutable_state_change()->set_from(from);
  e.mutable_state_change()->set_to(to);
  return e;
}

inline v1::JobEvent BlockEvent(int64_t seq, int index, int count) {
  v1::JobEvent e;
  e.set_job_id("j-1");
  e.set_sequence(seq);
  e.set_attempt(1);
  v1::BlockProgress* b = e.mutable_block_progress();
  b->set_block_index(index);
  b->set_block_count(count);
  b->set_layers_quantized(7);
  b->set_loss_iter0(0.52);
  b->set_best_loss(0.31);
  b->set_best_iteration(40);
  b->set_seconds(1.24);
  return e;
}

// QUEUED, RUNNING, two blocks, then (for SUCCEEDED) UPLOADING and an artifact,
// (for FAILED) an error, then the final state.
inline std::vector<v1::JobEvent> JobEvents(v1::JobState final_state) {
  std::vector<v1::JobEvent> out = {StateEvent(1, v1::JOB_STATE_UNSPECIFIED, v1::JOB_STATE_QUEUED),
                                   StateEvent(2, v1::JOB_STATE_QUEUED, v1::JOB_STATE_RUNNING),
                                   BlockEvent(3, 0, 2), BlockEvent(4, 1, 2)};
  v1::JobState before = v1::JOB_STATE_RUNNING;
  if (final_state == v1::JOB_STATE_SUCCEEDED) {
    out.push_back(StateEvent(5, v1::JOB_STATE_RUNNING, v1::JOB_STATE_UPLOADING));
    v1::JobEvent a;
    a.set_sequence(6);
    v1::Artifact* art = a.mutable_artifact_uploaded()->mutable_artifact();
    art->set_format("auto_round");
    art->set_uri("s3://b/x/auto_round/model.safetensors");
    art->set_bytes(1234);
    art->set_sha256("ab12cd");
    out.push_back(a);
    before = v1::JOB_STATE_UPLOADING;
  } else if (final_state == v1::JOB_STATE_FAILED) {
    v1::JobEvent e;
    e.set_sequence(5);
    e.set_attempt(3);
    e.mutable_error()->set_message("worker exited with signal 9");
    out.push_back(e);
  }
  out.push_back(StateEvent(static_cast<int64_t>(out.size()) + 1, before, final_state));
  return out;
}

// A RUNNING job at block 7 of 32 with one artifact (report.json).
inline v1::Job RunningJob(const std::string& id) {
  v1::Job job;
  job.set_id(id);
  job.set_state(v1::JOB_STATE_RUNNING);
  job.mutable_spec()->set_model_uri("file:///models/m");
  job.mutable_spec()->set_output_uri("s3://b/out");
  job.set_attempts(2);
  job.set_device("cuda:0");
  job.set_blocks_done(7);
  job.set_block_count(32);
  job.set_latest_loss(0.0123);
  job.mutable_create_time()->set_seconds(1700000000);  // 2023-11-14 22:13:20 UTC
  v1::Artifact* a = job.add_artifacts();
  a->set_format("report");
  a->set_uri("s3://b/out/report.json");
  a->set_bytes(2048);
  a->set_sha256("00ff");
  return job;
}

}  // namespace signround::cli::testing
