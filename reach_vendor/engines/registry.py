"""Speech engines by the name used in the configuration, created with validated options.

Engines register a factory, not an instance, and their option models live apart from them:
importing the registry stays cheap, and only the engines configured load their libraries.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from reach_vendor.engines import remote
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
from reach_vendor.engines.local.options import (
    PocketSphinxOptions,
    ScriptedOptions,
    WhisperCppOptions,
    WhisperOptions,
)
from reach_vendor.engines.options import OptionsT, parse_options

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
    "register_engine",
]

Factory = Callable[[dict[str, object]], Processor]
"""Builds an engine from its raw YAML options."""

_factories: dict[str, Factory] = {}


class UnknownProcessorError(ValueError):
    """The configuration names a processor nobody registered: a deployment mistake found at
    start-up (a ValueError), never the fault of a customer's task."""


def register(name: str, factory: Factory) -> None:
    """Make `name` creatable from raw options; registering a name again replaces it."""
    _factories[name] = factory


def register_engine(
    name: str, options: type[OptionsT], factory: Callable[[OptionsT], Processor]
) -> None:
    """Make `name` creatable from options validated by the `options` model first."""
    register(name, lambda raw: factory(parse_options(name, options, raw)))


def available() -> list[str]:
    return sorted(_factories)


def create(name: str, options: Mapping[str, object] | None = None) -> Processor:
    """A new engine; a ValueError names the offending option when `options` are wrong."""
    try:
        factory = _factories[name]
    except KeyError:
        raise UnknownProcessorError(
            f"unknown processor {name!r}; available: {', '.join(available()) or 'none'}"
        ) from None
    return factory(dict(options or {}))


def _pocketsphinx(options: PocketSphinxOptions) -> Processor:
    from reach_vendor.engines.local.pocketsphinx import PocketSphinxProcessor

    return PocketSphinxProcessor(options)


def _faster_whisper(options: WhisperOptions) -> Processor:
    try:
        from reach_vendor.engines.local.whisper import WhisperProcessor
    except ImportError as exc:  # a broken install: faster-whisper is a dependency
        raise ValueError(
            f"faster-whisper cannot be imported ({exc.name}); reinstall reach-vendor"
        ) from None
    return WhisperProcessor(options)


def _whisper_cpp(options: WhisperCppOptions) -> Processor:
    try:
        from reach_vendor.engines.local.whisper_cpp import WhisperCppProcessor
    except ImportError as exc:  # a broken install: pywhispercpp is a dependency
        raise ValueError(
            f"whisper-cpp cannot be imported ({exc.name}); reinstall reach-vendor"
        ) from None
    return WhisperCppProcessor(options)


def _scripted(options: ScriptedOptions) -> Processor:
    from reach_vendor.engines.local.scripted import ScriptedProcessor

    return ScriptedProcessor(options)


register_engine("pocketsphinx", PocketSphinxOptions, _pocketsphinx)
register_engine("faster-whisper", WhisperOptions, _faster_whisper)
register_engine("whisper-cpp", WhisperCppOptions, _whisper_cpp)
register_engine("scripted", ScriptedOptions, _scripted)
for _type, _model in remote.OPTIONS.items():
    register_engine(_type, _model, remote.create)
