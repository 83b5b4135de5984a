"""HTTP calls to remote services, with their failures sorted the way the driver needs.

Every backend meets the same three kinds of failure and must treat them alike: the service
is briefly unavailable (network, 5xx, 429: poll again later), our credentials are refused
(401/403: a vendor configuration problem, the task is retried later), or the service
refuses this particular job (other 4xx: the task fails with the service's reason).
Messages carry the service name and path, never request bodies or headers, where several
of these services put credentials.
"""

from __future__ import annotations

import threading
import time
from typing import Any
from urllib.parse import urlsplit

import requests

from reach_vendor.common.redact import redact, register_secret
from reach_vendor.engines.remote.driver import RemoteAuthError, RemoteRefused, RemoteUnavailable


class RemoteNotFound(RemoteRefused):
    """404: the job (or output) does not exist at the service."""

    def __init__(self, message: str, status: int = 404) -> None:
        super().__init__(message, status)


def _path_only(path: str) -> str:
    # Messages may reach the customer: name the service and path, never a host or query.
    return urlsplit(path).path or "/"


class HttpService:
    def __init__(self, service: str, base_url: str, timeout_s: float) -> None:
        self.service = service
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.session = requests.Session()

    def url(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            return path
        return f"{self.base_url}/{path.lstrip('/')}"

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """One request; returns only 2xx responses, raises the driver's error kinds."""
        kwargs.setdefault("timeout", self.timeout_s)
        what = f"{self.service} {method} {_path_only(path)}"
        try:
            resp = self.session.request(method, self.url(path), **kwargs)
        except requests.RequestException as exc:
            raise RemoteUnavailable(f"{what}: {type(exc).__name__}") from None
        if resp.status_code < 300:
            return resp
        detail = redact(resp.text.strip()[:200])
        message = f"{what}: HTTP {resp.status_code}" + (f": {detail}" if detail else "")
        if resp.status_code in (401, 403):
            raise RemoteAuthError(message)
        if resp.status_code == 404:
            raise RemoteNotFound(message)
        if resp.status_code == 429 or resp.status_code >= 500:
            raise RemoteUnavailable(message, retry_after_s=_retry_after(resp))
        raise RemoteRefused(message, resp.status_code)

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        resp = self.call(method, path, **kwargs)
        try:
            return resp.json()
        except ValueError:
            raise RemoteUnavailable(
                f"{self.service} {method} {_path_only(path)}: answer is not JSON"
            ) from None


def _retry_after(resp: requests.Response) -> float | None:
    try:
        return float(resp.headers.get("Retry-After", ""))
    except ValueError:
        return None


class BearerToken:
    """An OAuth2 client-credentials token, cached until shortly before it expires.

    SmartDocumentor asks clients to cache the token (it lives an hour) and Alteryx tokens
    also last an hour, so a token is fetched once per hour, not once per poll.
    """

    def __init__(
        self,
        http: HttpService,
        token_url: str,
        form: dict[str, str],
    ) -> None:
        self.http = http
        self.token_url = token_url
        self.form = form
        self._token: str | None = None
        self._expires = 0.0
        self._lock = threading.Lock()  # worker threads share one engine and one token

    def header(self, clock: float) -> dict[str, str]:
        with self._lock:
            return self._header(clock)

    def _header(self, clock: float) -> dict[str, str]:
        if self._token is None or clock >= self._expires:
            try:
                data = self.http.json("POST", self.token_url, data=self.form)
            except RemoteRefused as exc:
                # OAuth2 answers a bad or expired client secret with 400 invalid_client
                # (RFC 6749 5.2); a wrong token URL gives 404: both are the vendor's setup.
                raise RemoteAuthError(str(exc)) from None
            token = data.get("access_token") if isinstance(data, dict) else None
            if not isinstance(token, str) or not token:
                raise RemoteAuthError(f"{self.http.service}: token answer has no access_token")
            register_secret(token)
            self._token = token
            self._expires = clock + max(30.0, float(data.get("expires_in") or 3600) - 60)
        return {"Authorization": f"Bearer {self._token}"}

    def invalidate(self) -> None:
        with self._lock:
            self._token = None

    def renew(self) -> None:
        """Ask for a token now, whatever is cached: proves the client id and secret."""
        self.invalidate()
        self.header(time.monotonic())

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """A request with the token; a refused token is renewed once (it may have been
        revoked or expired early), a second refusal means the credentials are wrong."""
        extra = dict(kwargs.pop("headers", None) or {})
        for attempt in (1, 2):
            try:
                return self.http.call(
                    method, path, headers={**extra, **self.header(time.monotonic())}, **kwargs
                )
            except RemoteAuthError:
                if attempt == 2:
                    raise
                self.invalidate()
        raise AssertionError("unreachable")

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        resp = self.call(method, path, **kwargs)
        try:
            return resp.json()
        except ValueError:
            raise RemoteUnavailable(f"{self.http.service} {method}: answer is not JSON") from None
