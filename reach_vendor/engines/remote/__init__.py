"""Remote processors: a task runs as a job of an outside service (see `driver`).

One module per service, each with a `RemoteBackend` and a pure status mapping; their
options (`options`) are validated before a backend module, and boto3, is imported.
"""

from __future__ import annotations

from reach_vendor.engines.base import Processor
from reach_vendor.engines.remote.driver import PollPolicy, RemoteBackend, RemoteJobProcessor
from reach_vendor.engines.remote.options import (
    AlteryxOptions,
    AmazonTranscribeOptions,
    RemoteOptions,
    RemoteTranscriptionOptions,
    SmartDocumentorOptions,
    VeevaVaultOptions,
)

OPTIONS: dict[str, type[RemoteOptions]] = {
    "amazon_transcribe": AmazonTranscribeOptions,
    "remote_transcription": RemoteTranscriptionOptions,
    "smartdocumentor": SmartDocumentorOptions,
    "alteryx": AlteryxOptions,
    "veeva_vault": VeevaVaultOptions,
}
"""Engine type -> its options model."""

TYPES = tuple(OPTIONS)


def create(options: RemoteOptions) -> Processor:
    """The engine for validated `options`; its backend is imported only now. A backend
    whose S3 staging needs boto3 without it installed is a config error (ValueError)."""
    try:
        return RemoteJobProcessor(_backend(options), PollPolicy.from_options(options))
    except ImportError as exc:
        if (exc.name or "").split(".")[0] not in ("boto3", "botocore"):
            raise
        kind = next(k for k, model in OPTIONS.items() if isinstance(options, model))
        raise ValueError(f"{kind} needs boto3: pip install 'reach-vendor[amazon]'") from None


def _backend(options: RemoteOptions) -> RemoteBackend:
    backend: RemoteBackend
    if isinstance(options, AmazonTranscribeOptions):
        from reach_vendor.engines.remote.amazon_transcribe import AmazonTranscribeBackend

        backend = AmazonTranscribeBackend(options)
    elif isinstance(options, RemoteTranscriptionOptions):
        from reach_vendor.engines.remote.remote_transcription import RemoteTranscriptionBackend

        backend = RemoteTranscriptionBackend(options)
    elif isinstance(options, SmartDocumentorOptions):
        from reach_vendor.engines.remote.smartdocumentor import SmartDocumentorBackend

        backend = SmartDocumentorBackend(options)
    elif isinstance(options, AlteryxOptions):
        from reach_vendor.engines.remote.alteryx import AlteryxBackend

        backend = AlteryxBackend(options)
    else:
        from reach_vendor.engines.remote.veeva import VeevaVaultBackend

        backend = VeevaVaultBackend(options)
    return backend
