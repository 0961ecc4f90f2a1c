"""The backend example's functions, run against the broker."""

from __future__ import annotations

import importlib.util
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from conftest import Broker
from flinkbroker import JobFailed, JobKind, JobState

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "backend.py"


@pytest.fixture
def backend(broker: Broker, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    monkeypatch.setenv("FLINKBROKER_TARGET", broker.target)
    monkeypatch.setenv("FLINKBROKER_TOKEN", broker.tokens.submitter)
    spec = importlib.util.spec_from_file_location("backend_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


def test_submit_sql_returns_the_rows_of_the_last_query(backend: ModuleType) -> None:
    script = (
        "CREATE TABLE gen (id INT, name STRING) WITH ('connector'='datagen', "
        "'number-of-rows'='12', 'fields.id.kind'='sequence', 'fields.id.start'='1', "
        "'fields.id.end'='12');\nSELECT id, name FROM gen WHERE id > 2;"
    )
    rows = backend._submit_sql(script, request_id=f"backend-{uuid.uuid4().hex}")
    assert [r["id"] for r in rows] == list(range(3, 13))
    assert all(set(r) == {"id", "name"} and isinstance(r["name"], str) for r in rows)


def test_submit_sql_stops_a_streaming_query_at_max_rows(backend: ModuleType) -> None:
    script = (
        "CREATE TABLE endless (id INT) WITH ('connector'='datagen', 'fields.id.kind'='sequence', "
        "'fields.id.start'='1', 'fields.id.end'='100000000');\nSELECT id FROM endless;"
    )
    rows = backend._submit_sql(script, streaming=True, max_rows=5)
    assert rows == [{"id": i} for i in range(1, 6)]


def test_submit_sql_raises_the_root_cause_of_a_failing_statement(backend: ModuleType) -> None:
    with pytest.raises(JobFailed) as failed:
        backend._submit_sql("SELECT * FROM no_such_table")
    assert "no_such_table" in failed.value.root_cause


def test_submit_python_script_sends_the_file_and_raises_when_flink_run_fails(
    backend: ModuleType, broker: Broker, tmp_path: Path
) -> None:
    script = tmp_path / "wordcount.py"
    script.write_text("print('counting words')\n")
    broker.set_flink_behaviour("echo 'the cluster refused the program' >&2\nexit 1\n")
    try:
        with pytest.raises(JobFailed) as failed:
            backend._submit_python_script(str(script), args=["--date", "2026-11-23"], timeout=60)
    finally:
        broker.set_flink_behaviour("exit 0\n")

    job = failed.value.job
    assert job.kind == JobKind.PYTHON and job.state == JobState.FAILED
    assert job.state_reason.startswith("the submitter failed (exit code 1)")
    assert failed.value.root_cause == job.state_reason
    assert "the cluster refused the program" in job.submitter_output
    # The fake launcher printed its argv: the local file went inline as the program, followed
    # by the program arguments.
    argv = job.submitter_output.split("argv-begin\0", 1)[1].split("\0argv-end", 1)[0].split("\0")
    assert argv[-4] == "-py" and argv[-2:] == ["--date", "2026-11-23"]
    assert Path(argv[-3]).read_text() == "print('counting words')\n"
