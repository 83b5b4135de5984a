"""The package's folders are its layers, and each imports only the layers below it.

    domain  <  common  <  kaltura | store | engines  <  worker  <  ops

The three adapters sit side by side and do not import each other. Imports inside functions
count too: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "reach_vendor"
RANK = {"domain": 0, "common": 1, "kaltura": 2, "store": 2, "engines": 2, "worker": 3, "ops": 4}
# The domain does no I/O: none of these, directly or through a library.
IO_MODULES = {
    "os", "io", "pathlib", "socket", "subprocess", "threading", "time", "logging", "http",
    "urllib", "requests", "sqlalchemy", "sqlmodel", "shutil", "tempfile", "KalturaClient",
}  # fmt: skip


def _modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        yield ".".join(parts), path


def _imports(path: Path) -> Iterator[tuple[int, str]]:
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module
            for alias in node.names:
                # `from reach_vendor.store import queries` imports a module of that layer
                yield node.lineno, f"{node.module}.{alias.name}"


def _layer(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "reach_vendor" or len(parts) < 2 or parts[1] not in RANK:
        return None
    return parts[1]


def test_every_module_is_in_a_layer() -> None:
    stray = [
        m
        for m, _ in _modules()
        if m not in ("reach_vendor", "reach_vendor.__main__") and _layer(m) is None
    ]
    assert stray == []


def _violations() -> Iterator[str]:
    for module, path in _modules():
        own = _layer(module)
        for line, imported in _imports(path):
            where = f"{path.relative_to(PACKAGE.parent)}:{line} imports {imported}"
            top = imported.split(".")[0]
            if top in ("reach_devkit", "tests", "bench"):
                yield f"{where} (development code is not shipped)"
            if own is None:
                continue
            if own == "domain" and top in IO_MODULES:
                yield f"{where} (the domain does no I/O)"
            other = _layer(imported)
            if other is None or other == own:
                continue
            if RANK[other] > RANK[own]:
                yield f"{where} (an upward import: {own} is below {other})"
            elif RANK[other] == RANK[own]:
                yield f"{where} (adapters do not import each other)"


def test_each_layer_imports_only_layers_below_it() -> None:
    assert list(_violations()) == []


def test_the_check_sees_a_violation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The graph check itself can fail: an upward import in a copy of a module is caught."""
    fake = tmp_path / "reach_vendor"
    (fake / "domain").mkdir(parents=True)
    (fake / "domain" / "bad.py").write_text("import time\nfrom reach_vendor.store import tasks\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", fake)
    found = list(_violations())
    assert len(found) == 3, found  # time (I/O), the module `store` and `store.tasks`
