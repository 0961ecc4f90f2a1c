"""The audit trail through both clients: what an administrator sees, and who may not look."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from conftest import Broker
from flinkbroker import (
    AsyncClient,
    AuditAction,
    AuditEvent,
    Client,
    JobCanceled,
    PermissionDenied,
)

UNBOUNDED = "CREATE TABLE audited (id INT) WITH ('connector'='datagen');\nSELECT * FROM audited;"
WAIT = 60.0


def one(events: list[AuditEvent], job_id: str) -> AuditEvent:
    matching = [e for e in events if e.job_id == job_id]
    assert len(matching) == 1, f"events of job {job_id}: {matching}"
    return matching[0]


def test_an_admin_sees_who_submitted_and_cancelled_what(broker: Broker, client: Client) -> None:
    finished_request = f"pytest-{uuid.uuid4().hex}"
    finished = client.submit_sql("SELECT 1 AS one", mode="batch", request_id=finished_request)
    cancelled = client.submit_sql(UNBOUNDED)
    client.cancel(cancelled.id)
    with pytest.raises(JobCanceled):
        client.wait(cancelled.id, timeout=WAIT)
    client.wait(finished.id, timeout=WAIT)

    with broker.client(token="admin") as admin:
        submits = list(admin.audit_events(principal="backend", action=AuditAction.SUBMIT))
        cancels = list(admin.audit_events(tenant="pytest", action="cancel"))

    submit = one(submits, finished.id)
    assert submit.action == AuditAction.SUBMIT
    assert (submit.principal, submit.tenant) == ("backend", "pytest")
    assert (submit.method, submit.request_id, submit.outcome, submit.detail) == (
        "SubmitSql",
        finished_request,
        "OK",
        "",
    )
    assert submit.ok
    assert one(submits, cancelled.id).principal == "backend"
    assert {e.action for e in submits} == {AuditAction.SUBMIT}
    assert {e.principal for e in submits} == {"backend"}

    cancel = one(cancels, cancelled.id)
    assert cancel.action == AuditAction.CANCEL
    assert (cancel.principal, cancel.tenant, cancel.method, cancel.outcome) == (
        "backend",
        "pytest",
        "CancelJob",
        "OK",
    )
    assert finished.id not in {e.job_id for e in cancels}

    # Times are aware UTC datetimes of the calls, and the trail is newest first.
    times = [e.time for e in (submit, one(submits, cancelled.id), cancel)]
    aware = [t for t in times if t is not None and t.tzinfo == timezone.utc]
    assert aware == times
    assert aware == sorted(aware)
    assert abs(datetime.now(timezone.utc) - aware[0]) < timedelta(minutes=5)
    assert [e.id for e in submits] == sorted((e.id for e in submits), reverse=True)


def test_audit_events_page_through_the_trail_and_filter_by_time(broker: Broker, client: Client) -> None:
    jobs = [client.submit_sql("SELECT 1 AS one", mode="batch") for _ in range(3)]
    for job in jobs:
        client.wait(job.id, timeout=WAIT)

    with broker.client(token="admin") as admin:
        everything = list(admin.audit_events(action="submit"))
        paged = list(admin.audit_events(action="submit", page_size=1))
        assert [e.id for e in paged] == [e.id for e in everything]
        assert len(paged) >= len(jobs)

        first = one(everything, jobs[0].id)
        assert first.time is not None
        since_first = {e.job_id for e in admin.audit_events(action="submit", start_time=first.time)}
        assert {job.id for job in jobs} <= since_first
        before_first = {e.job_id for e in admin.audit_events(action="submit", end_time=first.time)}
        assert before_first.isdisjoint(job.id for job in jobs)

        with pytest.raises(ValueError, match="start_time: needs a timezone-aware datetime"):
            next(admin.audit_events(start_time=datetime(2024, 1, 1)))
        with pytest.raises(ValueError, match="action: must be an AuditAction or one of 'submit'"):
            next(admin.audit_events(action="delete"))


@pytest.mark.parametrize("role", ["submitter", "reader"])
def test_only_an_admin_may_read_the_audit_trail(broker: Broker, role: str) -> None:
    with broker.client(token=role) as caller, pytest.raises(PermissionDenied) as refused:
        next(caller.audit_events())
    assert refused.value.message.startswith("ListAuditEvents needs the role admin")

    # The refusal itself is in the trail.
    principal = {"submitter": "backend", "reader": "dashboard"}[role]
    with broker.client(token="admin") as admin:
        denied = next(admin.audit_events(principal=principal, action=AuditAction.DENIED))
    assert (denied.method, denied.outcome, denied.tenant) == (
        "ListAuditEvents",
        "PERMISSION_DENIED",
        "pytest",
    )
    assert not denied.ok


def test_async_audit_events(broker: Broker) -> None:
    async def scenario() -> None:
        async with AsyncClient(broker.target, token=broker.tokens.submitter) as client:
            job = await client.submit_sql(UNBOUNDED)
            await client.cancel(job.id)
            with pytest.raises(JobCanceled):
                await client.wait(job.id, timeout=WAIT)
            with pytest.raises(PermissionDenied):
                await anext(client.audit_events())
        async with AsyncClient(broker.target, token=broker.tokens.admin) as admin:
            events = [e async for e in admin.audit_events(tenant="pytest", page_size=2)]
        of_job = [e for e in events if e.job_id == job.id]
        assert [(e.action, e.method, e.principal) for e in of_job] == [
            (AuditAction.CANCEL, "CancelJob", "backend"),
            (AuditAction.SUBMIT, "SubmitSql", "backend"),
        ]

    asyncio.run(scenario())
