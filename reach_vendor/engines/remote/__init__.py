"""Remote processors: a task runs as a job of an outside service (see `driver`).

One module per service; each provides a `RemoteBackend` and a pure status mapping. The
engine's options are shared between the backend (service, credentials, staging) and the
driver's poll policy (`poll_initial_s`, `poll_max_s`, `poll_factor`, `max_wait_s`,
`unavailable_limit_s`); unknown keys are refused when the daemon starts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from reach_vendor.engines.base import Processor
from reach_vendor.engines.remote.driver import PollPolicy, RemoteBackend, RemoteJobProcessor
from reach_vendor.engines.remote.options import Options


def _backend(type_name: str) -> Callable[[Options], RemoteBackend]:
    # Imported on demand: boto3 is only loaded when an engine needs it.
    if type_name == "amazon_transcribe":
        from reach_vendor.engines.remote.amazon_transcribe import AmazonTranscribeBackend

        return AmazonTranscribeBackend
    if type_name == "remote_transcription":
        from reach_vendor.engines.remote.remote_transcription import RemoteTranscriptionBackend

        return RemoteTranscriptionBackend
    if type_name == "smartdocumentor":
        from reach_vendor.engines.remote.smartdocumentor import SmartDocumentorBackend

        return SmartDocumentorBackend
    if type_name == "alteryx":
        from reach_vendor.engines.remote.alteryx import AlteryxBackend

        return AlteryxBackend
    if type_name == "veeva_vault":
        from reach_vendor.engines.remote.veeva import VeevaVaultBackend

        return VeevaVaultBackend
    raise ValueError(f"unknown remote processor type {type_name!r}")


TYPES = ("amazon_transcribe", "remote_transcription", "smartdocumentor", "alteryx", "veeva_vault")


def factory(type_name: str) -> Callable[[dict[str, Any]], Processor]:
    def create(options: dict[str, Any]) -> Processor:
        opts = Options(type_name, options)
        policy = PollPolicy.from_options(opts)
        backend = _backend(type_name)(opts)
        opts.finish()
        return RemoteJobProcessor(backend, policy)

    return create
