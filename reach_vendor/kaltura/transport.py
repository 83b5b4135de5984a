"""Outgoing HTTP to Kaltura: API calls on keep-alive `http.client` connections, media
downloads on a `requests` session; one of each per thread, with the environment's proxy
and CA settings read once.

KalturaApiClient calls `requests.post`, which builds a new session for every call: a new
connection each time (against real Kaltura, a TCP and TLS handshake per API call) and a
fresh read of the proxy variables, `.netrc` and CA-bundle settings from the environment.
A daemon's environment does not change while it runs, so those are resolved once.

API calls (`post`) skip requests altogether when no proxy applies: a task makes several,
each a small POST with a complete body to one origin, and requests' preparation, adapters
and urllib3 pool cost about a fifth of a worker's CPU for them (measured with the no-op
throughput bench: 23.6-28.0 against 26.9-28.4 ms of daemon CPU a task, 48-58 against
47-50 tasks/s). Like urllib3, a kept connection is checked before reuse and replaced if
the server has closed it, and it is never retried blindly: a failure goes back to the
gateway, which decides what is safe to send again. Through a proxy, requests still does
the work (CONNECT tunnels, proxy authentication).

Media downloads stay on requests: they follow redirects and stream. Sessions and
connections are per thread (`requests.Session` is not documented as thread-safe, an
`http.client` connection carries one request at a time); worker threads live as long as
the daemon, so each keeps its connections.
"""

from __future__ import annotations

import gzip
import http.client
import os
import select
import socket
import ssl
import threading
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

import certifi
import requests
from requests.structures import CaseInsensitiveDict
from requests.utils import get_environ_proxies, select_proxy

_local = threading.local()


@dataclass(frozen=True)
class Response:
    """What KalturaApiClient reads of an answer: the body (decompressed) and headers."""

    status_code: int
    headers: Mapping[str, str]
    content: bytes


def session() -> requests.Session:
    """This thread's session (created on first use)."""
    s: requests.Session | None = getattr(_local, "session", None)
    if s is None:
        s = requests.Session()
        s.trust_env = False
        # What requests would otherwise pick up from the environment on every call.
        s.verify = _ca_bundle() or True
        _local.session = s
    return s


def request(method: str, url: str, **kwargs: Any) -> requests.Response:
    """`requests.request` on this thread's session, through the environment's proxy for
    `url`'s host if it sets one."""
    return session().request(method, url, proxies=proxies_for(url), **kwargs)


def post(url: str, body: bytes, headers: Mapping[str, str], timeout_s: float) -> Response:
    """POST `body` on this thread's kept connection to `url`'s origin (through requests
    if a proxy applies). Any failure is raised as is, and the connection is dropped."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {parts.scheme}://{parts.hostname or ''}")
    if select_proxy(url, _proxies_for_origin(f"{parts.scheme}://{parts.netloc}")):
        # Redirects are answered, not followed, on both paths: requests would resend a
        # redirected POST as a GET.
        r = request(
            "POST", url, data=body, headers=dict(headers), timeout=timeout_s, allow_redirects=False
        )
        return Response(r.status_code, r.headers, r.content)
    # The port always explicit: http.client would read the last group of an IPv6
    # address without one as the port.
    port = parts.port or (443 if parts.scheme == "https" else 80)
    conn = _connection(parts.scheme, parts.hostname, port, timeout_s)
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    try:
        conn.request("POST", target, body=body, headers=dict(headers))
        answer = conn.getresponse()
        content = answer.read()
    except BaseException:
        conn.close()
        raise
    encoding = (answer.getheader("Content-Encoding") or "").strip().lower()
    if encoding == "gzip":
        content = gzip.decompress(content)
    elif encoding == "deflate":
        content = zlib.decompress(content)
    return Response(answer.status, CaseInsensitiveDict(answer.getheaders()), content)


def _connection(scheme: str, host: str, port: int, timeout_s: float) -> http.client.HTTPConnection:
    connections: dict[tuple[str, str, int], http.client.HTTPConnection]
    connections = _local.__dict__.setdefault("connections", {})
    key = (scheme, host, port)
    conn = connections.get(key)
    if conn is not None and conn.sock is not None and _closed_by_server(conn.sock):
        conn.close()  # the next request opens a new one
    if conn is None:
        if scheme == "https":
            conn = http.client.HTTPSConnection(
                host, port, timeout=timeout_s, context=_tls_context()
            )
        else:
            conn = http.client.HTTPConnection(host, port, timeout=timeout_s)
        connections[key] = conn
    conn.timeout = timeout_s
    if conn.sock is not None:
        conn.sock.settimeout(timeout_s)
    return conn


def _closed_by_server(sock: socket.socket) -> bool:
    """An idle kept connection with something to read has been closed by the server (or
    holds bytes nobody asked for): either way it must not carry the next request."""
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    try:
        return bool(poller.poll(0))
    except OSError:
        return True


def _ca_bundle() -> str | None:
    """The CA bundle requests would use from the environment, if one is set."""
    return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or None


@lru_cache(maxsize=1)
def _tls_context() -> ssl.SSLContext:
    """Verification as requests does it: the environment's bundle, else certifi's."""
    bundle = _ca_bundle()
    if bundle and os.path.isdir(bundle):
        return ssl.create_default_context(capath=bundle)
    return ssl.create_default_context(cafile=bundle or certifi.where())


def proxies_for(url: str) -> dict[str, str]:
    """The proxies the environment (HTTP(S)_PROXY, NO_PROXY) sets for `url`'s host."""
    parts = urlsplit(url)
    return dict(_proxies_for_origin(f"{parts.scheme}://{parts.netloc}"))


@lru_cache(maxsize=256)
def _proxies_for_origin(origin: str) -> dict[str, str]:
    return dict(get_environ_proxies(origin))
