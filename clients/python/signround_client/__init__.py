"""Python client of the signround quantization job service.

    from signround_client import Client
    with Client("localhost:50051") as client:
        job = client.submit("file:///models/llama", "file:///out/llama-w4", recipe="rtn")
        print(job.wait().artifacts)
"""

from ._client import Client, Tls, build_spec
from ._types import (Artifact, ArtifactUploaded, BlockFinished, Event, Job, JobErrorEvent,
                     JobState, Recipe, StateChanged)
from .errors import (AlreadyExists, Cancelled, DeadlineExceeded, FailedPrecondition, Internal,
                     InvalidArgument, JobFailed, NotFound, PermissionDenied, ResourceExhausted,
                     SignroundError, Unauthenticated, Unavailable)

__all__ = [
    "Client", "Tls", "build_spec", "Artifact", "ArtifactUploaded", "BlockFinished", "Event",
    "Job", "JobErrorEvent", "JobState", "Recipe", "StateChanged", "AlreadyExists", "Cancelled",
    "DeadlineExceeded", "FailedPrecondition", "Internal", "InvalidArgument", "JobFailed",
    "NotFound", "PermissionDenied", "ResourceExhausted", "SignroundError", "Unauthenticated",
    "Unavailable",
]
__version__ = "0.1.0"
