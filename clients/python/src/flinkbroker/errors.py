"""Typed errors: one class per gRPC status code the broker answers, and the end of a job."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import grpc
from google.rpc import error_details_pb2, status_pb2

if TYPE_CHECKING:
    from .jobs import Job

_STATUS_DETAILS_KEY = "grpc-status-details-bin"


class FlinkBrokerError(Exception):
    """Base class of every error this client raises."""


class RpcError(FlinkBrokerError):
    """A call the broker (or the transport) answered with a status other than OK."""

    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(self, message: str, code: grpc.StatusCode | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return f"{self.code.name}: {self.message}"


class InvalidArgument(RpcError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(RpcError):
    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(RpcError):
    code = grpc.StatusCode.ALREADY_EXISTS


class PermissionDenied(RpcError):
    code = grpc.StatusCode.PERMISSION_DENIED


class Unauthenticated(RpcError):
    code = grpc.StatusCode.UNAUTHENTICATED


class ResourceExhausted(RpcError):
    """A tenant quota is used up; `retry_after` says how long to wait when waiting helps."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED

    def __init__(self, message: str, retry_after: timedelta | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class FailedPrecondition(RpcError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class Aborted(RpcError):
    """A result stream whose query runs again: its results start again at row 0."""

    code = grpc.StatusCode.ABORTED


class OutOfRange(RpcError):
    """A result offset the log no longer (or does not yet) hold."""

    code = grpc.StatusCode.OUT_OF_RANGE


class Unavailable(RpcError):
    code = grpc.StatusCode.UNAVAILABLE


class DeadlineExceeded(RpcError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


class Internal(RpcError):
    code = grpc.StatusCode.INTERNAL


_BY_CODE: dict[grpc.StatusCode, type[RpcError]] = {
    cls.code: cls
    for cls in (
        InvalidArgument,
        NotFound,
        AlreadyExists,
        PermissionDenied,
        Unauthenticated,
        ResourceExhausted,
        FailedPrecondition,
        Aborted,
        OutOfRange,
        Unavailable,
        DeadlineExceeded,
        Internal,
    )
}


class JobError(FlinkBrokerError):
    """A job ended other than FINISHED; `job` is its final record."""

    def __init__(self, job: Job, message: str) -> None:
        super().__init__(message)
        self.job = job


class JobFailed(JobError):
    """The job FAILED; `root_cause` is the failing statement's error, or the job's reason."""

    def __init__(self, job: Job) -> None:
        failed = [s for s in job.statements if s.error]
        self.root_cause = failed[0].error if failed else job.state_reason
        self.statement_errors = {s.index: s.error for s in failed}
        super().__init__(job, f"job {job.id} failed: {job.state_reason or self.root_cause}")


class JobCanceled(JobError):
    """The job was CANCELED."""

    def __init__(self, job: Job) -> None:
        super().__init__(job, f"job {job.id} was canceled: {job.state_reason}")


class ResultsFailed(FlinkBrokerError):
    """A result stream ended because its statement failed or its job was cancelled."""

    def __init__(self, message: str, canceled: bool) -> None:
        super().__init__(message)
        self.canceled = canceled


def _retry_after(metadata: Iterable[Any] | None) -> timedelta | None:
    """Reads the RetryInfo delay from the status details trailer, if the broker sent one
    (sync calls give (key, value) pairs, asyncio calls a grpc.aio.Metadata of them)."""
    for key, value in metadata or ():
        if key != _STATUS_DETAILS_KEY:
            continue
        status = status_pb2.Status.FromString(value if isinstance(value, bytes) else value.encode())
        for detail in status.details:
            if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                info = error_details_pb2.RetryInfo()
                detail.Unpack(info)
                delay: timedelta = info.retry_delay.ToTimedelta()
                return delay
    return None


def from_grpc(error: grpc.RpcError) -> RpcError:
    """Maps a grpc error (sync or asyncio) to the typed error for its status code."""
    code = error.code()
    message = error.details() or ""
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        return ResourceExhausted(message, _retry_after(error.trailing_metadata()))
    cls = _BY_CODE.get(code)
    return cls(message) if cls is not None else RpcError(message, code)
