"""Which processor serves a task, and one shared instance of each configured engine.

Rules are an ordered list (cheap engine by default, a better one for some partners or
languages, alignment where it can be done); the first rule whose every condition holds
picks the engine, else the default does. Engines load models, so each is created once and
shared by all workers, at start-up (`worker.daemon.load_processors`): a bad option stops the
daemon, not a task.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

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
    options: Mapping[str, object] = field(default_factory=dict)


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

    def close(self) -> None:
        """Let go of what the engines hold (models, their threads); a later task loads
        its engine again."""
        with self._lock:
            instances, self._instances = list(self._instances.values()), {}
        for instance in instances:
            close = getattr(instance, "close", None)
            if close is not None:
                close()

    def referenced(self) -> list[str]:
        """The engines some task can be sent to, default first."""
        return list(dict.fromkeys([self.default, *(r.processor for r in self.routes)]))
