"""What the blocking and asyncio result streams share: where a stream is in the results, the
request each (re)connection sends, and each message taken in as rows or Arrow record batches,
or applied to a statement's table."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from datetime import timedelta
from types import ModuleType
from typing import TYPE_CHECKING

from . import _arrow, _common
from .errors import FlinkBrokerError
from .results import (
    Column,
    ResultTable,
    Row,
    StreamEnd,
    columns_from_schema,
    end_from_proto,
    require_pandas,
    row_from_proto,
    table_row_from_proto,
)
from .v1 import broker_pb2 as pb

if TYPE_CHECKING:
    import pyarrow


class StreamState(ABC):
    """What a result stream's reader asks of it: the request of each (re)connection, each
    message taken in, what a reconnection changes, and the end."""

    job_id: str
    end: StreamEnd | None

    @abstractmethod
    def _request(self) -> pb.StreamOperationResultsRequest:
        """The request of the next (re)connection."""

    @abstractmethod
    def _take(self, message: pb.StreamOperationResultsResponse) -> bool:
        """Takes in a message other than the end; says whether it holds results for the reader."""

    @abstractmethod
    def _reconnecting(self) -> None:
        """Called before a dropped stream is opened again."""

    def _on_end(self, end: pb.StreamEnd) -> None:
        self.end = end_from_proto(end)
        _common.check_end(self.end, self.job_id)


class ResultStreamState(StreamState):
    """A result stream's position and what it has taken in: `next_row` (the offset after the
    last row read), the statement's `attempt`, `columns`, `arrow_schema` (when read as Arrow),
    `end`, and the offsets it `resumed_from`. Read once, as rows or as Arrow."""

    def __init__(
        self,
        job_id: str,
        statement: int | None,
        from_row: int,
        max_rows: int,
        max_duration: float | timedelta | None,
    ) -> None:
        self.job_id = job_id
        self.statement = statement
        self.next_row = from_row
        self.attempt: int | None = None
        self.columns: list[Column] | None = None
        self.arrow_schema: pyarrow.Schema | None = None
        self.end: StreamEnd | None = None
        self.resumed_from: list[int] = []
        self._max_rows = max_rows
        self._max_duration = max_duration
        self._rows_read = 0
        self._started = False
        # pyarrow, when the stream is read as Arrow record batches.
        self._pyarrow: ModuleType | None = None

    def _start(self) -> None:
        if self._started:
            raise RuntimeError(f"a {type(self).__name__} can be read once: call results() again to read anew")
        self._started = True

    def _start_arrow(self, what: str) -> ModuleType:
        """Starts reading Arrow record batches for `what`; ImportError without pyarrow."""
        pa = _arrow.require_pyarrow(what)
        self._start()
        self._pyarrow = pa
        return pa

    def _pandas_pyarrow(self, arrow: bool | None) -> ModuleType | None:
        """pyarrow when to_pandas() reads Arrow: with `arrow` None whenever it is installed
        (saying once when it is not), with True always, with False never."""
        require_pandas()
        if arrow is None:
            pa = _arrow.import_pyarrow()
            if pa is None:
                _arrow.warn_rows_fallback()
            return pa
        return _arrow.require_pyarrow("to_pandas(arrow=True)") if arrow else None

    def _request(self) -> pb.StreamOperationResultsRequest:
        """The request of the next (re)connection: from the row after the last one read, of the
        attempt those came from, for what remains of `max_rows`."""
        remaining = self._max_rows - self._rows_read if self._max_rows else 0
        return _common.results_request(
            self.job_id,
            self.statement,
            self.next_row,
            self.attempt,
            remaining,
            self._max_duration,
            arrow=self._pyarrow is not None,
        )

    def _take(self, message: pb.StreamOperationResultsResponse) -> bool:
        """Takes in a message other than the end (the schema; progress says nothing to a
        reader) and says whether it holds rows, which then are in the encoding asked for."""
        which = message.WhichOneof("message")
        if which == "schema":
            self._on_schema(message.schema)
            return False
        if which not in ("rows", "arrow"):
            return False
        expected = "rows" if self._pyarrow is None else "arrow"
        if which != expected:
            raise FlinkBrokerError(
                f"results of job {self.job_id}: the broker sent {which} batches where {expected} "
                "batches were asked for"
            )
        return True

    def _on_schema(self, schema: pb.ResultSchema) -> None:
        self.columns = columns_from_schema(schema)
        if self._pyarrow is not None:
            if not schema.arrow_schema:
                raise FlinkBrokerError(
                    f"results of job {self.job_id}: the broker sent no Arrow schema (it cannot send "
                    "results as Arrow); iterate the stream to read them as rows"
                )
            self.arrow_schema = _arrow.read_schema(self._pyarrow, schema.arrow_schema)

    def _reconnecting(self) -> None:
        # Resume after the last row read, from the same attempt.
        self.resumed_from.append(self.next_row)

    def _rows_of(self, batch: pb.RowBatch) -> Iterator[Row]:
        """Yields the rows of a batch not read yet, moving past each as it is yielded."""
        self.attempt = batch.attempt
        for i, row in enumerate(batch.rows):
            offset = batch.first_row_offset + i
            if offset < self.next_row:
                continue
            self.next_row = offset + 1
            self._rows_read += 1
            yield row_from_proto(row, self.columns or [], offset)

    def _record_batch(self, batch: pb.ArrowBatch) -> pyarrow.RecordBatch | None:
        """The record batch a message holds, less the rows read already (None when it holds
        no others), and moves past it."""
        pa, schema = self._pyarrow, self.arrow_schema
        if pa is None or schema is None:
            raise FlinkBrokerError(
                f"results of job {self.job_id}: an Arrow record batch came before its schema"
            )
        self.attempt = batch.attempt
        first, end = batch.first_row_offset, batch.first_row_offset + batch.row_count
        if end <= self.next_row:
            return None
        record_batch = _arrow.read_batch(pa, batch.ipc_message, schema)
        if first < self.next_row:
            record_batch = record_batch.slice(self.next_row - first)
        self.next_row = end
        self._rows_read += record_batch.num_rows
        return record_batch


class _Held:
    """A distinct row of a table and how many times the table holds it."""

    __slots__ = ("row", "count")

    def __init__(self, row: Row) -> None:
        self.row = row
        self.count = 1


class TableStreamState(StreamState):
    """A table stream's table and what it has taken in: `columns`, `end`, and the
    `as_of_row_offset` of each new snapshot a reconnected stream started from (`resumed_from`).

    The table is held as its distinct rows, keyed by all their values (as the broker keys them)
    in the order they first appeared, each with how many times it is held."""

    def __init__(
        self,
        job_id: str,
        statement: int | None,
        from_row: int,
        max_rows: int,
        max_duration: float | timedelta | None,
    ) -> None:
        self.job_id = job_id
        self.statement = statement
        self.columns: list[Column] | None = None
        self.end: StreamEnd | None = None
        self.resumed_from: list[int] = []
        # Sent with the first request only, where the broker refuses any but 0: a table stream
        # starts from a snapshot, and so does each reconnection.
        self._from_row = from_row
        self._max_rows = max_rows
        self._max_duration = max_duration
        self._changes_read = 0
        # The rows of this connection's snapshot as they arrive; None once it is complete.
        self._incoming: list[pb.Row] | None = []
        self._held: dict[bytes, _Held] = {}
        # The offset of the next change: everything before it is applied.
        self._as_of = 0
        self._snapshot: ResultTable | None = None

    def _request(self) -> pb.StreamOperationResultsRequest:
        """The request of the next (re)connection: the table, for what remains of `max_rows`
        (which counts changes)."""
        remaining = self._max_rows - self._changes_read if self._max_rows else 0
        return _common.results_request(
            self.job_id,
            self.statement,
            self._from_row,
            None,
            remaining,
            self._max_duration,
            table=True,
        )

    def _take(self, message: pb.StreamOperationResultsResponse) -> bool:
        """Takes in a message other than the end: the schema, or (for the reader to apply)
        part of a snapshot or a batch of changes; progress says nothing to a reader."""
        which = message.WhichOneof("message")
        if which == "schema":
            self.columns = columns_from_schema(message.schema)
            return False
        if which == "arrow":
            raise FlinkBrokerError(
                f"results of job {self.job_id}: the broker sent arrow batches where the table's rows "
                "were asked for"
            )
        return which in ("snapshot", "rows")

    def _reconnecting(self) -> None:
        # A new stream sends a new snapshot, which replaces the table.
        self._from_row = 0
        self._incoming = []

    def _apply(self, message: pb.StreamOperationResultsResponse) -> bool:
        """Applies part of a snapshot or a batch of changes; says whether the table changed (a
        snapshot completed, or changes applied)."""
        if message.WhichOneof("message") == "snapshot":
            return self._on_snapshot(message.snapshot)
        if self._incoming is not None:
            raise FlinkBrokerError(
                f"results of job {self.job_id}: the broker sent changes before the table's snapshot"
            )
        batch = message.rows
        if batch.first_row_offset != self._as_of:
            raise FlinkBrokerError(
                f"results of job {self.job_id}: the broker sent changes from row "
                f"{batch.first_row_offset} to a table as of row {self._as_of}"
            )
        for row in batch.rows:
            if row.kind in (pb.ROW_KIND_UPDATE_BEFORE, pb.ROW_KIND_DELETE):
                self._remove(row)
            else:
                self._add(self._held, row)
        self._as_of += len(batch.rows)
        self._changes_read += len(batch.rows)
        return True

    def _on_snapshot(self, snapshot: pb.TableSnapshot) -> bool:
        if self._incoming is None:
            raise FlinkBrokerError(
                f"results of job {self.job_id}: the broker sent a second snapshot in one stream"
            )
        self._incoming.extend(snapshot.rows)
        if not snapshot.last:
            return False
        held: dict[bytes, _Held] = {}
        for row in self._incoming:
            self._add(held, row)
        self._held, self._incoming = held, None
        self._as_of = snapshot.as_of_row_offset
        if self._snapshot is None:
            self._snapshot = self._current()
        else:
            self.resumed_from.append(self._as_of)
        return True

    def _add(self, held: dict[bytes, _Held], row: pb.Row) -> None:
        key = _key(row)
        entry = held.get(key)
        if entry is None:
            held[key] = _Held(table_row_from_proto(row, self.columns or []))
        else:
            entry.count += 1

    def _remove(self, row: pb.Row) -> None:
        """Takes one occurrence of a row away (a retraction of a row the table does not hold
        changes nothing, as at the broker)."""
        key = _key(row)
        entry = self._held.get(key)
        if entry is None:
            return
        entry.count -= 1
        if entry.count == 0:
            del self._held[key]

    def _current(self) -> ResultTable:
        rows = tuple(entry.row for entry in self._held.values() for _ in range(entry.count))
        return ResultTable(rows, self._as_of, tuple(self.columns or ()))

    def _first_snapshot(self) -> ResultTable:
        if self._snapshot is None:
            raise FlinkBrokerError(
                f"results of job {self.job_id}: the stream ended (or was closed) before the table's snapshot "
                "arrived"
            )
        return self._snapshot

    @property
    def table(self) -> ResultTable | None:
        """The table as far as the stream has read (built anew on each access), None before its
        snapshot arrived."""
        return None if self._snapshot is None else self._current()


def _key(row: pb.Row) -> bytes:
    """A row keyed by all its values, whatever its kind."""
    return pb.Row(values=row.values).SerializeToString(deterministic=True)
