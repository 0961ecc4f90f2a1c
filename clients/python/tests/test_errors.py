"""Credentials and refusals: each gRPC status arrives as its typed error."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest

from conftest import Broker
from flinkbroker import (
    AsyncClient,
    Client,
    InvalidArgument,
    JobCanceled,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    RpcError,
    Unauthenticated,
)


def test_a_call_without_a_token_is_unauthenticated(broker: Broker) -> None:
    with broker.client(token=None) as anonymous, pytest.raises(Unauthenticated) as refused:
        anonymous.submit_sql("SELECT 1 AS one", mode="batch")
    assert isinstance(refused.value, RpcError)


def test_an_unknown_token_is_unauthenticated(broker: Broker) -> None:
    with broker.client(token="not-a-token") as stranger, pytest.raises(Unauthenticated):
        list(stranger.list())


def test_a_token_is_read_from_a_callable_for_each_call(broker: Broker) -> None:
    handed_out: list[str] = []

    def current_token() -> str:
        handed_out.append(broker.tokens.reader)
        return broker.tokens.reader

    with Client(broker.target, token=current_token) as reader:
        for _ in range(2):
            with pytest.raises(NotFound):
                reader.get(str(uuid.uuid4()))
    assert len(handed_out) == 2


def test_a_reader_may_not_submit(broker: Broker) -> None:
    with broker.client(token="reader") as reader, pytest.raises(PermissionDenied) as refused:
        reader.submit_sql("SELECT 1 AS one", mode="batch")
    assert "submitter" in refused.value.message


def test_a_forbidden_configuration_key_is_permission_denied(client: Client) -> None:
    with pytest.raises(PermissionDenied):
        client.submit_sql("SELECT 1 AS one", mode="batch", properties={"env.java.opts": "-Xmx1g"})


def test_a_bad_request_is_invalid_argument(client: Client) -> None:
    with pytest.raises(InvalidArgument) as refused:
        client.submit_sql("", mode="batch")
    assert "script" in refused.value.message
    with pytest.raises(ValueError):
        client.submit_sql("SELECT 1", mode="interactive")  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def one_live_job_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    running = Broker(tmp_path_factory.mktemp("quota"), ["--tenant-max-live-jobs", "1"])
    yield running
    running.stop()


def test_a_used_up_quota_is_resource_exhausted_with_retry_after(one_live_job_broker: Broker) -> None:
    unbounded = "CREATE TABLE g (id INT) WITH ('connector'='datagen');\nSELECT * FROM g;"
    with one_live_job_broker.client() as client:
        live = client.submit_sql(unbounded)
        with pytest.raises(ResourceExhausted) as refused:
            client.submit_sql("SELECT 1 AS one", mode="batch")
        assert refused.value.retry_after == timedelta(seconds=10)
        assert "live jobs" in refused.value.message

        async def submit_async() -> None:
            async with AsyncClient(
                one_live_job_broker.target, token=one_live_job_broker.tokens.submitter
            ) as aio:
                await aio.submit_sql("SELECT 1 AS one", mode="batch")

        with pytest.raises(ResourceExhausted) as refused_async:
            asyncio.run(submit_async())
        assert refused_async.value.retry_after == timedelta(seconds=10)
        client.cancel(live.id)
        with pytest.raises(JobCanceled):
            client.wait(live.id, timeout=60)
