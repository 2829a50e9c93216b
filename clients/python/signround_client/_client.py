"""signround_client.Client: the job service over gRPC."""

import dataclasses
import os
import time
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import grpc

from signround.v1 import quantization_service_pb2 as pb2
from signround.v1 import quantization_service_pb2_grpc as pb2_grpc

from . import errors
from ._types import Event, Job, JobState, Recipe, StateChanged, event_from_proto

PathOrBytes = Union[str, bytes, os.PathLike]

# Codes after which a dropped WatchJob stream is opened again from the next sequence: the
# connection went away or the server is restarting (UNAVAILABLE; CANCELLED from a server
# shutting down), or the transport reset the stream (INTERNAL/UNKNOWN, "Stream removed").
# Anything else the server said is final.
_RECONNECT_CODES = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED,
                    grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN)


@dataclasses.dataclass(frozen=True)
class Tls:
    """TLS settings: each a PEM file's path or its bytes. root_certificates None: the
    system's roots. certificate_chain and private_key: the client certificate for servers
    started with --tls-client-ca."""

    root_certificates: Optional[PathOrBytes] = None
    certificate_chain: Optional[PathOrBytes] = None
    private_key: Optional[PathOrBytes] = None

    def credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(root_certificates=_pem(self.root_certificates),
                                            private_key=_pem(self.private_key),
                                            certificate_chain=_pem(self.certificate_chain))


def _pem(value: Optional[PathOrBytes]) -> Optional[bytes]:
    if value is None or isinstance(value, bytes):
        return value
    with open(value, "rb") as f:
        return f.read()


def _is_wrapper(field) -> bool:
    """google.protobuf.*Value fields (unset means "the default")."""
    message = field.message_type
    return message is not None and message.full_name.startswith("google.protobuf.") and \
        message.full_name.endswith("Value")


def build_spec(settings: Mapping[str, Any]) -> "pb2.JobSpec":
    """A JobSpec from keyword settings named as its fields (None: left unset). Wrapper
    fields (sym, iters, seed, scale_search, loss_filter) take plain values; `recipe` takes a
    Recipe or its name; `layer_overrides` takes dicts {pattern, bits, group_size, sym}."""
    spec = pb2.JobSpec()
    fields = pb2.JobSpec.DESCRIPTOR.fields_by_name
    for name, value in settings.items():
        if value is None:
            continue
        field = fields.get(name)
        if field is None:
            raise TypeError(f"submit(): unknown setting '{name}' (JobSpec has no such field)")
        if name == "recipe":
            spec.recipe = Recipe[value.upper()] if isinstance(value, str) else int(value)
        elif name == "labels":
            spec.labels.update(value)
        elif name == "layer_overrides":
            for override in value:
                unknown = set(override) - {"pattern", "bits", "group_size", "sym"}
                if unknown:
                    raise TypeError(f"submit(): layer_overrides: unknown keys {sorted(unknown)}")
                added = spec.layer_overrides.add(pattern=override["pattern"],
                                                 bits=override.get("bits", 0),
                                                 group_size=override.get("group_size", 0))
                if override.get("sym") is not None:
                    added.sym.value = override["sym"]
        elif _is_wrapper(field):
            getattr(spec, name).value = value
        elif field.label == field.LABEL_REPEATED:
            getattr(spec, name).extend([value] if isinstance(value, str) else value)
        else:
            setattr(spec, name, value)
    return spec


class Client:
    """A connection to a signround-server's gRPC port.

    address: "host:port". token: sent as "authorization: Bearer TOKEN" on every call
    (servers with --tokens-file). tls: None/False for plaintext, True for TLS with the
    system's roots, or a Tls. timeout: seconds for each unary call.
    """

    def __init__(self, address: str, token: Optional[str] = None,
                 tls: Union[None, bool, Tls] = None, timeout: float = 30.0,
                 options: Sequence[Tuple[str, Any]] = ()):
        if tls is True:
            tls = Tls()
        if tls:
            self._channel = grpc.secure_channel(address, tls.credentials(), options=options)
        else:
            self._channel = grpc.insecure_channel(address, options=options)
        self._stub = pb2_grpc.QuantizationServiceStub(self._channel)
        self._metadata = (("authorization", "Bearer " + token),) if token else ()
        self.timeout = timeout

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _call(self, method, request, timeout: Optional[float] = None):
        try:
            return method(request, metadata=self._metadata,
                          timeout=self.timeout if timeout is None else timeout)
        except grpc.RpcError as e:
            raise errors.from_rpc_error(e) from None

    def submit(self, model_uri: Optional[str] = None, output_uri: Optional[str] = None, *,
               spec: Optional["pb2.JobSpec"] = None, **settings: Any) -> Job:
        """Submits a job and returns it (QUEUED). Settings are JobSpec's fields by name:
        calibration_uri, formats (a list or one name), bits, group_size, sym, iters, recipe,
        labels, idempotency_key, ... A retried submission with the same idempotency_key
        returns the first job (job.created is False). Or pass a ready JobSpec as `spec`."""
        if spec is not None:
            if model_uri or output_uri or settings:
                raise TypeError("submit(): pass either spec or settings, not both")
        else:
            spec = build_spec(dict(settings, model_uri=model_uri, output_uri=output_uri))
        response = self._call(self._stub.SubmitJob, pb2.SubmitJobRequest(spec=spec))
        return Job(self, response.job, created=response.created)

    def get(self, job_id: str) -> Job:
        return Job(self, self._call(self._stub.GetJob, pb2.GetJobRequest(job_id=job_id)))

    def list(self, state: Optional[JobState] = None, labels: Optional[Mapping[str, str]] = None,
             page_size: int = 100) -> Iterator[Job]:
        """Every job (of the caller's tenant) with that state and all those labels, newest
        first; pages are fetched as the iterator goes."""
        token = ""
        while True:
            request = pb2.ListJobsRequest(state=int(state or 0), labels=dict(labels or {}),
                                          page_size=page_size, page_token=token)
            page = self._call(self._stub.ListJobs, request)
            for message in page.jobs:
                yield Job(self, message)
            token = page.next_page_token
            if not token:
                return

    def cancel(self, job_id: str) -> Job:
        """Cancels a queued or running job (FailedPrecondition once it has ended)."""
        return Job(self, self._call(self._stub.CancelJob, pb2.CancelJobRequest(job_id=job_id)))

    def watch(self, job_id: str, from_sequence: int = 1, *, reconnects: int = 8,
              backoff: float = 0.25, deadline: Optional[float] = None) -> Iterator[Event]:
        """The job's events from `from_sequence` (stored ones first, then live ones) until
        the job ends. A dropped stream is opened again from the sequence after the last one
        received, up to `reconnects` times in a row (waiting backoff, 2*backoff, ...): no
        event is lost or repeated. deadline: time.monotonic() after which DeadlineExceeded
        is raised."""
        next_sequence = max(1, from_sequence)
        failures = 0
        while True:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            call = self._stub.WatchJob(
                pb2.WatchJobRequest(job_id=job_id, from_sequence=next_sequence),
                metadata=self._metadata, timeout=remaining)
            try:
                for message in call:
                    if message.sequence < next_sequence:
                        continue  # already delivered before a reconnect
                    next_sequence = message.sequence + 1
                    failures = 0
                    yield event_from_proto(message)
                return  # the server ends the stream when the job has ended
            except grpc.RpcError as e:
                if e.code() not in _RECONNECT_CODES or failures >= reconnects:
                    raise errors.from_rpc_error(e) from None
                failures += 1
                time.sleep(backoff * 2 ** (failures - 1))
            finally:
                call.cancel()

    def wait(self, job_id: str, timeout: Optional[float] = None,
             raise_on_failure: bool = True) -> Job:
        """Follows the job until it ends and returns its final snapshot. Raises JobFailed
        when it ended FAILED or CANCELLED (unless raise_on_failure is False), and
        TimeoutError after `timeout` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            for event in self.watch(job_id, deadline=deadline):
                if isinstance(event, StateChanged) and event.to_state.ended:
                    break
        except errors.DeadlineExceeded:
            raise TimeoutError(f"job {job_id} did not end within {timeout} s") from None
        job = self.get(job_id)
        if raise_on_failure and job.state in (JobState.FAILED, JobState.CANCELLED):
            raise errors.JobFailed(job)
        return job
