"""What the sync and asyncio clients share: credentials, retry policy and request building."""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal

import grpc

from .audit import AuditAction
from .errors import JobCanceled, JobFailed, ResultsFailed
from .jobs import Job, JobKind, JobState
from .results import EndReason, StreamEnd
from .v1 import broker_pb2 as pb

PemSource = bytes | str | os.PathLike[str] | None
Token = str | Callable[[], str] | None
Mode = Literal["batch", "streaming"]
View = Literal["changelog", "table"]


def _read_pem(source: PemSource) -> bytes | None:
    if source is None or isinstance(source, bytes):
        return source
    return Path(source).read_bytes()


@dataclass(frozen=True)
class TlsConfig:
    """TLS towards the broker: a CA to trust (None: the system's roots) and, for mTLS, a client
    certificate and key. Each is PEM bytes or a path to a PEM file."""

    ca: PemSource = None
    cert: PemSource = None
    key: PemSource = None

    def channel_credentials(self) -> grpc.ChannelCredentials:
        cert, key = _read_pem(self.cert), _read_pem(self.key)
        if (cert is None) != (key is None):
            raise ValueError("tls: a client certificate needs its key, and a key its certificate")
        return grpc.ssl_channel_credentials(
            root_certificates=_read_pem(self.ca), private_key=key, certificate_chain=cert
        )


TlsOption = TlsConfig | bool | tuple[PemSource, PemSource, PemSource] | None


def tls_config(tls: TlsOption) -> TlsConfig | None:
    if tls is None or tls is False:
        return None
    if tls is True:
        return TlsConfig()
    if isinstance(tls, TlsConfig):
        return tls
    ca, cert, key = tls
    return TlsConfig(ca, cert, key)


@dataclass(frozen=True)
class RetryPolicy:
    """How often a dropped result or watch stream is reconnected, and the backoff between tries.
    The count starts again once a reconnected stream delivers something."""

    max_attempts: int = 5
    initial_backoff: float = 0.2
    max_backoff: float = 5.0
    multiplier: float = 2.0
    retryable_codes: frozenset[grpc.StatusCode] = frozenset({grpc.StatusCode.UNAVAILABLE})

    def backoff(self, failures: int) -> float:
        """Seconds to wait before reconnect number `failures` (1-based), with jitter."""
        ceiling = min(self.max_backoff, self.initial_backoff * self.multiplier ** (failures - 1))
        return random.uniform(ceiling / 2, ceiling)

    def should_retry(self, code: grpc.StatusCode, failures: int) -> bool:
        return code in self.retryable_codes and failures < self.max_attempts


def metadata(token: Token) -> tuple[tuple[str, str], ...]:
    if token is None:
        return ()
    value = token() if callable(token) else token
    return (("authorization", f"Bearer {value}"),)


def _duration(seconds: float | timedelta) -> dict[str, int]:
    if isinstance(seconds, timedelta):
        seconds = seconds.total_seconds()
    whole = int(seconds)
    return {"seconds": whole, "nanos": int(round((seconds - whole) * 1e9))}


@dataclass(frozen=True)
class ResultLimits:
    """When the broker stops each query statement of a SQL job (rows logged, time)."""

    max_rows: int = 0
    max_duration: float | timedelta | None = None


@dataclass(frozen=True)
class Restore:
    """Where a submitted job's Flink jobs restore their state from: a savepoint's location.
    `allow_non_restored_state` starts the job even when some of the savepoint's state maps to
    no operator; `claim` hands the savepoint over to Flink (CLAIM instead of NO_CLAIM)."""

    savepoint_path: str
    allow_non_restored_state: bool = False
    claim: bool = False

    def to_proto(self) -> pb.Restore:
        return pb.Restore(
            savepoint_path=self.savepoint_path,
            allow_non_restored_state=self.allow_non_restored_state,
            claim_mode=pb.CLAIM_MODE_CLAIM if self.claim else pb.CLAIM_MODE_NO_CLAIM,
        )


def _runtime_mode(mode: Mode) -> int:
    modes = {"batch": pb.RUNTIME_MODE_BATCH, "streaming": pb.RUNTIME_MODE_STREAMING}
    if mode not in modes:
        raise ValueError(f"mode: must be 'batch' or 'streaming', not {mode!r}")
    return modes[mode]


def submit_sql_request(
    script: str,
    mode: Mode,
    properties: Mapping[str, str] | None,
    request_id: str | None,
    labels: Mapping[str, str] | None,
    result_limits: ResultLimits | None,
    restore: Restore | None = None,
    validate_first: bool = False,
) -> pb.SubmitSqlRequest:
    request = pb.SubmitSqlRequest(
        script=script,
        runtime_mode=_runtime_mode(mode),
        properties=dict(properties or {}),
        request_id=request_id or "",
        labels=dict(labels or {}),
        validate_first=validate_first,
    )
    if restore is not None:
        request.restore.CopyFrom(restore.to_proto())
    if result_limits is not None:
        request.result_limits.max_rows = result_limits.max_rows
        if result_limits.max_duration is not None:
            duration = _duration(result_limits.max_duration)
            request.result_limits.max_duration.seconds = duration["seconds"]
            request.result_limits.max_duration.nanos = duration["nanos"]
    return request


def _is_url(program: str | os.PathLike[str]) -> bool:
    return isinstance(program, str) and "://" in program.split("\n", 1)[0] and "\n" not in program


def submit_python_request(
    program: str | os.PathLike[str],
    *,
    entry_module: str | None,
    py_files: Sequence[str],
    py_archives: Sequence[str],
    inline_py_files: Mapping[str, str] | None,
    requirements: str | os.PathLike[str] | None,
    parallelism: int,
    flink_configuration: Mapping[str, str] | None,
    program_args: Sequence[str],
    request_id: str | None,
    labels: Mapping[str, str] | None,
    restore: Restore | None = None,
) -> pb.SubmitPythonRequest:
    """Builds SubmitPython: a URL is passed on, a path to a local file is read into inline
    source, and any other string is taken as the source itself."""
    request = pb.SubmitPythonRequest(
        entry_module=entry_module or "",
        py_files=list(py_files),
        py_archives=list(py_archives),
        inline_py_files=dict(inline_py_files or {}),
        program_args=list(program_args),
        parallelism=parallelism,
        flink_configuration=dict(flink_configuration or {}),
        request_id=request_id or "",
        labels=dict(labels or {}),
    )
    if _is_url(program):
        request.script_url = str(program)
    elif isinstance(program, os.PathLike) or (
        "\n" not in program and (Path(program).is_file() or program.endswith(".py"))
    ):
        # A missing file named like a script is an error here, not a program to run.
        request.script = Path(program).read_text()
    else:
        request.script = str(program)
    if requirements is not None:
        if isinstance(requirements, os.PathLike) or (
            "\n" not in str(requirements) and Path(requirements).is_file()
        ):
            request.py_requirements = Path(requirements).read_text()
        else:
            request.py_requirements = str(requirements)
    if restore is not None:
        request.restore.CopyFrom(restore.to_proto())
    return request


def results_request(
    job_id: str,
    statement: int | None,
    next_row: int,
    attempt: int | None,
    max_rows: int,
    max_duration: float | timedelta | None,
    arrow: bool = False,
    table: bool = False,
) -> pb.StreamOperationResultsRequest:
    """Builds StreamOperationResults; `arrow` asks for Arrow record batches instead of rows,
    `table` for the statement's table (a snapshot, then its changes) instead of its changelog."""
    request = pb.StreamOperationResultsRequest(job_id=job_id, resume_from_row=next_row, max_rows=max_rows)
    if arrow:
        request.encoding = pb.RESULT_ENCODING_ARROW
    if table:
        request.view = pb.RESULT_VIEW_TABLE
    if statement is not None:
        request.statement_index = statement
    if attempt is not None:
        request.attempt = attempt
    if max_duration is not None:
        duration = _duration(max_duration)
        request.max_duration.seconds = duration["seconds"]
        request.max_duration.nanos = duration["nanos"]
    return request


def is_table_view(view: View) -> bool:
    """Whether `view` asks for the table ("table") rather than the changelog ("changelog")."""
    if view not in ("changelog", "table"):
        raise ValueError(f"view: must be 'changelog' or 'table', not {view!r}")
    return view == "table"


def _format(native: bool) -> int:
    return pb.SAVEPOINT_FORMAT_NATIVE if native else pb.SAVEPOINT_FORMAT_CANONICAL


def cancel_request(job_id: str, savepoint: bool | str | None, native: bool = False) -> pb.CancelJobRequest:
    request = pb.CancelJobRequest(job_id=job_id)
    if savepoint:
        request.stop_with_savepoint = True
        request.savepoint_format = _format(native)
        if isinstance(savepoint, str):
            request.savepoint_directory = savepoint
    return request


def savepoint_request(job_id: str, directory: str | None, native: bool) -> pb.TriggerSavepointRequest:
    return pb.TriggerSavepointRequest(job_id=job_id, directory=directory or "", format=_format(native))


def upgrade_request(
    job_id: str,
    revision: pb.SubmitSqlRequest | pb.SubmitPythonRequest,
    savepoint_directory: str | None,
    native: bool,
    allow_non_restored_state: bool,
    claim: bool,
    request_id: str | None,
) -> pb.UpgradeJobRequest:
    """Builds UpgradeJob around the new revision, built as SubmitSql or SubmitPython would be
    (without a request id or restore: the upgrade sets those)."""
    request = pb.UpgradeJobRequest(
        job_id=job_id,
        savepoint_directory=savepoint_directory or "",
        savepoint_format=_format(native),
        allow_non_restored_state=allow_non_restored_state,
        claim_mode=pb.CLAIM_MODE_CLAIM if claim else pb.CLAIM_MODE_NO_CLAIM,
        request_id=request_id or "",
    )
    if isinstance(revision, pb.SubmitSqlRequest):
        request.sql.CopyFrom(revision)
    else:
        request.python.CopyFrom(revision)
    return request


# How often `wait_for_upgrade` reads a revision that ended before its upgrade did.
UPGRADE_POLL_INTERVAL = 0.2


def upgrade_ended(job: Job) -> bool:
    """Whether the upgrade that made `job` is over (DONE, ROLLED_BACK or ABANDONED); raises
    ValueError for a job no upgrade made (revision 1)."""
    if job.upgrade is None:
        raise ValueError(f"job {job.id} is revision {job.revision} of its lineage: no upgrade made it")
    return job.upgrade.ended


def upgrade_timeout(job_id: str, timeout: float | None) -> TimeoutError:
    return TimeoutError(f"the upgrade that made job {job_id} did not end within {timeout}s")


def validate_request(script: str, mode: Mode, properties: Mapping[str, str] | None) -> pb.ValidateSqlRequest:
    return pb.ValidateSqlRequest(
        script=script, runtime_mode=_runtime_mode(mode), properties=dict(properties or {})
    )


def list_request(
    states: Iterable[JobState] | None,
    kind: JobKind | None,
    labels: Mapping[str, str] | None,
    tenant: str | None,
    lineage_id: str | None,
    page_size: int,
    page_token: str,
) -> pb.ListJobsRequest:
    return pb.ListJobsRequest(
        states=[s.value for s in states or ()],
        kind=kind.value if kind is not None else pb.JOB_KIND_UNSPECIFIED,
        labels=dict(labels or {}),
        tenant=tenant or "",
        lineage_id=lineage_id or "",
        page_size=page_size,
        page_token=page_token,
    )


def _aware(name: str, moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name}: needs a timezone-aware datetime, not the naive {moment.isoformat()}")
    return moment


def audit_request(
    tenant: str | None,
    principal: str | None,
    action: AuditAction | str | None,
    start_time: datetime | None,
    end_time: datetime | None,
    page_size: int,
    page_token: str,
) -> pb.ListAuditEventsRequest:
    request = pb.ListAuditEventsRequest(
        tenant=tenant or "",
        principal=principal or "",
        action=AuditAction.parse(action).value if action is not None else pb.AUDIT_ACTION_UNSPECIFIED,
        page_size=page_size,
        page_token=page_token,
    )
    if start_time is not None:
        request.start_time.FromDatetime(_aware("start_time", start_time))
    if end_time is not None:
        request.end_time.FromDatetime(_aware("end_time", end_time))
    return request


def final_job(job: Job) -> Job:
    """Returns a FINISHED job; raises JobFailed or JobCanceled for the other terminal states."""
    if job.state == JobState.FAILED:
        raise JobFailed(job)
    if job.state == JobState.CANCELED:
        raise JobCanceled(job)
    return job


def check_end(end: StreamEnd, job_id: str) -> None:
    if end.reason == EndReason.FAILED:
        raise ResultsFailed(f"results of job {job_id} ended: {end.error}", canceled=False)
    if end.reason == EndReason.CANCELED:
        raise ResultsFailed(f"results of job {job_id} ended: the job was canceled", canceled=True)
