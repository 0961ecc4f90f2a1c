"""What the blocking and asyncio result streams share: where a stream is in the results, the
request each (re)connection sends, and each message taken in as rows or Arrow record batches."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from types import ModuleType
from typing import TYPE_CHECKING

from . import _arrow, _common
from .errors import FlinkBrokerError
from .results import (
    Column,
    Row,
    StreamEnd,
    columns_from_schema,
    end_from_proto,
    require_pandas,
    row_from_proto,
)
from .v1 import broker_pb2 as pb

if TYPE_CHECKING:
    import pyarrow


class ResultStreamState:
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

    def _on_end(self, end: pb.StreamEnd) -> None:
        self.end = end_from_proto(end)
        _common.check_end(self.end, self.job_id)

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
