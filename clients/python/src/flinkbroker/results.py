"""Result rows as Python values: the schema, typed values, row kinds and how a stream ended."""

from __future__ import annotations

import enum
import importlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from types import ModuleType
from typing import TYPE_CHECKING, Any

from .v1 import broker_pb2 as pb

if TYPE_CHECKING:
    import pandas

_EPOCH_DATE = date(1970, 1, 1)
_EPOCH_NAIVE = datetime(1970, 1, 1)
_EPOCH_UTC = datetime(1970, 1, 1, tzinfo=timezone.utc)
_NANOS_PER_SECOND = 1_000_000_000


class RowKind(enum.Enum):
    """The change a row carries (Flink's RowKind)."""

    UNSPECIFIED = pb.ROW_KIND_UNSPECIFIED
    INSERT = pb.ROW_KIND_INSERT
    UPDATE_BEFORE = pb.ROW_KIND_UPDATE_BEFORE
    UPDATE_AFTER = pb.ROW_KIND_UPDATE_AFTER
    DELETE = pb.ROW_KIND_DELETE


class EndReason(enum.Enum):
    """Why a result stream ended."""

    UNSPECIFIED = pb.StreamEnd.REASON_UNSPECIFIED
    END_OF_RESULTS = pb.StreamEnd.REASON_END_OF_RESULTS
    ROW_LIMIT_REACHED = pb.StreamEnd.REASON_ROW_LIMIT_REACHED
    TIME_LIMIT_REACHED = pb.StreamEnd.REASON_TIME_LIMIT_REACHED
    CANCELED = pb.StreamEnd.REASON_CANCELED
    FAILED = pb.StreamEnd.REASON_FAILED


@dataclass(frozen=True)
class Column:
    """One result column: its name, Flink type root (`DECIMAL`, ...) and SQL type text."""

    name: str
    type_root: str
    sql_type: str
    nullable: bool
    logical_type: pb.LogicalType


@dataclass(frozen=True)
class StreamEnd:
    """The last message of a result stream; `next_row_offset` is where a next read starts."""

    reason: EndReason
    error: str
    next_row_offset: int


class Row(Mapping[str, Any]):
    """One result row: a read-only mapping of column name to value, with its `kind` and `offset`
    (its offset in the statement's changelog; None for a row of a `ResultTable`, which stands
    for no single changelog row)."""

    __slots__ = ("_values", "kind", "offset")

    def __init__(self, values: dict[str, Any], kind: RowKind, offset: int | None) -> None:
        self._values = values
        self.kind = kind
        self.offset = offset

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Row({self._values!r}, kind={self.kind.name}, offset={self.offset})"


def hashable(value: Any) -> Any:
    """A MAP key as a dict key: lists become tuples and dicts tuples of their items."""
    if isinstance(value, list):
        return tuple(hashable(v) for v in value)
    if isinstance(value, dict):
        return tuple((k, hashable(v)) for k, v in value.items())
    return value


def to_python(value: pb.Value, logical_type: pb.LogicalType | None = None) -> Any:
    """Converts one typed value: DECIMAL to Decimal, DATE/TIME/TIMESTAMP to datetime types
    (TIMESTAMP_LTZ as an aware UTC datetime, TIMESTAMP as a naive one), ARRAY to list, MAP to
    dict (unhashable keys as tuples), ROW to a dict by field name, NULL to None."""
    kind = value.WhichOneof("kind")
    if kind is None or kind == "null_value":
        return None
    if kind in ("bool_value", "int_value", "double_value", "string_value", "bytes_value"):
        return getattr(value, kind)
    if kind == "decimal_value":
        return Decimal(value.decimal_value)
    if kind == "date_value":
        return _EPOCH_DATE + timedelta(days=value.date_value)
    if kind == "time_value":
        seconds, nanos = divmod(value.time_value, _NANOS_PER_SECOND)
        minutes, second = divmod(seconds, 60)
        hour, minute = divmod(minutes, 60)
        return time(hour, minute, second, nanos // 1000)
    if kind == "timestamp_value":
        ts = value.timestamp_value
        return _EPOCH_NAIVE + timedelta(seconds=ts.seconds, microseconds=ts.nanos // 1000)
    if kind == "instant_value":
        ts = value.instant_value
        return _EPOCH_UTC + timedelta(seconds=ts.seconds, microseconds=ts.nanos // 1000)
    element_type = logical_type.element_type if logical_type is not None else None
    if kind == "array_value":
        return [to_python(v, element_type) for v in value.array_value.elements]
    if kind == "map_value":
        key_type = logical_type.key_type if logical_type is not None else None
        value_type = logical_type.value_type if logical_type is not None else None
        return {
            hashable(to_python(e.key, key_type)): to_python(e.value, value_type)
            for e in value.map_value.entries
        }
    if kind == "row_value":
        fields = list(logical_type.fields) if logical_type is not None else []
        values = value.row_value.fields
        if len(fields) == len(values):
            return {f.name: to_python(v, f.type) for f, v in zip(fields, values, strict=True)}
        return {f"f{i}": to_python(v) for i, v in enumerate(values)}
    raise ValueError(f"unknown value kind {kind!r}")


def columns_from_schema(schema: pb.ResultSchema) -> list[Column]:
    return [
        Column(
            name=c.name,
            type_root=c.type.type_root,
            sql_type=c.type.sql,
            nullable=c.type.nullable,
            logical_type=c.type,
        )
        for c in schema.columns
    ]


def _values(row: pb.Row, columns: list[Column]) -> dict[str, Any]:
    return {
        column.name: to_python(value, column.logical_type)
        for column, value in zip(columns, row.values, strict=True)
    }


def row_from_proto(row: pb.Row, columns: list[Column], offset: int) -> Row:
    return Row(_values(row, columns), RowKind(row.kind), offset)


def table_row_from_proto(row: pb.Row, columns: list[Column]) -> Row:
    """A row of a table: its values, kind INSERT, no offset."""
    return Row(_values(row, columns), RowKind.INSERT, None)


@dataclass(frozen=True)
class ResultTable:
    """A statement's table as of one offset of its changelog (`results(..., view="table")`):
    the changelog rows before `as_of_row_offset` applied (+I and +U add a row, -U and -D take
    one away). `rows` are the rows it holds, each of kind INSERT, in the order they first
    appeared; a row held twice comes twice. `columns` as the stream's."""

    rows: tuple[Row, ...]
    as_of_row_offset: int
    columns: tuple[Column, ...]

    def to_pandas(self) -> pandas.DataFrame:
        """The table as a DataFrame (needs pandas): one column per result column, no row kind."""
        return rows_to_pandas(list(self.rows), list(self.columns), row_kind=False)


def end_from_proto(end: pb.StreamEnd) -> StreamEnd:
    return StreamEnd(EndReason(end.reason), end.error, end.next_row_offset)


def require_pandas() -> ModuleType:
    """pandas, or ImportError saying how to install it."""
    try:
        return importlib.import_module("pandas")
    except ImportError as error:
        raise ImportError("to_pandas() needs pandas: pip install 'flinkbroker-client[pandas]'") from error


def rows_to_pandas(rows: list[Row], columns: list[Column], row_kind: bool = True) -> pandas.DataFrame:
    """Builds a DataFrame with one column per result column and, with `row_kind`, a `row_kind`
    column (each row's kind by name)."""
    pd = require_pandas()
    names = [c.name for c in columns]
    frame = pd.DataFrame([[row[n] for n in names] for row in rows], columns=names)
    if row_kind:
        frame["row_kind"] = [row.kind.name for row in rows]
    return frame
