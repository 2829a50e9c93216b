// The job service's request path on untrusted bytes. The first byte picks the
// message (0 SubmitJobRequest, 1 ListJobsRequest, 2 WatchJobRequest, 3
// GetJobRequest; modulo 4), the rest is its wire encoding. Each is converted
// with server/proto_convert.cc's FromProto and checked as the service does:
// ValidateJobSpec (with the devices {"cpu"} and none, as an API server), and
// for a valid spec ResolveSettings, the stored JSON forms (EffectiveSettings
// and the job store's JobSpec JSON, which must read back the same) and the
// proto round trip; ParseStorageUri on every URI; ValidateJobId on job ids.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/stubs/logging.h"
#include "server/proto_convert.h"
#include "signround/v1/quantization_service.pb.h"
#include "src/jobs/job_validation.h"
#include "src/storage/storage_uri.h"
#include "src/store/job_json.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

namespace pb = ::signround::v1;
namespace jobs = ::signround::jobs;

void CheckUri(const std::string& uri) {
  absl::StatusOr<signround::StorageUri> parsed = signround::ParseStorageUri(uri);
  if (!parsed.ok()) return;
  absl::StatusOr<signround::StorageUri> again = signround::ParseStorageUri(parsed->ToString());
  FUZZ_CHECK(again.ok() && again->ToString() == parsed->ToString());
}

std::string StoredJson(const jobs::JobSpec& spec) {
  absl::StatusOr<std::string> text = jobs::DumpJson(jobs::JobSpecToJson(spec), "spec");
  FUZZ_CHECK(text.ok());  // a valid spec has only valid UTF-8 strings
  return *text;
}

void Submit(const pb::SubmitJobRequest& request) {
  const jobs::JobSpec spec = signround::server::FromProto(request.spec());
  CheckUri(spec.model_uri);
  CheckUri(spec.calibration_uri);
  CheckUri(spec.output_uri);
  for (const std::vector<std::string>& devices :
       {std::vector<std::string>{"cpu"}, std::vector<std::string>{}}) {
    const absl::Status valid = jobs::ValidateJobSpec(spec, devices);
    if (!valid.ok()) {
      FUZZ_CHECK(valid.code() == absl::StatusCode::kInvalidArgument);
      FUZZ_CHECK(absl::StartsWith(valid.message(), "spec."));
      continue;
    }
    absl::StatusOr<jobs::EffectiveSettings> settings = jobs::ResolveSettings(spec);
    FUZZ_CHECK(settings.ok());
    FUZZ_CHECK(!settings->formats.empty());
    FUZZ_CHECK(settings->packed_dtype == "float16" || settings->packed_dtype == "bfloat16");
    FUZZ_CHECK(settings->allow_split_fused == spec.allow_split_fused &&
               settings->allow_gguf_without_vocab == spec.allow_gguf_without_vocab);
    (void)settings->ToJson().dump();  // what the store keeps; must not throw
    // The job store's JSON of the spec reads back as the same spec.
    const std::string stored = StoredJson(spec);
    absl::StatusOr<jobs::JobSpec> back =
        jobs::JobSpecFromJson(nlohmann::json::parse(stored), "spec");
    FUZZ_CHECK(back.ok());
    FUZZ_CHECK(StoredJson(*back) == stored);
    // And so does the proto a client gets back (GetJob's Job.spec).
    pb::JobSpec echoed;
    signround::server::ToProto(spec, &echoed);
    FUZZ_CHECK(StoredJson(signround::server::FromProto(echoed)) == stored);
  }
}

void List(const pb::ListJobsRequest& request) {
  absl::StatusOr<jobs::ListQuery> query = signround::server::FromProto(request);
  if (!query.ok()) {
    FUZZ_CHECK(query.status().code() == absl::StatusCode::kInvalidArgument);
    return;
  }
  FUZZ_CHECK(query->page_size >= 1 && query->page_size <= 1000);
  FUZZ_CHECK(query->labels.size() <= static_cast<size_t>(jobs::kMaxLabels));
  FUZZ_CHECK(query->page_token.size() <= 256);
}

void CheckJobId(const std::string& id) {
  const absl::Status s = jobs::ValidateJobId(id);
  if (s.ok()) {
    FUZZ_CHECK(id.size() == 18 && absl::StartsWith(id, "j-"));
  } else {
    FUZZ_CHECK(s.code() == absl::StatusCode::kInvalidArgument);
    FUZZ_CHECK(absl::StartsWith(s.message(), "job_id: "));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // protobuf logs every string field that is not UTF-8; the parse failing is enough.
  static const bool kQuiet = [] {
    google::protobuf::SetLogHandler(nullptr);
    return true;
  }();
  (void)kQuiet;
  if (size == 0) return 0;
  const void* wire = data + 1;
  const int wire_size = static_cast<int>(size - 1);
  switch (data[0] % 4) {
    case 0: {
      pb::SubmitJobRequest r;
      if (r.ParseFromArray(wire, wire_size)) Submit(r);
      break;
    }
    case 1: {
      pb::ListJobsRequest r;
      if (r.ParseFromArray(wire, wire_size)) List(r);
      break;
    }
    case 2: {
      pb::WatchJobRequest r;
      if (r.ParseFromArray(wire, wire_size)) CheckJobId(r.job_id());
      break;
    }
    case 3: {
      pb::GetJobRequest r;
      if (r.ParseFromArray(wire, wire_size)) CheckJobId(r.job_id());
      break;
    }
  }
  return 0;
}
