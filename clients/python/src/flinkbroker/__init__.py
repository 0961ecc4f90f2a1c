"""Python client for flinkbroker: submit Flink SQL and PyFlink jobs, follow them, read typed results.

    from flinkbroker import Client

    with Client("127.0.0.1:50051", token=token) as broker:
        job = broker.submit_sql("SELECT 1 AS one", mode="batch")
        rows = list(broker.results(job.id))
        broker.wait(job.id)

`AsyncClient` offers the same methods for asyncio.
"""

from ._common import Restore, ResultLimits, RetryPolicy, TlsConfig
from .aio import AsyncClient, AsyncResultStream, AsyncTableStream
from .audit import AuditAction, AuditEvent
from .client import Client, ResultStream, TableStream
from .errors import (
    Aborted,
    AlreadyExists,
    DeadlineExceeded,
    FailedPrecondition,
    FlinkBrokerError,
    Internal,
    InvalidArgument,
    JobCanceled,
    JobError,
    JobFailed,
    NotFound,
    OutOfRange,
    PermissionDenied,
    ResourceExhausted,
    ResultsFailed,
    RpcError,
    Unauthenticated,
    Unavailable,
)
from .jobs import (
    Job,
    JobKind,
    JobState,
    ResultLog,
    Savepoint,
    Statement,
    StatementState,
    StateTransition,
    Upgrade,
)
from .results import Column, EndReason, ResultTable, Row, RowKind, StreamEnd, to_python
from .validation import StatementCheck, Validation

__all__ = [
    "Aborted",
    "AlreadyExists",
    "AsyncClient",
    "AsyncResultStream",
    "AsyncTableStream",
    "AuditAction",
    "AuditEvent",
    "Client",
    "Column",
    "DeadlineExceeded",
    "EndReason",
    "FailedPrecondition",
    "FlinkBrokerError",
    "Internal",
    "InvalidArgument",
    "Job",
    "JobCanceled",
    "JobError",
    "JobFailed",
    "JobKind",
    "JobState",
    "NotFound",
    "OutOfRange",
    "PermissionDenied",
    "ResourceExhausted",
    "Restore",
    "ResultLimits",
    "ResultLog",
    "ResultStream",
    "ResultTable",
    "ResultsFailed",
    "RetryPolicy",
    "Row",
    "RowKind",
    "RpcError",
    "Savepoint",
    "StatementCheck",
    "StateTransition",
    "Statement",
    "StatementState",
    "StreamEnd",
    "TableStream",
    "TlsConfig",
    "Validation",
    "Unauthenticated",
    "Unavailable",
    "Upgrade",
    "to_python",
]
