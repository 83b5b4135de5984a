"""One transport session serves several hosts: the environment's proxy choice must stay
each host's own (NO_PROXY honoured per host)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from reach_vendor.kaltura import transport


class _Recorder(BaseHTTPRequestHandler):
    """Answers 204 to anything and records the request line's target."""

    protocol_version = "HTTP/1.1"
    seen: ClassVar[list[str]]

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self.seen.append(self.path)
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


def _recorder() -> type[_Recorder]:
    return type("Recorder", (_Recorder,), {"seen": []})


@contextmanager
def _serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


def test_one_session_routes_each_host_by_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    proxy, direct = _recorder(), _recorder()
    with _serving(proxy) as proxy_port, _serving(direct) as port:
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy_port}")
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        monkeypatch.delenv("no_proxy", raising=False)
        monkeypatch.delenv("http_proxy", raising=False)
        statuses: list[int] = []

        def calls() -> None:  # a fresh thread: a session that read today's environment
            for n in range(2):
                for host in ("127.0.0.1", "localhost"):
                    url = f"http://{host}:{port}/{host}/{n}"
                    statuses.append(transport.request("GET", url, timeout=10).status_code)

        worker = threading.Thread(target=calls)
        worker.start()
        worker.join(30)
    assert statuses == [204] * 4
    assert direct.seen == ["/127.0.0.1/0", "/127.0.0.1/1"]
    assert proxy.seen == [f"http://localhost:{port}/localhost/{n}" for n in range(2)]
