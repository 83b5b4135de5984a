"""Reading an engine's YAML options: typed, with secrets from files, typos rejected.

Each backend reads its own keys through `Options` and calls `finish()`, so a misspelt key
fails at start-up ("unknown amazon_transcribe option 'bukcet'") instead of silently
falling back to a default in production.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from reach_vendor.common.redact import register_secret


class Options:
    def __init__(self, type_name: str, options: dict[str, Any]) -> None:
        self.type_name = type_name
        self._values = dict(options)
        self._used: set[str] = set()

    def _get(self, key: str) -> Any:
        self._used.add(key)
        return self._values.get(key)

    def has(self, key: str) -> bool:
        return self._values.get(key) is not None

    def text(self, key: str, default: str | None = None) -> str:
        value = self._get(key)
        if value is None:
            if default is None:
                raise ValueError(f"{self.type_name} option {key!r} is required")
            return default
        if not isinstance(value, str | int) or isinstance(value, bool) or str(value) == "":
            raise ValueError(f"{self.type_name} option {key!r} must be a non-empty string")
        return str(value)

    def optional_text(self, key: str) -> str | None:
        return self.text(key) if self.has(key) else self._get(key)

    def number(self, key: str, default: float) -> float:
        value = self._get(key)
        if value is None:
            return default
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise ValueError(f"{self.type_name} option {key!r} must be a number")
        if value < 0:
            raise ValueError(f"{self.type_name} option {key!r} must not be negative")
        return float(value)

    def flag(self, key: str, default: bool) -> bool:
        value = self._get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise ValueError(f"{self.type_name} option {key!r} must be true or false")
        return value

    def mapping(self, key: str) -> dict[str, Any]:
        value = self._get(key)
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise ValueError(f"{self.type_name} option {key!r} must be a mapping")
        return dict(value)

    def secret_file(self, key: str) -> str:
        """Read a credential from the file named by option `key`.

        Credentials live in files (systemd credentials, mounted secrets), never in the YAML;
        the value is registered for redaction before anything could log it, and errors
        name the option and file, never the content.
        """
        path = Path(self.text(key))
        try:
            value = path.read_text().strip()
        except OSError as exc:
            raise ValueError(
                f"{self.type_name} option {key!r}: cannot read {path}: {exc.strerror}"
            ) from None
        if not value:
            raise ValueError(f"{self.type_name} option {key!r}: {path} is empty")
        register_secret(value)
        return value

    def finish(self) -> None:
        unknown = sorted(set(self._values) - self._used)
        if unknown:
            raise ValueError(
                f"unknown {self.type_name} option {unknown[0]!r} "
                f"(known: {', '.join(sorted(self._used))})"
            )
