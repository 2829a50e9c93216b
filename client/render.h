// How the `signround` CLI shows jobs and events: JSON lines for scripts
// (--json), a key: value block and a table for people, and for `watch` either
// one plain line per event or, on a terminal, a progress bar redrawn in place.
#pragma once

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "google/protobuf/message.h"
#include "signround/v1/quantization_service.pb.h"

namespace signround::cli {

// `message` as one line of JSON: proto field names, primitive fields always
// printed, enums by name. No trailing newline.
std::string ToJsonLine(const google::protobuf::Message& message);

// "RUNNING" for JOB_STATE_RUNNING; "-" for UNSPECIFIED.
std::string StateName(signround::v1::JobState state);

// `text` with every control character (newlines, escapes) replaced by a space:
// server-provided strings cannot break lines or drive the terminal.
std::string OneLine(absl::string_view text);

// A key: value block, one line each, ending in a newline.
std::string FormatJob(const signround::v1::Job& job);

// A table with columns ID, STATE, BLOCKS, LOSS, CREATED, MODEL and a header.
std::string FormatJobTable(const std::vector<signround::v1::Job>& jobs);

// One plain line (no newline) for an event, e.g.
// "seq 5 block 3/8 layers 7 loss 0.52 -> 0.31 (best iter 40) 1.2s".
std::string FormatEventLine(const signround::v1::JobEvent& event);

// Where watch events go.
class EventPrinter {
 public:
  virtual ~EventPrinter() = default;
  virtual void Print(const signround::v1::JobEvent& event) = 0;
  // A note for stderr (e.g. "reconnecting"), kept clear of a progress bar.
  virtual void Note(absl::string_view text) = 0;
  // Ends the output (a progress bar gets its final newline). Idempotent.
  virtual void Finish() = 0;
};

enum class EventStyle {
  kJson,   // one JobEvent JSON object per line
  kPlain,  // one FormatEventLine per event
  kBar,    // a progress bar redrawn with '\r', other events as lines above it
};

// A printer writing to `out`. `columns` bounds the progress bar's line
// (0: the terminal's width when `out` is one, else 80).
std::unique_ptr<EventPrinter> MakeEventPrinter(EventStyle style, std::FILE* out, int columns = 0);

}  // namespace signround::cli
