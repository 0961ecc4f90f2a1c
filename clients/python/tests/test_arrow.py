"""Results as Arrow: each type as its Arrow type with the value rows give, a changelog's row
kinds, record batches as they arrive, DataFrames through Arrow like those through rows, and
what happens without pyarrow."""

from __future__ import annotations

import math
import warnings
from datetime import timedelta
from typing import Any

import pytest

from conftest import ALL_TYPES
from flinkbroker import Client, EndReason, JobState, RowKind, _arrow
from flinkbroker._common import Mode
from flinkbroker._stream import ResultStreamState
from flinkbroker.v1 import broker_pb2 as pb

pa = pytest.importorskip("pyarrow")

WAIT = 60.0
GEN_ROWS = 300
# Batch mode: the rows come as many small batches (the test broker's --max-message-bytes).
GEN = (
    "CREATE TABLE gen (id BIGINT, name STRING, price DECIMAL(10, 2), ts TIMESTAMP(3)) WITH ("
    f"'connector'='datagen', 'number-of-rows'='{GEN_ROWS}', 'fields.id.kind'='sequence', "
    f"'fields.id.start'='1', 'fields.id.end'='{GEN_ROWS}', 'fields.name.length'='12');\n"
    "SELECT * FROM gen;"
)
# Streaming: a changelog, each count inserted and then updated.
CLICKS_BY_USER = (
    "CREATE TABLE clicks (user_id INT, url STRING) WITH ('connector'='datagen', "
    "'number-of-rows'='200', 'fields.user_id.min'='1', 'fields.user_id.max'='5', "
    "'fields.url.length'='8');\n"
    "SELECT user_id, COUNT(*) AS clicks FROM clicks GROUP BY user_id;"
)
# A live query: 500 rows a second, so its first batches arrive long before it ends.
LIVE_ROWS = 1500
LIVE = (
    "CREATE TABLE live (id INT) WITH ('connector'='datagen', "
    f"'number-of-rows'='{LIVE_ROWS}', 'rows-per-second'='500', 'fields.id.kind'='sequence', "
    f"'fields.id.start'='1', 'fields.id.end'='{LIVE_ROWS}');\n"
    "SELECT * FROM live;"
)
KIND_SYMBOLS = {
    RowKind.INSERT: "+I",
    RowKind.UPDATE_BEFORE: "-U",
    RowKind.UPDATE_AFTER: "+U",
    RowKind.DELETE: "-D",
}


def finished(client: Client, script: str, mode: Mode = "batch") -> str:
    job = client.submit_sql(script, mode=mode)
    assert client.wait(job.id, timeout=WAIT).state == JobState.FINISHED
    return job.id


def test_every_flink_type_arrives_as_its_arrow_type_with_the_value_rows_give(client: Client) -> None:
    job_id = finished(client, ALL_TYPES)
    stream = client.results(job_id)
    table = stream.to_arrow()

    def field(name: str, data_type: Any) -> Any:
        return pa.field(name, data_type, nullable=False)

    assert table.schema == pa.schema(
        [
            field("c_int", pa.int32()),
            field("c_str", pa.string()),
            pa.field("c_null", pa.int32(), nullable=True),
            field("c_bool", pa.bool_()),
            field("c_bigint", pa.int64()),
            field("c_arr", pa.list_(field("element", pa.int32()))),
            field("c_map", pa.map_(pa.string(), field("value", pa.int32()))),
            field("c_row", pa.struct([field("EXPR$0", pa.int32()), field("EXPR$1", pa.string())])),
            field("c_date", pa.date32()),
            field("c_time", pa.time64("ns")),
            field("c_ts", pa.timestamp("ms")),
            pa.field("c_ltz", pa.timestamp("ms", tz="UTC"), nullable=True),
            field("c_dec", pa.decimal128(10, 2)),
            field("c_double", pa.float64()),
            field("c_bytes", pa.binary()),
        ]
    )
    assert stream.arrow_schema == table.schema
    assert [c.name for c in stream.columns or []] == table.schema.names
    assert stream.end is not None and stream.end.reason == EndReason.END_OF_RESULTS
    assert stream.end.next_row_offset == 1 and stream.next_row == 1

    (row,) = list(client.results(job_id))
    (values,) = table.to_pylist()
    # pyarrow gives a MAP as its (key, value) pairs; rows give a dict.
    values["c_map"] = dict(values["c_map"])
    assert values == dict(row)
    assert values["c_ltz"].utcoffset() == timedelta(0) and values["c_ts"].tzinfo is None
    assert str(values["c_dec"]) == "1.50" and values["c_bytes"] == b"\xca\xfe"


def test_a_changelog_read_as_arrow_carries_each_row_kind_first(client: Client) -> None:
    job_id = finished(client, CLICKS_BY_USER, mode="streaming")
    table = client.results(job_id).to_arrow()
    rows = list(client.results(job_id))

    assert table.schema.names == ["$row_kind", "user_id", "clicks"]
    assert table.schema.field("$row_kind").type == pa.string()
    assert table.to_pylist() == [{"$row_kind": KIND_SYMBOLS[r.kind], **r} for r in rows]
    kinds = table.column("$row_kind").to_pylist()
    assert {"+I", "-U", "+U"} <= set(kinds)
    final = {r["user_id"]: r["clicks"] for r in table.to_pylist() if r["$row_kind"] in ("+I", "+U")}
    assert sum(final.values()) == 200


def test_iter_batches_yields_record_batches_as_they_arrive(client: Client) -> None:
    job_id = finished(client, GEN)
    stream = client.results(job_id)
    batches = list(stream.iter_batches())

    assert len(batches) > 1
    assert all(isinstance(b, pa.RecordBatch) and b.schema == stream.arrow_schema for b in batches)
    assert sum(b.num_rows for b in batches) == GEN_ROWS
    assert [i for b in batches for i in b.column("id").to_pylist()] == list(range(1, GEN_ROWS + 1))
    assert stream.next_row == GEN_ROWS
    assert stream.end is not None and stream.end.next_row_offset == GEN_ROWS
    with pytest.raises(RuntimeError, match="can be read once"):
        stream.to_pandas()

    # An offset and a row limit as with rows.
    limited = client.results(job_id, from_row=20, max_rows=7)
    assert limited.to_arrow().column("id").to_pylist() == list(range(21, 28))
    assert limited.end is not None and limited.end.reason == EndReason.ROW_LIMIT_REACHED
    assert limited.end.next_row_offset == 27

    # A live query's first batch arrives while it runs, long before its last row.
    live = client.submit_sql(LIVE)
    arriving = client.results(live.id).iter_batches()
    first = next(arriving)
    assert client.get(live.id).state == JobState.RUNNING
    rest = list(arriving)
    assert first.schema.names == ["$row_kind", "id"]
    assert first.num_rows + sum(b.num_rows for b in rest) == LIVE_ROWS


def test_a_batch_reaching_back_before_the_rows_read_yields_the_rest_and_resumes_after_it() -> None:
    # A stream resumed at row 5 of attempt 2, and a batch of rows 3 to 7.
    schema = pa.schema([pa.field("id", pa.int64(), nullable=False)])
    state = ResultStreamState("job-1", None, from_row=5, max_rows=10, max_duration=None)
    state._start_arrow("reading")
    columns = [pb.Column(name="id", type=pb.LogicalType(type_root="BIGINT"))]
    arrow_schema = schema.serialize().to_pybytes()
    assert not state._take(
        pb.StreamOperationResultsResponse(schema=pb.ResultSchema(columns=columns, arrow_schema=arrow_schema))
    )
    batch = pa.record_batch([pa.array(range(3, 8), pa.int64())], schema=schema)
    message = pb.ArrowBatch(
        ipc_message=batch.serialize().to_pybytes(), first_row_offset=3, attempt=2, row_count=5
    )

    read = state._record_batch(message)
    assert read is not None and read.column("id").to_pylist() == [5, 6, 7]
    assert (state.next_row, state.attempt) == (8, 2)
    assert state._record_batch(message) is None
    request = state._request()
    assert request.encoding == pb.RESULT_ENCODING_ARROW
    assert (request.resume_from_row, request.attempt, request.max_rows) == (8, 2, 7)


def missing_as_none(value: Any) -> Any:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


def zone(dtype: Any) -> str:
    return str(getattr(dtype, "tz", None))


def assert_same_frame(via_arrow: Any, via_rows: Any) -> None:
    """The same columns and values; dtypes differ only as the README says: narrower integers
    and floats (INT as int32, rows give int64), datetimes in the column's unit (ms for
    TIMESTAMP(3), rows give us), an integer column whose values are all NULL as float64
    NaN (rows give None in an object column), and DECIMAL Arrow-backed (rows give Decimal
    objects in an object column)."""
    assert list(via_arrow.columns) == list(via_rows.columns)
    assert len(via_arrow) == len(via_rows)
    for name in via_rows.columns:
        arrow_values = [missing_as_none(v) for v in via_arrow[name].tolist()]
        row_values = [missing_as_none(v) for v in via_rows[name].tolist()]
        assert arrow_values == row_values, name
        arrow_dtype, rows_dtype = via_arrow[name].dtype, via_rows[name].dtype
        if arrow_dtype == rows_dtype:
            continue
        narrower = (arrow_dtype.kind, rows_dtype.kind) in (("i", "i"), ("f", "f"))
        other_unit = arrow_dtype.kind == rows_dtype.kind == "M" and zone(arrow_dtype) == zone(rows_dtype)
        all_null = arrow_dtype.kind == "f" and rows_dtype.kind == "O" and all(v is None for v in row_values)
        arrow_decimal = isinstance(arrow_dtype, pytest.importorskip("pandas").ArrowDtype) and (
            pa.types.is_decimal(arrow_dtype.pyarrow_dtype)
        )
        assert narrower or other_unit or all_null or arrow_decimal, (
            f"{name}: {arrow_dtype} through Arrow, {rows_dtype} through rows"
        )


@pytest.mark.parametrize(
    ("script", "mode"),
    [(ALL_TYPES, "batch"), (GEN, "batch"), (CLICKS_BY_USER, "streaming")],
    ids=["all-types", "rows", "changelog"],
)
def test_to_pandas_through_arrow_equals_to_pandas_through_rows(
    client: Client, script: str, mode: Mode
) -> None:
    pytest.importorskip("pandas")
    job_id = finished(client, script, mode)
    via_arrow = client.results(job_id).to_pandas()
    via_rows = client.results(job_id).to_pandas(arrow=False)
    assert "$row_kind" not in via_arrow.columns and via_arrow.columns[-1] == "row_kind"
    assert_same_frame(via_arrow, via_rows)
    assert_same_frame(client.results(job_id).to_pandas(arrow=True), via_rows)


def test_without_pyarrow_to_pandas_reads_rows_and_says_so_once(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    pandas = pytest.importorskip("pandas")
    job_id = finished(client, GEN)
    expected = client.results(job_id).to_pandas(arrow=False)
    monkeypatch.setattr(_arrow, "import_pyarrow", lambda: None)
    monkeypatch.setattr(_arrow, "_fallback_warned", False)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = client.results(job_id).to_pandas()
        second = client.results(job_id).to_pandas()
        rows = list(client.results(job_id))
    said = [w for w in caught if "pyarrow is not installed" in str(w.message)]
    assert len(said) == 1, [str(w.message) for w in caught]
    assert said[0].category is UserWarning and said[0].filename == __file__
    assert "pip install 'flinkbroker-client[arrow]'" in str(said[0].message)
    pandas.testing.assert_frame_equal(first, expected)
    pandas.testing.assert_frame_equal(second, expected)
    assert [r["id"] for r in rows] == list(range(1, GEN_ROWS + 1))

    needs = r"needs pyarrow: pip install 'flinkbroker-client\[arrow\]'"
    with pytest.raises(ImportError, match=rf"to_arrow\(\) {needs}"):
        client.results(job_id).to_arrow()
    with pytest.raises(ImportError, match=rf"iter_batches\(\) {needs}"):
        client.results(job_id).iter_batches()
    with pytest.raises(ImportError, match=rf"to_pandas\(arrow=True\) {needs}"):
        client.results(job_id).to_pandas(arrow=True)
