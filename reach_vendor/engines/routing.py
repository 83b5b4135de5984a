"""Which processor serves a task, and one shared instance of each configured engine.

Vendors sell different products on one daemon: machine captions on the cheap engine, a
better engine for some partners or languages, alignment on the engine that can align. The
rules are an ordered list; the first rule whose every condition holds picks the engine,
otherwise the default does. Matching is pure data (no Kaltura types) so it is tested alone.

Engines are expensive to create (models are loaded), so each configured engine is created
once, shared by all worker threads, and created at start-up by `preload` so that a bad
option (a missing model directory) stops the daemon with a config error instead of failing
the first customer's task.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from reach_vendor.engines import registry as processors
from reach_vendor.engines.base import Processor


@dataclass(frozen=True)
class TaskTraits:
    """What routing may look at."""

    service_feature: int
    service_type: int
    language: str
    partner_id: int


@dataclass(frozen=True)
class Route:
    """Conditions are alternatives within a key and all keys must hold; None matches any."""

    processor: str
    service_features: frozenset[int] | None = None
    service_types: frozenset[int] | None = None
    languages: frozenset[str] | None = None
    """Lower-case Kaltura language names."""
    partner_ids: frozenset[int] | None = None

    def matches(self, task: TaskTraits) -> bool:
        return (
            (self.service_features is None or task.service_feature in self.service_features)
            and (self.service_types is None or task.service_type in self.service_types)
            and (self.languages is None or task.language.strip().lower() in self.languages)
            and (self.partner_ids is None or task.partner_id in self.partner_ids)
        )


@dataclass(frozen=True)
class Engine:
    """A configured engine: a registered processor type with its options."""

    type: str
    options: Mapping[str, Any] = field(default_factory=dict)


class ProcessorPool:
    def __init__(
        self,
        default: str,
        engines: Mapping[str, Engine] | None = None,
        routes: Sequence[Route] = (),
    ) -> None:
        self.default = default
        self.routes = tuple(routes)
        self._engines = dict(engines or {})
        self._instances: dict[str, Processor] = {}
        self._lock = threading.Lock()

    @classmethod
    def fixed(cls, processor: Processor) -> ProcessorPool:
        """Every task goes to `processor` (tests and embedding)."""
        pool = cls(processor.name)
        pool._instances[processor.name] = processor
        return pool

    def name_for(self, task: TaskTraits) -> str:
        for route in self.routes:
            if route.matches(task):
                return route.processor
        return self.default

    def for_task(self, task: TaskTraits) -> Processor:
        return self.get(self.name_for(task))

    def get(self, name: str) -> Processor:
        with self._lock:
            instance = self._instances.get(name)
            if instance is None:
                engine = self._engines.get(name, Engine(name))
                instance = processors.create(engine.type, dict(engine.options))
                self._instances[name] = instance
            return instance

    def referenced(self) -> list[str]:
        """The engines some task can be sent to, default first."""
        return list(dict.fromkeys([self.default, *(r.processor for r in self.routes)]))

    def preload(self) -> None:
        for name in self.referenced():
            self.get(name)
