"""Jobs as plain Python values, converted from the broker's protobuf messages."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime, timezone

from google.protobuf.timestamp_pb2 import Timestamp

from .v1 import broker_pb2 as pb


class JobState(enum.Enum):
    """Where a job is in its life. FINISHED, FAILED and CANCELED are terminal."""

    UNSPECIFIED = pb.JOB_STATE_UNSPECIFIED
    PENDING = pb.JOB_STATE_PENDING
    SUBMITTING = pb.JOB_STATE_SUBMITTING
    RUNNING = pb.JOB_STATE_RUNNING
    FINISHED = pb.JOB_STATE_FINISHED
    FAILED = pb.JOB_STATE_FAILED
    CANCELED = pb.JOB_STATE_CANCELED
    CANCELING = pb.JOB_STATE_CANCELING

    @property
    def is_terminal(self) -> bool:
        return self in (JobState.FINISHED, JobState.FAILED, JobState.CANCELED)


class JobKind(enum.Enum):
    UNSPECIFIED = pb.JOB_KIND_UNSPECIFIED
    SQL = pb.JOB_KIND_SQL
    PYTHON = pb.JOB_KIND_PYTHON


class StatementState(enum.Enum):
    UNSPECIFIED = pb.STATEMENT_STATE_UNSPECIFIED
    PENDING = pb.STATEMENT_STATE_PENDING
    RUNNING = pb.STATEMENT_STATE_RUNNING
    FINISHED = pb.STATEMENT_STATE_FINISHED
    FAILED = pb.STATEMENT_STATE_FAILED
    CANCELED = pb.STATEMENT_STATE_CANCELED


def _time(message: Timestamp, present: bool) -> datetime | None:
    return message.ToDatetime(tzinfo=timezone.utc) if present else None


@dataclass(frozen=True)
class ResultLog:
    """How much of a query statement's results the broker holds."""

    rows_logged: int
    earliest_row_offset: int
    bytes_held: int
    complete: bool
    deleted: bool
    expire_time: datetime | None

    @classmethod
    def from_proto(cls, message: pb.ResultLogStatus) -> ResultLog:
        return cls(
            rows_logged=message.rows_logged,
            earliest_row_offset=message.earliest_row_offset,
            bytes_held=message.bytes_held,
            complete=message.complete,
            deleted=message.deleted,
            expire_time=_time(message.expire_time, message.HasField("expire_time")),
        )


@dataclass(frozen=True)
class Statement:
    """One statement of a SQL job."""

    index: int
    sql: str
    state: StatementState
    error: str
    is_query: bool
    attempt: int
    flink_job_id: str
    operation_handle: str
    result_log: ResultLog | None

    @classmethod
    def from_proto(cls, message: pb.StatementStatus) -> Statement:
        return cls(
            index=message.index,
            sql=message.sql,
            state=StatementState(message.state),
            error=message.error,
            is_query=message.is_query,
            attempt=message.attempt,
            flink_job_id=message.flink_job_id,
            operation_handle=message.operation_handle,
            result_log=ResultLog.from_proto(message.result_log) if message.HasField("result_log") else None,
        )


def _format_name(value: int) -> str:
    """A savepoint format's name: CANONICAL (also when unset) or NATIVE."""
    name = pb.SavepointFormat.Name(value).removeprefix("SAVEPOINT_FORMAT_")
    return "CANONICAL" if name == "UNSPECIFIED" else name


@dataclass(frozen=True)
class Savepoint:
    """One savepoint of one of a job's Flink jobs. `kind` is TRIGGERED (SavepointJob; the
    Flink job ran on) or STOP (a cancel with a savepoint); `state` IN_PROGRESS, COMPLETED or
    FAILED; `format` CANONICAL or NATIVE; `location` is what to restore from."""

    trigger_id: str
    flink_job_id: str
    statement_index: int | None
    kind: str
    format: str
    directory: str
    state: str
    location: str
    error: str
    create_time: datetime | None
    end_time: datetime | None

    @classmethod
    def from_proto(cls, message: pb.Savepoint) -> Savepoint:
        return cls(
            trigger_id=message.trigger_id,
            flink_job_id=message.flink_job_id,
            statement_index=message.statement_index if message.HasField("statement_index") else None,
            kind=pb.Savepoint.Kind.Name(message.kind).removeprefix("KIND_"),
            format=_format_name(message.format),
            directory=message.directory,
            state=pb.Savepoint.State.Name(message.state).removeprefix("STATE_"),
            location=message.location,
            error=message.error,
            create_time=_time(message.create_time, message.HasField("create_time")),
            end_time=_time(message.end_time, message.HasField("end_time")),
        )


UPGRADE_ENDED_STEPS = frozenset({"DONE", "ROLLED_BACK", "ABANDONED"})


@dataclass(frozen=True)
class Upgrade:
    """The upgrade (or rollback) that made a revision. `kind` is UPGRADE (UpgradeJob) or
    ROLLBACK (a revision that failed to start replaced by the one before it); `step`
    STOPPING_PREVIOUS, STARTING, then DONE, ROLLED_BACK (`rollback_job_id` runs the previous
    revision again) or ABANDONED (`note` says why); `savepoint_path` is the savepoint this
    revision restores from, once the previous revision stopped with it; `savepoint_format`
    CANONICAL or NATIVE."""

    kind: str
    previous_job_id: str
    step: str
    savepoint_path: str
    rollback_job_id: str
    note: str
    savepoint_directory: str
    savepoint_format: str

    @classmethod
    def from_proto(cls, message: pb.Upgrade) -> Upgrade:
        return cls(
            kind=pb.Upgrade.Kind.Name(message.kind).removeprefix("KIND_"),
            previous_job_id=message.previous_job_id,
            step=pb.Upgrade.Step.Name(message.step).removeprefix("STEP_"),
            savepoint_path=message.savepoint_path,
            rollback_job_id=message.rollback_job_id,
            note=message.note,
            savepoint_directory=message.savepoint_directory,
            savepoint_format=_format_name(message.savepoint_format),
        )

    @property
    def ended(self) -> bool:
        """Whether the upgrade is over: DONE, ROLLED_BACK or ABANDONED."""
        return self.step in UPGRADE_ENDED_STEPS


@dataclass(frozen=True)
class StateTransition:
    state: JobState
    reason: str
    time: datetime | None


@dataclass(frozen=True)
class Job:
    """One recorded job. `raw` is the broker's message, for fields not copied here.

    Every revision of a job (UpgradeJob) is a job of its own: `revision` counts from 1,
    `lineage_id` is the first revision's id, `savepoint_chain` the savepoints handed from
    revision to revision (oldest first), and `upgrade` how this revision came to be (None for
    revision 1)."""

    id: str
    kind: JobKind
    state: JobState
    state_reason: str
    request_id: str
    labels: dict[str, str]
    tenant: str
    principal: str
    create_time: datetime | None
    update_time: datetime | None
    end_time: datetime | None
    statements: list[Statement]
    flink_job_id: str
    submitter_output: str
    savepoint_path: str
    history: list[StateTransition]
    savepoints: list[Savepoint]
    restored_from: str
    lineage_id: str
    revision: int
    savepoint_chain: list[str]
    upgrade: Upgrade | None
    raw: pb.Job = field(repr=False, compare=False)

    @classmethod
    def from_proto(cls, message: pb.Job) -> Job:
        return cls(
            id=message.id,
            kind=JobKind(message.kind),
            state=JobState(message.state),
            state_reason=message.state_reason,
            request_id=message.request_id,
            labels=dict(message.labels),
            tenant=message.tenant,
            principal=message.principal,
            create_time=_time(message.create_time, message.HasField("create_time")),
            update_time=_time(message.update_time, message.HasField("update_time")),
            end_time=_time(message.end_time, message.HasField("end_time")),
            statements=[Statement.from_proto(s) for s in message.statements],
            flink_job_id=message.flink_job_id,
            submitter_output=message.submitter_output,
            savepoint_path=message.savepoint_path,
            history=[
                StateTransition(JobState(t.state), t.reason, _time(t.time, t.HasField("time")))
                for t in message.history
            ],
            savepoints=[Savepoint.from_proto(s) for s in message.savepoints],
            restored_from=message.restore.savepoint_path if message.HasField("restore") else "",
            lineage_id=message.lineage_id,
            revision=message.revision,
            savepoint_chain=list(message.savepoint_chain),
            upgrade=Upgrade.from_proto(message.upgrade) if message.HasField("upgrade") else None,
            raw=message,
        )

    @property
    def is_terminal(self) -> bool:
        return self.state.is_terminal
