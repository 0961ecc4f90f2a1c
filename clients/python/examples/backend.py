"""The two job functions of a FastAPI-style backend, on top of flinkbroker-client.

The broker records every job, so a retried request (same `request_id`) returns the job the
first attempt started instead of starting another, and a failed job raises `JobFailed` with
the root cause (`JobFailed.root_cause`) that an endpoint can hand back to its caller.

The broker's address and token come from FLINKBROKER_TARGET and FLINKBROKER_TOKEN.
"""

from __future__ import annotations

import os
from typing import Any

from flinkbroker import Client, ResultLimits


def _client() -> Client:
    return Client(
        os.environ.get("FLINKBROKER_TARGET", "127.0.0.1:50051"), token=os.environ.get("FLINKBROKER_TOKEN")
    )


def _submit_sql(
    script: str,
    *,
    streaming: bool = False,
    max_rows: int = 1000,
    request_id: str | None = None,
    timeout: float = 600.0,
) -> list[dict[str, Any]]:
    """Runs a Flink SQL script to its end and returns the rows of its last query (at most
    `max_rows`; a streaming query is stopped there). Raises JobFailed with the root cause."""
    with _client() as broker:
        job = broker.submit_sql(
            script,
            mode="streaming" if streaming else "batch",
            request_id=request_id,
            result_limits=ResultLimits(max_rows=max_rows),
        )
        broker.wait(job.id, timeout=timeout)
        return [dict(row) for row in broker.results(job.id)]


def _submit_python_script(
    path: str,
    *,
    args: list[str] | None = None,
    parallelism: int = 1,
    request_id: str | None = None,
    timeout: float = 600.0,
) -> dict[str, str]:
    """Submits a PyFlink script (a local path, sent inline, or a URL) and waits for its job to
    end. Returns the job's ids; raises JobFailed (with `flink run`'s output) or JobCanceled."""
    with _client() as broker:
        job = broker.submit_python(
            path, program_args=args or [], parallelism=parallelism, request_id=request_id
        )
        done = broker.wait(job.id, timeout=timeout)
        return {"job_id": done.id, "flink_job_id": done.flink_job_id, "state": done.state.name}
