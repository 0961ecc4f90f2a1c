"""Results read as a table (`results(..., view="table")`): a streaming GROUP BY's table equals
its changelog applied by hand, for a finished job and at the snapshot and after the changes of
a running one; DataFrames of the table; a dropped table stream starts again from a new
snapshot; the broker's refusal of an offset with the table view."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

import pytest

from conftest import Broker, DroppingProxy, eventually
from flinkbroker import (
    AsyncClient,
    Client,
    EndReason,
    InvalidArgument,
    JobState,
    ResultTable,
    Row,
    RowKind,
)

WAIT = 60.0
CLICKS = 300
BOUNDED = (
    "CREATE TABLE clicks (user_id INT, url STRING) WITH ('connector'='datagen', "
    f"'number-of-rows'='{CLICKS}', 'fields.user_id.min'='1', 'fields.user_id.max'='6', "
    "'fields.url.length'='8');\n"
    "SELECT user_id, COUNT(*) AS clicks FROM clicks GROUP BY user_id"
)
UNBOUNDED = (
    "CREATE TABLE clicks (user_id INT, url STRING) WITH ('connector'='datagen', "
    "'rows-per-second'='200', 'fields.user_id.min'='1', 'fields.user_id.max'='6', "
    "'fields.url.length'='8');\n"
    "SELECT user_id, COUNT(*) AS clicks FROM clicks GROUP BY user_id"
)
# Live but bounded: 600 clicks over about three seconds.
LIVE_CLICKS = 600
LIVE = (
    "CREATE TABLE clicks (user_id INT, url STRING) WITH ('connector'='datagen', "
    f"'number-of-rows'='{LIVE_CLICKS}', 'rows-per-second'='200', 'fields.user_id.min'='1', "
    "'fields.user_id.max'='6', 'fields.url.length'='8');\n"
    "SELECT user_id, COUNT(*) AS clicks FROM clicks GROUP BY user_id"
)


def apply(changelog: Iterable[Row]) -> list[tuple[Any, ...]]:
    """The changelog applied by hand: +I and +U add a row, -U and -D take one occurrence of an
    equal row away; the rows held, in the order they first appeared."""
    held: dict[tuple[Any, ...], int] = {}
    for row in changelog:
        key = tuple(row.values())
        if row.kind in (RowKind.INSERT, RowKind.UPDATE_AFTER):
            held[key] = held.get(key, 0) + 1
        else:
            assert key in held, f"a retraction of a row the table does not hold: {row!r}"
            held[key] -= 1
            if held[key] == 0:
                del held[key]
    return [key for key, count in held.items() for _ in range(count)]


def values(table: ResultTable) -> list[tuple[Any, ...]]:
    return [tuple(row.values()) for row in table.rows]


def changelog_to(client: Client, job_id: str, offset: int) -> list[Row]:
    """The changelog's first `offset` rows."""
    rows = list(client.results(job_id, max_rows=offset)) if offset else []
    assert len(rows) == offset
    return rows


def running(client: Client, script: str) -> str:
    """Submits a streaming job and returns its id once its query has logged some changes."""
    job = client.submit_sql(script)

    def logged() -> bool | None:
        statement = client.get(job.id).statements[-1]
        return True if statement.result_log is not None and statement.result_log.rows_logged >= 60 else None

    eventually("the query logs changes", logged, deadline=WAIT)
    return job.id


def test_a_finished_group_by_reads_as_its_changelog_applied(client: Client) -> None:
    job = client.submit_sql(BOUNDED)
    assert client.wait(job.id, timeout=WAIT).state == JobState.FINISHED
    changelog = list(client.results(job.id))
    assert {RowKind.INSERT, RowKind.UPDATE_BEFORE, RowKind.UPDATE_AFTER} <= {r.kind for r in changelog}

    stream = client.results(job.id, view="table")
    snapshot = stream.snapshot()
    assert snapshot.as_of_row_offset == len(changelog)
    assert values(snapshot) == apply(changelog)
    assert [c.name for c in snapshot.columns] == ["user_id", "clicks"]
    assert all(r.kind == RowKind.INSERT and r.offset is None for r in snapshot.rows)
    assert sorted(r["user_id"] for r in snapshot.rows) == [1, 2, 3, 4, 5, 6]
    assert sum(r["clicks"] for r in snapshot.rows) == CLICKS

    # No change follows a finished job's snapshot: the one update is the table as of it.
    assert stream.snapshot() is snapshot
    assert list(stream.updates()) == [snapshot]
    assert stream.end is not None and stream.end.reason == EndReason.END_OF_RESULTS
    assert stream.table == snapshot and stream.resumed_from == []


def test_to_pandas_of_a_table_has_its_rows_and_no_row_kind(client: Client) -> None:
    pytest.importorskip("pandas")
    job = client.submit_sql(BOUNDED)
    assert client.wait(job.id, timeout=WAIT).state == JobState.FINISHED
    expected = apply(client.results(job.id))

    frame = client.results(job.id, view="table").to_pandas()
    assert list(frame.columns) == ["user_id", "clicks"]
    assert len(frame) == 6
    assert list(frame.itertuples(index=False, name=None)) == expected
    assert frame["clicks"].sum() == CLICKS
    followed = client.results(job.id, view="table").to_pandas(follow=True)
    assert followed.equals(frame)


def test_a_running_group_by_reads_as_a_snapshot_then_its_changes(client: Client) -> None:
    job_id = running(client, UNBOUNDED)
    try:
        stream = client.results(job_id, view="table")
        snapshot = stream.snapshot()
        as_of = snapshot.as_of_row_offset
        assert as_of >= 60
        assert values(snapshot) == apply(changelog_to(client, job_id, as_of))
        assert all(r.kind == RowKind.INSERT for r in snapshot.rows)

        # Each update is the changelog up to its offset applied.
        tables = []
        for table in stream.updates():
            tables.append(table)
            if len(tables) == 4:
                break
        assert tables[0] == snapshot
        offsets = [t.as_of_row_offset for t in tables]
        assert offsets == sorted(set(offsets)), offsets
        last = tables[-1]
        assert values(last) == apply(changelog_to(client, job_id, last.as_of_row_offset))
        assert stream.table is not None and stream.table.as_of_row_offset == last.as_of_row_offset
        assert stream.end is None
        stream.close()

        # max_rows bounds the changes followed.
        limited = client.results(job_id, view="table", max_rows=25)
        tables = list(limited.updates())
        first, final = tables[0], tables[-1]
        assert final.as_of_row_offset == first.as_of_row_offset + 25
        assert limited.end is not None and limited.end.reason == EndReason.ROW_LIMIT_REACHED
        assert limited.end.next_row_offset == final.as_of_row_offset
        assert values(final) == apply(changelog_to(client, job_id, final.as_of_row_offset))
    finally:
        client.cancel(job_id)


def test_to_pandas_of_a_running_table_is_its_snapshot_unless_it_follows(client: Client) -> None:
    pytest.importorskip("pandas")
    job_id = running(client, UNBOUNDED)
    try:
        stream = client.results(job_id, view="table")
        frame = stream.to_pandas()
        snapshot = stream.snapshot()
        assert stream.end is None and stream.table == snapshot
        assert list(frame.columns) == ["user_id", "clicks"]
        assert list(frame.itertuples(index=False, name=None)) == values(snapshot)
        assert values(snapshot) == apply(changelog_to(client, job_id, snapshot.as_of_row_offset))
        stream.close()

        following = client.results(job_id, view="table", max_rows=30)
        followed = following.to_pandas(follow=True)
        assert following.end is not None and following.end.reason == EndReason.ROW_LIMIT_REACHED
        table = following.table
        assert table is not None
        assert table.as_of_row_offset == following.snapshot().as_of_row_offset + 30
        assert list(followed.itertuples(index=False, name=None)) == values(table)
        assert values(table) == apply(changelog_to(client, job_id, table.as_of_row_offset))
    finally:
        client.cancel(job_id)


def test_a_dropped_table_stream_starts_again_from_a_new_snapshot(broker: Broker, client: Client) -> None:
    job = client.submit_sql(LIVE)
    proxy = DroppingProxy(("127.0.0.1", broker.port))
    offsets: list[int] = []
    try:
        with broker.client(token="reader", target=f"127.0.0.1:{proxy.port}") as through_proxy:
            stream = through_proxy.results(job.id, view="table")
            for table in stream.updates():
                offsets.append(table.as_of_row_offset)
                if len(offsets) == 3:
                    proxy.drop_connections()
    finally:
        proxy.close()
    assert client.wait(job.id, timeout=WAIT).state == JobState.FINISHED

    assert proxy.connections == 2
    assert len(stream.resumed_from) == 1
    assert stream.resumed_from[0] >= offsets[2] and stream.resumed_from[0] in offsets
    assert offsets == sorted(offsets)
    assert stream.end is not None and stream.end.reason == EndReason.END_OF_RESULTS
    final = stream.table
    assert final is not None
    changelog = list(client.results(job.id))
    assert final.as_of_row_offset == len(changelog)
    assert values(final) == apply(changelog)
    assert sum(r["clicks"] for r in final.rows) == LIVE_CLICKS


def test_the_table_view_refuses_an_offset_and_an_unknown_view(client: Client) -> None:
    job = client.submit_sql(BOUNDED)
    assert client.wait(job.id, timeout=WAIT).state == JobState.FINISHED
    with pytest.raises(InvalidArgument, match="resume_from_row"):
        client.results(job.id, from_row=5, view="table").snapshot()
    with pytest.raises(ValueError, match="view: must be 'changelog' or 'table'"):
        client.results(job.id, view="tabel")  # type: ignore[call-overload]


def test_async_table_of_a_finished_group_by(broker: Broker, client: Client) -> None:
    job = client.submit_sql(BOUNDED)
    assert client.wait(job.id, timeout=WAIT).state == JobState.FINISHED
    changelog = list(client.results(job.id))

    async def scenario() -> None:
        async with AsyncClient(broker.target, token=broker.tokens.reader) as reader:
            stream = reader.results(job.id, view="table")
            snapshot = await stream.snapshot()
            assert snapshot.as_of_row_offset == len(changelog)
            assert values(snapshot) == apply(changelog)
            assert sum(r["clicks"] for r in snapshot.rows) == CLICKS
            assert [t async for t in stream.updates()] == [snapshot]
            assert stream.end is not None and stream.end.reason == EndReason.END_OF_RESULTS

            with pytest.raises(InvalidArgument, match="resume_from_row"):
                await reader.results(job.id, from_row=1, view="table").snapshot()

    asyncio.run(scenario())


def test_async_table_of_a_running_group_by(broker: Broker, client: Client) -> None:
    job_id = running(client, UNBOUNDED)

    async def scenario() -> tuple[ResultTable, list[ResultTable]]:
        async with AsyncClient(broker.target, token=broker.tokens.reader) as reader:
            stream = reader.results(job_id, view="table", max_rows=20)
            snapshot = await stream.snapshot()
            tables = [t async for t in stream.updates()]
            assert stream.end is not None and stream.end.reason == EndReason.ROW_LIMIT_REACHED
            return snapshot, tables

    try:
        snapshot, tables = asyncio.run(scenario())
        final = tables[-1]
        assert tables[0] == snapshot
        assert final.as_of_row_offset == snapshot.as_of_row_offset + 20
        assert values(snapshot) == apply(changelog_to(client, job_id, snapshot.as_of_row_offset))
        assert values(final) == apply(changelog_to(client, job_id, final.as_of_row_offset))
    finally:
        client.cancel(job_id)


def test_async_to_pandas_of_a_table(broker: Broker, client: Client) -> None:
    pytest.importorskip("pandas")
    job = client.submit_sql(BOUNDED)
    assert client.wait(job.id, timeout=WAIT).state == JobState.FINISHED
    expected = apply(client.results(job.id))

    async def scenario() -> None:
        async with AsyncClient(broker.target, token=broker.tokens.reader) as reader:
            stream = reader.results(job.id, view="table")
            frame = await stream.to_pandas()
            assert list(frame.columns) == ["user_id", "clicks"]
            assert list(frame.itertuples(index=False, name=None)) == expected
            followed = await reader.results(job.id, view="table").to_pandas(follow=True)
            assert followed.equals(frame)
            await stream.close()

    asyncio.run(scenario())
