// Prometheus metrics: counters, gauges and histograms grouped in labelled families, kept in a
// Registry that renders them in the Prometheus text exposition format 0.0.4.
//
// Updates are thread-safe and lock-free (atomics); Family::With takes a short per-family
// mutex, so hot paths should keep the returned reference (it stays valid for the Registry's
// lifetime). Names are compile-time constants: a malformed metric or label name, a duplicate
// family, bad histogram buckets or a wrong number of label values is a programming error and
// aborts with a message. Label values are data and may hold anything (they are escaped, and
// invalid UTF-8 is replaced by U+FFFD when rendered).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace signround::metrics {

// A monotonically increasing value. Name it with a `_total` suffix.
class Counter {
 public:
  Counter() = default;
  Counter(const Counter&) = delete;
  Counter& operator=(const Counter&) = delete;

  // Adds `v` (>= 0). A negative or NaN `v` is ignored: a counter never goes down.
  void Inc(double v = 1);
  double Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

// A value that goes up and down.
class Gauge {
 public:
  Gauge() = default;
  Gauge(const Gauge&) = delete;
  Gauge& operator=(const Gauge&) = delete;

  void Set(double v) { value_.store(v, std::memory_order_relaxed); }
  void Inc(double v = 1);
  void Dec(double v = 1) { Inc(-v); }
  double Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

// Counts observations into buckets with fixed upper bounds (an observation v lands in the
// first bucket with v <= bound; NaN and values above every bound only in +Inf).
class Histogram {
 public:
  // `bounds`: finite and strictly increasing (the Registry checks this).
  explicit Histogram(std::vector<double> bounds);
  Histogram(const Histogram&) = delete;
  Histogram& operator=(const Histogram&) = delete;

  void Observe(double v);
  uint64_t Count() const;
  double Sum() const { return sum_.load(std::memory_order_relaxed); }

  const std::vector<double>& bounds() const { return bounds_; }
  // The cumulative count for each bound, then the total (the +Inf bucket).
  std::vector<uint64_t> CumulativeCounts() const;

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> counts_;  // bounds_.size() + 1, not cumulative
  std::atomic<double> sum_{0};
};

namespace internal {

[[noreturn]] void Die(const std::string& message);

// What every family has, whatever its metric type.
class FamilyBase {
 public:
  FamilyBase(std::string name, std::string help, std::string type,
             std::vector<std::string> label_names)
      : name_(std::move(name)),
        help_(std::move(help)),
        type_(std::move(type)),
        label_names_(std::move(label_names)) {}
  virtual ~FamilyBase() = default;

  const std::string& name() const { return name_; }
  const std::vector<std::string>& label_names() const { return label_names_; }
  // Appends the `# HELP` and `# TYPE` lines and every series to `out`.
  virtual void Render(std::string* out) const = 0;

 protected:
  void RenderHeader(std::string* out) const;
  // Dies when `label_values` does not match label_names() in number.
  void CheckArity(const std::vector<std::string>& label_values) const;

 private:
  std::string name_;
  std::string help_;
  std::string type_;
  std::vector<std::string> label_names_;
};

// The sample lines of one series.
void RenderSeries(const FamilyBase& family, const std::vector<std::string>& values,
                  const Counter& metric, std::string* out);
void RenderSeries(const FamilyBase& family, const std::vector<std::string>& values,
                  const Gauge& metric, std::string* out);
void RenderSeries(const FamilyBase& family, const std::vector<std::string>& values,
                  const Histogram& metric, std::string* out);

}  // namespace internal

// The series of one metric name, one per distinct tuple of label values.
template <class M>
class Family final : public internal::FamilyBase {
 public:
  using Factory = std::function<std::unique_ptr<M>()>;

  Family(std::string name, std::string help, std::string type, std::vector<std::string> label_names,
         Factory make)
      : FamilyBase(std::move(name), std::move(help), std::move(type), std::move(label_names)),
        make_(std::move(make)) {}

  // The series with these label values (in label-name order), created on first use.
  M& With(const std::vector<std::string>& label_values) {
    CheckArity(label_values);
    std::lock_guard<std::mutex> lock(mu_);
    auto it = series_.find(label_values);
    if (it == series_.end()) it = series_.emplace(label_values, make_()).first;
    return *it->second;
  }

  void Render(std::string* out) const override {
    RenderHeader(out);
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [values, metric] : series_) {
      internal::RenderSeries(*this, values, *metric, out);
    }
  }

 private:
  Factory make_;
  mutable std::mutex mu_;
  // Sorted by label values, so the output is stable.
  std::map<std::vector<std::string>, std::unique_ptr<M>> series_;
};

// The set of families one process exposes.
class Registry {
 public:
  Registry() = default;
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // A family without labels has its single series from the start (rendered as 0).
  Family<Counter>& AddCounter(const std::string& name, const std::string& help,
                              std::vector<std::string> label_names = {});
  Family<Gauge>& AddGauge(const std::string& name, const std::string& help,
                          std::vector<std::string> label_names = {});
  // `buckets`: the upper bounds, finite and strictly increasing; a trailing +Inf is dropped
  // (it is always there). Label "le" is reserved.
  Family<Histogram>& AddHistogram(const std::string& name, const std::string& help,
                                  std::vector<double> buckets,
                                  std::vector<std::string> label_names = {});

  // Called at the start of every Render (e.g. to set gauges computed from a database), in
  // the order added, one Render at a time. A collector may use any family of this registry.
  void AddCollector(std::function<void()> collect);

  // Every family in registration order, in Prometheus text exposition format 0.0.4.
  std::string Render();

 private:
  // Checks the names, reserves the sample names `family` exposes and stores it.
  template <class M>
  Family<M>& Add(std::unique_ptr<Family<M>> family, const std::vector<std::string>& suffixes);

  std::mutex render_mu_;  // one Render at a time (collectors run unsynchronized otherwise)
  std::mutex mu_;         // guards the members below
  std::vector<std::unique_ptr<internal::FamilyBase>> families_;
  std::map<std::string, std::string> sample_names_;  // exposed sample name -> family name
  std::vector<std::function<void()>> collectors_;
};

// `count` bounds: start, start*factor, start*factor^2, ... (start > 0, factor > 1, count >= 1;
// anything else is a programming error and aborts).
std::vector<double> ExponentialBuckets(double start, double factor, int count);

// The exposition format's rendering of a sample value: "+Inf", "-Inf", "NaN", integers
// without exponent or fraction when exact (|v| < 2^53), otherwise the shortest decimal that
// reads back as the same double.
std::string FormatValue(double v);

}  // namespace signround::metrics
