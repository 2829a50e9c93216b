// ListJobs request validation: each field's error message and the defaults.
#include "src/jobs/list_validation.h"

#include <gtest/gtest.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "src/jobs/job.h"
#include "src/jobs/job_validation.h"

namespace signround::jobs {
namespace {

// The INVALID_ARGUMENT message of validating `request`.
std::string ErrorOf(const ListRequest& request) {
  absl::StatusOr<ListQuery> q = ValidateListRequest(request);
  EXPECT_EQ(q.status().code(), absl::StatusCode::kInvalidArgument) << q.status();
  return std::string(q.status().message());
}

TEST(ListValidation, AnEmptyRequestListsEveryStateFiftyAtATime) {
  absl::StatusOr<ListQuery> q = ValidateListRequest(ListRequest{});
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_FALSE(q->tenant.has_value());
  EXPECT_FALSE(q->state.has_value());
  EXPECT_TRUE(q->labels.empty());
  EXPECT_EQ(q->page_size, 50);
  EXPECT_EQ(q->page_token, "");
}

TEST(ListValidation, KeepsTheFieldsOfAValidRequest) {
  ListRequest r;
  r.state = static_cast<int>(JobState::kRunning);
  r.page_size = 1000;
  r.labels = {{"team", "nlp"}, {"suite", "a b"}};
  r.page_token = std::string(256, 't');
  absl::StatusOr<ListQuery> q = ValidateListRequest(r);
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_EQ(q->state, JobState::kRunning);
  EXPECT_EQ(q->page_size, 1000);
  EXPECT_EQ(q->labels, r.labels);
  EXPECT_EQ(q->page_token, r.page_token);
  r.page_size = 1;
  ASSERT_TRUE(ValidateListRequest(r).ok());
  EXPECT_EQ(ValidateListRequest(r)->page_size, 1);
}

TEST(ListValidation, AcceptsEveryJobState) {
  for (int state = 1; state <= 6; ++state) {
    ListRequest r;
    r.state = state;
    absl::StatusOr<ListQuery> q = ValidateListRequest(r);
    ASSERT_TRUE(q.ok()) << state << ": " << q.status();
    EXPECT_EQ(q->state, static_cast<JobState>(state));
  }
}

TEST(ListValidation, StateOutsideTheEnum) {
  ListRequest r;
  r.state = 7;
  EXPECT_EQ(ErrorOf(r), "state: 7 is not a JobState");
  r.state = -1;
  EXPECT_EQ(ErrorOf(r), "state: -1 is not a JobState");
}

TEST(ListValidation, PageSizeOutsideItsRange) {
  ListRequest r;
  r.page_size = -1;
  EXPECT_EQ(ErrorOf(r), "page_size: -1 is outside 0..1000 (0: 50)");
  r.page_size = 1001;
  EXPECT_EQ(ErrorOf(r), "page_size: 1001 is outside 0..1000 (0: 50)");
}

TEST(ListValidation, TooManyLabels) {
  ListRequest r;
  for (int i = 0; i < kMaxLabels; ++i) r.labels[absl::StrCat("k", i)] = "v";
  ASSERT_TRUE(ValidateListRequest(r).ok());
  r.labels["one-more"] = "v";
  EXPECT_EQ(ErrorOf(r), "labels: 33 labels; at most 32");
}

TEST(ListValidation, InvalidLabels) {
  ListRequest r;
  r.labels = {{"Bad Key", "v"}};
  EXPECT_EQ(ErrorOf(r),
            "labels['Bad Key']: keys are 1-63 characters of a-z 0-9 . _ / -, starting with a-z "
            "or 0-9");
  r.labels = {{"team", std::string(256, 'v')}};
  EXPECT_EQ(ErrorOf(r),
            "labels['team']: values are valid UTF-8 without control characters, at most 255 "
            "bytes");
  r.labels = {{"team", "a\x01"}};
  EXPECT_EQ(ErrorOf(r),
            "labels['team']: values are valid UTF-8 without control characters, at most 255 "
            "bytes");
}

TEST(ListValidation, PageTokenTooLong) {
  ListRequest r;
  r.page_token = std::string(257, 'z');
  EXPECT_EQ(ErrorOf(r), "page_token: not a token from ListJobs");
}

// The first failing field is the one named: state, page_size, labels, page_token.
TEST(ListValidation, ChecksFieldsInOrder) {
  ListRequest r;
  r.state = 9;
  r.page_size = -5;
  r.labels = {{"Bad", "v"}};
  r.page_token = std::string(300, 'z');
  EXPECT_EQ(ErrorOf(r), "state: 9 is not a JobState");
  r.state = 0;
  EXPECT_EQ(ErrorOf(r), "page_size: -5 is outside 0..1000 (0: 50)");
  r.page_size = 0;
  EXPECT_EQ(ErrorOf(r).rfind("labels['Bad']: ", 0), 0u);
  r.labels.clear();
  EXPECT_EQ(ErrorOf(r), "page_token: not a token from ListJobs");
}

}  // namespace
}  // namespace signround::jobs
