"""Speech processors, looked up by the name used in the daemon's configuration.

Engines register a factory rather than an instance so that `import processors` stays cheap:
the daemon, the CLI and the tests import this package, but only the engine that the
configuration names should pay for loading its libraries and models.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from reach_vendor.engines.base import (
    SAMPLE_RATE,
    ProcessingCancelled,
    ProcessingRequest,
    Processor,
    ProcessorError,
    ProcessorUnavailable,
    Transcript,
    UnsupportedTaskError,
    Word,
)

__all__ = [
    "SAMPLE_RATE",
    "ProcessingCancelled",
    "ProcessingRequest",
    "Processor",
    "ProcessorError",
    "ProcessorUnavailable",
    "Transcript",
    "UnknownProcessorError",
    "UnsupportedTaskError",
    "Word",
    "available",
    "create",
    "register",
]

Factory = Callable[[dict[str, Any]], Processor]

_factories: dict[str, Factory] = {}


class UnknownProcessorError(ValueError):
    """The configuration names a processor nobody registered.

    A ValueError and not a ProcessorError: it is a deployment mistake found at start-up,
    never the fault of a customer's task.
    """


def register(name: str, factory: Factory) -> None:
    """Make `name` creatable; registering a name again replaces its factory."""
    _factories[name] = factory


def available() -> list[str]:
    return sorted(_factories)


def create(name: str, options: dict[str, Any] | None = None) -> Processor:
    try:
        factory = _factories[name]
    except KeyError:
        raise UnknownProcessorError(
            f"unknown processor {name!r}; available: {', '.join(available()) or 'none'}"
        ) from None
    return factory(dict(options or {}))


def _pocketsphinx(options: dict[str, Any]) -> Processor:
    from reach_vendor.engines.local.pocketsphinx import PocketSphinxProcessor

    return PocketSphinxProcessor(options)


def _scripted(options: dict[str, Any]) -> Processor:
    from reach_vendor.engines.local.scripted import ScriptedProcessor

    return ScriptedProcessor(options)


register("pocketsphinx", _pocketsphinx)


def _faster_whisper(options: dict[str, Any]) -> Processor:
    try:
        from reach_vendor.engines.local.whisper import WhisperProcessor
    except ImportError as exc:  # the optional extra is not installed
        raise ValueError(
            f"faster-whisper is not installed ({exc.name}); "
            "install the extra: pip install 'reach-vendor[whisper]'"
        ) from None
    return WhisperProcessor(options)


register("faster-whisper", _faster_whisper)


def _register_remote() -> None:
    from reach_vendor.engines import remote

    for type_name in remote.TYPES:
        register(type_name, remote.factory(type_name))


_register_remote()


register("scripted", _scripted)
