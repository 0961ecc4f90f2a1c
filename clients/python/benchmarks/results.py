"""How fast the Python client reads a statement's results: rows iterated, to_pandas() through
ROWS, to_arrow(), and to_pandas() through ARROW.

Against a running broker, reading a job that has finished:

    python benchmarks/results.py --target HOST:PORT --job-id JOB [--token TOKEN]

Or on its own: it starts the SQL Gateway stand-in and a broker (FLINKBROKER_STANDIN_BIN and
FLINKBROKER_BIN, by default the release builds under the repository's target/), submits a batch
query of 1,000,000 rows of BIGINT, STRING, DECIMAL(10, 2), DOUBLE and TIMESTAMP(3) from the
stand-in's datagen, waits for it to finish (its results are then all logged), and reads them:

    cargo build --release --locked -p flinkbroker -p flinkbroker-testkit \\
        --bin flinkbroker --bin sql_gateway_standin
    python benchmarks/results.py [--rows 1000000] [--repeat 1]

Each path reads the whole statement anew; with --repeat it is timed that many times and the
best time counts. Needs the client with pyarrow and pandas (`pip install './clients/python[pandas]'`).
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas
import pyarrow

from flinkbroker import Client, JobState, ResultStream, Unavailable

REPO = Path(__file__).resolve().parents[3]
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
STARTUP_DEADLINE = 60.0
COLUMNS = "id BIGINT, name STRING, price DECIMAL(10, 2), score DOUBLE, ts TIMESTAMP(3)"


def script(rows: int) -> str:
    return (
        f"CREATE TABLE bench ({COLUMNS}) WITH ('connector'='datagen', 'number-of-rows'='{rows}', "
        f"'fields.id.kind'='sequence', 'fields.id.start'='1', 'fields.id.end'='{rows}', "
        "'fields.name.length'='12');\n"
        "SELECT * FROM bench;"
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_for_port(port: int, what: str) -> None:
    deadline = time.monotonic() + STARTUP_DEADLINE
    while True:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port} within {STARTUP_DEADLINE}s")
        time.sleep(0.05)


@contextmanager
def own_broker() -> Iterator[str]:
    """Runs the stand-in and a broker (anonymous callers on loopback, SQLite in a temporary
    directory) and yields the broker's address; stops both after."""
    broker_bin = Path(os.environ.get("FLINKBROKER_BIN", TARGET / "release" / "flinkbroker"))
    standin_bin = Path(os.environ.get("FLINKBROKER_STANDIN_BIN", TARGET / "release" / "sql_gateway_standin"))
    for binary in (broker_bin, standin_bin):
        if not binary.exists():
            raise SystemExit(
                f"{binary} is missing: build it (cargo build --release --locked -p flinkbroker "
                "-p flinkbroker-testkit --bin flinkbroker --bin sql_gateway_standin) or name the "
                "binaries in FLINKBROKER_BIN and FLINKBROKER_STANDIN_BIN"
            )
    print(f"broker: {broker_bin}\nstand-in: {standin_bin}")
    with tempfile.TemporaryDirectory(prefix="flinkbroker-bench-") as workdir:
        gateway_port, port = free_port(), free_port()
        gateway = f"http://127.0.0.1:{gateway_port}"
        processes: list[subprocess.Popen[bytes]] = []
        try:
            with open(Path(workdir) / "standin.log", "wb") as log:
                processes.append(
                    subprocess.Popen(
                        [str(standin_bin), "--listen", f"127.0.0.1:{gateway_port}"],
                        stdout=log,
                        stderr=subprocess.STDOUT,
                    )
                )
            wait_for_port(gateway_port, "the stand-in")
            with open(Path(workdir) / "broker.log", "wb") as log:
                processes.append(
                    subprocess.Popen(
                        [
                            str(broker_bin),
                            "serve",
                            "--listen",
                            f"127.0.0.1:{port}",
                            "--metrics-listen",
                            "off",
                            "--database-url",
                            f"sqlite://{workdir}/broker.db?mode=rwc",
                            "--sql-gateway-url",
                            gateway,
                            "--jobmanager-url",
                            gateway,
                            "--submitter-work-dir",
                            f"{workdir}/submitters",
                            "--poll-interval",
                            "100ms",
                        ],
                        stdout=log,
                        stderr=subprocess.STDOUT,
                    )
                )
            wait_for_port(port, "the broker")
            yield f"127.0.0.1:{port}"
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def submit_and_wait(client: Client, rows: int) -> str:
    deadline = time.monotonic() + STARTUP_DEADLINE
    while True:
        try:
            next(iter(client.list(page_size=1)), None)
            break
        except Unavailable:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    started = time.perf_counter()
    job = client.submit_sql(script(rows), mode="batch")
    client.wait(job.id)
    print(f"job {job.id}: {rows:,} rows logged in {time.perf_counter() - started:.1f} s")
    return job.id


def rows_logged(client: Client, job_id: str, statement: int | None) -> int:
    """The rows of the statement's results (default: the last query), all logged."""
    job = client.get(job_id)
    if job.state != JobState.FINISHED:
        raise SystemExit(f"job {job_id} is {job.state.name}: read a job that has finished")
    queries = [s for s in job.statements if s.is_query and (statement is None or s.index == statement)]
    if not queries or queries[-1].result_log is None:
        which = "the last query" if statement is None else f"statement {statement}"
        raise SystemExit(f"job {job_id}: {which} has no results")
    return queries[-1].result_log.rows_logged


def timed(read: Callable[[], int], expected: int, repeat: int) -> float:
    """The best of `repeat` runs of `read` (which returns the rows it read), in seconds."""
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        count = read()
        elapsed = time.perf_counter() - started
        if count != expected:
            raise RuntimeError(f"read {count} rows, expected {expected}")
        best = min(best, elapsed)
    return best


def run(client: Client, job_id: str, statement: int | None, repeat: int) -> None:
    rows = rows_logged(client, job_id, statement)

    def results() -> ResultStream:
        return client.results(job_id, statement)

    paths: list[tuple[str, Callable[[], int]]] = [
        ("rows (iterated)", lambda: sum(1 for _ in results())),
        ("to_pandas() through ROWS", lambda: len(results().to_pandas(arrow=False))),
        ("to_arrow()", lambda: results().to_arrow().num_rows),
        ("to_pandas() through ARROW", lambda: len(results().to_pandas(arrow=True))),
    ]
    print(
        f"reading {rows:,} rows of job {job_id} (python {sys.version.split()[0]}, "
        f"pyarrow {pyarrow.__version__}, pandas {pandas.__version__}; best of {repeat})"
    )
    rates: dict[str, float] = {}
    for name, read in paths:
        seconds = timed(read, rows, repeat)
        rates[name] = rows / seconds
        print(f"  {name:<27} {rates[name]:>12,.0f} rows/s  {seconds:7.2f} s", flush=True)
    ratio = rates["to_pandas() through ARROW"] / rates["to_pandas() through ROWS"]
    print(f"  to_pandas(): ARROW / ROWS  {ratio:.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--target", help="a running broker, host:port (else one is started)")
    parser.add_argument("--job-id", help="a finished job to read (with --target)")
    parser.add_argument("--statement", type=int, help="the statement to read (default: the last query)")
    parser.add_argument("--token", default=os.environ.get("FLINKBROKER_TOKEN"), help="bearer token")
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of the query it submits itself")
    parser.add_argument("--repeat", type=int, default=1, help="times each path is timed (the best counts)")
    args = parser.parse_args()
    if (args.target is None) != (args.job_id is None):
        parser.error("--target and --job-id go together")
    if args.target is not None:
        with Client(args.target, token=args.token) as client:
            run(client, args.job_id, args.statement, args.repeat)
        return
    with own_broker() as target, Client(target) as client:
        run(client, submit_and_wait(client, args.rows), args.statement, args.repeat)


if __name__ == "__main__":
    main()
