"""Every worker thread has its own KalturaApiClient: a client after the first one must not
search the plugin folder again (about 10 ms of CPU each, for 64 workers at their first
task), yet have every service the stock client has, each bound to itself."""

from __future__ import annotations

import os
from typing import Any

import pytest
from KalturaClient import KalturaClient, KalturaConfiguration
from KalturaClient.Client import PluginServicesProxy

from reach_vendor.kaltura.client import KeepAliveClient


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
    assert "reach.entryVendorTask" in stock and "uploadToken" in stock
    clients = [KeepAliveClient(_conf()) for _ in range(3)]
    for client in clients:
        services = _services(client)
        assert services.keys() == stock.keys()
        for name, service in services.items():
            assert type(service) is type(stock[name])
            assert service.client is client
