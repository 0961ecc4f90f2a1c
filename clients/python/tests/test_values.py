"""Conversions that need no broker: values at their edges, and what submit_python sends."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path

import pytest

from flinkbroker import to_python
from flinkbroker._common import submit_python_request
from flinkbroker.v1 import broker_pb2 as pb


def python_request(program: str | Path) -> pb.SubmitPythonRequest:
    return submit_python_request(
        program,
        entry_module=None,
        py_files=(),
        py_archives=(),
        inline_py_files=None,
        requirements="apache-flink==1.20.3\n",
        parallelism=2,
        flink_configuration={"pipeline.name": "p"},
        program_args=["--x"],
        request_id="r-1",
        labels=None,
    )


def test_time_keeps_microseconds_and_dates_before_1970_convert() -> None:
    nanos = ((23 * 60 + 59) * 60 + 58) * 1_000_000_000 + 123_456_789
    assert to_python(pb.Value(time_value=nanos)) == time(23, 59, 58, 123456)
    assert to_python(pb.Value(date_value=-1)) == date(1969, 12, 31)


def test_timestamps_before_the_epoch_and_instants_with_their_zone() -> None:
    before = pb.Value()
    before.timestamp_value.seconds = -1
    before.timestamp_value.nanos = 500_000_000
    assert to_python(before) == datetime(1969, 12, 31, 23, 59, 59, 500000)
    instant = pb.Value()
    instant.instant_value.seconds = 1_704_164_645
    converted = to_python(instant)
    assert converted == datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    assert converted.utcoffset() == timedelta(0)


def test_nested_values_follow_their_logical_type() -> None:
    row_type = pb.LogicalType(type_root="ROW")
    row_type.fields.add(name="tags", type=pb.LogicalType(type_root="ARRAY"))
    row_type.fields.add(name="missing", type=pb.LogicalType(type_root="INTEGER"))
    value = pb.Value()
    tags = value.row_value.fields.add().array_value
    tags.elements.add(string_value="a")
    tags.elements.add(null_value=pb.NULL_VALUE)
    value.row_value.fields.add(null_value=pb.NULL_VALUE)
    assert to_python(value, row_type) == {"tags": ["a", None], "missing": None}

    array_keyed = pb.Value()
    entry = array_keyed.map_value.entries.add()
    entry.key.array_value.elements.add(int_value=1)
    entry.value.bool_value = False
    assert to_python(array_keyed) == {(1,): False}


def test_submit_python_reads_a_path_passes_a_url_and_takes_source_as_is(tmp_path: Path) -> None:
    script = tmp_path / "job.py"
    script.write_text("print('from a file')\n")
    for program in (script, str(script)):
        request = python_request(program)
        assert request.WhichOneof("program") == "script"
        assert request.script == "print('from a file')\n"
    url = python_request("https://artifacts.example/jobs/job.py")
    assert url.WhichOneof("program") == "script_url"
    assert url.script_url == "https://artifacts.example/jobs/job.py"
    source = python_request("import sys\nprint(sys.argv)\n")
    assert source.script == "import sys\nprint(sys.argv)\n"
    assert (source.parallelism, list(source.program_args)) == (2, ["--x"])
    assert source.py_requirements == "apache-flink==1.20.3\n"
    with pytest.raises(FileNotFoundError):
        python_request(str(tmp_path / "missing.py"))
