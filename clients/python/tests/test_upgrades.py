"""UpgradeJob through both clients: a running streaming job replaced by a new revision restored
from the savepoint the old one stopped with, a revision that fails to start rolled back, the
lineage in `list`, and the refusals."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import pytest

from conftest import Broker
from flinkbroker import (
    AsyncClient,
    AuditAction,
    Client,
    FailedPrecondition,
    InvalidArgument,
    Job,
    JobState,
    Upgrade,
)

SOURCE = (
    "CREATE TABLE gen (id INT) WITH ('connector'='datagen', 'fields.id.kind'='sequence', "
    "'fields.id.start'='1', 'fields.id.end'='100000000');\n"
    "CREATE TABLE sink_a (id INT) WITH ('connector'='blackhole');\n"
    "CREATE TABLE sink_b (id INT) WITH ('connector'='blackhole');\n"
)
TO_SINK_A = f"{SOURCE}INSERT INTO sink_a SELECT * FROM gen"
TO_SINK_B = f"{SOURCE}INSERT INTO sink_b SELECT * FROM gen"
FROM_MISSING_TABLE = f"{SOURCE}INSERT INTO sink_b SELECT * FROM missing_table"
SAVEPOINTS = "file:///savepoints/py-upgrades"
WAIT = 60.0


@pytest.fixture(scope="module")
def upgrading_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    # A new revision counts as started once its Flink job ran for 100 ms, so upgrades end fast.
    running = Broker(tmp_path_factory.mktemp("upgrading-broker"), ["--upgrade-running-for", "100ms"])
    yield running
    running.stop()


@pytest.fixture
def client(upgrading_broker: Broker) -> Iterator[Client]:
    with upgrading_broker.client() as c:
        yield c


def running(client: Client, script: str) -> Job:
    """Submits a streaming script and returns the job once it runs."""
    job = client.submit_sql(script, labels={"team": "recs"})
    return next(j for j in client.watch(job.id, timeout=WAIT) if j.state == JobState.RUNNING)


def cancel(client: Client, job_id: str) -> None:
    client.cancel(job_id)
    *_, last = client.watch(job_id, timeout=WAIT)
    assert last.state == JobState.CANCELED, last.state_reason


def insert_of(job: Job) -> str:
    return job.statements[-1].sql


def test_an_upgrade_replaces_the_running_job_by_a_revision_restored_from_its_savepoint(
    upgrading_broker: Broker, client: Client
) -> None:
    first = running(client, TO_SINK_A)
    assert (first.revision, first.lineage_id, first.upgrade, first.savepoint_chain) == (1, first.id, None, [])
    with pytest.raises(ValueError, match=f"job {first.id} is revision 1 of its lineage: no upgrade made it"):
        client.wait_for_upgrade(first.id, timeout=WAIT)

    key = f"pytest-{uuid.uuid4().hex}"
    second = client.upgrade_sql(
        first.id,
        TO_SINK_B,
        savepoint_directory=SAVEPOINTS,
        allow_non_restored_state=True,
        request_id=key,
    )
    assert second.id != first.id
    assert (second.revision, second.lineage_id, second.request_id) == (2, first.id, key)
    assert second.labels == {"team": "recs"}, "empty labels keep the job's"
    assert second.upgrade == Upgrade(
        kind="UPGRADE",
        previous_job_id=first.id,
        step="STOPPING_PREVIOUS",
        savepoint_path="",
        rollback_job_id="",
        note="",
        savepoint_directory=SAVEPOINTS,
        savepoint_format="CANONICAL",
    )
    assert not second.upgrade.ended

    done = client.wait_for_upgrade(second.id, timeout=WAIT)
    assert done.upgrade is not None and done.upgrade.step == "DONE" and done.upgrade.ended
    assert done.state == JobState.RUNNING, done.state_reason
    assert (done.revision, done.lineage_id) == (2, first.id)
    assert done.restored_from.startswith("file:/savepoints/py-upgrades/")
    assert done.savepoint_chain == [done.restored_from]
    assert done.upgrade.savepoint_path == done.restored_from
    assert insert_of(done) == "INSERT INTO sink_b SELECT * FROM gen"
    assert any(h.reason.startswith("upgrade done: revision 2 runs") for h in done.history)

    # The replaced revision stopped with the savepoint the new one restored from.
    stopped = client.get(first.id)
    assert stopped.state == JobState.CANCELED, stopped.state_reason
    assert stopped.savepoints[-1].kind == "STOP"
    assert stopped.savepoints[-1].location == done.restored_from

    assert [j.id for j in client.list(lineage_id=first.id)] == [second.id, first.id]
    assert [j.revision for j in client.list(lineage_id=first.id, page_size=1)] == [2, 1]

    # The same request id returns the revision it recorded; the replaced revision is over.
    again = client.upgrade_sql(first.id, TO_SINK_B, savepoint_directory=SAVEPOINTS, request_id=key)
    assert again.id == second.id
    with pytest.raises(FailedPrecondition, match="is CANCELED; only a RUNNING job can be upgraded"):
        client.upgrade_sql(first.id, TO_SINK_B)

    # The upgrade and its repetition are in the audit trail.
    with upgrading_broker.client(token="admin") as admin:
        events = [e for e in admin.audit_events(action="upgrade") if e.job_id == second.id]
    assert [(e.action, e.method, e.request_id, e.principal, e.outcome) for e in events] == [
        (AuditAction.UPGRADE, "UpgradeJob", key, "backend", "OK")
    ] * 2
    cancel(client, second.id)


def test_a_revision_that_fails_to_start_is_rolled_back_to_the_previous_script(client: Client) -> None:
    first = running(client, TO_SINK_A)
    second = client.upgrade_sql(first.id, FROM_MISSING_TABLE, savepoint_directory=SAVEPOINTS)

    rolled_back = client.wait_for_upgrade(second.id, timeout=WAIT)
    assert rolled_back.state == JobState.FAILED
    upgrade = rolled_back.upgrade
    assert upgrade is not None and upgrade.step == "ROLLED_BACK" and upgrade.ended
    assert upgrade.rollback_job_id
    assert upgrade.note.startswith("failed to start (") and "missing_table" in upgrade.note
    assert f"rolled back: revision 3 (job {upgrade.rollback_job_id})" in upgrade.note

    third = client.wait_for_upgrade(upgrade.rollback_job_id, timeout=WAIT)
    assert third.state == JobState.RUNNING, third.state_reason
    assert (third.revision, third.lineage_id) == (3, first.id)
    assert third.upgrade is not None
    assert (third.upgrade.kind, third.upgrade.step, third.upgrade.previous_job_id) == (
        "ROLLBACK",
        "DONE",
        second.id,
    )
    assert upgrade.savepoint_path
    assert third.restored_from == upgrade.savepoint_path
    assert insert_of(third) == "INSERT INTO sink_a SELECT * FROM gen"

    assert [j.id for j in client.list(lineage_id=first.id)] == [third.id, second.id, first.id]
    assert client.get(first.id).state == JobState.CANCELED
    cancel(client, third.id)


def test_an_upgrade_whose_savepoint_is_refused_is_abandoned_and_the_job_runs_on(client: Client) -> None:
    # No savepoint directory, and the cluster has no default one: Flink refuses the stop.
    first = running(client, TO_SINK_A)
    second = client.upgrade_sql(first.id, TO_SINK_B)

    abandoned = client.wait_for_upgrade(second.id, timeout=WAIT)
    assert abandoned.state == JobState.FAILED
    assert abandoned.upgrade is not None and abandoned.upgrade.step == "ABANDONED"
    assert "targetDirectory" in abandoned.upgrade.note, abandoned.upgrade.note
    assert (abandoned.upgrade.savepoint_path, abandoned.upgrade.rollback_job_id) == ("", "")
    assert client.get(first.id).state == JobState.RUNNING

    # The job that ran on can be upgraded again; the revision is numbered after the abandoned one.
    third = client.wait_for_upgrade(
        client.upgrade_sql(first.id, TO_SINK_B, savepoint_directory=SAVEPOINTS).id, timeout=WAIT
    )
    assert third.upgrade is not None and third.upgrade.step == "DONE"
    assert (third.state, third.revision, third.upgrade.previous_job_id) == (JobState.RUNNING, 3, first.id)
    assert [j.revision for j in client.list(lineage_id=first.id)] == [3, 2, 1]
    cancel(client, third.id)


def test_upgrades_are_refused_with_the_reason(client: Client) -> None:
    finished = client.submit_sql("SELECT 1 AS one", mode="batch")
    assert client.wait(finished.id, timeout=WAIT).state == JobState.FINISHED
    with pytest.raises(FailedPrecondition) as refused:
        client.upgrade_sql(finished.id, TO_SINK_B)
    assert refused.value.message.endswith(
        f"job {finished.id} is FINISHED; only a RUNNING job can be upgraded"
    )

    job = running(client, TO_SINK_A)
    with pytest.raises(InvalidArgument, match="is a SQL job; its new revision must be SQL too"):
        client.upgrade_python(job.id, "print('a program')")
    with pytest.raises(InvalidArgument, match="lineage_id"):
        next(client.list(lineage_id="not-a-job"))
    # Nothing was recorded by the refusals.
    assert [j.id for j in client.list(lineage_id=job.id)] == [job.id]
    cancel(client, job.id)


def test_async_upgrade(upgrading_broker: Broker) -> None:
    async def scenario() -> None:
        async with AsyncClient(upgrading_broker.target, token=upgrading_broker.tokens.submitter) as client:
            first = await client.submit_sql(TO_SINK_A)
            async for seen in client.watch(first.id, timeout=WAIT):
                if seen.state == JobState.RUNNING:
                    break
            second = await client.upgrade_sql(
                first.id, TO_SINK_B, savepoint_directory=SAVEPOINTS, native=True
            )
            assert second.upgrade is not None and second.upgrade.savepoint_format == "NATIVE"

            done = await client.wait_for_upgrade(second.id, timeout=WAIT)
            assert done.upgrade is not None and done.upgrade.step == "DONE"
            assert (done.state, done.revision, done.lineage_id) == (JobState.RUNNING, 2, first.id)
            assert done.savepoint_chain == [done.restored_from]
            assert [j.id async for j in client.list(lineage_id=first.id)] == [second.id, first.id]
            with pytest.raises(FailedPrecondition):
                await client.upgrade_sql(first.id, TO_SINK_A)

            await client.cancel(done.id)
            states = [j.state async for j in client.watch(done.id, timeout=WAIT)]
            assert states[-1] == JobState.CANCELED

    asyncio.run(scenario())
