"""SQL jobs through the blocking client: typed rows, waiting, failures, cancel, idempotency."""

from __future__ import annotations

import uuid
from datetime import date, datetime, time, timezone
from decimal import Decimal

import pytest

from conftest import ALL_TYPES
from flinkbroker import (
    AlreadyExists,
    Client,
    EndReason,
    FailedPrecondition,
    InvalidArgument,
    JobCanceled,
    JobFailed,
    JobKind,
    JobState,
    NotFound,
    Restore,
    ResultLimits,
    ResultsFailed,
    RowKind,
    StatementState,
)

BOUNDED_GEN = (
    "CREATE TABLE gen (id INT, name STRING, price DOUBLE, ts TIMESTAMP(3)) WITH ("
    "'connector'='datagen', 'number-of-rows'='25', 'fields.id.kind'='sequence', "
    "'fields.id.start'='1', 'fields.id.end'='25', 'fields.name.length'='6')"
)
UNBOUNDED_GEN = (
    "CREATE TABLE gen_unbounded (id INT) WITH ('connector'='datagen', "
    "'fields.id.kind'='sequence', 'fields.id.start'='1', 'fields.id.end'='100000000')"
)
WAIT = 60.0


def request_id() -> str:
    return f"pytest-{uuid.uuid4().hex}"


def test_every_flink_type_arrives_as_its_python_value(client: Client) -> None:
    job = client.submit_sql(ALL_TYPES, mode="batch")
    stream = client.results(job.id)
    rows = list(stream)

    assert len(rows) == 1
    row = rows[0]
    assert row.kind == RowKind.INSERT and row.offset == 0
    assert row["c_int"] == 1 and type(row["c_int"]) is int
    assert row["c_str"] == "a"
    assert row["c_null"] is None
    assert row["c_bool"] is True
    assert row["c_bigint"] == 7
    assert row["c_arr"] == [1, 2]
    assert row["c_map"] == {"k": 1}
    assert isinstance(row["c_row"], dict) and list(row["c_row"].values()) == [1, "x"]
    assert row["c_date"] == date(2024, 1, 2)
    assert row["c_time"] == time(3, 4, 5)
    assert row["c_ts"] == datetime(2024, 1, 2, 3, 4, 5, 678000)
    assert row["c_ts"].tzinfo is None
    assert row["c_ltz"] == datetime(1970, 1, 1, tzinfo=timezone.utc)
    assert row["c_ltz"].tzinfo is not None
    assert isinstance(row["c_dec"], Decimal) and str(row["c_dec"]) == "1.50"
    assert row["c_double"] == 2.5 and type(row["c_double"]) is float
    assert row["c_bytes"] == b"\xca\xfe"

    columns = {c.name: c for c in stream.columns or []}
    assert columns["c_dec"].type_root == "DECIMAL"
    assert (columns["c_dec"].logical_type.precision, columns["c_dec"].logical_type.scale) == (10, 2)
    assert stream.end is not None and stream.end.reason == EndReason.END_OF_RESULTS
    assert stream.end.next_row_offset == 1


def test_rows_of_a_script_read_in_order_and_wait_returns_the_finished_job(client: Client) -> None:
    job = client.submit_sql(f"{BOUNDED_GEN};\nSELECT * FROM gen;", mode="batch", labels={"suite": "py"})
    assert job.kind == JobKind.SQL and job.labels == {"suite": "py"}

    rows = list(client.results(job.id))
    assert [r["id"] for r in rows] == list(range(1, 26))
    assert [r.offset for r in rows] == list(range(25))
    assert all(isinstance(r["name"], str) and isinstance(r["ts"], datetime) for r in rows)

    finished = client.wait(job.id, timeout=WAIT)
    assert finished.state == JobState.FINISHED
    assert finished.end_time is not None
    assert [s.state for s in finished.statements] == [StatementState.FINISHED] * 2
    assert finished.statements[1].result_log is not None
    assert finished.statements[1].result_log.rows_logged == 25

    # Reading again from an offset gives the rest of the log.
    tail = list(client.results(job.id, statement=1, from_row=20))
    assert [r["id"] for r in tail] == [21, 22, 23, 24, 25]
    assert client.get(job.id) == finished


def test_a_failing_statement_raises_job_failed_with_the_root_cause(client: Client) -> None:
    job = client.submit_sql(f"{BOUNDED_GEN};\nSELEC 1;\nSELECT * FROM gen;", mode="batch")
    with pytest.raises(JobFailed) as failed:
        client.wait(job.id, timeout=WAIT)

    error = failed.value
    assert error.job.state == JobState.FAILED
    assert error.job.state_reason.startswith("statement 2 failed")
    assert error.root_cause == "SQL parse failed. Non-query expression encountered in illegal context"
    assert error.statement_errors == {1: error.root_cause}
    assert str(error) == f"job {job.id} failed: {error.job.state_reason}"
    with pytest.raises(FailedPrecondition):
        list(client.results(job.id))


def test_cancel_ends_a_running_job_and_wait_raises_job_canceled(client: Client) -> None:
    job = client.submit_sql(f"{UNBOUNDED_GEN};\nSELECT * FROM gen_unbounded;", mode="streaming")
    running = next(j for j in client.watch(job.id, timeout=WAIT) if j.state == JobState.RUNNING)
    assert running.id == job.id
    rows = iter(client.results(job.id))
    assert next(rows)["id"] == 1

    canceling = client.cancel(job.id)
    assert canceling.state == JobState.CANCELING
    with pytest.raises(ResultsFailed) as ended:
        for _ in rows:
            pass
    assert ended.value.canceled
    with pytest.raises(JobCanceled) as canceled:
        client.wait(job.id, timeout=WAIT)
    assert canceled.value.job.state == JobState.CANCELED
    assert "canceled by request" in canceled.value.job.state_reason


def test_result_limits_end_an_unbounded_query_and_max_rows_ends_a_read(client: Client) -> None:
    job = client.submit_sql(
        f"{UNBOUNDED_GEN};\nSELECT * FROM gen_unbounded;",
        mode="streaming",
        result_limits=ResultLimits(max_rows=40),
    )
    assert client.wait(job.id, timeout=WAIT).state == JobState.FINISHED

    stream = client.results(job.id, max_rows=10)
    assert [r["id"] for r in stream] == list(range(1, 11))
    assert stream.end is not None and stream.end.reason == EndReason.ROW_LIMIT_REACHED
    assert len(list(client.results(job.id))) == 40


def test_the_same_request_id_returns_the_same_job(client: Client) -> None:
    key = request_id()
    first = client.submit_sql("SELECT 42 AS answer", mode="batch", request_id=key)
    again = client.submit_sql("SELECT 42 AS answer", mode="batch", request_id=key)
    assert again.id == first.id and again.request_id == key

    with pytest.raises(AlreadyExists) as conflict:
        client.submit_sql("SELECT 43 AS answer", mode="batch", request_id=key)
    assert key in conflict.value.message
    assert [dict(r) for r in client.results(first.id)] == [{"answer": 42}]


def test_list_finds_jobs_by_label_and_get_of_an_unknown_job_is_not_found(client: Client) -> None:
    label = {"run": uuid.uuid4().hex}
    submitted = [client.submit_sql("SELECT 1 AS one", mode="batch", labels=label) for _ in range(3)]
    listed = list(client.list(labels=label, page_size=2))
    assert [j.id for j in listed] == [j.id for j in reversed(submitted)]
    assert all(j.tenant == "pytest" and j.principal == "backend" for j in listed)

    with pytest.raises(NotFound):
        client.get(str(uuid.uuid4()))


def test_to_pandas_builds_a_frame_of_the_rows(client: Client) -> None:
    pytest.importorskip("pandas")
    job = client.submit_sql(f"{BOUNDED_GEN};\nSELECT id, name FROM gen;", mode="batch")
    frame = client.results(job.id).to_pandas()
    assert list(frame.columns) == ["id", "name", "row_kind"]
    assert frame["id"].tolist() == list(range(1, 26))
    assert set(frame["row_kind"]) == {"INSERT"}


def test_savepoints_restore_and_validation(client: Client) -> None:
    script = (
        f"{UNBOUNDED_GEN};\n"
        "CREATE TABLE sink (id INT) WITH ('connector'='blackhole');\n"
        "INSERT INTO sink SELECT * FROM gen_unbounded"
    )
    job = client.submit_sql(script)
    for seen in client.watch(job.id, timeout=WAIT):
        if seen.state == JobState.RUNNING:
            break
    taken = client.savepoint(job.id, directory="file:///savepoints/py", native=True)
    (savepoint,) = taken.savepoints
    assert savepoint.kind == "TRIGGERED" and savepoint.state == "COMPLETED"
    assert savepoint.format == "NATIVE" and savepoint.statement_index == 2
    assert savepoint.location.startswith("file:/savepoints/py/")
    assert taken.savepoint_path == savepoint.location

    client.cancel(job.id, savepoint="file:///savepoints/py-stop")
    with pytest.raises(JobCanceled):
        client.wait(job.id, timeout=WAIT)
    stopped = client.get(job.id)
    assert stopped.savepoints[-1].kind == "STOP"
    restored = client.submit_sql(
        script, restore=Restore(stopped.savepoint_path, allow_non_restored_state=True)
    )
    assert restored.restored_from == stopped.savepoint_path
    client.cancel(restored.id)

    checked = client.validate_sql(f"{UNBOUNDED_GEN};\nSELECT id\n  FROM nope")
    assert not checked.valid
    first, second = checked.statements
    assert first.verdict == "VALID" and second.verdict == "INVALID"
    assert (second.error_line, second.error_column) == (3, 8)
    assert "nope" in second.error
    with pytest.raises(InvalidArgument, match=r"statement 2 \(line 3, column 8\) is invalid"):
        client.submit_sql(f"{UNBOUNDED_GEN};\nSELECT id\n  FROM nope", validate_first=True)
