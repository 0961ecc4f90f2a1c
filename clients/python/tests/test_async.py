"""The asyncio client on the main paths."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from conftest import Broker
from flinkbroker import AsyncClient, JobFailed, JobState, RowKind, Unauthenticated

SCRIPT = (
    "CREATE TABLE gen (id INT, price DECIMAL(10, 2)) WITH ('connector'='datagen', "
    "'number-of-rows'='30', 'fields.id.kind'='sequence', 'fields.id.start'='1', "
    "'fields.id.end'='30');\nSELECT id, price FROM gen;"
)


def test_async_submit_read_and_wait(broker: Broker) -> None:
    async def scenario() -> None:
        async with AsyncClient(broker.target, token=broker.tokens.submitter) as client:
            job = await client.submit_sql(SCRIPT, mode="batch", request_id="async-read-1")
            stream = client.results(job.id)
            rows = [row async for row in stream]
            assert [r["id"] for r in rows] == list(range(1, 31))
            assert all(isinstance(r["price"], Decimal) for r in rows)
            assert {r.kind for r in rows} == {RowKind.INSERT}
            finished = await client.wait(job.id, timeout=60)
            assert finished.state == JobState.FINISHED
            assert (await client.get(job.id)).id == job.id
            listed = [j.id async for j in client.list(page_size=500)]
            assert job.id in listed

    asyncio.run(scenario())


def test_async_wait_raises_job_failed_with_the_root_cause(broker: Broker) -> None:
    async def scenario() -> None:
        async with AsyncClient(broker.target, token=broker.tokens.submitter) as client:
            job = await client.submit_sql("SELEC 1", mode="batch")
            with pytest.raises(JobFailed) as failed:
                await client.wait(job.id, timeout=60)
            assert failed.value.root_cause.startswith("SQL parse failed.")

    asyncio.run(scenario())


def test_async_cancel_and_auth_errors(broker: Broker) -> None:
    async def scenario() -> None:
        async with AsyncClient(broker.target) as anonymous:
            with pytest.raises(Unauthenticated):
                await anonymous.get("00000000-0000-0000-0000-000000000000")
        async with AsyncClient(broker.target, token=broker.tokens.submitter) as client:
            job = await client.submit_sql(
                "CREATE TABLE g (id INT) WITH ('connector'='datagen');\nSELECT * FROM g;"
            )
            canceling = await client.cancel(job.id)
            assert canceling.state == JobState.CANCELING
            states = [j.state async for j in client.watch(job.id, timeout=60)]
            assert states[-1] == JobState.CANCELED

    asyncio.run(scenario())


def test_async_results_as_arrow_and_pandas(broker: Broker) -> None:
    pa = pytest.importorskip("pyarrow")
    pytest.importorskip("pandas")

    async def scenario() -> None:
        async with AsyncClient(broker.target, token=broker.tokens.submitter) as client:
            job = await client.submit_sql(SCRIPT, mode="batch")
            await client.wait(job.id, timeout=60)
            table = await client.results(job.id).to_arrow()
            assert table.schema.field("price").type == pa.decimal128(10, 2)
            assert table.column("id").to_pylist() == list(range(1, 31))

            stream = client.results(job.id, from_row=10)
            batches = [batch async for batch in stream.iter_batches()]
            assert all(b.schema == stream.arrow_schema for b in batches)
            assert [i for b in batches for i in b.column("id").to_pylist()] == list(range(11, 31))
            assert stream.end is not None and stream.end.next_row_offset == 30

            via_arrow = await client.results(job.id).to_pandas()
            via_rows = await client.results(job.id).to_pandas(arrow=False)
            assert list(via_arrow.columns) == list(via_rows.columns) == ["id", "price", "row_kind"]
            assert via_arrow["id"].tolist() == via_rows["id"].tolist() == list(range(1, 31))
            assert via_arrow["price"].tolist() == via_rows["price"].tolist()
            assert set(via_arrow["row_kind"]) == {"INSERT"}

    asyncio.run(scenario())
