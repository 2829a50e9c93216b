#include "client/render.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <functional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "google/protobuf/util/json_util.h"

namespace signround::cli {
namespace {

namespace v1 = ::signround::v1;

constexpr int kBarWidth = 20;

std::string FormatTime(const google::protobuf::Timestamp& ts, const char* format) {
  if (ts.seconds() == 0 && ts.nanos() == 0) return "-";
  absl::Time t = absl::FromUnixSeconds(ts.seconds()) + absl::Nanoseconds(ts.nanos());
  return absl::FormatTime(format, t, absl::UTCTimeZone());
}

std::string Loss(double v) { return absl::StrFormat("%.4g", v); }

std::string Blocks(int32_t done, int32_t count) {
  if (count <= 0) return "-";
  return absl::StrCat(done, "/", count);
}

std::string ArtifactLine(const v1::Artifact& a) {
  return absl::StrCat(OneLine(a.format()), " ", OneLine(a.uri()), " ", a.bytes(), " bytes sha256 ",
                      OneLine(a.sha256()));
}

int TerminalColumns(std::FILE* out) {
  struct winsize ws = {};
  if (::ioctl(::fileno(out), TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) return ws.ws_col;
  return 80;
}

// One line per event: JSON (--json) or plain text (not a terminal).
class LinePrinter : public EventPrinter {
 public:
  LinePrinter(std::FILE* out, std::function<std::string(const v1::JobEvent&)> format)
      : out_(out), format_(std::move(format)) {}
  void Print(const v1::JobEvent& e) override {
    std::fprintf(out_, "%s\n", format_(e).c_str());
    std::fflush(out_);
  }
  void Note(absl::string_view text) override {
    std::fprintf(stderr, "%s\n", std::string(text).c_str());
  }
  void Finish() override { std::fflush(out_); }

 private:
  std::FILE* out_;
  std::function<std::string(const v1::JobEvent&)> format_;
};

// One line, `[#####.....] block 7/32  loss 0.0123 (best iter 143)  RUNNING`,
// redrawn in place; other events are printed as lines above it.
class BarPrinter : public EventPrinter {
 public:
  BarPrinter(std::FILE* out, int columns) : out_(out), columns_(columns) {}

  void Print(const v1::JobEvent& e) override {
    switch (e.kind_case()) {
      case v1::JobEvent::kBlockProgress: {
        const v1::BlockProgress& b = e.block_progress();
        done_ = b.block_index() + 1;
        count_ = b.block_count();
        loss_ = b.best_loss();
        best_iter_ = b.best_iteration();
        have_loss_ = true;
        break;
      }
      case v1::JobEvent::kStateChange:
        state_ = e.state_change().to();
        Above(FormatEventLine(e));
        break;
      default:
        Above(FormatEventLine(e));
        break;
    }
    Draw();
  }

  void Note(absl::string_view text) override {
    Clear();
    std::fprintf(stderr, "%s\n", std::string(text).c_str());
    std::fflush(stderr);
    if (drawn_) Draw();
  }

  void Finish() override {
    if (drawn_ && !finished_) std::fputs("\n", out_);
    finished_ = true;
    std::fflush(out_);
  }

 private:
  void Clear() {
    std::fputs("\r\033[K", out_);
    std::fflush(out_);
  }
  void Above(const std::string& line) {
    Clear();
    std::fprintf(out_, "%s\n", line.c_str());
  }
  void Draw() {
    int filled =
        count_ > 0 ? static_cast<int>(int64_t{kBarWidth} * std::min(done_, count_) / count_) : 0;
    std::string line =
        absl::StrCat("[", std::string(filled, '#'), std::string(kBarWidth - filled, '.'),
                     "] block ", done_, "/", count_ > 0 ? absl::StrCat(count_) : std::string("?"));
    if (have_loss_) absl::StrAppend(&line, "  loss ", Loss(loss_), " (best iter ", best_iter_, ")");
    absl::StrAppend(&line, "  ", StateName(state_));
    // A line wider than the terminal wraps, and '\r' would then redraw only its last row.
    int cols = columns_ > 0 ? columns_ : TerminalColumns(out_);
    if (static_cast<int>(line.size()) >= cols) line.resize(std::max(0, cols - 1));
    std::fprintf(out_, "\r\033[K%s", line.c_str());
    std::fflush(out_);
    drawn_ = true;
  }

  std::FILE* out_;
  int columns_;
  int32_t done_ = 0;
  int32_t count_ = 0;
  double loss_ = 0;
  int32_t best_iter_ = 0;
  bool have_loss_ = false;
  v1::JobState state_ = v1::JOB_STATE_UNSPECIFIED;
  bool drawn_ = false;
  bool finished_ = false;
};

}  // namespace

std::string ToJsonLine(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  std::string out;
  google::protobuf::util::Status status =
      google::protobuf::util::MessageToJsonString(message, &out, options);
  if (!status.ok()) {
    // Only invalid UTF-8 in a string field gets here; keep the output one JSON object.
    return absl::StrCat("{\"error\":\"cannot print ", message.GetTypeName(), " as JSON\"}");
  }
  return out;
}

std::string StateName(v1::JobState state) {
  if (state == v1::JOB_STATE_UNSPECIFIED || !v1::JobState_IsValid(state)) return "-";
  std::string name = v1::JobState_Name(state);
  constexpr absl::string_view kPrefix = "JOB_STATE_";
  return name.substr(kPrefix.size());
}

std::string OneLine(absl::string_view text) {
  std::string out(text);
  for (char& c : out) {
    unsigned char u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) c = ' ';
  }
  return out;
}

std::string FormatJob(const v1::Job& job) {
  std::vector<std::pair<std::string, std::string>> rows = {
      {"id", OneLine(job.id())},
      {"state", StateName(job.state())},
      {"model", OneLine(job.spec().model_uri())},
      {"out", OneLine(job.spec().output_uri())},
      {"created", FormatTime(job.create_time(), "%Y-%m-%dT%H:%M:%SZ")},
      {"started", FormatTime(job.start_time(), "%Y-%m-%dT%H:%M:%SZ")},
      {"ended", FormatTime(job.end_time(), "%Y-%m-%dT%H:%M:%SZ")},
      {"attempts", absl::StrCat(job.attempts())},
      {"device", job.device().empty() ? "-" : OneLine(job.device())},
      {"blocks", Blocks(job.blocks_done(), job.block_count())},
      {"latest loss", job.blocks_done() > 0 ? Loss(job.latest_loss()) : "-"},
  };
  if (!job.error().empty()) rows.push_back({"error", OneLine(job.error())});
  std::string out;
  for (const auto& [key, value] : rows)
    absl::StrAppend(&out, absl::StrFormat("%-12s %s\n", key + ":", value));
  if (job.artifacts_size() > 0) {
    absl::StrAppend(&out, "artifacts:\n");
    for (const v1::Artifact& a : job.artifacts())
      absl::StrAppend(&out, "  ", ArtifactLine(a), "\n");
  }
  return out;
}

std::string FormatJobTable(const std::vector<v1::Job>& jobs) {
  std::vector<std::vector<std::string>> rows = {
      {"ID", "STATE", "BLOCKS", "LOSS", "CREATED", "MODEL"}};
  for (const v1::Job& j : jobs) {
    rows.push_back({OneLine(j.id()), StateName(j.state()), Blocks(j.blocks_done(), j.block_count()),
                    j.blocks_done() > 0 ? Loss(j.latest_loss()) : "-",
                    FormatTime(j.create_time(), "%Y-%m-%d %H:%M:%S"),
                    OneLine(j.spec().model_uri())});
  }
  std::vector<size_t> width(rows[0].size(), 0);
  for (const auto& row : rows) {
    for (size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], row[i].size());
  }
  std::string out;
  for (const auto& row : rows) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      if (i + 1 == row.size()) {
        absl::StrAppend(&line, row[i]);
      } else {
        absl::StrAppend(&line, row[i], std::string(width[i] - row[i].size() + 2, ' '));
      }
    }
    absl::StrAppend(&out, line, "\n");
  }
  return out;
}

std::string FormatEventLine(const v1::JobEvent& e) {
  std::string out = absl::StrCat("seq ", e.sequence(), " ");
  switch (e.kind_case()) {
    case v1::JobEvent::kBlockProgress: {
      const v1::BlockProgress& b = e.block_progress();
      absl::StrAppend(&out, "block ", b.block_index() + 1, "/", b.block_count(), " layers ",
                      b.layers_quantized(), " loss ", Loss(b.loss_iter0()), " -> ",
                      Loss(b.best_loss()), " (best iter ", b.best_iteration(), ") ",
                      absl::StrFormat("%.1fs", b.seconds()), b.resumed() ? " resumed" : "");
      if (b.expert_tokens_size() > 0) {
        absl::StrAppend(&out, " expert tokens ", absl::StrJoin(b.expert_tokens(), ","));
      }
      if (b.rounded_experts_size() > 0) {
        absl::StrAppend(&out, " rounded experts ", absl::StrJoin(b.rounded_experts(), ","));
      }
      break;
    }
    case v1::JobEvent::kStateChange: {
      const v1::StateChange& s = e.state_change();
      absl::StrAppend(&out, "state ");
      if (s.from() != v1::JOB_STATE_UNSPECIFIED) absl::StrAppend(&out, StateName(s.from()), " -> ");
      absl::StrAppend(&out, StateName(s.to()));
      if (!s.reason().empty()) absl::StrAppend(&out, " (", OneLine(s.reason()), ")");
      break;
    }
    case v1::JobEvent::kArtifactUploaded:
      absl::StrAppend(&out, "artifact ", ArtifactLine(e.artifact_uploaded().artifact()));
      break;
    case v1::JobEvent::kError:
      absl::StrAppend(&out, "error attempt ", e.attempt(), ": ", OneLine(e.error().message()),
                      e.error().will_retry() ? " (will retry)" : "");
      break;
    default:
      absl::StrAppend(&out, "event of an unknown kind");
      break;
  }
  return out;
}

std::unique_ptr<EventPrinter> MakeEventPrinter(EventStyle style, std::FILE* out, int columns) {
  switch (style) {
    case EventStyle::kJson:
      return std::make_unique<LinePrinter>(out,
                                           [](const v1::JobEvent& e) { return ToJsonLine(e); });
    case EventStyle::kBar:
      return std::make_unique<BarPrinter>(out, columns);
    case EventStyle::kPlain:
    default:
      return std::make_unique<LinePrinter>(out, FormatEventLine);
  }
}

}  // namespace signround::cli
