// The commands of the `signround` CLI (submit, get, list, watch, cancel): each
// takes its parsed options, talks to the server, prints, and returns the
// process exit code (client/exit_codes.h).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "client/connection.h"
#include "client/spec_flags.h"

namespace signround::cli {

struct SubmitOptions {
  SpecFlags spec;
  bool watch = false;               // follow the job until it ends
  double reconnect_timeout_s = 60;  // for --watch
};

struct GetOptions {
  std::string job_id;
};

struct ListOptions {
  std::string state;                // "" for every state
  std::vector<std::string> labels;  // key=value, all must match
  int32_t page_size = 0;            // 0: the server's default
  std::string page_token;
  bool all = false;  // follow next_page_token to the last page
};

struct WatchOptions {
  std::string job_id;
  int64_t from_sequence = 0;
  double reconnect_timeout_s = 60;
};

struct CancelOptions {
  std::string job_id;
};

int RunSubmit(const GlobalOptions& global, const SubmitOptions& options);
int RunGet(const GlobalOptions& global, const GetOptions& options);
int RunList(const GlobalOptions& global, const ListOptions& options);
int RunWatch(const GlobalOptions& global, const WatchOptions& options);
int RunCancel(const GlobalOptions& global, const CancelOptions& options);

}  // namespace signround::cli
