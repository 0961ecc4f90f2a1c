"""The asyncio client (grpc.aio), with the same methods as the blocking one."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Mapping,
    Sequence,
)
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, overload

import grpc
import grpc.aio
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


async def _read_results(
    client: AsyncClient, state: StreamState
) -> AsyncGenerator[pb.StreamOperationResultsResponse, None]:
    """Yields the messages of a result stream that hold results, until its end; reconnects when
    the connection drops, each time with the request `state` makes then."""
    failures = 0
    policy = client.retry_policy
    while True:
        call = client._stub.StreamOperationResults(state._request(), metadata=client._metadata())
        try:
            async for message in call:
                if message.WhichOneof("message") == "end":
                    state._on_end(message.end)
                    return
                if state._take(message):
                    failures = 0
                    yield message
            broken: RpcError = Unavailable("the result stream closed without its end message")
        except grpc.aio.AioRpcError as error:
            broken = from_grpc(error)
        finally:
            call.cancel()
        failures += 1
        if not policy.should_retry(broken.code, failures):
            raise broken
        await asyncio.sleep(policy.backoff(failures))
        state._reconnecting()


class AsyncResultStream(ResultStreamState):
    """The asyncio twin of `ResultStream`: iterate it once with `async for`, or read Arrow with
    `iter_batches()` (`async for`) or `await to_arrow()`, or `await to_pandas()`."""

    def __init__(
        self,
        client: AsyncClient,
        job_id: str,
        statement: int | None,
        from_row: int,
        max_rows: int,
        max_duration: float | timedelta | None,
    ) -> None:
        super().__init__(job_id, statement, from_row, max_rows, max_duration)
        self._client = client

    def __aiter__(self) -> AsyncIterator[Row]:
        self._start()
        return self._rows()

    def _messages(self) -> AsyncIterator[pb.StreamOperationResultsResponse]:
        """Yields the messages holding rows until the end, reconnecting when the connection
        drops and resuming after the last row read."""
        return _read_results(self._client, self)

    async def _rows(self) -> AsyncIterator[Row]:
        async for message in self._messages():
            for row in self._rows_of(message.rows):
                yield row

    async def _batches(self) -> AsyncIterator[pyarrow.RecordBatch]:
        async for message in self._messages():
            batch = self._record_batch(message.arrow)
            if batch is not None:
                yield batch

    def iter_batches(self) -> AsyncIterator[pyarrow.RecordBatch]:
        """Reads the results as Arrow (needs pyarrow): yields each `pyarrow.RecordBatch` as it
        arrives; see `ResultStream.iter_batches`."""
        self._start_arrow("iter_batches()")
        return self._batches()

    async def to_arrow(self) -> pyarrow.Table:
        """Reads the remaining results as Arrow (needs pyarrow) into a `pyarrow.Table`."""
        pa = self._start_arrow("to_arrow()")
        batches = [batch async for batch in self._batches()]
        return _arrow.to_table(pa, batches, self.arrow_schema)

    async def to_pandas(self, arrow: bool | None = None) -> pandas.DataFrame:
        """Reads the remaining results into a DataFrame; see `ResultStream.to_pandas`."""
        pa = self._pandas_pyarrow(arrow)
        if pa is None:
            rows = [row async for row in self]
            return rows_to_pandas(rows, self.columns or [])
        return _arrow.table_to_pandas(pa, await self.to_arrow(), self.columns or [])


class AsyncTableStream(TableStreamState):
    """The asyncio twin of `TableStream`: `await snapshot()`, `async for` over `updates()`,
    `await to_pandas()`, `await close()`."""

    def __init__(
        self,
        client: AsyncClient,
        job_id: str,
        statement: int | None,
        from_row: int,
        max_rows: int,
        max_duration: float | timedelta | None,
    ) -> None:
        super().__init__(job_id, statement, from_row, max_rows, max_duration)
        self._client = client
        self._reader: AsyncGenerator[None, None] | None = None

    def _changes(self) -> AsyncGenerator[None, None]:
        """Reads on: yields each time the table changed, until the stream ends. Every read
        shares one reader, so each continues where the last stopped."""
        if self._reader is None:
            self._reader = self._read()
        return self._reader

    async def _read(self) -> AsyncGenerator[None, None]:
        messages = _read_results(self._client, self)
        try:
            async for message in messages:
                if self._apply(message):
                    yield
        finally:
            await messages.aclose()

    async def snapshot(self) -> ResultTable:
        """The table as of the stream's snapshot; see `TableStream.snapshot`."""
        if self._snapshot is None:
            async for _ in self._changes():
                if self._snapshot is not None:
                    break
        return self._first_snapshot()

    async def updates(self) -> AsyncIterator[ResultTable]:
        """Yields the table now, then after each batch of changes until the stream ends; see
        `TableStream.updates`."""
        await self.snapshot()
        yield self._current()
        async for _ in self._changes():
            yield self._current()

    async def to_pandas(self, follow: bool = False) -> pandas.DataFrame:
        """The table as a DataFrame, as of the snapshot or (`follow`) the end of the stream;
        see `TableStream.to_pandas`."""
        require_pandas()
        await self.snapshot()
        if follow:
            async for _ in self._changes():
                pass
        return self._current().to_pandas()

    async def close(self) -> None:
        """Stops reading: the stream to the broker is cancelled; the table read so far stays."""
        if self._reader is None:
            self._reader = self._read()
        await self._reader.aclose()


class AsyncClient:
    """An asyncio flinkbroker client; see `Client` for the options."""

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
            grpc.aio.secure_channel(target, config.channel_credentials(), options=list(options))
            if config is not None
            else grpc.aio.insecure_channel(target, options=list(options))
        )
        self._stub = broker_pb2_grpc.JobServiceStub(self._channel)
        self._token = token
        self.retry_policy = retry_policy or RetryPolicy()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._channel.close()

    def _metadata(self) -> tuple[tuple[str, str], ...]:
        return _common.metadata(self._token)

    async def _pages(
        self, method: Callable[..., Awaitable[Any]], request: Callable[[str], Message]
    ) -> AsyncIterator[Any]:
        """Calls a listing method a page at a time (`request` builds a page's request from its
        page token) and yields each response, until one has no next page."""
        token = ""
        while True:
            response = await self._call(method, request(token))
            yield response
            token = response.next_page_token
            if not token:
                return

    async def _call(self, method: Callable[..., Awaitable[Any]], request: Message) -> Any:
        try:
            return await method(request, metadata=self._metadata())
        except grpc.aio.AioRpcError as error:
            raise from_grpc(error) from None

    async def submit_sql(
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
        return Job.from_proto(await self._call(self._stub.SubmitSql, request))

    async def submit_python(
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
        return Job.from_proto(await self._call(self._stub.SubmitPython, request))

    async def get(self, job_id: str) -> Job:
        return Job.from_proto(await self._call(self._stub.GetJob, pb.GetJobRequest(job_id=job_id)))

    async def list(
        self,
        states: Iterable[JobState] | None = None,
        kind: JobKind | None = None,
        labels: Mapping[str, str] | None = None,
        tenant: str | None = None,
        page_size: int = 0,
        lineage_id: str | None = None,
    ) -> AsyncIterator[Job]:
        """Yields the matching jobs, newest first, fetching pages as needed; see `Client.list`."""
        pages = self._pages(
            self._stub.ListJobs,
            lambda token: _common.list_request(states, kind, labels, tenant, lineage_id, page_size, token),
        )
        async for response in pages:
            for job in response.jobs:
                yield Job.from_proto(job)

    async def audit_events(
        self,
        tenant: str | None = None,
        principal: str | None = None,
        action: AuditAction | str | None = None,
        start_time: datetime | None = None,
        end_time: datetime | None = None,
        page_size: int = 0,
    ) -> AsyncIterator[AuditEvent]:
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
        async for response in pages:
            for event in response.events:
                yield AuditEvent.from_proto(event)

    async def cancel(self, job_id: str, savepoint: bool | str | None = None, native: bool = False) -> Job:
        """Cancels a job (CANCELING at once); see `Client.cancel`."""
        request = _common.cancel_request(job_id, savepoint, native)
        return Job.from_proto(await self._call(self._stub.CancelJob, request))

    async def savepoint(self, job_id: str, directory: str | None = None, native: bool = False) -> Job:
        """TriggerSavepoint; see `Client.savepoint`."""
        request = _common.savepoint_request(job_id, directory, native)
        return Job.from_proto(await self._call(self._stub.TriggerSavepoint, request))

    async def upgrade_sql(
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
        """UpgradeJob of a RUNNING SQL job; see `Client.upgrade_sql`."""
        revision = _common.submit_sql_request(
            script, mode, properties, None, labels, result_limits, None, validate_first
        )
        request = _common.upgrade_request(
            job_id, revision, savepoint_directory, native, allow_non_restored_state, claim, request_id
        )
        return Job.from_proto(await self._call(self._stub.UpgradeJob, request))

    async def upgrade_python(
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
        """UpgradeJob of a RUNNING Python job; see `Client.upgrade_python`."""
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
        return Job.from_proto(await self._call(self._stub.UpgradeJob, request))

    async def wait_for_upgrade(self, job_id: str, timeout: float | None = None) -> Job:
        """Follows a revision until the upgrade that made it ends; see `Client.wait_for_upgrade`."""
        deadline = None if timeout is None else time.monotonic() + timeout
        watching = self.watch(job_id, timeout)
        try:
            async for job in watching:
                if _common.upgrade_ended(job):
                    return job
        except TimeoutError:
            raise _common.upgrade_timeout(job_id, timeout) from None
        finally:
            await watching.aclose()
        # The revision ended before its upgrade did (one that failed to start is rolled back
        # after it failed): the record says when the upgrade is over.
        while True:
            job = await self.get(job_id)
            if _common.upgrade_ended(job):
                return job
            if deadline is not None and time.monotonic() >= deadline:
                raise _common.upgrade_timeout(job_id, timeout)
            await asyncio.sleep(_common.UPGRADE_POLL_INTERVAL)

    async def validate_sql(
        self, script: str, mode: Mode = "streaming", properties: Mapping[str, str] | None = None
    ) -> Validation:
        """ValidateSql; see `Client.validate_sql`."""
        request = _common.validate_request(script, mode, properties)
        return Validation.from_proto(await self._call(self._stub.ValidateSql, request))

    async def watch(self, job_id: str, timeout: float | None = None) -> AsyncGenerator[Job, None]:
        """Yields the job as it is, then each change of its state, until it ends."""
        deadline = None if timeout is None else time.monotonic() + timeout
        failures = 0
        while True:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            call = self._stub.WatchJob(
                pb.WatchJobRequest(job_id=job_id), metadata=self._metadata(), timeout=remaining
            )
            try:
                async for message in call:
                    failures = 0
                    job = Job.from_proto(message)
                    yield job
                    if job.is_terminal:
                        return
                broken: RpcError = Unavailable(f"watching job {job_id} stopped before it ended")
            except grpc.aio.AioRpcError as error:
                if error.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                    raise TimeoutError(f"job {job_id} did not end within {timeout}s") from None
                broken = from_grpc(error)
            finally:
                call.cancel()
            failures += 1
            if not self.retry_policy.should_retry(broken.code, failures):
                raise broken
            await asyncio.sleep(self.retry_policy.backoff(failures))

    async def wait(self, job_id: str, timeout: float | None = None) -> Job:
        """Follows the job until it ends; see `Client.wait`."""
        last: Job | None = None
        async for job in self.watch(job_id, timeout):
            last = job
        if last is None:
            raise Unavailable(f"watching job {job_id} returned nothing")
        return _common.final_job(last)

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
    ) -> AsyncResultStream: ...

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
    ) -> AsyncTableStream: ...

    def results(
        self,
        job_id: str,
        statement: int | None = None,
        from_row: int = 0,
        *,
        max_rows: int = 0,
        max_duration: float | timedelta | None = None,
        view: View = "changelog",
    ) -> AsyncResultStream | AsyncTableStream:
        """Streams a statement's results (default: the job's last query), as its changelog from
        `from_row` or (`view="table"`) as its table; see `Client.results`."""
        if _common.is_table_view(view):
            return AsyncTableStream(self, job_id, statement, from_row, max_rows, max_duration)
        return AsyncResultStream(self, job_id, statement, from_row, max_rows, max_duration)
