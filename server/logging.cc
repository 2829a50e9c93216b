#include "server/logging.h"

#include <memory>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "spdlog/pattern_formatter.h"
#include "spdlog/sinks/stdout_sinks.h"
#include "spdlog/spdlog.h"

namespace signround::server {
namespace {

void AppendJsonString(absl::string_view s, spdlog::memory_buf_t& dest) {
  std::string out = "\"";
  for (char ch : s) {
    const unsigned char c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          absl::StrAppend(&out, "\\u00", absl::Hex(c, absl::kZeroPad2));
        } else {
          out += ch;
        }
    }
  }
  out += '"';
  dest.append(out.data(), out.data() + out.size());
}

// %* in the pattern: ,"job":"...","msg":"..." with the message JSON-escaped.
class JsonMessageFlag : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    absl::string_view text(msg.payload.data(), msg.payload.size());
    if (absl::StartsWith(text, "job=")) {
      const size_t space = text.find(' ');
      absl::string_view id = text.substr(4, space == absl::string_view::npos ? text.npos : space - 4);
      const char key[] = ",\"job\":";
      dest.append(key, key + sizeof(key) - 1);
      AppendJsonString(id, dest);
      text = space == absl::string_view::npos ? absl::string_view() : text.substr(space + 1);
    }
    const char key[] = ",\"msg\":";
    dest.append(key, key + sizeof(key) - 1);
    AppendJsonString(text, dest);
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<JsonMessageFlag>();
  }
};

}  // namespace

absl::Status ConfigureLogging(absl::string_view format) {
  auto logger = std::make_shared<spdlog::logger>(
      "signround", std::make_shared<spdlog::sinks::stderr_sink_mt>());
  if (format == "json") {
    auto formatter = std::make_unique<spdlog::pattern_formatter>(spdlog::pattern_time_type::utc);
    formatter->add_flag<JsonMessageFlag>('*').set_pattern(
        R"({"time":"%Y-%m-%dT%H:%M:%S.%fZ","level":"%l"%*})");
    logger->set_formatter(std::move(formatter));
  } else if (format == "text") {
    logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("--log-format: '", format, "' is not text or json"));
  }
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(std::move(logger));
  return absl::OkStatus();
}

}  // namespace signround::server
