// The metrics registry: metric semantics, the text exposition format (exact text for small
// cases, and Python's prometheus_client parser as an outside reference), name checks and
// concurrent updates.
#include "src/metrics/metrics.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <limits>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/testing/test_files.h"

namespace signround::metrics {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

TEST(CounterTest, IncAddsAndIgnoresNegativeAndNaN) {
  Counter c;
  EXPECT_EQ(c.Value(), 0);
  c.Inc();
  c.Inc(2.5);
  c.Inc(-7);
  c.Inc(kNaN);
  EXPECT_EQ(c.Value(), 3.5);
}

TEST(GaugeTest, SetIncDec) {
  Gauge g;
  g.Set(10);
  g.Inc();
  g.Inc(0.5);
  g.Dec(4);
  EXPECT_EQ(g.Value(), 7.5);
  g.Set(-kInf);
  EXPECT_EQ(g.Value(), -kInf);
}

TEST(HistogramTest, ObservationLandsInFirstBucketWhoseBoundIsAtLeastIt) {
  Histogram h({1, 2, 5});
  for (double v : {0.5, 1.0, 1.0000001, 2.0, 4.9, 5.0, 5.1, 100.0, -3.0}) h.Observe(v);
  // <=1: 0.5, 1, -3 | <=2: + 1.0000001, 2 | <=5: + 4.9, 5 | +Inf: + 5.1, 100.
  EXPECT_EQ(h.CumulativeCounts(), (std::vector<uint64_t>{3, 5, 7, 9}));
  EXPECT_EQ(h.Count(), 9u);
  EXPECT_DOUBLE_EQ(h.Sum(), 0.5 + 1.0 + 1.0000001 + 2.0 + 4.9 + 5.0 + 5.1 + 100.0 - 3.0);
  h.Observe(kNaN);  // only in +Inf, as Prometheus' Go client does
  EXPECT_EQ(h.CumulativeCounts(), (std::vector<uint64_t>{3, 5, 7, 10}));
  EXPECT_TRUE(std::isnan(h.Sum()));
}

TEST(FormatValueTest, PrometheusSpellings) {
  EXPECT_EQ(FormatValue(0), "0");
  EXPECT_EQ(FormatValue(-0.0), "0");
  EXPECT_EQ(FormatValue(42), "42");
  EXPECT_EQ(FormatValue(-17), "-17");
  EXPECT_EQ(FormatValue(1e15), "1000000000000000");
  EXPECT_EQ(FormatValue(9007199254740991.0), "9007199254740991");
  EXPECT_EQ(FormatValue(0.1), "0.1");
  EXPECT_EQ(FormatValue(-2.5), "-2.5");
  EXPECT_EQ(FormatValue(kInf), "+Inf");
  EXPECT_EQ(FormatValue(-kInf), "-Inf");
  EXPECT_EQ(FormatValue(kNaN), "NaN");
  // Not integers, or beyond 2^53: the shortest text that reads back as the same double.
  for (double v : {1e20, 1.5e-7, 1.0 / 3, 5e-324, 1.7976931348623157e308, 123456.789}) {
    const std::string s = FormatValue(v);
    EXPECT_EQ(std::strtod(s.c_str(), nullptr), v) << s;
    EXPECT_EQ(s.find_first_not_of("0123456789.e+-"), std::string::npos) << s;
  }
}

TEST(RenderTest, ExactTextOfASmallRegistry) {
  Registry r;
  r.AddCounter("jobs_submitted_total", "Jobs submitted.").With({}).Inc(3);
  auto& slots = r.AddGauge("slot_busy", "1 when the slot runs a job.", {"device"});
  slots.With({"cuda:1"}).Set(0);
  slots.With({"cpu"}).Set(1);
  auto& latency = r.AddHistogram("rpc_seconds", "RPC latency.", {0.1, 1}, {"method"});
  latency.With({"Get"}).Observe(0.0625);  // binary-exact values: the sum is exact
  latency.With({"Get"}).Observe(0.5);
  latency.With({"Get"}).Observe(3);
  EXPECT_EQ(r.Render(),
            "# HELP jobs_submitted_total Jobs submitted.\n"
            "# TYPE jobs_submitted_total counter\n"
            "jobs_submitted_total 3\n"
            "# HELP slot_busy 1 when the slot runs a job.\n"
            "# TYPE slot_busy gauge\n"
            "slot_busy{device=\"cpu\"} 1\n"
            "slot_busy{device=\"cuda:1\"} 0\n"
            "# HELP rpc_seconds RPC latency.\n"
            "# TYPE rpc_seconds histogram\n"
            "rpc_seconds_bucket{method=\"Get\",le=\"0.1\"} 1\n"
            "rpc_seconds_bucket{method=\"Get\",le=\"1\"} 2\n"
            "rpc_seconds_bucket{method=\"Get\",le=\"+Inf\"} 3\n"
            "rpc_seconds_sum{method=\"Get\"} 3.5625\n"
            "rpc_seconds_count{method=\"Get\"} 3\n");
}

TEST(RenderTest, UnlabelledHistogramAndEmptyFamilies) {
  Registry r;
  r.AddHistogram("h", "", {2.5, kInf});  // the trailing +Inf is implied anyway
  r.AddCounter("by_code_total", "By code.", {"code"});
  EXPECT_EQ(r.Render(),
            "# HELP h\n# TYPE h histogram\n"
            "h_bucket{le=\"2.5\"} 0\nh_bucket{le=\"+Inf\"} 0\nh_sum 0\nh_count 0\n"
            "# HELP by_code_total By code.\n# TYPE by_code_total counter\n");
}

TEST(RenderTest, SeriesSortedByLabelValues) {
  Registry r;
  auto& f = r.AddCounter("x_total", "x", {"a", "b"});
  for (const auto& v : std::vector<std::vector<std::string>>{
           {"b", "1"}, {"a", "2"}, {"a", "10"}, {"", "z"}, {"a", "1"}}) {
    f.With(v).Inc();
  }
  const std::vector<std::string> lines = absl::StrSplit(r.Render(), '\n', absl::SkipEmpty());
  const std::vector<std::string> want = {
      "x_total{a=\"\",b=\"z\"} 1", "x_total{a=\"a\",b=\"1\"} 1", "x_total{a=\"a\",b=\"10\"} 1",
      "x_total{a=\"a\",b=\"2\"} 1", "x_total{a=\"b\",b=\"1\"} 1"};
  ASSERT_EQ(lines.size(), 2 + want.size());
  EXPECT_EQ(std::vector<std::string>(lines.begin() + 2, lines.end()), want);
}

TEST(RenderTest, EscapesHelpAndLabelValues) {
  Registry r;
  r.AddGauge("g", "a \\ b\nc \"q\"", {"v"}).With({"x\\y\"z\nw"}).Set(1);
  EXPECT_EQ(r.Render(),
            "# HELP g a \\\\ b\\nc \"q\"\n# TYPE g gauge\n"
            "g{v=\"x\\\\y\\\"z\\nw\"} 1\n");
}

TEST(RenderTest, InvalidUtf8IsReplacedValidUtf8Kept) {
  Registry r;
  auto& g = r.AddGauge("g", "h\xC3", {"v"});
  g.With({"ok \xE2\x9C\x93 \xF0\x9F\x9A\x80"}).Set(1);                      // check mark, rocket
  g.With({"\xFF|\xC0\xAF|\xED\xA0\x80|\xF4\x90\x80\x80|\xE2\x9C"}).Set(2);  // all invalid
  const std::string text = r.Render();
  const std::string fffd = "\xEF\xBF\xBD";
  EXPECT_TRUE(absl::StrContains(text, "# HELP g h" + fffd + "\n")) << text;
  EXPECT_TRUE(absl::StrContains(text, "g{v=\"ok \xE2\x9C\x93 \xF0\x9F\x9A\x80\"} 1\n"));
  // Each invalid byte becomes one U+FFFD (overlong, surrogate, > U+10FFFF, truncated).
  const std::string want = "g{v=\"" + fffd + "|" + fffd + fffd + "|" + fffd + fffd + fffd + "|" +
                           fffd + fffd + fffd + fffd + "|" + fffd + fffd + "\"} 2\n";
  EXPECT_TRUE(absl::StrContains(text, want)) << text;
}

TEST(RegistryTest, CollectorsRunBeforeEveryRender) {
  Registry r;
  auto& depth = r.AddGauge("queue_depth", "Queued jobs.");
  int calls = 0;
  r.AddCollector([&] { depth.With({}).Set(++calls * 10); });
  EXPECT_TRUE(absl::StrContains(r.Render(), "\nqueue_depth 10\n"));
  EXPECT_TRUE(absl::StrContains(r.Render(), "\nqueue_depth 20\n"));
  EXPECT_EQ(calls, 2);
}

TEST(RegistryTest, ReferencesStayValidAsSeriesAndFamiliesGrow) {
  Registry r;
  auto& family = r.AddCounter("a_total", "a", {"k"});
  Counter& first = family.With({"first"});
  first.Inc();
  for (int i = 0; i < 1000; ++i) {
    family.With({absl::StrCat(i)}).Inc();
    r.AddGauge(absl::StrCat("g", i), "g");
  }
  EXPECT_EQ(&family.With({"first"}), &first);
  first.Inc();
  EXPECT_EQ(family.With({"first"}).Value(), 2);
  EXPECT_TRUE(absl::StrContains(r.Render(), "a_total{k=\"first\"} 2\n"));
}

TEST(ExponentialBucketsTest, GeometricSeries) {
  const std::vector<double> b = ExponentialBuckets(0.01, 4, 6);
  ASSERT_EQ(b.size(), 6u);
  for (size_t i = 0; i < b.size(); ++i) {
    EXPECT_NEAR(b[i], 0.01 * std::pow(4.0, static_cast<double>(i)), 1e-12 * b[i]) << i;
  }
}

using RegistryDeathTest = ::testing::Test;

TEST_F(RegistryDeathTest, ProgrammingErrorsAbortWithAMessage) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  Registry r;
  r.AddCounter("dup_total", "d");
  r.AddHistogram("lat", "l", {1});
  auto& two = r.AddGauge("two", "t", {"a", "b"});
  EXPECT_DEATH(r.AddCounter("1bad", "x"), "invalid counter name \"1bad\"");
  EXPECT_DEATH(r.AddGauge("bad-name", "x"), "invalid gauge name");
  EXPECT_DEATH(r.AddGauge("ok", "x", {"bad label"}), "invalid label name \"bad label\"");
  EXPECT_DEATH(r.AddGauge("ok", "x", {"__reserved"}), "invalid label name");
  EXPECT_DEATH(r.AddGauge("ok", "x", {"a", "a"}), "duplicate label name \"a\"");
  EXPECT_DEATH(r.AddCounter("dup_total", "again"), "already uses");
  EXPECT_DEATH(r.AddGauge("lat_bucket", "x"), "\"lat_bucket\", which metric \"lat\"");
  EXPECT_DEATH(r.AddHistogram("h", "x", {1}, {"le"}), "\"le\" is reserved");
  EXPECT_DEATH(r.AddHistogram("h", "x", {1, 1}), "strictly increasing");
  EXPECT_DEATH(r.AddHistogram("h", "x", {kNaN}), "must be finite");
  EXPECT_DEATH(two.With({"only one"}), "has 2 label\\(s\\) \\[a, b\\] but With\\(\\) got 1");
  EXPECT_DEATH(ExponentialBuckets(0, 2, 3), "ExponentialBuckets");
  EXPECT_DEATH(ExponentialBuckets(1, 1, 3), "ExponentialBuckets");
}

// The value on the line that starts with `prefix` in `text`, or NaN.
double SampleValue(const std::string& text, const std::string& prefix) {
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (absl::StartsWith(line, prefix)) {
      return std::strtod(std::string(line.substr(prefix.size())).c_str(), nullptr);
    }
  }
  return kNaN;
}

TEST(ConcurrencyTest, ParallelUpdatesAreExactWhileRendering) {
  Registry r;
  Counter& total = r.AddCounter("ops_total", "ops").With({});
  auto& by_worker = r.AddCounter("worker_ops_total", "ops by worker", {"worker"});
  Gauge& inflight = r.AddGauge("inflight", "in flight").With({});
  Histogram& sizes = r.AddHistogram("size", "sizes", {1, 2, 3}).With({});
  constexpr int kThreads = 8;
  constexpr int kIters = 50000;
  std::atomic<bool> done{false};
  std::thread renderer([&] {
    double last = 0;
    while (!done) {
      const std::string text = r.Render();
      const double now = SampleValue(text, "ops_total ");
      EXPECT_GE(now, last);  // a counter never goes down
      last = now;
      EXPECT_EQ(SampleValue(text, "size_count "), SampleValue(text, "size_bucket{le=\"+Inf\"} "));
    }
  });
  std::vector<std::thread> workers;
  for (int t = 0; t < kThreads; ++t) {
    workers.emplace_back([&, t] {
      for (int i = 0; i < kIters; ++i) {
        total.Inc();
        by_worker.With({absl::StrCat(t % 3)}).Inc();
        inflight.Inc();
        sizes.Observe(i % 4);  // 0, 1, 2, 3 in equal shares
        inflight.Dec();
      }
    });
  }
  for (auto& w : workers) w.join();
  done = true;
  renderer.join();
  EXPECT_EQ(total.Value(), kThreads * kIters);
  // Workers 0,3,6 -> "0"; 1,4,7 -> "1"; 2,5 -> "2".
  EXPECT_EQ(by_worker.With({"0"}).Value(), 3.0 * kIters);
  EXPECT_EQ(by_worker.With({"1"}).Value(), 3.0 * kIters);
  EXPECT_EQ(by_worker.With({"2"}).Value(), 2.0 * kIters);
  EXPECT_EQ(inflight.Value(), 0);
  const uint64_t n = uint64_t{kThreads} * kIters;
  EXPECT_EQ(sizes.CumulativeCounts(), (std::vector<uint64_t>{n / 2, 3 * n / 4, n, n}));
  EXPECT_EQ(sizes.Sum(), 1.5 * static_cast<double>(n));  // integers: exact in any order
  const std::string text = r.Render();
  EXPECT_EQ(SampleValue(text, "ops_total "), kThreads * kIters);
  EXPECT_EQ(SampleValue(text, "size_count "), static_cast<double>(n));
}

// ---- outside reference: Python's prometheus_client parser ----

// A sample's identity: name and labels, with `le` compared as a number.
std::string SampleKey(const std::string& name, std::map<std::string, std::string> labels) {
  auto le = labels.find("le");
  if (le != labels.end()) {
    le->second = absl::StrFormat("%.17g", std::strtod(le->second.c_str(), nullptr));
  }
  std::string key = name + "{";
  for (const auto& [k, v] : labels) absl::StrAppend(&key, k, "=\"", absl::CHexEscape(v), "\",");
  return key + "}";
}

// Sets metrics and records what a parser must read back.
class ReferenceFixture {
 public:
  void Expect(const std::string& name, std::map<std::string, std::string> labels, double v) {
    want_[SampleKey(name, std::move(labels))] = v;
  }
  // Observes `values` into the series (label_name=label_value, or unlabelled when
  // label_name is empty) and records its samples, counted here independently.
  void ObserveAll(Family<Histogram>& family, const std::string& name,
                  const std::vector<double>& bounds, const std::string& label_name,
                  const std::string& label_value, const std::vector<double>& values) {
    Histogram& h = label_name.empty() ? family.With({}) : family.With({label_value});
    std::map<std::string, std::string> labels;
    if (!label_name.empty()) labels[label_name] = label_value;
    double sum = 0;
    for (double v : values) {
      h.Observe(v);
      sum += v;
    }
    for (size_t i = 0; i <= bounds.size(); ++i) {
      const double bound = i < bounds.size() ? bounds[i] : kInf;
      double n = 0;
      for (double v : values) n += (v <= bound || (std::isnan(v) && bound == kInf)) ? 1 : 0;
      auto with_le = labels;
      with_le["le"] = absl::StrFormat("%.17g", bound);
      Expect(name + "_bucket", with_le, n);
    }
    Expect(name + "_sum", labels, sum);
    Expect(name + "_count", labels, static_cast<double>(values.size()));
  }
  const std::map<std::string, double>& want() const { return want_; }

 private:
  std::map<std::string, double> want_;
};

// Runs the checker on `file`: its exit status, stdout and stderr.
struct CheckerResult {
  int status = -1;
  std::string out;
  std::string err;
};
CheckerResult RunChecker(const signround::testing::TempDir& dir, const std::string& file) {
  const std::string err_file = dir.File("checker.err");
  const std::string cmd = absl::StrCat("/usr/bin/python3 '", SIGNROUND_CHECK_EXPOSITION_PY, "' '",
                                       file, "' 2>'", err_file, "'");
  CheckerResult result;
  FILE* pipe = popen(cmd.c_str(), "r");
  if (pipe == nullptr) return result;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), pipe)) > 0) result.out.append(buf, n);
  const int status = pclose(pipe);
  result.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::ifstream err(err_file);
  result.err.assign(std::istreambuf_iterator<char>(err), std::istreambuf_iterator<char>());
  return result;
}

// Fills `r` with counters, hostile labels, special floats and histograms; records in `fx`.
void FillReferenceRegistry(Registry& r, ReferenceFixture& fx, const std::string& hostile_help) {
  Counter& requests = r.AddCounter("requests_total", "Requests served.").With({});
  requests.Inc(7);
  requests.Inc(0.25);
  fx.Expect("requests_total", {}, 7.25);
  auto& rpcs = r.AddCounter("rpc_total", "RPCs by method and code.", {"method", "code"});
  rpcs.With({"SubmitJob", "OK"}).Inc(3);
  fx.Expect("rpc_total", {{"method", "SubmitJob"}, {"code", "OK"}}, 3);
  rpcs.With({"GetJob", "NOT_FOUND"}).Inc(1e20);
  fx.Expect("rpc_total", {{"method", "GetJob"}, {"code", "NOT_FOUND"}}, 1e20);

  auto& hostile = r.AddGauge("hostile_labels", hostile_help, {"value"});
  const std::vector<std::pair<std::string, double>> cases = {
      {"quote\"inside", 1},
      {"back\\slash", -2.5},
      {"new\nline", 0.1},
      {"tail\\", kInf},
      {"}{=,\" ", -kInf},
      {"", kNaN},
      {"literal \\n not newline", 1e300},
      {"tab\there cr\rhere", 5e-324},
      {"UTF-8 Größe ✓ 日本 🚀", 9007199254740992.0},
      {" padded ", -0.0},
      {"le", 123456.789},
      {"\\\"\\\n", -1e-300}};
  for (const auto& [value, x] : cases) {
    hostile.With({value}).Set(x);
    fx.Expect("hostile_labels", {{"value", value}}, x);
  }
  hostile.With({"bad \xFF byte"}).Set(4);
  fx.Expect("hostile_labels", {{"value", "bad \xEF\xBF\xBD byte"}}, 4);

  const std::vector<double> bounds = ExponentialBuckets(0.001, 2.5, 8);
  auto& durations = r.AddHistogram("job_duration_seconds", "Job durations.", bounds, {"job"});
  fx.ObserveAll(durations, "job_duration_seconds", bounds, "job", "a\"b\\c\nd",
                {0.0005, 0.001, 0.0025, 0.01, 0.5, 1e6, 0.0, -1});
  fx.ObserveAll(durations, "job_duration_seconds", bounds, "job", "plain", {0.3, 0.3, 0.3});
  const std::vector<double> small_bounds = {0.5, 1, 2};
  auto& batches = r.AddHistogram("batch_size", "Batch sizes.", small_bounds);
  fx.ObserveAll(batches, "batch_size", small_bounds, "", "", {1, 2, 2, 3, kNaN});
}

TEST(ExpositionReferenceTest, PrometheusClientParsesBackWhatWasSet) {
  if (access("/usr/bin/python3", X_OK) != 0) GTEST_SKIP() << "no /usr/bin/python3";
  Registry r;
  ReferenceFixture fx;
  const std::string help = "Hostile: back\\slash, new\nline, \"quotes\", UTF-8 Größe ✓ 日本 🚀";
  FillReferenceRegistry(r, fx, help);

  signround::testing::TempDir dir;
  const std::string file = dir.File("metrics.txt");
  signround::testing::WriteFile(file, r.Render());
  const CheckerResult checked = RunChecker(dir, file);
  if (checked.status == 3) GTEST_SKIP() << "prometheus_client missing: " << checked.err;
  ASSERT_EQ(checked.status, 0) << checked.err;
  const nlohmann::json families = nlohmann::json::parse(checked.out);

  std::map<std::string, double> got;
  std::map<std::string, std::pair<std::string, std::string>> type_and_help;
  for (const auto& f : families) {
    type_and_help[f.at("name").get<std::string>()] = {f.at("type").get<std::string>(),
                                                      f.at("help").get<std::string>()};
    for (const auto& s : f.at("samples")) {
      const std::string key = SampleKey(s.at("name").get<std::string>(),
                                        s.at("labels").get<std::map<std::string, std::string>>());
      EXPECT_EQ(got.count(key), 0u) << "sample twice: " << key;
      got[key] = std::strtod(s.at("value").get<std::string>().c_str(), nullptr);
    }
  }
  for (const auto& [key, want] : fx.want()) {
    auto it = got.find(key);
    if (it == got.end()) {
      ADD_FAILURE() << "not parsed back: " << key;
    } else if (std::isnan(want)) {
      EXPECT_TRUE(std::isnan(it->second)) << key;
    } else {
      EXPECT_EQ(it->second, want) << key;  // exact: the text must round-trip the double
    }
  }
  EXPECT_EQ(got.size(), fx.want().size());
  using TypeHelp = std::pair<std::string, std::string>;
  EXPECT_EQ(families.size(), 5u);
  // The Python parser names a counter family without its _total suffix.
  EXPECT_EQ(type_and_help["requests"], (TypeHelp{"counter", "Requests served."}));
  EXPECT_EQ(type_and_help["rpc"], (TypeHelp{"counter", "RPCs by method and code."}));
  EXPECT_EQ(type_and_help["hostile_labels"], (TypeHelp{"gauge", help}));
  EXPECT_EQ(type_and_help["job_duration_seconds"], (TypeHelp{"histogram", "Job durations."}));
  EXPECT_EQ(type_and_help["batch_size"], (TypeHelp{"histogram", "Batch sizes."}));
}

TEST(ExpositionReferenceTest, CheckerRejectsBrokenText) {
  // The reference must be able to fail: a sample value that is not a number.
  if (access("/usr/bin/python3", X_OK) != 0) GTEST_SKIP() << "no /usr/bin/python3";
  signround::testing::TempDir dir;
  const std::string file = dir.File("broken.txt");
  signround::testing::WriteFile(file, "# TYPE g gauge\ng 1x\n");
  const CheckerResult checked = RunChecker(dir, file);
  if (checked.status == 3) GTEST_SKIP() << "prometheus_client missing: " << checked.err;
  EXPECT_EQ(checked.status, 1) << checked.out;
}

}  // namespace
}  // namespace signround::metrics
