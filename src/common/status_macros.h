// Early-return helpers for absl::Status / absl::StatusOr.
#pragma once

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define SR_CONCAT_INNER(a, b) a##b
#define SR_CONCAT(a, b) SR_CONCAT_INNER(a, b)

// Returns the status from the enclosing function when `expr` is not OK.
#define SR_RETURN_IF_ERROR(expr)             \
  do {                                       \
    ::absl::Status sr_status_ = (expr);      \
    if (!sr_status_.ok()) return sr_status_; \
  } while (0)

// `SR_ASSIGN_OR_RETURN(auto x, F());` assigns the value of a StatusOr or
// returns its error from the enclosing function.
#define SR_ASSIGN_OR_RETURN(lhs, expr) \
  SR_ASSIGN_OR_RETURN_IMPL(SR_CONCAT(sr_statusor_, __LINE__), lhs, expr)
#define SR_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                             \
  if (!tmp.ok()) return std::move(tmp).status(); \
  lhs = std::move(tmp).value()
