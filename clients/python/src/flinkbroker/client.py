"""The blocking client."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, overload

import grpc
from google.protobuf.message import Message

from . import _arrow, _common
from ._common import Mode, Restore, ResultLimits, RetryPolicy, TlsOption, Token, View
from ._stream import ResultStreamState, StreamState, TableStreamState
from .audit import AuditAction, AuditEvent
from .errors import RpcError, Unavailable, from_grpc
from .jobs import Job, JobKind, JobState
from .results import ResultTable, Row, require_pandas, rows_to_pandas
from .v1 import broker_pb2 as pb
from .v1 import broker_pb2_grpc
from .validation import Validation

if TYPE_CHECKING:
    import pandas
    import pyarrow


def _read_results(
    client: Client, state: StreamState
) -> Generator[pb.StreamOperationResultsResponse, None, None]:
    """Yields the messages of a result stream that hold results, until its end; reconnects when
    the connection drops, each time with the request `state` makes then."""
    failures = 0
    policy = client.retry_policy
    while True:
        call = client._stub.StreamOperationResults(state._request(), metadata=client._metadata())
        try:
            for message in call:
                if message.WhichOneof("message") == "end":
                    state._on_end(message.end)
                    return
                if state._take(message):
                    failures = 0
                    yield message
            broken: RpcError = Unavailable("the result stream closed without its end message")
        except grpc.RpcError as error:
            broken = from_grpc(error)
        finally:
            call.cancel()
        failures += 1
        if not policy.should_retry(broken.code, failures):
            raise broken
        time.sleep(policy.backoff(failures))
        state._reconnecting()


class ResultStream(ResultStreamState):
    """The results of one statement, read once as they come: iterate it for `Row`s, or read
    Arrow with `iter_batches()` or `to_arrow()`, or a DataFrame with `to_pandas()`. Reconnects
    and resumes after the last row read when the connection drops. `columns` is set once the
    schema arrived (`arrow_schema` too when read as Arrow), `end` once the stream ended, and
    `resumed_from` lists the offsets reconnected streams started at."""

    def __init__(
        self,
        client: Client,
        job_id: str,
        statement: int | None,
        from_row: int,
        max_rows: int,
        max_duration: float | timedelta | None,
    ) -> None:
        super().__init__(job_id, statement, from_row, max_rows, max_duration)
        self._client = client

    def __iter__(self) -> Iterator[Row]:
        self._start()
        return self._rows()

    def _messages(self) -> Iterator[pb.StreamOperationResultsResponse]:
        """Yields the messages holding rows until the end, reconnecting when the connection
        drops and resuming after the last row read."""
        return _read_results(self._client, self)

    def _rows(self) -> Iterator[Row]:
        for message in self._messages():
            yield from self._rows_of(message.rows)

    def _batches(self) -> Iterator[pyarrow.RecordBatch]:
        for message in self._messages():
            batch = self._record_batch(message.arrow)
            if batch is not None:
                yield batch

    def iter_batches(self) -> Iterator[pyarrow.RecordBatch]:
        """Reads the results as Arrow (needs pyarrow): yields each `pyarrow.RecordBatch` as it
        arrives, all of `arrow_schema` (a streaming job's first column `$row_kind`)."""
        self._start_arrow("iter_batches()")
        return self._batches()

    def to_arrow(self) -> pyarrow.Table:
        """Reads the remaining results as Arrow (needs pyarrow) into a `pyarrow.Table`."""
        pa = self._start_arrow("to_arrow()")
        return _arrow.to_table(pa, list(self._batches()), self.arrow_schema)

    def to_pandas(self, arrow: bool | None = None) -> pandas.DataFrame:
        """Reads the remaining results into a DataFrame (needs pandas), with a `row_kind`
        column. As Arrow when pyarrow is installed (`arrow=True` insists, `arrow=False` reads
        rows); without it, as rows, saying so once."""
        pa = self._pandas_pyarrow(arrow)
        if pa is None:
            return rows_to_pandas(list(self), self.columns or [])
        return _arrow.table_to_pandas(pa, self.to_arrow(), self.columns or [])


class TableStream(TableStreamState):
    """The results of one statement read as its table (`results(..., view="table")`): the
    table as of a snapshot, then the changes after it applied as they come. `snapshot()` is
    the table as of the snapshot; `updates()` yields the table after the snapshot and after
    each batch of changes, until the stream ends; `to_pandas()` is the table as a DataFrame;
    `table` the table as far as read. Each reads on from where the last stopped. A dropped
    connection is opened again as a new table stream, whose new snapshot replaces the table
    (`resumed_from` lists their offsets). `columns` is set once the schema arrived, `end` once
    the stream ended."""

    def __init__(
        self,
        client: Client,
        job_id: str,
        statement: int | None,
        from_row: int,
        max_rows: int,
        max_duration: float | timedelta | None,
    ) -> None:
        super().__init__(job_id, statement, from_row, max_rows, max_duration)
        self._client = client
        self._reader: Generator[None, None, None] | None = None

    def _changes(self) -> Generator[None, None, None]:
        """Reads on: yields each time the table changed, until the stream ends. Every read
        shares one reader, so each continues where the last stopped."""
        if self._reader is None:
            self._reader = self._read()
        return self._reader

    def _read(self) -> Generator[None, None, None]:
        messages = _read_results(self._client, self)
        try:
            for message in messages:
                if self._apply(message):
                    yield
        finally:
            messages.close()

    def snapshot(self) -> ResultTable:
        """The table as of the stream's snapshot (its `as_of_row_offset`: the changelog rows
        before it applied), read first if it has not been yet. Of a finished job's statement it
        is the whole table."""
        if self._snapshot is None:
            for _ in self._changes():
                if self._snapshot is not None:
                    break
        return self._first_snapshot()

    def updates(self) -> Iterator[ResultTable]:
        """Yields the table as it is now (after the snapshot, read first if need be), then
        again after each batch of changes applied (or a new snapshot, after a reconnection),
        until the stream ends: at the end of the results, at `max_rows` changes, or after
        `max_duration`."""
        self.snapshot()
        yield self._current()
        for _ in self._changes():
            yield self._current()

    def to_pandas(self, follow: bool = False) -> pandas.DataFrame:
        """The table as a DataFrame (needs pandas): one column per result column, no row kind.
        Without `follow`, the table as of the snapshot (or as far as `updates()` read on), so a
        running job's table is returned at once. With `follow`, the table once every change is
        applied, when the stream ends: at the end of the results, at `max_rows` changes or
        after `max_duration` (without either, a running job's stream ends with the job)."""
        require_pandas()
        self.snapshot()
        if follow:
            for _ in self._changes():
                pass
        return self._current().to_pandas()

    def close(self) -> None:
        """Stops reading: the stream to the broker is cancelled; the table read so far stays."""
        if self._reader is None:
            self._reader = self._read()
        self._reader.close()


class Client:
    """A blocking flinkbroker client.

    `target` is `host:port`; `token` a bearer token (or a callable returning one for each
    call); `tls` None for plain text, True for TLS with the system's roots, or a
    `TlsConfig`/(ca, cert, key) tuple of PEM bytes or paths for a private CA and mTLS.
    """

    def __init__(
        self,
        target: str,
        token: Token = None,
        tls: TlsOption = None,
        *,
        retry_policy: RetryPolicy | None = None,
        options: Sequence[tuple[str, object]] = (),
    ) -> None:
        config = _common.tls_config(tls)
        self._channel = (
            grpc.secure_channel(target, config.channel_credentials(), options=list(options))
            if config is not None
            else grpc.insecure_channel(target, options=list(options))
        )
        self._stub = broker_pb2_grpc.JobServiceStub(self._channel)
        self._token = token
        self.retry_policy = retry_policy or RetryPolicy()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._channel.close()

    def _metadata(self) -> tuple[tuple[str, str], ...]:
        return _common.metadata(self._token)

    def _pages(self, method: Callable[..., Any], request: Callable[[str], Message]) -> Iterator[Any]:
        """Calls a listing method a page at a time (`request` builds a page's request from its
        page token) and yields each response, until one has no next page."""
        token = ""
        while True:
            response = self._call(method, request(token))
            yield response
            token = response.next_page_token
            if not token:
                return

    def _call(self, method: Callable[..., Any], request: Message) -> Any:
        try:
            return method(request, metadata=self._metadata())
        except grpc.RpcError as error:
            raise from_grpc(error) from None

    def submit_sql(
        self,
        script: str,
        mode: Mode = "streaming",
        properties: Mapping[str, str] | None = None,
        request_id: str | None = None,
        labels: Mapping[str, str] | None = None,
        result_limits: ResultLimits | None = None,
        restore: Restore | None = None,
        validate_first: bool = False,
    ) -> Job:
        """Submits a Flink SQL script; returns the recorded job at once. `restore`: the
        savepoint its INSERT and statement set jobs restore from; `validate_first`: an invalid
        script is refused (InvalidArgument) before anything runs."""
        request = _common.submit_sql_request(
            script, mode, properties, request_id, labels, result_limits, restore, validate_first
        )
        return Job.from_proto(self._call(self._stub.SubmitSql, request))

    def submit_python(
        self,
        program: str | os.PathLike[str],
        *,
        entry_module: str | None = None,
        py_files: Sequence[str] = (),
        py_archives: Sequence[str] = (),
        inline_py_files: Mapping[str, str] | None = None,
        requirements: str | os.PathLike[str] | None = None,
        parallelism: int = 0,
        flink_configuration: Mapping[str, str] | None = None,
        program_args: Sequence[str] = (),
        request_id: str | None = None,
        labels: Mapping[str, str] | None = None,
        restore: Restore | None = None,
    ) -> Job:
        """Submits a PyFlink program: a local path (read and sent inline), a URL, or source."""
        request = _common.submit_python_request(
            program,
            entry_module=entry_module,
            py_files=py_files,
            py_archives=py_archives,
            inline_py_files=inline_py_files,
            requirements=requirements,
            parallelism=parallelism,
            flink_configuration=flink_configuration,
            program_args=program_args,
            request_id=request_id,
            labels=labels,
            restore=restore,
        )
        return Job.from_proto(self._call(self._stub.SubmitPython, request))

    def get(self, job_id: str) -> Job:
        return Job.from_proto(self._call(self._stub.GetJob, pb.GetJobRequest(job_id=job_id)))

    def list(
        self,
        states: Iterable[JobState] | None = None,
        kind: JobKind | None = None,
        labels: Mapping[str, str] | None = None,
        tenant: str | None = None,
        page_size: int = 0,
        lineage_id: str | None = None,
    ) -> Iterator[Job]:
        """Yields the matching jobs, newest first, fetching pages as needed. `lineage_id`: only
        the revisions of that lineage (`Job.lineage_id`, the first revision's id)."""
        pages = self._pages(
            self._stub.ListJobs,
            lambda token: _common.list_request(states, kind, labels, tenant, lineage_id, page_size, token),
        )
        for response in pages:
            yield from (Job.from_proto(job) for job in response.jobs)

    def audit_events(
        self,
        tenant: str | None = None,
        principal: str | None = None,
        action: AuditAction | str | None = None,
        start_time: datetime | None = None,
        end_time: datetime | None = None,
        page_size: int = 0,
    ) -> Iterator[AuditEvent]:
        """ListAuditEvents (administrators only): yields the audit trail, newest first,
        fetching pages as needed. Each filter left None matches everything; `action` is an
        `AuditAction` or its name ("submit", "cancel", "savepoint", "upgrade", "read_results",
        "denied"); events are at or after `start_time` and before `end_time` (timezone-aware
        datetimes)."""
        pages = self._pages(
            self._stub.ListAuditEvents,
            lambda token: _common.audit_request(
                tenant, principal, action, start_time, end_time, page_size, token
            ),
        )
        for response in pages:
            yield from (AuditEvent.from_proto(event) for event in response.events)

    def cancel(self, job_id: str, savepoint: bool | str | None = None, native: bool = False) -> Job:
        """Cancels a job (CANCELING at once). `savepoint`: True or a directory to stop the job's
        Flink jobs with a savepoint each instead (`native` for the state backend's format); the
        job's `savepoints` then say where each was written."""
        request = _common.cancel_request(job_id, savepoint, native)
        return Job.from_proto(self._call(self._stub.CancelJob, request))

    def savepoint(self, job_id: str, directory: str | None = None, native: bool = False) -> Job:
        """TriggerSavepoint: takes a savepoint of each Flink job a RUNNING job runs, which run
        on; returns the job once they are written (`job.savepoints`, `job.savepoint_path`).
        `directory` None uses the cluster's savepoint directory."""
        request = _common.savepoint_request(job_id, directory, native)
        return Job.from_proto(self._call(self._stub.TriggerSavepoint, request))

    def upgrade_sql(
        self,
        job_id: str,
        script: str,
        *,
        mode: Mode = "streaming",
        properties: Mapping[str, str] | None = None,
        labels: Mapping[str, str] | None = None,
        result_limits: ResultLimits | None = None,
        validate_first: bool = False,
        savepoint_directory: str | None = None,
        native: bool = False,
        allow_non_restored_state: bool = False,
        claim: bool = False,
        request_id: str | None = None,
    ) -> Job:
        """UpgradeJob: replaces the RUNNING SQL job `job_id` by a new revision running `script`
        (the other settings as for `submit_sql`; empty `labels` keep the job's), restored from
        the savepoint the running job stops with (in `savepoint_directory`, None: the
        cluster's default; `native` for the state backend's format). Returns the new revision
        at once, its `upgrade.step` STOPPING_PREVIOUS; `wait_for_upgrade` follows it to its
        end. `allow_non_restored_state` starts it even when some of the savepoint's state maps
        to no operator, `claim` hands the savepoint over to Flink; a repeated `request_id`
        returns the revision it recorded."""
        revision = _common.submit_sql_request(
            script, mode, properties, None, labels, result_limits, None, validate_first
        )
        request = _common.upgrade_request(
            job_id, revision, savepoint_directory, native, allow_non_restored_state, claim, request_id
        )
        return Job.from_proto(self._call(self._stub.UpgradeJob, request))

    def upgrade_python(
        self,
        job_id: str,
        program: str | os.PathLike[str],
        *,
        entry_module: str | None = None,
        py_files: Sequence[str] = (),
        py_archives: Sequence[str] = (),
        inline_py_files: Mapping[str, str] | None = None,
        requirements: str | os.PathLike[str] | None = None,
        parallelism: int = 0,
        flink_configuration: Mapping[str, str] | None = None,
        program_args: Sequence[str] = (),
        labels: Mapping[str, str] | None = None,
        savepoint_directory: str | None = None,
        native: bool = False,
        allow_non_restored_state: bool = False,
        claim: bool = False,
        request_id: str | None = None,
    ) -> Job:
        """UpgradeJob of a RUNNING Python job: the new revision runs `program` (and the other
        settings as for `submit_python`); see `upgrade_sql` for the rest."""
        revision = _common.submit_python_request(
            program,
            entry_module=entry_module,
            py_files=py_files,
            py_archives=py_archives,
            inline_py_files=inline_py_files,
            requirements=requirements,
            parallelism=parallelism,
            flink_configuration=flink_configuration,
            program_args=program_args,
            request_id=None,
            labels=labels,
        )
        request = _common.upgrade_request(
            job_id, revision, savepoint_directory, native, allow_non_restored_state, claim, request_id
        )
        return Job.from_proto(self._call(self._stub.UpgradeJob, request))

    def wait_for_upgrade(self, job_id: str, timeout: float | None = None) -> Job:
        """Follows the revision `job_id` (as `upgrade_sql` or `upgrade_python` returned it, or a
        rollback's `rollback_job_id`) until the upgrade that made it ends, and returns it: its
        `upgrade.step` is then DONE (it runs), ROLLED_BACK (it failed to start;
        `upgrade.rollback_job_id` runs the previous revision again) or ABANDONED (`upgrade.note`
        says why). Raises ValueError for a job no upgrade made, TimeoutError after `timeout`
        seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        watching = self.watch(job_id, timeout)
        try:
            for job in watching:
                if _common.upgrade_ended(job):
                    return job
        except TimeoutError:
            raise _common.upgrade_timeout(job_id, timeout) from None
        finally:
            watching.close()
        # The revision ended before its upgrade did (one that failed to start is rolled back
        # after it failed): the record says when the upgrade is over.
        while True:
            job = self.get(job_id)
            if _common.upgrade_ended(job):
                return job
            if deadline is not None and time.monotonic() >= deadline:
                raise _common.upgrade_timeout(job_id, timeout)
            time.sleep(_common.UPGRADE_POLL_INTERVAL)

    def validate_sql(
        self, script: str, mode: Mode = "streaming", properties: Mapping[str, str] | None = None
    ) -> Validation:
        """ValidateSql: checks a script without running it; each statement's verdict, the
        planner's error with its line and column in the script, and the plans."""
        request = _common.validate_request(script, mode, properties)
        return Validation.from_proto(self._call(self._stub.ValidateSql, request))

    def watch(self, job_id: str, timeout: float | None = None) -> Generator[Job, None, None]:
        """Yields the job as it is, then each change of its state, until it ends; reconnects
        when the connection drops. Raises TimeoutError after `timeout` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        failures = 0
        while True:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            call = self._stub.WatchJob(
                pb.WatchJobRequest(job_id=job_id), metadata=self._metadata(), timeout=remaining
            )
            try:
                for message in call:
                    failures = 0
                    job = Job.from_proto(message)
                    yield job
                    if job.is_terminal:
                        return
                broken: RpcError = Unavailable(f"watching job {job_id} stopped before it ended")
            except grpc.RpcError as error:
                if error.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                    raise TimeoutError(f"job {job_id} did not end within {timeout}s") from None
                broken = from_grpc(error)
            finally:
                call.cancel()
            failures += 1
            if not self.retry_policy.should_retry(broken.code, failures):
                raise broken
            time.sleep(self.retry_policy.backoff(failures))

    def wait(self, job_id: str, timeout: float | None = None) -> Job:
        """Follows the job until it ends and returns it FINISHED; raises JobFailed (with the
        root cause) or JobCanceled otherwise, TimeoutError after `timeout` seconds."""
        *_, job = self.watch(job_id, timeout)
        return _common.final_job(job)

    @overload
    def results(
        self,
        job_id: str,
        statement: int | None = None,
        from_row: int = 0,
        *,
        max_rows: int = 0,
        max_duration: float | timedelta | None = None,
        view: Literal["changelog"] = "changelog",
    ) -> ResultStream: ...

    @overload
    def results(
        self,
        job_id: str,
        statement: int | None = None,
        from_row: int = 0,
        *,
        max_rows: int = 0,
        max_duration: float | timedelta | None = None,
        view: Literal["table"],
    ) -> TableStream: ...

    def results(
        self,
        job_id: str,
        statement: int | None = None,
        from_row: int = 0,
        *,
        max_rows: int = 0,
        max_duration: float | timedelta | None = None,
        view: View = "changelog",
    ) -> ResultStream | TableStream:
        """Streams a statement's results (default: the job's last query). `view="changelog"`:
        every row from `from_row` as a `ResultStream`: rows when iterated, Arrow with
        `iter_batches()`/`to_arrow()`, a DataFrame with `to_pandas()`. `view="table"`: the
        table the changelog describes as a `TableStream`, which starts from a snapshot
        (`from_row` must be 0: the broker refuses another with InvalidArgument) and whose
        `max_rows` counts the changes after it."""
        if _common.is_table_view(view):
            return TableStream(self, job_id, statement, from_row, max_rows, max_duration)
        return ResultStream(self, job_id, statement, from_row, max_rows, max_duration)
