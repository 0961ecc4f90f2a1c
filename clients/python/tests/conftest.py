"""Runs the real broker against the SQL Gateway stand-in for the tests.

The binaries come from FLINKBROKER_BIN and FLINKBROKER_STANDIN_BIN, by default the debug builds
under the repository's target/ (`cargo build -p flinkbroker -p flinkbroker-testkit --bin flinkbroker --bin sql_gateway_standin`).
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest

from flinkbroker import Client, TlsConfig, Unavailable

REPO = Path(__file__).resolve().parents[3]
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
BROKER_BIN = Path(os.environ.get("FLINKBROKER_BIN", TARGET / "debug" / "flinkbroker"))
STANDIN_BIN = Path(
    os.environ.get("FLINKBROKER_STANDIN_BIN", TARGET / "debug" / "sql_gateway_standin")
)
FAKE_FLINK = REPO / "tests" / "fixtures" / "fake-flink" / "flink"
STARTUP_DEADLINE = 30.0
# One value of each type of the type fixtures, read as rows and as Arrow.
ALL_TYPES = (
    "SELECT 1 AS c_int, 'a' AS c_str, CAST(NULL AS INT) AS c_null, TRUE AS c_bool, "
    "CAST(7 AS BIGINT) AS c_bigint, ARRAY[1,2] AS c_arr, MAP['k', 1] AS c_map, "
    "ROW(1, 'x') AS c_row, DATE '2024-01-02' AS c_date, TIME '03:04:05' AS c_time, "
    "TIMESTAMP '2024-01-02 03:04:05.678' AS c_ts, TO_TIMESTAMP_LTZ(0, 3) AS c_ltz, "
    "CAST(1.5 AS DECIMAL(10,2)) AS c_dec, CAST(2.5 AS DOUBLE) AS c_double, X'CAFE' AS c_bytes"
)

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def eventually(what: str, check: Callable[[], T | None], deadline: float = STARTUP_DEADLINE) -> T:
    """Polls `check` until it returns something other than None, or fails after `deadline`."""
    end = time.monotonic() + deadline
    while True:
        value = check()
        if value is not None:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"{what}: not within {deadline}s")
        time.sleep(0.05)


def port_open(port: int) -> bool | None:
    with socket.socket() as s:
        return True if s.connect_ex(("127.0.0.1", port)) == 0 else None


@dataclass
class Tokens:
    submitter: str
    reader: str
    admin: str


@dataclass(frozen=True)
class ServerTls:
    """What the broker serves TLS with: its certificate chain and key (PEM files), and for
    client certificates the CA they must chain to and the file mapping their subjects to
    principals. `client` is what the helper's own clients connect with (the CA to trust and,
    for mTLS, a client certificate)."""

    cert: Path
    key: Path
    client: TlsConfig
    client_ca: Path | None = None
    principals: Path | None = None

    def args(self) -> list[str]:
        args = ["--tls-cert", str(self.cert), "--tls-key", str(self.key)]
        if self.client_ca is not None:
            args += ["--tls-client-ca", str(self.client_ca)]
        if self.principals is not None:
            args += ["--mtls-principals-file", str(self.principals)]
        return args


class Broker:
    """A `flinkbroker serve` process with its own stand-in, database, token file and FLINK_HOME.

    With `tls` it serves TLS (and client certificates, if `tls` names a client CA); with
    `bearer_tokens=False` it has no token file (and no `tokens`): callers present client
    certificates."""

    def __init__(
        self,
        workdir: Path,
        extra_args: list[str],
        *,
        tls: ServerTls | None = None,
        bearer_tokens: bool = True,
    ) -> None:
        if not BROKER_BIN.exists() or not STANDIN_BIN.exists():
            raise RuntimeError(
                f"build {BROKER_BIN} and {STANDIN_BIN} first "
                "(cargo build -p flinkbroker -p flinkbroker-testkit --bin flinkbroker --bin sql_gateway_standin)"
            )
        self.workdir = workdir
        self.tls = tls
        self._tokens: Tokens | None = None
        credentials: list[str] = []
        if bearer_tokens:
            self._tokens = Tokens(*(f"test-{secrets.token_hex(16)}" for _ in range(3)))
            self._write_tokens(self._tokens)
            credentials += ["--auth-tokens-file", str(workdir / "tokens.json")]
        if tls is not None:
            credentials += tls.args()
        self.flink_home = workdir / "flink-home"
        (self.flink_home / "bin").mkdir(parents=True)
        (self.flink_home / "bin" / "flink").symlink_to(FAKE_FLINK)
        self.set_flink_behaviour("exit 0\n")
        gateway_port = free_port()
        self.port = free_port()
        self.target = f"127.0.0.1:{self.port}"
        self._standin = subprocess.Popen(
            [str(STANDIN_BIN), "--listen", f"127.0.0.1:{gateway_port}"],
            stdout=open(workdir / "standin.log", "wb"),
            stderr=subprocess.STDOUT,
        )
        gateway = f"http://127.0.0.1:{gateway_port}"
        self._broker = subprocess.Popen(
            [
                str(BROKER_BIN),
                "serve",
                "--listen",
                self.target,
                # Several brokers may run at once: none takes the default metrics port.
                "--metrics-listen",
                "off",
                "--database-url",
                f"sqlite://{workdir}/broker.db?mode=rwc",
                "--sql-gateway-url",
                gateway,
                "--jobmanager-url",
                gateway,
                *credentials,
                "--flink-home",
                str(self.flink_home),
                "--submitter-work-dir",
                str(workdir / "submitters"),
                "--poll-interval",
                "100ms",
                *extra_args,
            ],
            stdout=open(workdir / "broker.log", "wb"),
            stderr=subprocess.STDOUT,
        )
        try:
            eventually("the stand-in listens", lambda: port_open(gateway_port))
            eventually("the broker listens", lambda: port_open(self.port))
            with self.client(token="submitter" if bearer_tokens else None) as client:
                eventually("the broker answers", lambda: self._answers(client))
        except BaseException:
            self.stop()
            raise

    def _write_tokens(self, tokens: Tokens) -> None:
        def entry(token: str, principal: str, roles: list[str]) -> dict:
            digest = hashlib.sha256(token.encode()).hexdigest()
            return {"sha256": digest, "principal": principal, "tenant": "pytest", "roles": roles}

        entries = [
            entry(tokens.submitter, "backend", ["submitter", "reader"]),
            entry(tokens.reader, "dashboard", ["reader"]),
            entry(tokens.admin, "oncall", ["admin"]),
        ]
        (self.workdir / "tokens.json").write_text(json.dumps({"tokens": entries}))

    @staticmethod
    def _answers(client: Client) -> bool | None:
        try:
            next(iter(client.list(page_size=1)), None)
            return True
        except Unavailable:
            return None

    def set_flink_behaviour(self, script: str) -> None:
        """What the fake `flink` launcher does after printing its arguments (sh)."""
        (self.flink_home / "behaviour.sh").write_text(script)

    @property
    def tokens(self) -> Tokens:
        if self._tokens is None:
            raise AttributeError("this broker was started without a token file: it has no tokens")
        return self._tokens

    def token(self, token: str | None) -> str | None:
        """The token a role name ("submitter", "reader", "admin") stands for; any other
        string is a token itself, None none."""
        if token not in ("submitter", "reader", "admin"):
            return token
        value: str = getattr(self.tokens, token)
        return value

    def client(
        self, token: str | None = "submitter", target: str | None = None, tls: TlsConfig | None = None
    ) -> Client:
        """A client with the token of `token` (see `token`), over TLS with `tls`, or with
        `self.tls.client` when the broker serves TLS."""
        if tls is None and self.tls is not None:
            tls = self.tls.client
        return Client(target or self.target, token=self.token(token), tls=tls)

    def stop(self) -> None:
        for process in (self._broker, self._standin):
            if process.poll() is None:
                process.terminate()
        for process in (self._broker, self._standin):
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    # Small result messages, so that a result stream is many messages a test can cut between.
    running = Broker(tmp_path_factory.mktemp("broker"), ["--max-message-bytes", "1KiB"])
    yield running
    running.stop()


@pytest.fixture
def client(broker: Broker) -> Iterator[Client]:
    with broker.client() as c:
        yield c


class DroppingProxy:
    """A TCP proxy to `upstream` whose open connections a test can drop at a moment it chooses."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self._upstream = upstream
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.connections = 0
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                downstream, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self._upstream)
            with self._lock:
                self.connections += 1
                self._open += [downstream, upstream]
            threading.Thread(target=self._pump, args=(downstream, upstream), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, downstream), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        for s in (source, sink):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def drop_connections(self) -> None:
        """Closes every connection open now, in both directions; new ones pass again."""
        with self._lock:
            dropping, self._open = self._open, []
        for s in dropping:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def close(self) -> None:
        self._listener.close()
        self.drop_connections()
