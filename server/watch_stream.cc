#include "server/watch_stream.h"

#include <deque>
#include <mutex>
#include <optional>
#include <utility>

#include "server/proto_convert.h"
#include "server/rpc_auth.h"

namespace signround::server {
namespace {

// The fan-out hands the same event to every stream of a job in a row, from one thread:
// it is converted once per thread. Holding the event keeps its address from being reused.
std::shared_ptr<const v1::JobEvent> Converted(const std::shared_ptr<const jobs::JobEvent>& event) {
  thread_local std::shared_ptr<const jobs::JobEvent> last_event;
  thread_local std::shared_ptr<const v1::JobEvent> last_message;
  if (last_event != event) {
    auto message = std::make_shared<v1::JobEvent>();
    ToProto(*event, message.get());
    last_event = event;
    last_message = std::move(message);
  }
  return last_message;
}

}  // namespace

// One WatchJob stream. Owns itself from the request until gRPC has finished it and said it
// is done (two completions, in either order); the fan-out may hold it a little longer.
class WatchCall final : public jobs::WatchSink {
 public:
  // What a completion of the queue is about.
  struct Tag {
    WatchCall* call;
    enum Op { kAccepted, kWritten, kFinished, kDone } op;
  };

  // Asks gRPC for the next WatchJob call on the queue.
  static void Request(WatchStreams* streams) {
    auto call = std::make_shared<WatchCall>(streams);
    call->self_ = call;
    call->ctx_.AsyncNotifyWhenDone(&call->done_tag_);
    streams->service_->RequestWatchJob(&call->ctx_, &call->request_, &call->writer_,
                                       streams->cq_.get(), streams->cq_.get(),
                                       &call->accepted_tag_);
  }

  explicit WatchCall(WatchStreams* streams) : streams_(streams) {}

  // On the queue's thread.
  void Proceed(Tag::Op op, bool ok) {
    switch (op) {
      case Tag::kAccepted:
        if (!ok) {  // shutting down: the call never started, nor will its done tag come
          self_.reset();
          return;
        }
        Request(streams_);  // the next stream
        Begin();
        return;
      case Tag::kWritten:
        Written(ok);
        return;
      case Tag::kFinished:
        finished_ = true;
        break;
      case Tag::kDone:
        done_ = true;
        if (ctx_.IsCancelled()) End(absl::CancelledError("the watcher went away"));
        break;
    }
    if (finished_ && done_) {
      std::unique_ptr<jobs::JobService::WatchHandle> handle;
      {
        std::lock_guard<std::mutex> lock(mu_);
        handle = std::move(handle_);
      }
      handle.reset();  // ends the watch in the core
      self_.reset();   // may delete this
    }
  }

  bool Deliver(const std::shared_ptr<const jobs::JobEvent>& event) override {
    std::shared_ptr<const v1::JobEvent> message = Converted(event);
    const v1::JobEvent* write = nullptr;
    bool more;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (end_) return false;
      queue_.push_back(std::move(message));
      if (!writing_) {
        writing_ = true;
        write = queue_.front().get();
      }
      more = queue_.size() < WatchStreams::kMaxQueued;
      if (!more) paused_ = true;
    }
    if (write) writer_.Write(*write, &written_tag_);
    return more;
  }

  void Close(const absl::Status& status) override { End(status); }

 private:
  void Begin() {
    const absl::StatusOr<jobs::Caller> caller = CallerOf(ctx_, streams_->authenticator_);
    if (!caller.ok()) return End(caller.status());
    if (request_.from_sequence() < 0) {
      return End(
          absl::InvalidArgumentError("from_sequence: must be 0 (from the start) or a sequence"));
    }
    absl::StatusOr<std::unique_ptr<jobs::JobService::WatchHandle>> handle =
        streams_->core_.Watch(request_.job_id(), request_.from_sequence(), self_, *caller);
    if (!handle.ok()) return End(handle.status());
    bool resume;
    {
      std::lock_guard<std::mutex> lock(mu_);
      handle_ = std::move(*handle);
      resume = std::exchange(resume_pending_, false);
    }
    if (resume) handle_->Resume();
  }

  void Written(bool ok) {
    const v1::JobEvent* write = nullptr;
    std::optional<absl::Status> finish;
    jobs::JobService::WatchHandle* resume = nullptr;
    {
      std::lock_guard<std::mutex> lock(mu_);
      queue_.pop_front();
      writing_ = false;
      if (!ok) {  // the stream is broken: the client went away
        queue_.clear();
        if (!end_) end_ = absl::CancelledError("the watcher went away");
      }
      if (!queue_.empty()) {
        writing_ = true;
        write = queue_.front().get();
      } else if (end_ && !finishing_) {
        finishing_ = true;
        finish = *end_;
      }
      if (paused_ && !end_ && queue_.size() <= WatchStreams::kMaxQueued / 2) {
        paused_ = false;
        if (handle_) {
          resume = handle_.get();
        } else {
          resume_pending_ = true;
        }
      }
    }
    if (write) writer_.Write(*write, &written_tag_);
    if (finish) writer_.Finish(streams_->finisher_(*finish), &finished_tag_);
    if (resume) resume->Resume();
  }

  // Ends the RPC with `status` now, or once the queued events are written.
  void End(const absl::Status& status) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (end_) return;
      end_ = status;
      if (status.code() == absl::StatusCode::kCancelled) {
        // Nobody reads the rest; the write in flight ends the stream.
        while (queue_.size() > 1) queue_.pop_back();
      }
      if (writing_) return;
      finishing_ = true;
    }
    writer_.Finish(streams_->finisher_(status), &finished_tag_);
  }

  WatchStreams* const streams_;
  grpc::ServerContext ctx_;
  v1::WatchJobRequest request_;
  grpc::ServerAsyncWriter<v1::JobEvent> writer_{&ctx_};
  Tag accepted_tag_{this, Tag::kAccepted};
  Tag written_tag_{this, Tag::kWritten};
  Tag finished_tag_{this, Tag::kFinished};
  Tag done_tag_{this, Tag::kDone};
  bool finished_ = false;  // the Finish completed (queue thread only)
  bool done_ = false;      // the done tag came (queue thread only)

  std::mutex mu_;
  // Shared with the other streams of the job; the front is being written when writing_.
  std::deque<std::shared_ptr<const v1::JobEvent>> queue_;
  bool writing_ = false;
  bool paused_ = false;              // Deliver said "no more" and Resume has not been called
  bool resume_pending_ = false;      // a Resume before handle_ was set
  std::optional<absl::Status> end_;  // how the RPC ends, once the queue is written
  bool finishing_ = false;           // Finish called
  std::unique_ptr<jobs::JobService::WatchHandle> handle_;
  std::shared_ptr<WatchCall> self_;
};

WatchStreams::WatchStreams(Service* service, jobs::JobService& core,
                           const auth::Authenticator* authenticator, Finisher finisher)
    : service_(service),
      core_(core),
      authenticator_(authenticator),
      finisher_(std::move(finisher)) {}

WatchStreams::~WatchStreams() { Stop(); }

void WatchStreams::Start(std::unique_ptr<grpc::ServerCompletionQueue> cq) {
  cq_ = std::move(cq);
  WatchCall::Request(this);
  thread_ = std::thread([this] { Loop(); });
}

void WatchStreams::Stop() {
  if (!cq_) return;
  cq_->Shutdown();
  if (thread_.joinable()) thread_.join();
  cq_.reset();
}

void WatchStreams::Loop() {
  void* tag;
  bool ok;
  while (cq_->Next(&tag, &ok)) {
    auto* t = static_cast<WatchCall::Tag*>(tag);
    t->call->Proceed(t->op, ok);
  }
}

}  // namespace signround::server
