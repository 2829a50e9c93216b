"""Exceptions of the signround client: one class per gRPC status code the service answers,
carrying the server's message (which names the offending field for INVALID_ARGUMENT)."""

from typing import TYPE_CHECKING, Dict, Type

import grpc

if TYPE_CHECKING:  # pragma: no cover
    from ._types import Job


class SignroundError(Exception):
    """A call the service refused or could not answer. `code` is the gRPC status code,
    `message` the server's message."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(f"{code.name}: {message}" if message else code.name)
        self.code = code
        self.message = message


class InvalidArgument(SignroundError):
    """A request field is malformed; the message starts with its path (e.g. "spec.bits")."""


class NotFound(SignroundError):
    """No such job (or another tenant's)."""


class AlreadyExists(SignroundError):
    pass


class PermissionDenied(SignroundError):
    """A URI outside the server's allowed roots or the tenant's buckets, or a role that may
    not make this call."""


class Unauthenticated(SignroundError):
    """No token, or one the server does not know."""


class ResourceExhausted(SignroundError):
    """A per-tenant limit (queued jobs, open watches) or the request size limit."""


class FailedPrecondition(SignroundError):
    """E.g. cancelling a job that has already ended."""


class Unavailable(SignroundError):
    """The server cannot be reached (or went away and did not come back in time)."""


class DeadlineExceeded(SignroundError):
    pass


class Cancelled(SignroundError):
    pass


class Internal(SignroundError):
    pass


_BY_CODE: Dict[grpc.StatusCode, Type[SignroundError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExists,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
    grpc.StatusCode.CANCELLED: Cancelled,
    grpc.StatusCode.INTERNAL: Internal,
}


def from_rpc_error(error: grpc.RpcError) -> SignroundError:
    """The exception for a failed call: the class of its status code (SignroundError for
    codes without one) with the server's message."""
    code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
    details = error.details() if hasattr(error, "details") else str(error)
    return _BY_CODE.get(code, SignroundError)(code, details or "")


class JobFailed(Exception):
    """Job.wait() on a job that ended FAILED or CANCELLED; `job` is its final state."""

    def __init__(self, job: "Job"):
        reason = job.error or "no error message"
        super().__init__(f"job {job.id} ended {job.state.name}: {reason}")
        self.job = job
