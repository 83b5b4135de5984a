"""Outgoing HTTP to Kaltura: API calls and media downloads on one `requests.Session` per thread.

A session keeps its connections alive (`requests.post`, which the official client calls,
opens one per call); proxies, CA bundle and `.netrc` come from the environment as requests
reads them. Per thread because a session is not documented as thread-safe, and worker
threads live as long as the daemon, so each keeps its connections.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import requests

_local = threading.local()


def session() -> requests.Session:
    """This thread's session (created on first use)."""
    s: requests.Session | None = getattr(_local, "session", None)
    if s is None:
        s = requests.Session()
        _local.session = s
    return s


def request(method: str, url: str, **kwargs: Any) -> requests.Response:
    """`requests.request` on this thread's session."""
    return session().request(method, url, **kwargs)


def post(url: str, body: bytes, headers: Mapping[str, str], timeout_s: float) -> requests.Response:
    """An API POST. A redirect is answered, not followed: requests would resend it as a GET.
    Never retried here: the gateway decides what is safe to send again."""
    return session().post(
        url, data=body, headers=dict(headers), timeout=timeout_s, allow_redirects=False
    )
