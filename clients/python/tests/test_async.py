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
