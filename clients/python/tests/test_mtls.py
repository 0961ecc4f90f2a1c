"""TLS with client certificates: a broker that names its callers by their certificate.

A CA, the broker's certificate (for 127.0.0.1 and localhost) and client certificates are made
here with trustme. The broker maps a certificate's subject CN to a principal through its
`--mtls-principals-file`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme

from conftest import Broker, ServerTls
from flinkbroker import (
    AsyncClient,
    Client,
    JobState,
    PermissionDenied,
    RpcError,
    TlsConfig,
    Unauthenticated,
    Unavailable,
)

MAPPED_CN = "recsys-backend"
WAIT = 60.0


@dataclass(frozen=True)
class Pki:
    """The broker's TLS files and what clients present."""

    server: ServerTls
    ca_pem: bytes
    mapped: TlsConfig
    unmapped: TlsConfig
    foreign: TlsConfig

    @property
    def no_certificate(self) -> TlsConfig:
        return TlsConfig(ca=self.ca_pem)


def client_identity(ca: trustme.CA, ca_pem: bytes, common_name: str) -> TlsConfig:
    issued = ca.issue_cert(common_name=common_name)
    chain = b"".join(blob.bytes() for blob in issued.cert_chain_pems)
    return TlsConfig(ca=ca_pem, cert=chain, key=issued.private_key_pem.bytes())


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    workdir = tmp_path_factory.mktemp("pki")
    ca = trustme.CA()
    ca_pem = ca.cert_pem.bytes()
    server = ca.issue_cert("127.0.0.1", "localhost")
    (workdir / "server.pem").write_bytes(b"".join(blob.bytes() for blob in server.cert_chain_pems))
    server.private_key_pem.write_to_path(str(workdir / "server-key.pem"))
    ca.cert_pem.write_to_path(str(workdir / "client-ca.pem"))
    principals = {"principals": [{"name": MAPPED_CN, "tenant": "recsys", "roles": ["submitter", "reader"]}]}
    (workdir / "principals.json").write_text(json.dumps(principals))
    mapped = client_identity(ca, ca_pem, MAPPED_CN)
    return Pki(
        server=ServerTls(
            cert=workdir / "server.pem",
            key=workdir / "server-key.pem",
            client=mapped,
            client_ca=workdir / "client-ca.pem",
            principals=workdir / "principals.json",
        ),
        ca_pem=ca_pem,
        mapped=mapped,
        unmapped=client_identity(ca, ca_pem, "intruder"),
        # A certificate with the mapped name, from a CA the broker does not trust.
        foreign=client_identity(trustme.CA(), ca_pem, MAPPED_CN),
    )


def start(tmp_path_factory: pytest.TempPathFactory, name: str, pki: Pki, bearer_tokens: bool) -> Broker:
    return Broker(tmp_path_factory.mktemp(name), [], tls=pki.server, bearer_tokens=bearer_tokens)


@pytest.fixture(scope="module")
def mtls_broker(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[Broker]:
    """Client certificates only: the broker requires one at the TLS handshake."""
    running = start(tmp_path_factory, "mtls", pki, bearer_tokens=False)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def mtls_and_tokens_broker(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[Broker]:
    """Client certificates or bearer tokens: a caller may present either."""
    running = start(tmp_path_factory, "mtls-tokens", pki, bearer_tokens=True)
    yield running
    running.stop()


def submit_and_wait(client: Client) -> None:
    job = client.submit_sql("SELECT 1 AS one", mode="batch")
    assert (job.principal, job.tenant) == (MAPPED_CN, "recsys")
    assert [row["one"] for row in client.results(job.id)] == [1]
    finished = client.wait(job.id, timeout=WAIT)
    assert finished.state == JobState.FINISHED
    assert finished.principal == MAPPED_CN


async def submit_and_wait_async(client: AsyncClient) -> None:
    job = await client.submit_sql("SELECT 1 AS one", mode="batch")
    assert (job.principal, job.tenant) == (MAPPED_CN, "recsys")
    assert [row["one"] async for row in client.results(job.id)] == [1]
    finished = await client.wait(job.id, timeout=WAIT)
    assert finished.state == JobState.FINISHED
    assert finished.principal == MAPPED_CN


def test_a_client_certificate_names_the_caller(mtls_broker: Broker, pki: Pki) -> None:
    with Client(mtls_broker.target, tls=pki.mapped) as client:
        submit_and_wait(client)
    with mtls_broker.client(token=None) as client:
        assert next(client.list(page_size=1)).principal == MAPPED_CN


def test_a_client_certificate_names_the_caller_async(mtls_broker: Broker, pki: Pki) -> None:
    async def scenario() -> None:
        async with AsyncClient(mtls_broker.target, tls=pki.mapped) as client:
            await submit_and_wait_async(client)

    asyncio.run(scenario())


def sync_call(target: str, tls: TlsConfig, token: str | None = None) -> None:
    with Client(target, token=token, tls=tls) as client:
        client.submit_sql("SELECT 1 AS one", mode="batch")


def async_call(target: str, tls: TlsConfig, token: str | None = None) -> None:
    async def scenario() -> None:
        async with AsyncClient(target, token=token, tls=tls) as client:
            await client.submit_sql("SELECT 1 AS one", mode="batch")

    asyncio.run(scenario())


Call = Callable[..., None]
CALLS = pytest.mark.parametrize("call", [sync_call, async_call], ids=["sync", "async"])


@CALLS
def test_without_a_certificate_the_handshake_refuses_the_caller(
    mtls_broker: Broker, pki: Pki, call: Call
) -> None:
    # Without bearer tokens the broker requires a client certificate at the TLS handshake: no
    # connection comes up, so the call never reaches the broker and fails UNAVAILABLE.
    for tls in (pki.no_certificate, pki.foreign):
        with pytest.raises(Unavailable) as refused:
            call(mtls_broker.target, tls)
        assert isinstance(refused.value, RpcError)
        assert "failed to connect to all addresses" in refused.value.message


@CALLS
def test_a_certificate_the_mapping_does_not_name_is_permission_denied(
    mtls_broker: Broker, pki: Pki, call: Call
) -> None:
    with pytest.raises(PermissionDenied) as refused:
        call(mtls_broker.target, pki.unmapped)
    assert 'subject CN "intruder" is not in --mtls-principals-file' in refused.value.message


@CALLS
def test_with_tokens_too_a_caller_without_certificate_or_token_is_unauthenticated(
    mtls_and_tokens_broker: Broker, pki: Pki, call: Call
) -> None:
    with pytest.raises(Unauthenticated) as refused:
        call(mtls_and_tokens_broker.target, pki.no_certificate)
    assert "needs a credential: a client certificate, or the metadata" in refused.value.message
    # A token alone gets the caller in, over the same TLS channel.
    call(mtls_and_tokens_broker.target, pki.no_certificate, mtls_and_tokens_broker.tokens.submitter)


def test_with_tokens_too_a_certificate_still_names_the_caller(mtls_and_tokens_broker: Broker) -> None:
    with mtls_and_tokens_broker.client(token=None) as client:
        submit_and_wait(client)


def test_tls_files_may_be_paths(mtls_broker: Broker, pki: Pki, tmp_path: Path) -> None:
    files: list[Path] = []
    for name, pem in (("ca.pem", pki.mapped.ca), ("cert.pem", pki.mapped.cert), ("key.pem", pki.mapped.key)):
        assert isinstance(pem, bytes)
        (tmp_path / name).write_bytes(pem)
        files.append(tmp_path / name)
    ca, cert, key = files
    with Client(mtls_broker.target, tls=(ca, cert, str(key))) as client:
        submit_and_wait(client)
