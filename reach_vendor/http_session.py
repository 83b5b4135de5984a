"""Outgoing HTTP to Kaltura (API calls and media downloads): one keep-alive session per
thread, with the environment's proxy settings read once.

KalturaApiClient calls `requests.post`, which builds a new session for every call: a new
connection each time (against real Kaltura, a TCP and TLS handshake per API call) and a
fresh read of the proxy variables, `.netrc` and CA-bundle settings from the environment,
which alone was about a tenth of the CPU a task cost. A daemon's environment does not
change while it runs, so the same settings are resolved once per host instead, and
`trust_env` is off so requests does not look again. Sessions are per thread because
`requests.Session` is not documented as thread-safe; worker threads live as long as the
daemon, so each keeps its connections.
"""

from __future__ import annotations

import os
import threading
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.utils import get_environ_proxies

_local = threading.local()


def session() -> requests.Session:
    """This thread's session (created on first use)."""
    s: requests.Session | None = getattr(_local, "session", None)
    if s is None:
        s = requests.Session()
        s.trust_env = False
        # What requests would otherwise pick up from the environment on every call.
        s.verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
        _local.session = s
    return s


def request(method: str, url: str, **kwargs: Any) -> requests.Response:
    """`requests.request` on this thread's session, through the environment's proxy for
    `url`'s host if it sets one."""
    return session().request(method, url, proxies=proxies_for(url), **kwargs)


def proxies_for(url: str) -> dict[str, str]:
    """The proxies the environment (HTTP(S)_PROXY, NO_PROXY) sets for `url`'s host."""
    parts = urlsplit(url)
    return dict(_proxies_for_origin(f"{parts.scheme}://{parts.netloc}"))


@lru_cache(maxsize=256)
def _proxies_for_origin(origin: str) -> dict[str, str]:
    return dict(get_environ_proxies(origin))
