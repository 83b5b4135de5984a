"""The API transport (a per-thread requests session under KalturaApiClient) against the
emulator over real sockets: kept connections, a connection the server closed, gzip, TLS, a
proxy, redirects."""

from __future__ import annotations

import datetime
import http.client
import ipaddress
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from reach_devkit.emulator import KalturaEmulator
from reach_devkit.emulator.vendor_setup import Vendor
from reach_vendor.kaltura import transport
from reach_vendor.kaltura.gateway import KalturaGateway, KalturaTransientError, TaskKey
from tests.support.daemon import add_test_vendor
from tests.support.gateway import add_tasks, make_gateway


def _calls_on_fresh_thread(gw: KalturaGateway, n: int) -> list[int]:
    """`n` getJobs sweeps on a new thread (connections are per thread); offers per sweep."""
    counts: list[int] = []
    thread = threading.Thread(target=lambda: counts.extend(len(gw.fetch_jobs()) for _ in range(n)))
    thread.start()
    thread.join(30)
    return counts


def test_one_thread_keeps_one_connection(emulator: KalturaEmulator, vendor: Vendor) -> None:
    add_tasks(emulator, vendor, 2)
    gw = make_gateway(emulator, vendor)
    assert _calls_on_fresh_thread(gw, 5) == [2] * 5
    # The app-token session (two requests) and five getJobs, all on one connection.
    assert len(emulator.http_requests) == 2 + 5
    assert emulator.connections_opened == 1


def test_api_calls_and_media_downloads_share_the_threads_connection(
    emulator: KalturaEmulator, vendor: Vendor, tmp_path: Path
) -> None:
    media = tmp_path / "a.mp3"
    media.write_bytes(b"ID3 not really audio")
    task_id = emulator.add_task(
        vendor_partner_id=vendor.partner_id, partner_id=4124832, media_path=media
    )
    gw = make_gateway(emulator, vendor)
    downloaded: list[bytes] = []

    def work() -> None:
        task = emulator.task(task_id)
        key = TaskKey(task_id, int(task["partnerId"]), str(task["entryId"]), task["accessKey"])
        url, _flavor = gw.media_url(gw.get_task(key), key)
        with transport.request("GET", url, stream=True, timeout=10) as resp:
            downloaded.append(resp.content)

    thread = threading.Thread(target=work)
    thread.start()
    thread.join(30)
    assert downloaded == [media.read_bytes()]
    assert emulator.http_requests[-1]["actions"] == "serveFlavor"
    assert emulator.connections_opened == 1


def test_a_connection_the_server_closed_is_replaced_not_failed(
    emulator: KalturaEmulator, vendor: Vendor, caplog: pytest.LogCaptureFixture
) -> None:
    add_tasks(emulator, vendor, 1)
    gw = make_gateway(emulator, vendor)
    results: list[int] = []
    closed = threading.Event()
    go_on = threading.Event()

    def worker() -> None:
        results.append(len(gw.fetch_jobs()))
        closed.set()
        go_on.wait(10)
        results.append(len(gw.fetch_jobs()))

    thread = threading.Thread(target=worker)
    thread.start()
    assert closed.wait(10)
    assert emulator.drop_idle_connections() == 1  # the server's keep-alive timeout
    time.sleep(0.2)  # the FIN reaches the client's socket
    calls_before = len(emulator.http_requests)
    go_on.set()
    thread.join(10)
    assert results == [1, 1]
    assert emulator.connections_opened == 2
    # Replaced before sending: no failed attempt for the gateway to retry.
    assert len(emulator.http_requests) == calls_before + 1
    assert not [r for r in caplog.records if "retrying" in r.getMessage()]


def test_large_answers_come_gzipped_and_are_read(emulator: KalturaEmulator, vendor: Vendor) -> None:
    ids = add_tasks(emulator, vendor, 40)
    offers = make_gateway(emulator, vendor).fetch_jobs()
    assert sorted(o.kaltura_task_id for o in offers) == sorted(ids)
    assert emulator.gzipped_responses >= 1


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "reach-vendor test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.fixture
def tls_emulator(tmp_path: Path) -> Iterator[tuple[KalturaEmulator, Vendor, Path]]:
    cert, key = _self_signed(tmp_path)
    with KalturaEmulator(tls=(cert, key)) as emu:
        yield emu, add_test_vendor(emu), cert


def test_tls_is_verified_against_the_configured_bundle(
    tls_emulator: tuple[KalturaEmulator, Vendor, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    emu, vendor, cert = tls_emulator
    assert emu.url.startswith("https://127.0.0.1:")
    add_tasks(emu, vendor, 1)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
    assert _calls_on_fresh_thread(make_gateway(emu, vendor), 2) == [1, 1]
    assert emu.connections_opened == 1


def test_an_untrusted_certificate_is_refused(
    tls_emulator: tuple[KalturaEmulator, Vendor, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    emu, vendor, _ = tls_emulator
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    gw = make_gateway(emu, vendor, retries=1)
    with pytest.raises(KalturaTransientError, match="CERTIFICATE_VERIFY_FAILED"):
        gw.vendor_ks()
    assert emu.http_requests == []  # nothing was sent over the unverified connection


class _ForwardingProxy(BaseHTTPRequestHandler):
    """A plain HTTP proxy: requests arrive with the absolute URL and are forwarded."""

    protocol_version = "HTTP/1.1"
    forwarded: list[str] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        target = urlsplit(self.path)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.forwarded.append(target.path)
        upstream = http.client.HTTPConnection(target.hostname or "", target.port, timeout=10)
        headers = {k: v for k, v in self.headers.items() if k.lower() != "proxy-connection"}
        upstream.request("POST", target.path + (f"?{target.query}" if target.query else ""),
                         body=body, headers=headers)  # fmt: skip
        answer = upstream.getresponse()
        data = answer.read()
        upstream.close()
        self.send_response(answer.status)
        for name, value in answer.getheaders():
            if name.lower() not in ("connection", "transfer-encoding", "content-length"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def _serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """`handler` on a loopback port for the test's length; yields its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The environment's HTTP proxy for the test: a forwarding proxy on loopback; yields
    the paths it forwarded."""
    _ForwardingProxy.forwarded = []
    with _serving(_ForwardingProxy) as url:
        monkeypatch.setenv("HTTP_PROXY", url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        yield _ForwardingProxy.forwarded


def test_calls_go_through_the_environments_proxy(
    emulator: KalturaEmulator, vendor: Vendor, proxy: list[str]
) -> None:
    add_tasks(emulator, vendor, 3)
    assert _calls_on_fresh_thread(make_gateway(emulator, vendor), 1) == [3]
    assert len(proxy) == len(emulator.http_requests) == 3


class _MovedPermanently(BaseHTTPRequestHandler):
    """A front end that moved: every request is redirected, as http -> https would be."""

    protocol_version = "HTTP/1.1"
    requests_seen: list[str] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.requests_seen.append(self.command)
        self.send_response(301)
        self.send_header("Location", "https://api.example.invalid/api_v3/")
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_POST

    def log_message(self, format: str, *args: object) -> None:
        pass


def _assert_redirect_refused(emulator: KalturaEmulator, vendor: Vendor) -> None:
    _MovedPermanently.requests_seen = []
    with _serving(_MovedPermanently) as moved:
        gw = make_gateway(emulator, vendor, service_url=moved, retries=1)
        with pytest.raises(KalturaTransientError) as err:
            gw.vendor_ks()
    message = str(err.value)
    assert "HTTP 301 redirect to https://api.example.invalid/api_v3/" in message
    assert "kaltura.service_url" in message
    assert _MovedPermanently.requests_seen == ["POST", "POST"]  # never a GET after it


def test_a_redirect_is_a_configuration_error_not_followed(
    emulator: KalturaEmulator, vendor: Vendor
) -> None:
    _assert_redirect_refused(emulator, vendor)


def test_a_redirect_through_the_proxy_is_not_followed_either(
    emulator: KalturaEmulator, vendor: Vendor, proxy: list[str]
) -> None:
    _assert_redirect_refused(emulator, vendor)
    assert len(proxy) == 2  # both attempts went through the proxy
