// The job store on SQLite and on Postgres (one code path, two backends):
// round trips of every field, idempotency, the compare-and-swap of state
// changes, attempts, events, List paging and filters, durability across
// reopen and processes, damaged rows; SQLite's damaged files. Leases and
// claims: job_store_lease_test.cc.
#include "src/store/job_store.h"

#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <fstream>
#include <limits>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/testing/test_files.h"
#include "tests/unit/store/job_store_fixture.h"

namespace signround::jobs {
namespace {

using ::signround::testing::TempDir;
using ::signround::testing::WriteFile;

JobSpec FullSpec() {
  JobSpec s;
  s.model_uri = "s3://models/llama/";
  s.calibration_uri = "file:///data/calib.jsonl";
  s.output_uri = "s3://out/run-1/";
  s.formats = {"auto_round", "gguf:q4_0"};
  s.bits = 4;
  s.group_size = 128;
  s.sym = false;
  s.iters = 200;
  s.lr = 0.005;
  s.minmax_lr = 1.0 / 3.0;
  s.nsamples = 128;
  s.seqlen = 2048;
  s.batch_size = 8;
  s.seed = std::numeric_limits<uint64_t>::max();  // beyond int64: must stay unsigned
  s.recipe = "best";
  s.scale_search = false;  // set to false: kept apart from unset
  s.loss_filter = true;
  s.target_bits = 2.75;
  s.scheme_candidates = {"W2G32", "W16"};
  s.teq_iters = 40;
  s.layer_overrides = {{"lm_head", 8, 64, true}, {"mlp.*", 3, std::nullopt, std::nullopt}};
  s.device = "cuda:1";
  s.priority = -3;
  s.labels = {{"team", "nlp"}, {"run", "α-1"}};
  s.idempotency_key = "key-1";
  s.allow_split_fused = true;
  s.allow_gguf_without_vocab = true;
  s.packed_dtype = "bfloat16";
  return s;
}

void ExpectSpecEq(const JobSpec& a, const JobSpec& b) {
  EXPECT_EQ(a.model_uri, b.model_uri);
  EXPECT_EQ(a.calibration_uri, b.calibration_uri);
  EXPECT_EQ(a.output_uri, b.output_uri);
  EXPECT_EQ(a.formats, b.formats);
  EXPECT_EQ(a.bits, b.bits);
  EXPECT_EQ(a.group_size, b.group_size);
  EXPECT_EQ(a.sym, b.sym);
  EXPECT_EQ(a.iters, b.iters);
  EXPECT_EQ(a.lr, b.lr);  // JSON writes the shortest round-trip form: exact
  EXPECT_EQ(a.minmax_lr, b.minmax_lr);
  EXPECT_EQ(a.nsamples, b.nsamples);
  EXPECT_EQ(a.seqlen, b.seqlen);
  EXPECT_EQ(a.batch_size, b.batch_size);
  EXPECT_EQ(a.seed, b.seed);
  EXPECT_EQ(a.recipe, b.recipe);
  EXPECT_EQ(a.scale_search, b.scale_search);
  EXPECT_EQ(a.loss_filter, b.loss_filter);
  EXPECT_EQ(a.target_bits, b.target_bits);
  EXPECT_EQ(a.scheme_candidates, b.scheme_candidates);
  EXPECT_EQ(a.teq_iters, b.teq_iters);
  EXPECT_EQ(a.allow_split_fused, b.allow_split_fused);
  EXPECT_EQ(a.allow_gguf_without_vocab, b.allow_gguf_without_vocab);
  EXPECT_EQ(a.packed_dtype, b.packed_dtype);
  ASSERT_EQ(a.layer_overrides.size(), b.layer_overrides.size());
  for (size_t i = 0; i < a.layer_overrides.size(); ++i) {
    EXPECT_EQ(a.layer_overrides[i].pattern, b.layer_overrides[i].pattern);
    EXPECT_EQ(a.layer_overrides[i].bits, b.layer_overrides[i].bits);
    EXPECT_EQ(a.layer_overrides[i].group_size, b.layer_overrides[i].group_size);
    EXPECT_EQ(a.layer_overrides[i].sym, b.layer_overrides[i].sym);
  }
  EXPECT_EQ(a.device, b.device);
  EXPECT_EQ(a.priority, b.priority);
  EXPECT_EQ(a.labels, b.labels);
  EXPECT_EQ(a.idempotency_key, b.idempotency_key);
}

StateChange Change(JobState from, JobState to) { return StateChange{from, to, "test"}; }

BlockProgress Progress(int index, int count, double best_loss, int layers = 7) {
  BlockProgress p;
  p.stats.index = index;
  p.block_count = count;
  p.stats.layers_quantized = layers;
  p.stats.loss_iter0 = 2 * best_loss;
  p.stats.loss_best = best_loss;
  p.stats.best_iter = 17;
  p.stats.seconds = 1.25;
  return p;
}

// Runs `sql` on the file with the plain SQLite API (to damage or inspect it).
void RawSql(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  char* error = nullptr;
  int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &error);
  std::string message = error != nullptr ? error : "";
  sqlite3_free(error);
  sqlite3_close(db);
  ASSERT_EQ(rc, SQLITE_OK) << message;
}

using JobStoreTest = StoreTest;

INSTANTIATE_TEST_SUITE_P(Backends, JobStoreTest,
                         ::testing::Values(Backend::kSqlite, Backend::kPostgres), BackendName);

TEST_P(JobStoreTest, CreateAndGetRoundTripEveryField) {
  const std::string settings = R"({"bits":4,"iters":200})";
  auto created = store_->Create(FullSpec(), settings, 1234);
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_TRUE(created->created);
  const Job& job = created->job;
  EXPECT_TRUE(std::regex_match(job.id, std::regex("j-[0-9a-f]{16}"))) << job.id;
  EXPECT_EQ(job.state, JobState::kQueued);
  EXPECT_EQ(job.create_time_ms, 1234);
  EXPECT_EQ(job.start_time_ms, 0);
  EXPECT_EQ(job.end_time_ms, 0);
  EXPECT_EQ(job.attempts, 0);
  EXPECT_EQ(job.last_sequence, 1);
  EXPECT_EQ(job.effective_settings_json, settings);
  ExpectSpecEq(job.spec, FullSpec());

  Job got = MustGet(job.id);
  EXPECT_EQ(got.id, job.id);
  EXPECT_EQ(got.state, JobState::kQueued);
  EXPECT_EQ(got.effective_settings_json, settings);
  ExpectSpecEq(got.spec, FullSpec());

  auto events = store_->Events(job.id, 0);
  ASSERT_TRUE(events.ok()) << events.status();
  ASSERT_EQ(events->size(), 1u);
  const auto* first = std::get_if<StateChange>(&(*events)[0].payload);
  ASSERT_NE(first, nullptr);
  EXPECT_EQ(first->from, JobState::kUnspecified);
  EXPECT_EQ(first->to, JobState::kQueued);
  EXPECT_EQ((*events)[0].sequence, 1);
  EXPECT_EQ((*events)[0].time_ms, 1234);
}

TEST_P(JobStoreTest, IdsAreDistinct) {
  std::set<std::string> ids;
  for (int i = 0; i < 50; ++i) ids.insert(NewJob());
  EXPECT_EQ(ids.size(), 50u);
}

TEST_P(JobStoreTest, IdempotencyKeyReturnsTheEarlierJob) {
  auto first = store_->Create(FullSpec(), "{}", 1);
  ASSERT_TRUE(first.ok()) << first.status();
  JobSpec other = FullSpec();
  other.model_uri = "s3://models/other/";
  auto again = store_->Create(other, "{}", 2);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_FALSE(again->created);
  EXPECT_EQ(again->job.id, first->job.id);
  EXPECT_EQ(again->job.spec.model_uri, FullSpec().model_uri);
  EXPECT_EQ(again->job.create_time_ms, 1);

  other.idempotency_key = "key-2";
  auto fresh = store_->Create(other, "{}", 3);
  ASSERT_TRUE(fresh.ok()) << fresh.status();
  EXPECT_TRUE(fresh->created);
  EXPECT_NE(fresh->job.id, first->job.id);

  // No key: never deduplicated.
  EXPECT_NE(NewJob(), NewJob());
  auto counts = store_->CountByState();
  ASSERT_TRUE(counts.ok());
  EXPECT_EQ(counts->at(JobState::kQueued), 4);
}

TEST_P(JobStoreTest, StateChangeIsCompareAndSwap) {
  const std::string id = NewJob();
  JobEvent running = MustAppend(id, Change(JobState::kQueued, JobState::kRunning), "cpu");
  EXPECT_EQ(running.sequence, 2);
  EXPECT_EQ(running.job_id, id);

  auto stale = store_->Append(id, Change(JobState::kQueued, JobState::kCancelled), ++clock_);
  EXPECT_EQ(stale.status().code(), absl::StatusCode::kFailedPrecondition) << stale.status();
  EXPECT_NE(stale.status().message().find("RUNNING"), std::string::npos) << stale.status();
  Job job = MustGet(id);
  EXPECT_EQ(job.state, JobState::kRunning);
  EXPECT_EQ(job.last_sequence, 2);
  EXPECT_EQ(job.end_time_ms, 0);
  auto events = store_->Events(id, 1);
  ASSERT_TRUE(events.ok());
  EXPECT_EQ(events->size(), 2u);

  auto same = store_->Append(id, Change(JobState::kRunning, JobState::kRunning), ++clock_);
  EXPECT_EQ(same.status().code(), absl::StatusCode::kInvalidArgument);
  auto none = store_->Append(id, Change(JobState::kRunning, JobState::kUnspecified), ++clock_);
  EXPECT_EQ(none.status().code(), absl::StatusCode::kInvalidArgument);
  auto bad_block = store_->Append(id, Progress(5, 5, 0.1), ++clock_);
  EXPECT_EQ(bad_block.status().code(), absl::StatusCode::kInvalidArgument);

  JobEvent cancelled = MustAppend(id, Change(JobState::kRunning, JobState::kCancelled));
  job = MustGet(id);
  EXPECT_EQ(job.state, JobState::kCancelled);
  EXPECT_EQ(job.end_time_ms, cancelled.time_ms);
  // Nothing happens to an ended job.
  auto late = store_->Append(id, Progress(0, 4, 0.5), ++clock_);
  EXPECT_EQ(late.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(MustGet(id).last_sequence, 3);
}

TEST_P(JobStoreTest, AttemptsAreCountedAndClosed) {
  const std::string id = NewJob();
  JobEvent start1 = MustAppend(id, Change(JobState::kQueued, JobState::kRunning), "cpu");
  MustAppend(id, Progress(3, 8, 0.25));
  EXPECT_EQ(MustGet(id).blocks_done, 4);
  MustAppend(id, JobError{"child died: signal 9", true});
  JobEvent requeue = MustAppend(id, Change(JobState::kRunning, JobState::kQueued));
  Job job = MustGet(id);
  EXPECT_EQ(job.error, "child died: signal 9");
  EXPECT_EQ(job.end_time_ms, 0);

  JobEvent start2 = MustAppend(id, Change(JobState::kQueued, JobState::kRunning), "cuda:0");
  job = MustGet(id);
  EXPECT_EQ(job.attempts, 2);
  EXPECT_EQ(job.device, "cuda:0");
  EXPECT_EQ(job.blocks_done, 0);  // reset for the new attempt
  EXPECT_EQ(job.block_count, 8);
  EXPECT_EQ(job.start_time_ms, start1.time_ms);  // set once
  MustAppend(id, Progress(7, 8, 0.125));
  MustAppend(id, Change(JobState::kRunning, JobState::kUploading));
  MustAppend(id, Artifact{"auto_round", "s3://out/model.safetensors", 1024, std::string(64, 'a')});
  JobEvent done = MustAppend(id, Change(JobState::kUploading, JobState::kSucceeded));

  job = MustGet(id);
  EXPECT_EQ(job.state, JobState::kSucceeded);
  EXPECT_EQ(job.attempts, 2);
  EXPECT_EQ(job.blocks_done, 8);
  EXPECT_EQ(job.latest_loss, 0.125);
  EXPECT_EQ(job.end_time_ms, done.time_ms);
  ASSERT_EQ(job.artifacts.size(), 1u);
  EXPECT_EQ(job.artifacts[0].uri, "s3://out/model.safetensors");
  EXPECT_EQ(job.artifacts[0].bytes, 1024);

  auto attempts = store_->Attempts(id);
  ASSERT_TRUE(attempts.ok()) << attempts.status();
  ASSERT_EQ(attempts->size(), 2u);
  const AttemptRecord& a1 = (*attempts)[0];
  EXPECT_EQ(a1.attempt, 1);
  EXPECT_EQ(a1.device, "cpu");
  EXPECT_EQ(a1.start_time_ms, start1.time_ms);
  EXPECT_EQ(a1.end_time_ms, requeue.time_ms);
  EXPECT_EQ(a1.outcome, "QUEUED");
  EXPECT_EQ(a1.error, "child died: signal 9");
  const AttemptRecord& a2 = (*attempts)[1];
  EXPECT_EQ(a2.attempt, 2);
  EXPECT_EQ(a2.device, "cuda:0");
  EXPECT_EQ(a2.start_time_ms, start2.time_ms);
  EXPECT_EQ(a2.end_time_ms, done.time_ms);  // UPLOADING is part of the attempt
  EXPECT_EQ(a2.outcome, "SUCCEEDED");
  EXPECT_EQ(a2.error, "");

  auto events = store_->Events(id, 1);
  ASSERT_TRUE(events.ok());
  std::vector<int> attempt_of;
  for (const JobEvent& e : *events) attempt_of.push_back(e.attempt);
  EXPECT_EQ(attempt_of, (std::vector<int>{0, 1, 1, 1, 1, 2, 2, 2, 2, 2}));
}

TEST_P(JobStoreTest, EventsInOrderFromSequence) {
  const std::string id = NewJob();
  MustAppend(id, Change(JobState::kQueued, JobState::kRunning), "cpu");
  for (int i = 0; i < 10; ++i) {
    JobEvent e = MustAppend(id, Progress(i, 10, 1.0 / (i + 1)));
    EXPECT_EQ(e.sequence, i + 3);
    EXPECT_EQ(e.attempt, 1);
  }
  auto all = store_->Events(id, 1);
  ASSERT_TRUE(all.ok()) << all.status();
  ASSERT_EQ(all->size(), 12u);
  for (size_t i = 0; i < all->size(); ++i) EXPECT_EQ((*all)[i].sequence, int64_t(i + 1));
  const auto* p = std::get_if<BlockProgress>(&(*all)[6].payload);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->stats.index, 4);
  EXPECT_EQ(p->block_count, 10);
  EXPECT_EQ(p->stats.layers_quantized, 7);
  EXPECT_EQ(p->stats.loss_best, 1.0 / 5);
  EXPECT_EQ(p->stats.loss_iter0, 2.0 / 5);
  EXPECT_EQ(p->stats.best_iter, 17);
  EXPECT_EQ(p->stats.seconds, 1.25);

  auto middle = store_->Events(id, 5, 3);
  ASSERT_TRUE(middle.ok());
  ASSERT_EQ(middle->size(), 3u);
  EXPECT_EQ((*middle)[0].sequence, 5);
  EXPECT_EQ((*middle)[2].sequence, 7);
  auto past = store_->Events(id, 13);
  ASSERT_TRUE(past.ok());
  EXPECT_TRUE(past->empty());
  EXPECT_EQ(store_->Events(id, 1, 0).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_P(JobStoreTest, NonFiniteLossesSurvive) {
  const std::string id = NewJob();
  MustAppend(id, Change(JobState::kQueued, JobState::kRunning), "cpu");
  MustAppend(id, Progress(0, 2, std::numeric_limits<double>::infinity()));
  EXPECT_TRUE(std::isinf(MustGet(id).latest_loss));
  MustAppend(id, Progress(1, 2, std::nan("")));
  EXPECT_TRUE(std::isnan(MustGet(id).latest_loss));
  auto events = store_->Events(id, 3);
  ASSERT_TRUE(events.ok()) << events.status();
  ASSERT_EQ(events->size(), 2u);
  EXPECT_TRUE(std::isinf(std::get<BlockProgress>((*events)[0].payload).stats.loss_best));
  EXPECT_TRUE(std::isnan(std::get<BlockProgress>((*events)[1].payload).stats.loss_best));
}

// An MoE block's expert token counts and rounded experts are stored with its
// progress event and read back; a dense block's stay empty.
TEST_P(JobStoreTest, ExpertTokenCountsSurvive) {
  const std::string id = NewJob();
  MustAppend(id, Change(JobState::kQueued, JobState::kRunning), "cpu");
  BlockProgress moe = Progress(0, 2, 0.5, 28);
  moe.stats.expert_tokens = {100, 0, 37, 9000};
  moe.stats.rounded_experts = {1, 2};
  MustAppend(id, moe);
  MustAppend(id, Progress(1, 2, 0.25));
  auto events = store_->Events(id, 3);
  ASSERT_TRUE(events.ok()) << events.status();
  ASSERT_EQ(events->size(), 2u);
  const contract::BlockStats& got = std::get<BlockProgress>((*events)[0].payload).stats;
  EXPECT_EQ(got.expert_tokens, moe.stats.expert_tokens);
  EXPECT_EQ(got.rounded_experts, moe.stats.rounded_experts);
  EXPECT_TRUE(std::get<BlockProgress>((*events)[1].payload).stats.expert_tokens.empty());
}

TEST_P(JobStoreTest, ListFiltersByStateAndLabels) {
  const std::string a = NewJob({{"team", "nlp"}, {"env", "prod"}});
  const std::string b = NewJob({{"team", "nlp"}, {"env", "dev"}});
  const std::string c = NewJob({{"team", "vision"}});
  MustAppend(b, Change(JobState::kQueued, JobState::kRunning), "cpu");

  auto ids = [&](std::optional<JobState> state, std::map<std::string, std::string> labels) {
    ListQuery q;
    q.state = state;
    q.labels = std::move(labels);
    auto page = store_->List(q);
    EXPECT_TRUE(page.ok()) << page.status();
    std::vector<std::string> out;
    if (page.ok()) {
      for (const Job& j : page->jobs) out.push_back(j.id);
      EXPECT_EQ(page->next_page_token, "");
    }
    return out;
  };
  EXPECT_EQ(ids(std::nullopt, {}), (std::vector<std::string>{c, b, a}));
  EXPECT_EQ(ids(JobState::kQueued, {}), (std::vector<std::string>{c, a}));
  EXPECT_EQ(ids(JobState::kRunning, {}), (std::vector<std::string>{b}));
  EXPECT_EQ(ids(std::nullopt, {{"team", "nlp"}}), (std::vector<std::string>{b, a}));
  EXPECT_EQ(ids(std::nullopt, {{"team", "nlp"}, {"env", "prod"}}), (std::vector<std::string>{a}));
  EXPECT_EQ(ids(JobState::kQueued, {{"team", "nlp"}}), (std::vector<std::string>{a}));
  EXPECT_TRUE(ids(std::nullopt, {{"team", "nlp"}, {"env", "staging"}}).empty());
  EXPECT_TRUE(ids(std::nullopt, {{"team", "prod"}}).empty());  // a value is not a key
  EXPECT_TRUE(ids(JobState::kFailed, {}).empty());
}

TEST_P(JobStoreTest, PagingThrough120JobsNewestFirst) {
  std::vector<std::string> created;
  for (int i = 0; i < 120; ++i) created.push_back(NewJob({{"batch", i % 2 ? "odd" : "even"}}));
  std::vector<std::string> listed;
  std::vector<size_t> page_sizes;
  ListQuery q;
  q.page_size = 50;
  for (int pages = 0; pages < 10; ++pages) {
    auto page = store_->List(q);
    ASSERT_TRUE(page.ok()) << page.status();
    page_sizes.push_back(page->jobs.size());
    for (const Job& j : page->jobs) listed.push_back(j.id);
    if (page->next_page_token.empty()) break;
    q.page_token = page->next_page_token;
  }
  EXPECT_EQ(page_sizes, (std::vector<size_t>{50, 50, 20}));
  EXPECT_EQ(listed, std::vector<std::string>(created.rbegin(), created.rend()));

  // A filtered walk with an exact multiple of the page size ends without an empty page.
  q = ListQuery{};
  q.labels = {{"batch", "odd"}};
  q.page_size = 20;
  std::vector<std::string> odd;
  page_sizes.clear();
  for (int pages = 0; pages < 10; ++pages) {
    auto page = store_->List(q);
    ASSERT_TRUE(page.ok()) << page.status();
    page_sizes.push_back(page->jobs.size());
    for (const Job& j : page->jobs) odd.push_back(j.id);
    if (page->next_page_token.empty()) break;
    q.page_token = page->next_page_token;
  }
  EXPECT_EQ(page_sizes, (std::vector<size_t>{20, 20, 20}));
  std::vector<std::string> expected;
  for (int i = 119; i >= 0; --i) {
    if (i % 2) expected.push_back(created[i]);
  }
  EXPECT_EQ(odd, expected);
}

TEST_P(JobStoreTest, BadPageTokensAreInvalidArgument) {
  for (int i = 0; i < 3; ++i) NewJob();
  ListQuery q;
  q.page_size = 1;
  auto page = store_->List(q);
  ASSERT_TRUE(page.ok());
  const std::string good = page->next_page_token;
  ASSERT_FALSE(good.empty());
  std::string tampered = good;
  tampered[1] = tampered[1] == '1' ? '2' : '1';  // another seq, the old check digits
  for (const std::string& token :
       {std::string("garbage"), std::string("p"), std::string("p."), tampered, good + "0",
        std::string("p0.00"), std::string("pffffffffffffffffff.00"), "P" + good.substr(1)}) {
    q.page_token = token;
    auto bad = store_->List(q);
    EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument) << token;
    EXPECT_NE(bad.status().message().find("page_token"), std::string::npos) << bad.status();
  }
  q.page_token = good;
  EXPECT_TRUE(store_->List(q).ok());
  q.page_size = 0;
  EXPECT_EQ(store_->List(q).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_P(JobStoreTest, CountByState) {
  const std::string a = NewJob();
  const std::string b = NewJob();
  const std::string c = NewJob();
  MustAppend(a, Change(JobState::kQueued, JobState::kRunning), "cpu");
  MustAppend(c, Change(JobState::kQueued, JobState::kRunning), "cpu");
  MustAppend(c, Change(JobState::kRunning, JobState::kUploading));

  auto counts = store_->CountByState();
  ASSERT_TRUE(counts.ok()) << counts.status();
  EXPECT_EQ(counts->size(), 6u);
  EXPECT_EQ(counts->at(JobState::kQueued), 1);
  EXPECT_EQ(counts->at(JobState::kRunning), 1);
  EXPECT_EQ(counts->at(JobState::kUploading), 1);
  EXPECT_EQ(counts->at(JobState::kSucceeded), 0);
  EXPECT_EQ(counts->at(JobState::kFailed), 0);
  EXPECT_EQ(counts->at(JobState::kCancelled), 0);
  (void)b;
}

TEST_P(JobStoreTest, DataSurvivesReopen) {
  auto created = store_->Create(FullSpec(), "{\"x\":1}", 10);
  ASSERT_TRUE(created.ok());
  const std::string id = created->job.id;
  MustAppend(id, Change(JobState::kQueued, JobState::kRunning), "cuda:1");
  MustAppend(id, Progress(0, 3, 0.5));
  Reopen();
  Job job = MustGet(id);
  EXPECT_EQ(job.state, JobState::kRunning);
  EXPECT_EQ(job.device, "cuda:1");
  EXPECT_EQ(job.blocks_done, 1);
  EXPECT_EQ(job.last_sequence, 3);
  ExpectSpecEq(job.spec, FullSpec());
  auto events = store_->Events(id, 1);
  ASSERT_TRUE(events.ok());
  EXPECT_EQ(events->size(), 3u);
  // The idempotency key is durable too.
  auto again = store_->Create(FullSpec(), "{}", 11);
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(again->created);
  EXPECT_EQ(again->job.id, id);
}

// Two processes append to the same job at once; the child exits without
// closing (as after kill -9). Sequences must be 1..N without gaps or repeats.
TEST_P(JobStoreTest, SecondProcessAppendsConcurrently) {
  const std::string id = NewJob();
  MustAppend(id, Change(JobState::kQueued, JobState::kRunning), "cpu");
  store_.reset();  // no connection is carried across fork()
  constexpr int kEach = 60;
  int go[2];
  ASSERT_EQ(::pipe(go), 0);
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    char byte;
    if (::read(go[0], &byte, 1) != 1) ::_exit(2);
    auto child = OpenStore();
    if (!child.ok()) ::_exit(3);
    for (int i = 0; i < kEach; ++i) {
      if (!(*child)->Append(id, Progress(i, kEach, 0.5, /*layers=*/1), 1).ok()) ::_exit(4);
    }
    ::_exit(0);
  }
  Reopen();  // open before the child starts writing: this connection must see its commits
  ASSERT_EQ(::write(go[1], "g", 1), 1);
  for (int i = 0; i < kEach; ++i) MustAppend(id, Progress(i, kEach, 0.5, /*layers=*/2));
  int wstatus = 0;
  ASSERT_EQ(::waitpid(pid, &wstatus, 0), pid);
  ::close(go[0]);
  ::close(go[1]);
  ASSERT_TRUE(WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0) << "child status " << wstatus;

  Job job = MustGet(id);
  EXPECT_EQ(job.last_sequence, 2 + 2 * kEach);
  auto events = store_->Events(id, 1);
  ASSERT_TRUE(events.ok()) << events.status();
  ASSERT_EQ(events->size(), size_t(2 + 2 * kEach));
  int next_block[3] = {0, 0, 0};
  for (size_t i = 0; i < events->size(); ++i) {
    EXPECT_EQ((*events)[i].sequence, int64_t(i + 1));
    if (const auto* p = std::get_if<BlockProgress>(&(*events)[i].payload)) {
      ASSERT_TRUE(p->stats.layers_quantized == 1 || p->stats.layers_quantized == 2);
      EXPECT_EQ(p->stats.index, next_block[p->stats.layers_quantized]++);  // each writer in order
    }
  }
  EXPECT_EQ(next_block[1], kEach);
  EXPECT_EQ(next_block[2], kEach);
}

TEST_P(JobStoreTest, UnknownIdsAreNotFound) {
  NewJob();
  EXPECT_EQ(store_->Get("j-0000000000000000").status().code(), absl::StatusCode::kNotFound);
  auto append = store_->Append("nope", JobError{"x", false}, 1);
  EXPECT_EQ(append.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(append.status().message().find("nope"), std::string::npos);
  EXPECT_EQ(store_->Events("nope", 1).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->Attempts("nope").status().code(), absl::StatusCode::kNotFound);
}

TEST_P(JobStoreTest, InvalidUtf8IsRefusedAndNothingIsStored) {
  JobSpec spec = FullSpec();
  spec.model_uri = "s3://bucket/\xff\xfe";
  auto created = store_->Create(spec, "{}", 1);
  EXPECT_EQ(created.status().code(), absl::StatusCode::kInvalidArgument) << created.status();
  auto counts = store_->CountByState();
  ASSERT_TRUE(counts.ok());
  EXPECT_EQ(counts->at(JobState::kQueued), 0);
}

TEST_P(JobStoreTest, DamagedSpecColumnIsDataLossNamingIt) {
  const std::string id = NewJob();
  store_.reset();
  ASSERT_TRUE(Raw()->Exec("UPDATE jobs SET spec = '{\"bits\":\"four\"}'").ok());
  Reopen();
  auto job = store_->Get(id);
  EXPECT_EQ(job.status().code(), absl::StatusCode::kDataLoss) << job.status();
  EXPECT_NE(job.status().message().find("jobs.spec"), std::string::npos) << job.status();
  EXPECT_NE(job.status().message().find("bits"), std::string::npos) << job.status();
  store_.reset();
  ASSERT_TRUE(Raw()->Exec("UPDATE jobs SET spec = 'not json'").ok());
  Reopen();
  EXPECT_EQ(store_->Get(id).status().code(), absl::StatusCode::kDataLoss);
}

TEST(JobStoreOpenTest, GarbageFileIsAnErrorNamingIt) {
  TempDir dir;
  const std::string path = dir.File("jobs.db");
  WriteFile(path, std::string(8192, '\xab'));
  auto store = JobStore::Open(path);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition) << store.status();
  EXPECT_NE(store.status().message().find(path), std::string::npos) << store.status();
}

TEST(JobStoreOpenTest, DamagedPagesGiveErrorsNotCrashes) {
  TempDir dir;
  const std::string path = dir.File("jobs.db");
  {
    auto store = JobStore::Open(path);
    ASSERT_TRUE(store.ok()) << store.status();
    JobSpec spec = FullSpec();
    spec.idempotency_key.clear();
    for (int i = 0; i < 20; ++i) ASSERT_TRUE((*store)->Create(spec, "{}", i).ok());
  }
  // Keep page 1 (the header and the schema), overwrite every other page.
  std::fstream file(path, std::ios::in | std::ios::out | std::ios::binary);
  file.seekg(0, std::ios::end);
  const std::streamoff size = file.tellg();
  ASSERT_GT(size, 4096);
  file.seekp(4096);
  const std::string garbage(static_cast<size_t>(size - 4096), '\x5c');
  file.write(garbage.data(), static_cast<std::streamsize>(garbage.size()));
  file.close();
  auto store = JobStore::Open(path);
  if (!store.ok()) return;  // refused at open: fine
  auto page = (*store)->List(ListQuery{});
  EXPECT_FALSE(page.ok());
  EXPECT_EQ(page.status().code(), absl::StatusCode::kDataLoss) << page.status();
}

TEST(JobStoreOpenTest, NewerSchemaOrForeignDatabaseIsRefused) {
  TempDir dir;
  const std::string newer = dir.File("newer.db");
  ASSERT_TRUE(JobStore::Open(newer).ok());
  RawSql(newer, "PRAGMA user_version = 99");
  auto store = JobStore::Open(newer);
  EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition) << store.status();
  EXPECT_NE(store.status().message().find("99"), std::string::npos) << store.status();

  const std::string foreign = dir.File("foreign.db");
  RawSql(foreign, "CREATE TABLE other (x INTEGER)");
  store = JobStore::Open(foreign);
  EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition) << store.status();

  store = JobStore::Open(dir.File("no/such/dir/jobs.db"));
  EXPECT_FALSE(store.ok());
}

// Tenants (schema version 3): each job has its owner, List filters by it, an
// idempotency key is the tenant's own, and the queue limit counts per tenant.
TEST_P(JobStoreTest, JobsBelongToTheirTenant) {
  JobSpec spec;
  spec.model_uri = "file:///m";
  spec.output_uri = "file:///o";
  auto a1 = store_->Create(spec, "{}", ++clock_, {"team-a"});
  auto b1 = store_->Create(spec, "{}", ++clock_, {"team-b"});
  auto a2 = store_->Create(spec, "{}", ++clock_, {"team-a"});
  ASSERT_TRUE(a1.ok() && b1.ok() && a2.ok());
  EXPECT_EQ(MustGet(a1->job.id).tenant, "team-a");
  EXPECT_EQ(MustGet(b1->job.id).tenant, "team-b");
  EXPECT_EQ(MustGet(NewJob()).tenant, "");

  ListQuery q;
  q.tenant = "team-a";
  auto page = store_->List(q);
  ASSERT_TRUE(page.ok()) << page.status();
  ASSERT_EQ(page->jobs.size(), 2u);
  EXPECT_EQ(page->jobs[0].id, a2->job.id);
  EXPECT_EQ(page->jobs[1].id, a1->job.id);
  q.tenant = "team-c";
  EXPECT_TRUE(store_->List(q)->jobs.empty());
  q.tenant.reset();
  EXPECT_EQ(store_->List(q)->jobs.size(), 4u);
  Reopen();
  EXPECT_EQ(MustGet(b1->job.id).tenant, "team-b") << "stored, not cached";
}

TEST_P(JobStoreTest, IdempotencyKeysAreScopedToTheTenant) {
  JobSpec spec;
  spec.model_uri = "file:///m";
  spec.output_uri = "file:///o";
  spec.idempotency_key = "nightly-2026-11-22";
  auto a = store_->Create(spec, "{}", ++clock_, {"team-a"});
  auto b = store_->Create(spec, "{}", ++clock_, {"team-b"});
  auto none = store_->Create(spec, "{}", ++clock_);
  auto a_again = store_->Create(spec, "{}", ++clock_, {"team-a"});
  ASSERT_TRUE(a.ok() && b.ok() && none.ok() && a_again.ok());
  EXPECT_TRUE(a->created);
  EXPECT_TRUE(b->created) << "another tenant's key must not return team-a's job";
  EXPECT_NE(b->job.id, a->job.id);
  EXPECT_TRUE(none->created);
  EXPECT_FALSE(a_again->created);
  EXPECT_EQ(a_again->job.id, a->job.id);
  EXPECT_EQ(a_again->job.spec.idempotency_key, spec.idempotency_key) << "the key as given";
}

TEST_P(JobStoreTest, QueueLimitCountsTheTenantsQueuedJobs) {
  JobSpec spec;
  spec.model_uri = "file:///m";
  spec.output_uri = "file:///o";
  CreateOptions a{"team-a", 2};
  auto first = store_->Create(spec, "{}", ++clock_, a);
  ASSERT_TRUE(first.ok());
  ASSERT_TRUE(store_->Create(spec, "{}", ++clock_, a).ok());
  auto third = store_->Create(spec, "{}", ++clock_, a);
  ASSERT_FALSE(third.ok());
  EXPECT_EQ(third.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(third.status().message().find("tenant 'team-a' has 2 queued jobs"), std::string::npos)
      << third.status();
  EXPECT_TRUE(store_->Create(spec, "{}", ++clock_, {"team-b", 2}).ok()) << "per tenant";
  // A new idempotency key is a new job: refused while full.
  spec.idempotency_key = "k1";
  EXPECT_EQ(store_->Create(spec, "{}", ++clock_, a).status().code(),
            absl::StatusCode::kResourceExhausted);
  // A started job no longer counts.
  MustAppend(first->job.id, StateChange{JobState::kQueued, JobState::kRunning, "claimed"}, "cpu");
  auto created = store_->Create(spec, "{}", ++clock_, a);
  ASSERT_TRUE(created.ok()) << created.status();
  // Full again, but a replayed key is not a new job: it is answered.
  auto replay = store_->Create(spec, "{}", ++clock_, a);
  ASSERT_TRUE(replay.ok()) << replay.status();
  EXPECT_FALSE(replay->created);
}

}  // namespace
}  // namespace signround::jobs
