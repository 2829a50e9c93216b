#include "src/storage/s3_store.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "src/common/file_util.h"
#include "src/common/status_macros.h"
#include "src/storage/http_client.h"
#include "src/storage/s3_xml.h"
#include "src/storage/sigv4.h"

namespace signround {
namespace {

constexpr size_t kHashBuffer = 1 << 20;

// Incremental MD5, to check a downloaded file against a single-part ETag.
class Md5 {
 public:
  Md5() : ctx_(EVP_MD_CTX_new()) { EVP_DigestInit_ex(ctx_, EVP_md5(), nullptr); }
  ~Md5() { EVP_MD_CTX_free(ctx_); }
  void Update(absl::string_view data) { EVP_DigestUpdate(ctx_, data.data(), data.size()); }
  std::string FinalHex() {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_DigestFinal_ex(ctx_, digest, &n);
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out;
    for (unsigned int i = 0; i < n; ++i) {
      out.push_back(kHex[digest[i] >> 4]);
      out.push_back(kHex[digest[i] & 15]);
    }
    return out;
  }

 private:
  EVP_MD_CTX* ctx_;
};

// MD5 (hex) of a whole file.
absl::StatusOr<std::string> Md5File(const std::string& path) {
  uint64_t size = 0;
  SR_ASSIGN_OR_RETURN(int fd, OpenRegularFile(path, &size));
  Md5 md5;
  std::vector<char> buffer(kHashBuffer);
  for (;;) {
    ssize_t n = ::read(fd, buffer.data(), buffer.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      return ErrnoStatus(err, path);
    }
    if (n == 0) break;
    md5.Update(absl::string_view(buffer.data(), static_cast<size_t>(n)));
  }
  ::close(fd);
  return md5.FinalHex();
}

// Closes a descriptor when it goes out of scope.
struct FdCloser {
  int fd;
  ~FdCloser() { ::close(fd); }
};

struct Endpoint {
  std::string scheme;  // "http" or "https"
  std::string host;    // host[:port]
  std::string base;    // path prefix without a trailing '/', usually empty
};

Endpoint ParseEndpoint(const S3Options& o) {
  Endpoint e;
  std::string url =
      o.endpoint.empty() ? absl::StrCat("https://s3.", o.region, ".amazonaws.com") : o.endpoint;
  const size_t sep = url.find("://");
  e.scheme = sep == std::string::npos ? "https" : url.substr(0, sep);
  std::string rest = sep == std::string::npos ? url : url.substr(sep + 3);
  const size_t slash = rest.find('/');
  e.host = rest.substr(0, slash);
  if (slash != std::string::npos) {
    e.base = rest.substr(slash);
    while (!e.base.empty() && e.base.back() == '/') e.base.pop_back();
  }
  return e;
}

// "503 SlowDown: Please reduce your request rate." for messages. The server's
// text never carries our secret key or session token, whatever it quotes.
std::string Explain(const HttpResponse& r, const AwsCredentials& credentials) {
  S3Error e = ParseS3Error(r.body);
  std::string out = absl::StrCat(r.status);
  if (!e.code.empty()) absl::StrAppend(&out, " ", e.code);
  if (!e.message.empty()) absl::StrAppend(&out, ": ", e.message);
  return RedactSigV4Secrets(out, credentials);
}

}  // namespace

// One request: what to sign and send. Query values and the key are unencoded.
struct S3Store::Call {
  std::string method = "GET";
  std::string key;  // empty: the bucket itself
  std::vector<QueryParam> query;
  std::vector<std::pair<std::string, std::string>> headers;  // signed too
  std::string body;
  int body_fd = -1;
  uint64_t body_offset = 0;
  uint64_t body_size = 0;
  std::string payload_sha256 = kEmptyPayloadSha256;
  int response_fd = -1;
  TransferProgressFn progress;
  // Called before every attempt (a resumed download sets its Range here).
  std::function<absl::Status(Call&)> prepare;
};

// A connection plus the signing and retry logic; one per thread.
class S3Store::Session {
 public:
  explicit Session(S3Store& store) : store_(store) {}

  // Sends `call`, retrying transport failures and retryable answers. Returns
  // the answer for any other status; UNAVAILABLE once the retries are spent.
  absl::StatusOr<HttpResponse> Send(Call call, const std::string& what) {
    Backoff backoff(store_.options_.retry, store_.seed_.fetch_add(1));
    std::string last;
    for (;;) {
      if (call.prepare) SR_RETURN_IF_ERROR(call.prepare(call));
      SR_ASSIGN_OR_RETURN(HttpRequest request, Build(call));
      absl::StatusOr<HttpResponse> r = client_.Perform(request);
      if (r.ok() && !IsRetryableHttpStatus(r->status) &&
          !(r->status >= 400 && IsRetryableS3Code(ParseS3Error(r->body).code))) {
        return r;
      }
      if (!r.ok() && !IsRetryableTransport(r.status())) return r.status();
      last = r.ok() ? Explain(*r, store_.options_.credentials)
                    : RedactSigV4Secrets(r.status().message(), store_.options_.credentials);
      if (!backoff.Wait()) {
        return absl::UnavailableError(
            absl::StrCat(what, ": gave up after ", backoff.attempts(), " attempts; last: ", last));
      }
      store_.retries_.fetch_add(1);
      if (store_.options_.log) {
        store_.options_.log(absl::StrCat("retrying ", call.method, " ", what, " (attempt ",
                                         backoff.attempts(), ") after ", last));
      }
    }
  }

 private:
  absl::StatusOr<HttpRequest> Build(const Call& call) const {
    const S3Options& o = store_.options_;
    const Endpoint e = ParseEndpoint(o);
    const bool path_style = o.path_style.value_or(!o.endpoint.empty());
    const std::string host = path_style ? e.host : absl::StrCat(store_.bucket_, ".", e.host);
    std::string path = e.base;
    if (path_style) absl::StrAppend(&path, "/", UriEncode(store_.bucket_, true));
    if (!call.key.empty() || !path_style) {
      absl::StrAppend(&path, "/", UriEncode(call.key, /*encode_slash=*/false));
    }
    SigV4Options options;
    options.region = o.region;
    SigV4Request sign;
    sign.method = call.method;
    sign.path = path;
    sign.query = call.query;
    sign.headers.push_back({"Host", host});
    for (const auto& [name, value] : call.headers) sign.headers.push_back({name, value});
    sign.payload_hash = call.payload_sha256;
    SR_ASSIGN_OR_RETURN(
        SigV4Result signature,
        SignRequestHeaders(o.credentials, options, sign, std::chrono::system_clock::now()));
    HttpRequest r;
    r.method = call.method;
    r.url = absl::StrCat(e.scheme, "://", host, path);
    if (!call.query.empty()) absl::StrAppend(&r.url, "?", CanonicalQueryString(call.query));
    for (const HttpHeader& h : sign.headers) r.headers.push_back({h.name, h.value});
    for (const HttpHeader& h : signature.headers) r.headers.push_back({h.name, h.value});
    r.body = call.body;
    r.body_fd = call.body_fd;
    r.body_offset = call.body_offset;
    r.body_size = call.body_size;
    r.response_fd = call.response_fd;
    r.progress = call.progress;
    return r;
  }

  S3Store& store_;
  HttpClient client_;
};

S3Store::S3Store(std::string bucket, S3Options options)
    : bucket_(std::move(bucket)), options_(std::move(options)) {}

std::string S3Store::Describe(const std::string& key) const {
  return absl::StrCat("s3://", bucket_, "/", key);
}

namespace {

// The status for an unsuccessful answer about `what`.
absl::Status ErrorFor(const HttpResponse& r, const std::string& what,
                      const AwsCredentials& credentials) {
  const S3Error e = ParseS3Error(r.body);
  const std::string detail = Explain(r, credentials);
  if (r.status == 404) {
    return absl::NotFoundError(
        absl::StrCat(what, ": not found (", e.code.empty() ? std::string("404") : detail, ")"));
  }
  if (r.status == 403 || r.status == 401) {
    return absl::PermissionDeniedError(absl::StrCat(
        what, ": access denied (", detail,
        "); check the access key and secret (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or the "
        "profile), the region and the bucket's permissions"));
  }
  if (r.status >= 400 && r.status < 500) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": refused (", detail, ")"));
  }
  return absl::UnavailableError(absl::StrCat(what, ": ", detail));
}

bool Ok(const HttpResponse& r) { return r.status >= 200 && r.status < 300; }

// The CompleteMultipartUpload body listing every part's ETag, in order.
std::string CompleteMultipartXml(const std::vector<std::string>& etags) {
  std::string xml = "<CompleteMultipartUpload>";
  for (size_t i = 0; i < etags.size(); ++i) {
    absl::StrAppend(&xml, "<Part><PartNumber>", i + 1, "</PartNumber><ETag>", XmlEscape(etags[i]),
                    "</ETag></Part>");
  }
  xml += "</CompleteMultipartUpload>";
  return xml;
}

}  // namespace

absl::StatusOr<ObjectInfo> S3Store::Head(const std::string& key) {
  Session session(*this);
  Call call;
  call.method = "HEAD";
  call.key = key;
  SR_ASSIGN_OR_RETURN(HttpResponse r, session.Send(call, Describe(key)));
  if (!Ok(r)) return ErrorFor(r, Describe(key), options_.credentials);
  ObjectInfo info;
  info.key = key;
  auto it = r.headers.find("content-length");
  if (it == r.headers.end() || !absl::SimpleAtoi(it->second, &info.size)) {
    return absl::InternalError(absl::StrCat(Describe(key), ": HEAD answer has no Content-Length"));
  }
  if (auto etag = r.headers.find("etag"); etag != r.headers.end()) info.etag = etag->second;
  return info;
}

absl::Status S3Store::Get(const std::string& key, const std::string& path,
                          const TransferProgressFn& progress) {
  const std::string what = Describe(key);
  Session session(*this);
  Call head;
  head.method = "HEAD";
  head.key = key;
  SR_ASSIGN_OR_RETURN(HttpResponse h, session.Send(head, what));
  if (!Ok(h)) return ErrorFor(h, what, options_.credentials);
  uint64_t size = 0;
  if (!absl::SimpleAtoi(h.headers["content-length"], &size)) {
    return absl::InternalError(absl::StrCat(what, ": HEAD answer has no Content-Length"));
  }
  const std::string etag = h.headers["etag"];

  size_t slash = path.rfind('/');
  if (slash != std::string::npos && slash > 0)
    SR_RETURN_IF_ERROR(MakeDirectories(path.substr(0, slash)));
  const std::string partial = path + ".partial";
  int fd = ::open(partial.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoStatus(errno, partial);
  FdCloser closer{fd};
  // Resume from what an earlier attempt left, unless it is longer than the object.
  auto resume_offset = [&]() -> absl::StatusOr<uint64_t> {
    struct stat st;
    if (::fstat(fd, &st) != 0) return ErrnoStatus(errno, partial);
    uint64_t have = static_cast<uint64_t>(st.st_size);
    if (have > size) {
      if (::ftruncate(fd, 0) != 0) return ErrnoStatus(errno, partial);
      have = 0;
    }
    if (::lseek(fd, static_cast<off_t>(have), SEEK_SET) < 0) return ErrnoStatus(errno, partial);
    return have;
  };
  Call get;
  get.key = key;
  get.response_fd = fd;
  uint64_t start = 0;
  get.prepare = [&](Call& c) -> absl::Status {
    SR_ASSIGN_OR_RETURN(start, resume_offset());
    c.headers.clear();
    if (start > 0) c.headers.push_back({"Range", absl::StrCat("bytes=", start, "-")});
    if (!etag.empty()) c.headers.push_back({"If-Match", etag});
    return absl::OkStatus();
  };
  if (progress) get.progress = [&](uint64_t done, uint64_t) { progress(start + done, size); };
  if (size > 0) {
    SR_ASSIGN_OR_RETURN(HttpResponse r, session.Send(get, what));
    if (r.status == 412) {
      return absl::FailedPreconditionError(absl::StrCat(what, ": changed during the download"));
    }
    if (!Ok(r) && r.status != 416) return ErrorFor(r, what, options_.credentials);
  }
  SR_ASSIGN_OR_RETURN(uint64_t have, resume_offset());
  if (have != size) {
    return absl::DataLossError(
        absl::StrCat(what, ": downloaded ", have, " bytes but the object has ", size));
  }
  if (::fsync(fd) != 0) return ErrnoStatus(errno, partial);
  // A single-part ETag is the MD5 of the object: check it end to end.
  std::string md5 = absl::AsciiStrToLower(absl::StripSuffix(absl::StripPrefix(etag, "\""), "\""));
  if (md5.size() == 32 && md5.find_first_not_of("0123456789abcdef") == std::string::npos) {
    SR_ASSIGN_OR_RETURN(std::string got, Md5File(partial));
    if (got != md5) {
      ::unlink(partial.c_str());
      return absl::DataLossError(
          absl::StrCat(what, ": downloaded bytes have MD5 ", got, " but the ETag says ", md5));
    }
  }
  if (::rename(partial.c_str(), path.c_str()) != 0) return ErrnoStatus(errno, path);
  if (progress) progress(size, size);
  return absl::OkStatus();
}

absl::Status S3Store::Put(const std::string& path, const std::string& key,
                          const TransferProgressFn& progress) {
  if (key.empty()) return absl::InvalidArgumentError(absl::StrCat(Describe(key), ": empty key"));
  uint64_t size = 0;
  SR_ASSIGN_OR_RETURN(int fd, OpenRegularFile(path, &size));
  FdCloser closer{fd};
  if (size > options_.multipart_threshold) return PutMultipart(fd, size, key, progress);
  Call put;
  put.method = "PUT";
  put.key = key;
  put.body_fd = fd;
  put.body_size = size;
  SR_ASSIGN_OR_RETURN(put.payload_sha256, Sha256FileRange(fd, 0, size, path));
  put.progress = progress;
  Session session(*this);
  SR_ASSIGN_OR_RETURN(HttpResponse r, session.Send(put, Describe(key)));
  if (!Ok(r)) return ErrorFor(r, Describe(key), options_.credentials);
  return absl::OkStatus();
}

absl::Status S3Store::PutMultipart(int fd, uint64_t size, const std::string& key,
                                   const TransferProgressFn& progress) {
  Session session(*this);
  SR_ASSIGN_OR_RETURN(std::string upload_id, CreateMultipartUpload(session, key));
  std::vector<std::string> etags;
  absl::Status failure = UploadParts(fd, size, key, upload_id, progress, etags);
  if (failure.ok()) {
    failure = CompleteMultipartUpload(session, key, size, upload_id, etags);
    if (failure.ok()) return absl::OkStatus();
  }
  return AbortMultipartUpload(session, key, upload_id, failure);
}

absl::StatusOr<std::string> S3Store::CreateMultipartUpload(Session& session,
                                                           const std::string& key) {
  const std::string what = Describe(key);
  Call create;
  create.method = "POST";
  create.key = key;
  create.query = {{"uploads", ""}};
  SR_ASSIGN_OR_RETURN(HttpResponse created, session.Send(create, what));
  if (!Ok(created)) return ErrorFor(created, what, options_.credentials);
  return ParseUploadId(created.body);
}

absl::Status S3Store::UploadParts(int fd, uint64_t size, const std::string& key,
                                  const std::string& upload_id, const TransferProgressFn& progress,
                                  std::vector<std::string>& etags) {
  const uint64_t part_size = std::max<uint64_t>(options_.part_size, 5ull << 20);
  const int parts = static_cast<int>((size + part_size - 1) / part_size);
  etags.assign(parts, "");
  std::atomic<int> next{0};
  std::atomic<uint64_t> sent{0};
  std::mutex mu;
  absl::Status failure;
  auto worker = [&] {
    Session session(*this);
    for (int i = next.fetch_add(1); i < parts; i = next.fetch_add(1)) {
      {
        std::lock_guard<std::mutex> lock(mu);
        if (!failure.ok()) return;
      }
      const uint64_t offset = static_cast<uint64_t>(i) * part_size;
      uint64_t part_sent = 0;  // the most of this part sent in any attempt
      TransferProgressFn part_progress;
      if (progress) {
        part_progress = [&](uint64_t done, uint64_t) {
          if (done <= part_sent) return;
          const uint64_t delta = done - part_sent;
          part_sent = done;
          std::lock_guard<std::mutex> lock(mu);
          progress(sent.fetch_add(delta) + delta, size);
        };
      }
      absl::StatusOr<std::string> etag =
          UploadPart(session, fd, key, upload_id, i, offset, std::min(part_size, size - offset),
                     part_progress);
      std::lock_guard<std::mutex> lock(mu);
      if (!etag.ok()) {
        if (failure.ok()) failure = etag.status();
        return;
      }
      etags[i] = *std::move(etag);
    }
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < std::max(1, std::min(options_.parallel_parts, parts)); ++t) {
    threads.emplace_back(worker);
  }
  for (std::thread& t : threads) t.join();
  return failure;
}

absl::StatusOr<std::string> S3Store::UploadPart(Session& session, int fd, const std::string& key,
                                                const std::string& upload_id, int index,
                                                uint64_t offset, uint64_t length,
                                                TransferProgressFn progress) {
  const std::string what = Describe(key);
  Call part;
  part.method = "PUT";
  part.key = key;
  part.query = {{"partNumber", absl::StrCat(index + 1)}, {"uploadId", upload_id}};
  part.body_fd = fd;
  part.body_offset = offset;
  part.body_size = length;
  part.progress = std::move(progress);
  SR_ASSIGN_OR_RETURN(part.payload_sha256, Sha256FileRange(fd, offset, length, what));
  SR_ASSIGN_OR_RETURN(HttpResponse r, session.Send(part, what));
  if (!Ok(r)) return ErrorFor(r, what, options_.credentials);
  std::string etag = r.headers["etag"];
  if (etag.empty()) {
    return absl::InternalError(absl::StrCat(what, ": part ", index + 1, " answer has no ETag"));
  }
  return etag;
}

absl::Status S3Store::CompleteMultipartUpload(Session& session, const std::string& key,
                                              uint64_t size, const std::string& upload_id,
                                              const std::vector<std::string>& etags) {
  const std::string what = Describe(key);
  Call complete;
  complete.method = "POST";
  complete.key = key;
  complete.query = {{"uploadId", upload_id}};
  std::string xml = CompleteMultipartXml(etags);
  complete.payload_sha256 = Sha256Hex(xml);
  complete.body = std::move(xml);
  absl::StatusOr<HttpResponse> r = session.Send(complete, what);
  // A retried Complete whose first attempt took effect finds the upload gone:
  // the object is there when it has the size we sent.
  if (r.ok() && ParseS3Error(r->body).code == "NoSuchUpload") {
    absl::StatusOr<ObjectInfo> info = Head(key);
    if (info.ok() && info->size == size) return absl::OkStatus();
  }
  if (!r.ok()) return r.status();
  // S3 may answer 200 with an <Error> body when completing fails.
  if (!Ok(*r) || r->body.find("<Error>") != std::string::npos) {
    return ErrorFor(Ok(*r) ? HttpResponse{500, {}, r->body, 0} : *r, what, options_.credentials);
  }
  return absl::OkStatus();
}

absl::Status S3Store::AbortMultipartUpload(Session& session, const std::string& key,
                                           const std::string& upload_id, absl::Status failure) {
  Call abort;
  abort.method = "DELETE";
  abort.key = key;
  abort.query = {{"uploadId", upload_id}};
  absl::StatusOr<HttpResponse> aborted = session.Send(abort, Describe(key));
  if (!aborted.ok() || !Ok(*aborted)) {
    return absl::Status(failure.code(), absl::StrCat(failure.message(),
                                                     " (aborting the multipart upload failed "
                                                     "too; its parts may remain)"));
  }
  return failure;
}

absl::StatusOr<ObjectList> S3Store::List(const std::string& prefix, const std::string& page_token,
                                         int max_keys) {
  Call list;
  list.query = {{"list-type", "2"}, {"prefix", prefix}, {"max-keys", absl::StrCat(max_keys)}};
  if (!page_token.empty()) list.query.push_back({"continuation-token", page_token});
  Session session(*this);
  const std::string what = absl::StrCat("s3://", bucket_, "/", prefix);
  SR_ASSIGN_OR_RETURN(HttpResponse r, session.Send(list, what));
  if (!Ok(r)) return ErrorFor(r, what, options_.credentials);
  absl::StatusOr<ObjectList> page = ParseListObjectsV2(r.body);
  if (!page.ok()) return absl::InternalError(absl::StrCat(what, ": ", page.status().message()));
  return page;
}

absl::Status S3Store::CreateBucket() {
  Call create;
  create.method = "PUT";
  Session session(*this);
  const std::string what = absl::StrCat("s3://", bucket_);
  SR_ASSIGN_OR_RETURN(HttpResponse r, session.Send(create, what));
  if (Ok(r) || ParseS3Error(r.body).code == "BucketAlreadyOwnedByYou") return absl::OkStatus();
  return ErrorFor(r, what, options_.credentials);
}

absl::Status S3Store::Delete(const std::string& key) {
  Call del;
  del.method = "DELETE";
  del.key = key;
  Session session(*this);
  SR_ASSIGN_OR_RETURN(HttpResponse r, session.Send(del, Describe(key)));
  if (!Ok(r) && r.status != 404) return ErrorFor(r, Describe(key), options_.credentials);
  return absl::OkStatus();
}

}  // namespace signround
