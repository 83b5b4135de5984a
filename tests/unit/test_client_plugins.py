"""Every worker thread has its own KalturaApiClient: a client after the first one must not
search the plugin folder again (about 10 ms of CPU each, for 64 workers at their first
task), yet have the services of the plugins the daemon uses as the stock client has them,
each bound to itself. The other ~120 plugins are not loaded (their classes stayed in the
daemon's memory for nothing)."""

from __future__ import annotations

import os
from typing import Any

import pytest
from KalturaClient import KalturaClient, KalturaConfiguration
from KalturaClient.Client import PluginServicesProxy

from reach_vendor.kaltura.client import _PLUGINS, KeepAliveClient
from tests.support.processes import modules_loaded_by


def _services(client: Any) -> dict[str, Any]:
    """Service name (plugin.service for a plugin's) -> service object."""
    out: dict[str, Any] = {}
    for name, value in vars(client).items():
        if isinstance(value, PluginServicesProxy):
            out.update({f"{name}.{s}": v for s, v in vars(value).items()})
        elif hasattr(value, "client") and value.client is client:
            out[name] = value
    return out


def _conf() -> KalturaConfiguration:
    return KalturaConfiguration(serviceUrl="http://127.0.0.1:9")


def test_later_clients_do_not_search_the_plugins_again(monkeypatch: pytest.MonkeyPatch) -> None:
    KeepAliveClient(_conf())  # the process's first (or not: earlier tests may have made one)
    listed: list[str] = []
    real_listdir = os.listdir

    def listdir(path: Any = ".") -> list[str]:
        listed.append(str(path))
        return real_listdir(path)

    monkeypatch.setattr(os, "listdir", listdir)
    KeepAliveClient(_conf())
    assert not [p for p in listed if p.endswith("Plugins")]


def test_every_client_has_the_stock_clients_services_bound_to_itself() -> None:
    stock = _services(KalturaClient(_conf()))
    loaded = {n for n in stock if n.split(".")[0] in _LOADED}
    clients = [KeepAliveClient(_conf()) for _ in range(3)]
    for client in clients:
        services = _services(client)
        assert loaded | _CALLED <= services.keys()
        for name, service in services.items():
            # (Core's bulkUpload service, which the stock client's BulkUpload plugin
            # shadows, is the one name not shared.)
            assert name in stock or name == "bulkUpload"
            assert type(service) is type(stock.get(name, service))
            assert service.client is client


_LOADED = {"reach", "caption", "attachment", "transcript"}
_CALLED = {
    "session", "appToken", "uploadToken", "flavorAsset", "reach.entryVendorTask",
    "caption.captionAsset", "attachment.attachmentAsset",
}  # fmt: skip
"""What reach_vendor/kaltura calls."""


def test_a_client_loads_the_plugins_the_daemon_uses_only() -> None:
    loaded = modules_loaded_by(
        "from KalturaClient import KalturaConfiguration\n"
        "from reach_vendor.kaltura.client import KeepAliveClient\n"
        "KeepAliveClient(KalturaConfiguration())\n"
    )
    plugins = [m for m in loaded if m.startswith("KalturaClient.Plugins.")]
    # The five and what they import (Reach: EventNotification, BulkUpload, Schedule...),
    # not the 120 of the stock client.
    assert len(_PLUGINS) <= len(plugins) <= 12
