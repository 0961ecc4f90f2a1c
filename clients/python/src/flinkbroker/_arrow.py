"""Results as Apache Arrow: pyarrow (an optional dependency) found or not, the broker's IPC
messages decoded, and DataFrames built from Arrow tables like the ones rows make."""

from __future__ import annotations

import importlib
import threading
import warnings
from collections.abc import Callable
from types import ModuleType
from typing import TYPE_CHECKING, Any

from .results import Column, hashable, require_pandas

if TYPE_CHECKING:
    import pandas
    import pyarrow

# The first column of a changelog's Arrow results (a streaming job's): each row's kind.
ROW_KIND_COLUMN = "$row_kind"
# Its values, by the names `Row.kind` has (`RowKind.name`), which `to_pandas()` writes.
_KIND_NAMES = {"+I": "INSERT", "-U": "UPDATE_BEFORE", "+U": "UPDATE_AFTER", "-D": "DELETE"}
_INSTALL_HINT = "pip install 'flinkbroker-client[arrow]'"

_fallback_warned = False
_fallback_lock = threading.Lock()


def import_pyarrow() -> ModuleType | None:
    """pyarrow (with `pyarrow.ipc` loaded), or None when it is not installed."""
    try:
        pyarrow = importlib.import_module("pyarrow")
        importlib.import_module("pyarrow.ipc")
    except ImportError:
        return None
    return pyarrow


def require_pyarrow(what: str) -> ModuleType:
    """pyarrow, or ImportError saying that `what` needs it and how to install it."""
    pa = import_pyarrow()
    if pa is None:
        raise ImportError(f"{what} needs pyarrow: {_INSTALL_HINT}")
    return pa


def warn_rows_fallback() -> None:
    """Says, once per process, that to_pandas() reads rows because pyarrow is not installed."""
    global _fallback_warned
    with _fallback_lock:
        if _fallback_warned:
            return
        _fallback_warned = True
    warnings.warn(
        "flinkbroker: pyarrow is not installed, so to_pandas() reads results as rows, which is "
        f"several times slower than Arrow; {_INSTALL_HINT} to read them as Arrow",
        UserWarning,
        # At the line calling to_pandas() (through ResultStreamState._pandas_pyarrow).
        stacklevel=4,
    )


def read_schema(pa: ModuleType, message: bytes) -> pyarrow.Schema:
    """The Arrow schema of an encapsulated IPC schema message (`ResultSchema.arrow_schema`)."""
    return pa.ipc.read_schema(pa.py_buffer(message))


def read_batch(pa: ModuleType, message: bytes, schema: pyarrow.Schema) -> pyarrow.RecordBatch:
    """The record batch of an encapsulated IPC record batch message (`ArrowBatch.ipc_message`)."""
    return pa.ipc.read_record_batch(pa.py_buffer(message), schema)


def to_table(
    pa: ModuleType, batches: list[pyarrow.RecordBatch], schema: pyarrow.Schema | None
) -> pyarrow.Table:
    """The batches as one table; a stream that ended before its schema arrived (a statement
    stopped before it produced results) is a table without columns."""
    return pa.Table.from_batches(batches, schema=schema if schema is not None else pa.schema([]))


def is_changelog(schema: pyarrow.Schema, columns: list[Column]) -> bool:
    """Whether the Arrow results carry the row kind column before the result's columns."""
    return len(schema) == len(columns) + 1 and schema.names[0] == ROW_KIND_COLUMN


def _python_values(pa: ModuleType, data_type: Any) -> Callable[[Any], Any] | None:
    """What turns a value of `data_type` as `to_pylist()` gives it into the value rows give (a
    MAP as a dict with hashable keys, not a list of pairs); None where they are the same."""
    types = pa.types
    if types.is_map(data_type):
        key = _python_values(pa, data_type.key_type)
        item = _python_values(pa, data_type.item_type)

        def to_dict(pairs: Any) -> Any:
            if pairs is None:
                return None
            return {hashable(k if key is None else key(k)): v if item is None else item(v) for k, v in pairs}

        return to_dict
    if types.is_list(data_type) or types.is_large_list(data_type) or types.is_fixed_size_list(data_type):
        element = _python_values(pa, data_type.value_type)
        if element is None:
            return None
        return lambda values: None if values is None else [element(v) for v in values]
    if types.is_struct(data_type):
        fields = [(f.name, _python_values(pa, f.type)) for f in data_type]
        if all(convert is None for _, convert in fields):
            return None
        return lambda struct: (
            None
            if struct is None
            else {
                name: struct[name] if convert is None else convert(struct[name]) for name, convert in fields
            }
        )
    return None


def table_to_pandas(pa: ModuleType, table: pyarrow.Table, columns: list[Column]) -> pandas.DataFrame:
    """A DataFrame like the one rows make: one column per result column, then `row_kind` (each
    row's kind by name, from the row kind column of a changelog, else INSERT). Flat columns go
    through Arrow's own conversion; nested ones (ARRAY, MAP, MULTISET, ROW) become the lists and
    dicts rows hold."""
    pd = require_pandas()
    kinds = None
    if is_changelog(table.schema, columns):
        kinds = table.column(0)
        table = table.remove_column(0)
    nested = {
        index: _python_values(pa, field.type)
        for index, field in enumerate(table.schema)
        if pa.types.is_nested(field.type)
    }
    flat = [index for index in range(table.num_columns) if index not in nested]
    if flat:
        # DECIMAL columns stay Arrow-backed (pandas.ArrowDtype): exact, and each value is still
        # a decimal.Decimal when read, without making a million Decimal objects up front
        # (which would cost more than all the other columns together).
        frame = table.select(flat).to_pandas(
            types_mapper=lambda t: pd.ArrowDtype(t) if pa.types.is_decimal(t) else None
        )
    else:
        frame = pd.DataFrame(index=pd.RangeIndex(table.num_rows))
    for index, convert in sorted(nested.items()):
        values = table.column(index).to_pylist()
        if convert is not None:
            values = [convert(v) for v in values]
        frame.insert(
            index, table.schema.field(index).name, pd.Series(values, dtype=object, index=frame.index)
        )
    if kinds is None:
        frame["row_kind"] = "INSERT"
    else:
        frame["row_kind"] = kinds.to_pandas().map(_KIND_NAMES).to_numpy()
    return frame
