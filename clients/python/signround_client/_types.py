"""Typed views of the service's messages: jobs, artifacts and watch events."""

import dataclasses
import datetime
import enum
import json
from typing import TYPE_CHECKING, Any, Dict, Iterator, List, Optional, Tuple

if TYPE_CHECKING:  # pragma: no cover
    from ._client import Client


class JobState(enum.IntEnum):
    """signround.v1.JobState."""

    UNSPECIFIED = 0
    QUEUED = 1
    RUNNING = 2
    UPLOADING = 3
    SUCCEEDED = 4
    FAILED = 5
    CANCELLED = 6

    @property
    def ended(self) -> bool:
        return self in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)


class Recipe(enum.IntEnum):
    """signround.v1.Recipe; `submit(recipe=...)` also takes the lowercase name ("rtn")."""

    DEFAULT = 1
    BEST = 2
    LIGHT = 3
    RTN = 4
    OPT_RTN = 5


def _time(timestamp) -> Optional[datetime.datetime]:
    """A google.protobuf.Timestamp as an aware UTC datetime; None when unset."""
    if timestamp.seconds == 0 and timestamp.nanos == 0:
        return None
    return timestamp.ToDatetime(tzinfo=datetime.timezone.utc)


@dataclasses.dataclass(frozen=True)
class Artifact:
    format: str  # the export format, or "report" for report.json
    uri: str
    bytes: int
    sha256: str  # lowercase hex of the file's content

    @classmethod
    def from_proto(cls, message) -> "Artifact":
        return cls(message.format, message.uri, message.bytes, message.sha256)


@dataclasses.dataclass(frozen=True)
class Event:
    """One event of a job; `sequence` is 1, 2, 3, ... within the job, without gaps."""

    job_id: str
    sequence: int
    time: Optional[datetime.datetime]
    attempt: int  # 0 before the first attempt


@dataclasses.dataclass(frozen=True)
class StateChanged(Event):
    from_state: JobState
    to_state: JobState
    reason: str


@dataclasses.dataclass(frozen=True)
class BlockFinished(Event):
    block_index: int  # 0-based
    block_count: int
    layers_quantized: int
    loss_iter0: float  # block loss of plain rounding
    best_loss: float
    best_iteration: int
    seconds: float
    resumed: bool  # reloaded from an earlier attempt's checkpoint
    expert_tokens: Tuple[int, ...]
    rounded_experts: Tuple[int, ...]


@dataclasses.dataclass(frozen=True)
class ArtifactUploaded(Event):
    artifact: Artifact


@dataclasses.dataclass(frozen=True)
class JobErrorEvent(Event):
    message: str
    will_retry: bool


def event_from_proto(message) -> Event:
    base = dict(job_id=message.job_id, sequence=message.sequence, time=_time(message.time),
                attempt=message.attempt)
    kind = message.WhichOneof("kind")
    if kind == "state_change":
        change = message.state_change
        return StateChanged(**base, from_state=JobState(getattr(change, "from")),
                            to_state=JobState(change.to), reason=change.reason)
    if kind == "block_progress":
        b = message.block_progress
        return BlockFinished(**base, block_index=b.block_index, block_count=b.block_count,
                             layers_quantized=b.layers_quantized, loss_iter0=b.loss_iter0,
                             best_loss=b.best_loss, best_iteration=b.best_iteration,
                             seconds=b.seconds, resumed=b.resumed,
                             expert_tokens=tuple(b.expert_tokens),
                             rounded_experts=tuple(b.rounded_experts))
    if kind == "artifact_uploaded":
        return ArtifactUploaded(**base, artifact=Artifact.from_proto(message.artifact_uploaded
                                                                     .artifact))
    if kind == "error":
        return JobErrorEvent(**base, message=message.error.message,
                             will_retry=message.error.will_retry)
    return Event(**base)  # a kind newer than this client


class Job:
    """A snapshot of a job as the server reported it, with the calls that act on it.
    `refresh()`, `wait()` and `cancel()` return new snapshots; this one never changes."""

    def __init__(self, client: "Client", message, created: Optional[bool] = None):
        self._client = client
        self.proto = message  # the signround.v1.Job message
        self.created = created  # from submit(): False when the idempotency key was seen
        self.id: str = message.id
        self.state = JobState(message.state)
        self.spec = message.spec  # the signround.v1.JobSpec as submitted
        self.labels: Dict[str, str] = dict(message.spec.labels)
        self.create_time = _time(message.create_time)
        self.start_time = _time(message.start_time)
        self.end_time = _time(message.end_time)
        self.attempts: int = message.attempts
        self.error: str = message.error
        self.blocks_done: int = message.blocks_done
        self.block_count: int = message.block_count
        self.latest_loss: float = message.latest_loss
        self.artifacts: List[Artifact] = [Artifact.from_proto(a) for a in message.artifacts]
        self.last_sequence: int = message.last_sequence
        self.device: str = message.device
        self.tenant: str = message.tenant

    @property
    def effective_settings(self) -> Dict[str, Any]:
        """The settings after the recipe's defaults (Job.effective_settings_json)."""
        text = self.proto.effective_settings_json
        return json.loads(text) if text else {}

    def refresh(self) -> "Job":
        return self._client.get(self.id)

    def watch(self, from_sequence: int = 1) -> Iterator[Event]:
        """The job's events from `from_sequence` until it ends (Client.watch)."""
        return self._client.watch(self.id, from_sequence=from_sequence)

    def wait(self, timeout: Optional[float] = None, raise_on_failure: bool = True) -> "Job":
        """Blocks until the job ends and returns its final snapshot (Client.wait)."""
        return self._client.wait(self.id, timeout=timeout, raise_on_failure=raise_on_failure)

    def cancel(self) -> "Job":
        return self._client.cancel(self.id)

    def __repr__(self) -> str:
        progress = f"{self.blocks_done}/{self.block_count}" if self.block_count else "-"
        return f"Job(id={self.id!r}, state={self.state.name}, blocks={progress})"
