"""A result stream whose connection drops resumes from the row after the last one it yielded,
as rows and as Arrow record batches."""

from __future__ import annotations

import asyncio

import pytest

from conftest import Broker, DroppingProxy
from flinkbroker import AsyncClient, Client, EndReason

ROWS = 1500
# A live query: 500 rows a second, so the connection drops while most rows are still to come.
SCRIPT = (
    "CREATE TABLE slow (id INT, name STRING) WITH ('connector'='datagen', "
    f"'number-of-rows'='{ROWS}', 'rows-per-second'='500', 'fields.id.kind'='sequence', "
    f"'fields.id.start'='1', 'fields.id.end'='{ROWS}', 'fields.name.length'='16');\n"
    "SELECT * FROM slow;"
)
DROP_AFTER = 100


def test_a_dropped_result_stream_resumes_after_the_last_row(broker: Broker, client: Client) -> None:
    job = client.submit_sql(SCRIPT)
    proxy = DroppingProxy(("127.0.0.1", broker.port))
    ids: list[int] = []
    try:
        with broker.client(token="reader", target=f"127.0.0.1:{proxy.port}") as through_proxy:
            stream = through_proxy.results(job.id)
            for row in stream:
                ids.append(row["id"])
                if len(ids) == DROP_AFTER:
                    proxy.drop_connections()
    finally:
        proxy.close()

    assert proxy.connections == 2
    assert ids == list(range(1, ROWS + 1))
    assert len(stream.resumed_from) == 1
    assert DROP_AFTER <= stream.resumed_from[0] < ROWS
    assert stream.end is not None and stream.end.reason == EndReason.END_OF_RESULTS
    assert stream.end.next_row_offset == ROWS


def test_an_async_dropped_result_stream_resumes_after_the_last_row(broker: Broker, client: Client) -> None:
    job = client.submit_sql(SCRIPT)
    proxy = DroppingProxy(("127.0.0.1", broker.port))

    async def read() -> tuple[list[int], list[int]]:
        ids: list[int] = []
        target = f"127.0.0.1:{proxy.port}"
        async with AsyncClient(target, token=broker.tokens.reader) as through_proxy:
            stream = through_proxy.results(job.id)
            async for row in stream:
                ids.append(row["id"])
                if len(ids) == DROP_AFTER:
                    proxy.drop_connections()
            return ids, stream.resumed_from

    try:
        ids, resumed_from = asyncio.run(read())
    finally:
        proxy.close()

    assert proxy.connections == 2
    assert ids == list(range(1, ROWS + 1))
    assert len(resumed_from) == 1 and DROP_AFTER <= resumed_from[0] < ROWS


def test_a_dropped_arrow_stream_resumes_after_the_last_batch(broker: Broker, client: Client) -> None:
    pytest.importorskip("pyarrow")
    job = client.submit_sql(SCRIPT)
    proxy = DroppingProxy(("127.0.0.1", broker.port))
    ids: list[int] = []
    kinds: set[str] = set()
    try:
        with broker.client(token="reader", target=f"127.0.0.1:{proxy.port}") as through_proxy:
            stream = through_proxy.results(job.id)
            for batch in stream.iter_batches():
                ids += batch.column("id").to_pylist()
                kinds.update(batch.column("$row_kind").to_pylist())
                if proxy.connections == 1 and len(ids) >= DROP_AFTER:
                    proxy.drop_connections()
    finally:
        proxy.close()

    assert proxy.connections == 2
    assert ids == list(range(1, ROWS + 1))
    assert kinds == {"+I"}
    assert len(stream.resumed_from) == 1
    assert DROP_AFTER <= stream.resumed_from[0] < ROWS
    assert stream.end is not None and stream.end.reason == EndReason.END_OF_RESULTS
    assert stream.end.next_row_offset == ROWS and stream.next_row == ROWS


def test_an_async_dropped_arrow_stream_resumes_after_the_last_batch(broker: Broker, client: Client) -> None:
    pytest.importorskip("pyarrow")
    job = client.submit_sql(SCRIPT)
    proxy = DroppingProxy(("127.0.0.1", broker.port))

    async def read() -> tuple[list[int], list[int]]:
        ids: list[int] = []
        target = f"127.0.0.1:{proxy.port}"
        async with AsyncClient(target, token=broker.tokens.reader) as through_proxy:
            stream = through_proxy.results(job.id)
            async for batch in stream.iter_batches():
                ids += batch.column("id").to_pylist()
                if proxy.connections == 1 and len(ids) >= DROP_AFTER:
                    proxy.drop_connections()
            return ids, stream.resumed_from

    try:
        ids, resumed_from = asyncio.run(read())
    finally:
        proxy.close()

    assert proxy.connections == 2
    assert ids == list(range(1, ROWS + 1))
    assert len(resumed_from) == 1 and DROP_AFTER <= resumed_from[0] < ROWS
