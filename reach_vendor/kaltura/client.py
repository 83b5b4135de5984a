"""KalturaApiClient, sending its requests on this thread's kept-alive session.

`openRequestUrl` is the pinned client's own (KalturaApiClient 23.10.0: same headers, JSON
body or multipart upload, every failure wrapped as KalturaClientException -4 so the gateway's
retries see what they always saw), with `requests.post` replaced by `transport.post`.

`loadPlugins` loads the plugins the daemon calls once per process, not all ~120 of the
client's for every client: each worker thread has a client, and the stock search cost ~10 ms
of CPU per client (0.4 ms now), 0.7 s of a 64-worker daemon's first tasks; every plugin's
classes also stayed in memory (~11 MiB) for the daemon's life.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import requests
from KalturaClient import KalturaClient
from KalturaClient.Client import _get_file_params
from KalturaClient.exceptions import KalturaClientException
from requests_toolbelt.multipart.encoder import MultipartEncoder

from reach_vendor.kaltura import transport

_PLUGINS = ("Core", "Reach", "Caption", "Attachment", "Transcript")
"""The plugins whose services or objects the daemon uses (Transcript: a transcript is an
attachment asset of its own type). An object of a plugin not loaded is read as the type
the call expects (KalturaClient/Base.py, `KalturaObjectFactory.create`)."""
_plugins: list[Any] | None = None
"""The plugins registered by the first client, in order. Plugins are singletons
(`KalturaXClientPlugin.get()`), and their objects and enums go to process-wide factories,
so a later client only needs its own service objects."""
_plugins_lock = threading.Lock()


class KeepAliveClient(KalturaClient):  # type: ignore[misc]
    _finding: list[Any] | None = None

    def loadPlugins(self) -> None:  # noqa: N802 - the client's own method name
        global _plugins
        with _plugins_lock:
            if _plugins is None:
                self._finding = []
                for name in _PLUGINS:
                    self.loadPlugin(name)  # registers through registerPluginServices below
                _plugins, self._finding = self._finding, None
                return
        for plugin in _plugins:
            self.registerPluginServices(plugin)

    def registerPluginServices(self, plugin: Any) -> None:  # noqa: N802
        if self._finding is not None:
            self._finding.append(plugin)
        super().registerPluginServices(plugin)

    def openRequestUrl(  # noqa: N802 - the client's own method name
        self,
        url: str,
        params: Any,
        files: Any,
        requestHeaders: dict[str, str],  # noqa: N803
        requestTimeout: float,  # noqa: N803
    ) -> requests.Response:
        requestHeaders["Accept"] = "text/xml"
        requestHeaders["Accept-encoding"] = "gzip"
        try:
            if files:
                fields = {"json": params.toJson()}
                fields.update(_get_file_params(files))
                encoder = MultipartEncoder(fields=fields)
                requestHeaders["Content-Type"] = encoder.content_type
                body = encoder.to_string()
            else:
                requestHeaders["Content-Type"] = "application/json"
                # As requests' `json=`: no body for no parameters, NaN refused.
                body = json.dumps(params.get(), allow_nan=False).encode() if params.get() else b""
            answer = transport.post(url, body, requestHeaders, requestTimeout)
        except Exception as e:
            raise KalturaClientException(e, KalturaClientException.ERROR_CONNECTION_FAILED) from e
        if 300 <= answer.status_code < 400:
            # api_v3 does not redirect; a front end that does (http -> https, an old
            # host name) wants the configuration changed, and a POST must not follow it.
            raise KalturaClientException(
                f"HTTP {answer.status_code} redirect to "
                f"{answer.headers.get('Location', '(no Location)')}: kaltura.service_url "
                "must be the address that answers",
                KalturaClientException.ERROR_CONNECTION_FAILED,
            )
        return answer
