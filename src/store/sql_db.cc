#include "src/store/sql_db.h"

#include <cmath>

#include "absl/strings/str_cat.h"

namespace signround::jobs::sql {

Statement& Statement::Int(int64_t value) {
  Param p;
  p.kind = Param::Kind::kInt;
  p.int_value = value;
  params_.push_back(std::move(p));
  return *this;
}

Statement& Statement::Real(double value) {
  if (std::isnan(value)) return Null();
  Param p;
  p.kind = Param::Kind::kReal;
  p.real_value = value;
  params_.push_back(std::move(p));
  return *this;
}

Statement& Statement::Text(absl::string_view value) {
  Param p;
  p.kind = Param::Kind::kText;
  p.text = std::string(value);
  params_.push_back(std::move(p));
  return *this;
}

Statement& Statement::TextOrNull(absl::string_view value) {
  return value.empty() ? Null() : Text(value);
}

Statement& Statement::Null() {
  params_.push_back(Param{});
  return *this;
}

absl::Status Statement::Run() {
  while (true) {
    absl::StatusOr<bool> row = Step();
    if (!row.ok()) return row.status();
    if (!*row) return absl::OkStatus();
  }
}

absl::StatusOr<std::string> Database::QueryText(absl::string_view sql) {
  absl::StatusOr<Statement> stmt = Prepare(sql);
  if (!stmt.ok()) return stmt.status();
  absl::StatusOr<bool> row = stmt->Step();
  if (!row.ok()) return row.status();
  return *row ? stmt->ColumnText(0) : std::string();
}

std::string NumberPlaceholders(absl::string_view sql) {
  std::string out;
  out.reserve(sql.size() + 16);
  int n = 0;
  char quote = 0;  // ' or " while inside a quoted string or identifier
  for (char c : sql) {
    if (quote != 0) {
      if (c == quote) quote = 0;
      out.push_back(c);
    } else if (c == '\'' || c == '"') {
      quote = c;
      out.push_back(c);
    } else if (c == '?') {
      absl::StrAppend(&out, "$", ++n);
    } else {
      out.push_back(c);
    }
  }
  return out;
}

}  // namespace signround::jobs::sql
