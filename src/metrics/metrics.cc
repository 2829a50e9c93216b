#include "src/metrics/metrics.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"

namespace signround::metrics {
namespace {

void AtomicAdd(std::atomic<double>* target, double v) {
  double old = target->load(std::memory_order_relaxed);
  while (!target->compare_exchange_weak(old, old + v, std::memory_order_relaxed)) {
  }
}

bool IsAsciiAlpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool IsAsciiDigit(char c) { return c >= '0' && c <= '9'; }

// [a-zA-Z_:][a-zA-Z0-9_:]*
bool IsValidMetricName(absl::string_view name) {
  if (name.empty() || IsAsciiDigit(name[0])) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return IsAsciiAlpha(c) || IsAsciiDigit(c) || c == '_' || c == ':';
  });
}

// [a-zA-Z_][a-zA-Z0-9_]*, and not reserved (a "__" prefix).
bool IsValidLabelName(absl::string_view name) {
  if (name.empty() || IsAsciiDigit(name[0])) return false;
  if (name.substr(0, 2) == "__") return false;
  return std::all_of(name.begin(), name.end(),
                     [](char c) { return IsAsciiAlpha(c) || IsAsciiDigit(c) || c == '_'; });
}

// The length of the valid UTF-8 sequence at the start of `s`, or 0 when it is not one
// (overlong forms, surrogates and code points above U+10FFFF are invalid).
size_t Utf8SequenceLength(absl::string_view s) {
  const auto b = [&](size_t i) { return static_cast<unsigned char>(s[i]); };
  const auto cont = [&](size_t i) { return i < s.size() && (b(i) & 0xC0) == 0x80; };
  const unsigned char c = b(0);
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) return cont(1) ? 2 : 0;
  if (c >= 0xE0 && c <= 0xEF) {
    if (!cont(1) || !cont(2)) return 0;
    if (c == 0xE0 && b(1) < 0xA0) return 0;   // overlong
    if (c == 0xED && b(1) >= 0xA0) return 0;  // surrogate
    return 3;
  }
  if (c >= 0xF0 && c <= 0xF4) {
    if (!cont(1) || !cont(2) || !cont(3)) return 0;
    if (c == 0xF0 && b(1) < 0x90) return 0;   // overlong
    if (c == 0xF4 && b(1) >= 0x90) return 0;  // above U+10FFFF
    return 4;
  }
  return 0;
}

// Appends `s` to `out` with invalid UTF-8 bytes replaced by U+FFFD and the characters in
// `escape_quote` / backslash / newline escaped as the exposition format requires.
void AppendEscaped(absl::string_view s, bool escape_quote, std::string* out) {
  size_t i = 0;
  while (i < s.size()) {
    const size_t n = Utf8SequenceLength(s.substr(i));
    if (n == 0) {
      out->append("\xEF\xBF\xBD");
      ++i;
      continue;
    }
    const char c = s[i];
    if (c == '\\') {
      out->append("\\\\");
    } else if (c == '\n') {
      out->append("\\n");
    } else if (c == '"' && escape_quote) {
      out->append("\\\"");
    } else {
      out->append(s.data() + i, n);
    }
    i += n;
  }
}

// `name{l1="v1",l2="v2"[,le="bound"]} value\n`
void AppendSample(absl::string_view name, const std::vector<std::string>& label_names,
                  const std::vector<std::string>& label_values, const std::string* le, double value,
                  std::string* out) {
  out->append(name.data(), name.size());
  if (!label_names.empty() || le != nullptr) {
    out->push_back('{');
    for (size_t i = 0; i < label_names.size(); ++i) {
      if (i > 0) out->push_back(',');
      absl::StrAppend(out, label_names[i], "=\"");
      AppendEscaped(label_values[i], /*escape_quote=*/true, out);
      out->push_back('"');
    }
    if (le != nullptr) absl::StrAppend(out, label_names.empty() ? "" : ",", "le=\"", *le, "\"");
    out->push_back('}');
  }
  absl::StrAppend(out, " ", FormatValue(value), "\n");
}

void CheckNames(absl::string_view kind, const std::string& name,
                const std::vector<std::string>& label_names) {
  if (!IsValidMetricName(name)) {
    internal::Die(absl::StrCat("invalid ", kind, " name \"", name,
                               "\": must match [a-zA-Z_:][a-zA-Z0-9_:]*"));
  }
  std::set<std::string> seen;
  for (const std::string& label : label_names) {
    if (!IsValidLabelName(label)) {
      internal::Die(absl::StrCat("invalid label name \"", label, "\" of ", kind, " \"", name,
                                 "\": must match [a-zA-Z_][a-zA-Z0-9_]* without a \"__\" "
                                 "prefix"));
    }
    if (!seen.insert(label).second) {
      internal::Die(
          absl::StrCat("duplicate label name \"", label, "\" of ", kind, " \"", name, "\""));
    }
  }
}

// Drops a trailing +Inf; dies unless the rest is finite and strictly increasing.
std::vector<double> CheckBuckets(const std::string& name, std::vector<double> buckets) {
  if (!buckets.empty() && buckets.back() == HUGE_VAL) buckets.pop_back();
  for (size_t i = 0; i < buckets.size(); ++i) {
    if (!std::isfinite(buckets[i])) {
      internal::Die(absl::StrCat("histogram \"", name, "\": bucket ", i, " is ",
                                 FormatValue(buckets[i]), ", must be finite"));
    }
    if (i > 0 && !(buckets[i - 1] < buckets[i])) {
      internal::Die(absl::StrCat("histogram \"", name,
                                 "\": buckets must be strictly "
                                 "increasing, bucket ",
                                 i, " (", FormatValue(buckets[i]), ") follows ",
                                 FormatValue(buckets[i - 1])));
    }
  }
  return buckets;
}

}  // namespace

// ---- metrics ----

void Counter::Inc(double v) {
  if (!(v >= 0)) return;  // negative or NaN
  AtomicAdd(&value_, v);
}

void Gauge::Inc(double v) { AtomicAdd(&value_, v); }

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), counts_(new std::atomic<uint64_t>[bounds_.size() + 1]) {
  for (size_t i = 0; i <= bounds_.size(); ++i) counts_[i].store(0, std::memory_order_relaxed);
}

void Histogram::Observe(double v) {
  // The first bound >= v; NaN compares false with everything and lands in +Inf.
  size_t index = bounds_.size();
  if (!std::isnan(v)) {
    index =
        static_cast<size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), v) - bounds_.begin());
  }
  counts_[index].fetch_add(1, std::memory_order_relaxed);
  AtomicAdd(&sum_, v);
}

uint64_t Histogram::Count() const {
  uint64_t total = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) total += counts_[i].load(std::memory_order_relaxed);
  return total;
}

std::vector<uint64_t> Histogram::CumulativeCounts() const {
  std::vector<uint64_t> out(bounds_.size() + 1);
  uint64_t running = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    running += counts_[i].load(std::memory_order_relaxed);
    out[i] = running;
  }
  return out;
}

// ---- rendering ----

std::string FormatValue(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  constexpr double kExactIntegerLimit = 9007199254740992.0;  // 2^53
  if (std::fabs(v) < kExactIntegerLimit && v == std::trunc(v)) {
    return absl::StrCat(static_cast<int64_t>(v));
  }
  char buf[64];
  const std::to_chars_result r = std::to_chars(buf, buf + sizeof(buf), v);
  return std::string(buf, r.ptr);
}

namespace internal {

void Die(const std::string& message) {
  std::fprintf(stderr, "signround metrics: %s\n", message.c_str());
  std::fflush(stderr);
  std::abort();
}

void FamilyBase::RenderHeader(std::string* out) const {
  absl::StrAppend(out, "# HELP ", name_);
  if (!help_.empty()) {
    out->push_back(' ');
    AppendEscaped(help_, /*escape_quote=*/false, out);
  }
  absl::StrAppend(out, "\n# TYPE ", name_, " ", type_, "\n");
}

void FamilyBase::CheckArity(const std::vector<std::string>& label_values) const {
  if (label_values.size() == label_names_.size()) return;
  Die(absl::StrCat("metric \"", name_, "\" has ", label_names_.size(), " label(s) [",
                   absl::StrJoin(label_names_, ", "), "] but With() got ", label_values.size(),
                   " value(s)"));
}

void RenderSeries(const FamilyBase& family, const std::vector<std::string>& values,
                  const Counter& metric, std::string* out) {
  AppendSample(family.name(), family.label_names(), values, nullptr, metric.Value(), out);
}

void RenderSeries(const FamilyBase& family, const std::vector<std::string>& values,
                  const Gauge& metric, std::string* out) {
  AppendSample(family.name(), family.label_names(), values, nullptr, metric.Value(), out);
}

void RenderSeries(const FamilyBase& family, const std::vector<std::string>& values,
                  const Histogram& metric, std::string* out) {
  // The counts are read once, so _count always equals the +Inf bucket.
  const std::vector<uint64_t> cumulative = metric.CumulativeCounts();
  const std::vector<double>& bounds = metric.bounds();
  const std::string bucket_name = family.name() + "_bucket";
  for (size_t i = 0; i <= bounds.size(); ++i) {
    const std::string le = i < bounds.size() ? FormatValue(bounds[i]) : "+Inf";
    AppendSample(bucket_name, family.label_names(), values, &le, static_cast<double>(cumulative[i]),
                 out);
  }
  AppendSample(family.name() + "_sum", family.label_names(), values, nullptr, metric.Sum(), out);
  AppendSample(family.name() + "_count", family.label_names(), values, nullptr,
               static_cast<double>(cumulative.back()), out);
}

}  // namespace internal

// ---- registry ----

template <class M>
Family<M>& Registry::Add(std::unique_ptr<Family<M>> family,
                         const std::vector<std::string>& suffixes) {
  std::lock_guard<std::mutex> lock(mu_);
  for (const std::string& suffix : suffixes) {
    const std::string sample = family->name() + suffix;
    auto it = sample_names_.find(sample);
    if (it != sample_names_.end()) {
      internal::Die(absl::StrCat("metric \"", family->name(), "\" would expose \"", sample,
                                 "\", which metric \"", it->second, "\" already uses"));
    }
  }
  for (const std::string& suffix : suffixes) {
    sample_names_.emplace(family->name() + suffix, family->name());
  }
  Family<M>* raw = family.get();
  families_.push_back(std::move(family));
  if (raw->label_names().empty()) raw->With({});
  return *raw;
}

Family<Counter>& Registry::AddCounter(const std::string& name, const std::string& help,
                                      std::vector<std::string> label_names) {
  CheckNames("counter", name, label_names);
  return Add(std::make_unique<Family<Counter>>(name, help, "counter", std::move(label_names),
                                               [] { return std::make_unique<Counter>(); }),
             {""});
}

Family<Gauge>& Registry::AddGauge(const std::string& name, const std::string& help,
                                  std::vector<std::string> label_names) {
  CheckNames("gauge", name, label_names);
  return Add(std::make_unique<Family<Gauge>>(name, help, "gauge", std::move(label_names),
                                             [] { return std::make_unique<Gauge>(); }),
             {""});
}

Family<Histogram>& Registry::AddHistogram(const std::string& name, const std::string& help,
                                          std::vector<double> buckets,
                                          std::vector<std::string> label_names) {
  CheckNames("histogram", name, label_names);
  if (std::find(label_names.begin(), label_names.end(), "le") != label_names.end()) {
    internal::Die(absl::StrCat("histogram \"", name, "\": label name \"le\" is reserved"));
  }
  std::vector<double> bounds = CheckBuckets(name, std::move(buckets));
  auto make = [bounds] { return std::make_unique<Histogram>(bounds); };
  return Add(std::make_unique<Family<Histogram>>(name, help, "histogram", std::move(label_names),
                                                 std::move(make)),
             {"", "_bucket", "_sum", "_count"});
}

void Registry::AddCollector(std::function<void()> collect) {
  std::lock_guard<std::mutex> lock(mu_);
  collectors_.push_back(std::move(collect));
}

std::string Registry::Render() {
  std::lock_guard<std::mutex> render_lock(render_mu_);
  std::vector<std::function<void()>> collectors;
  {
    std::lock_guard<std::mutex> lock(mu_);
    collectors = collectors_;
  }
  // Outside mu_: a collector may register or update metrics.
  for (const auto& collect : collectors) collect();
  std::vector<const internal::FamilyBase*> families;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& family : families_) families.push_back(family.get());
  }
  std::string out;
  for (const internal::FamilyBase* family : families) family->Render(&out);
  return out;
}

std::vector<double> ExponentialBuckets(double start, double factor, int count) {
  if (!(start > 0) || !std::isfinite(start) || !(factor > 1) || !std::isfinite(factor) ||
      count < 1) {
    internal::Die(absl::StrCat("ExponentialBuckets(", FormatValue(start), ", ", FormatValue(factor),
                               ", ", count,
                               "): need start > 0, factor > 1, count >= 1, all finite"));
  }
  std::vector<double> out;
  out.reserve(static_cast<size_t>(count));
  double bound = start;
  for (int i = 0; i < count; ++i) {
    out.push_back(bound);
    bound *= factor;
  }
  return out;
}

}  // namespace signround::metrics
