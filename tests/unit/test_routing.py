"""Routing rules: YAML in, one engine per task out; config mistakes name their key."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from reach_vendor.common.config_base import ConfigError
from reach_vendor.engines import registry as processors
from reach_vendor.engines.local.options import ScriptedOptions
from reach_vendor.engines.local.scripted import ScriptedProcessor
from reach_vendor.engines.registry import ProcessingRequest, Transcript
from reach_vendor.engines.routing import Engine, ProcessorPool, Route, TaskTraits
from reach_vendor.worker.config import parse_settings
from reach_vendor.worker.daemon import load_processors

BASE: dict[str, Any] = {
    "kaltura": {
        "service_url": "http://127.0.0.1:1",
        "partner_id": 1,
        "app_token": {"id": "t", "token": "x"},
    }
}


def settings(**proc: Any) -> Any:
    return parse_settings({**BASE, "processors": proc})


def config_error(**proc: Any) -> str:
    with pytest.raises(ConfigError) as err:
        settings(**proc)
    return str(err.value)


CAPTIONS_EN = TaskTraits(service_feature=1, service_type=2, language="English", partner_id=7)


def test_first_matching_route_wins_else_default() -> None:
    cfg = settings(
        default="pocketsphinx",
        engines={"whisper": {"type": "faster-whisper", "model_dir": "/models/tiny"}},
        routes=[
            {"match": {"service_feature": "ALIGNMENT"}, "processor": "pocketsphinx"},
            {"match": {"partner_id": [7, 8], "language": "english"}, "processor": "whisper"},
            {"match": {"partner_id": 7}, "processor": "pocketsphinx"},
        ],
    )
    pool = cfg.processors.pool()
    assert pool.name_for(CAPTIONS_EN) == "whisper"
    align = TaskTraits(3, 2, "English", 7)
    assert pool.name_for(align) == "pocketsphinx"
    assert pool.name_for(TaskTraits(1, 2, "German", 7)) == "pocketsphinx"
    assert pool.name_for(TaskTraits(1, 2, "English", 9)) == "pocketsphinx"
    assert pool.referenced() == ["pocketsphinx", "whisper"]


def test_default_engine_captions_and_pocketsphinx_aligns() -> None:
    # Whisper cannot align: with no route for ALIGNMENT, those tasks go to `alignment`.
    pool = settings().processors.pool()
    align = TaskTraits(3, 2, "English", 7)
    assert pool.name_for(CAPTIONS_EN) == "whisper-cpp"
    assert pool.name_for(align) == "pocketsphinx"
    assert pool.referenced() == ["whisper-cpp", "pocketsphinx"]
    routed = settings(
        engines={"ps": {"type": "pocketsphinx", "vad_mode": 2}},
        routes=[{"match": {"service_feature": "ALIGNMENT"}, "processor": "ps"}],
    ).processors.pool()
    assert routed.name_for(align) == "ps"
    assert settings(alignment="scripted").processors.pool().name_for(align) == "scripted"
    assert "processors.alignment: unknown processor 'nope'" in config_error(alignment="nope")


def test_route_keys_must_all_hold() -> None:
    route = Route("x", frozenset({1}), frozenset({2}), frozenset({"english"}), frozenset({7}))
    assert route.matches(CAPTIONS_EN)
    assert not route.matches(TaskTraits(1, 1, "English", 7))  # human service type
    assert not route.matches(TaskTraits(3, 2, "English", 7))
    assert Route("any").matches(CAPTIONS_EN)


def test_service_names_and_numbers_are_both_accepted() -> None:
    cfg = settings(
        routes=[
            {
                "match": {"service_feature": [3, "captions"], "service_type": "MACHINE"},
                "processor": "pocketsphinx",
            }
        ]  # fmt: skip
    )
    route = cfg.processors.pool().routes[0]  # then the implicit ALIGNMENT route
    assert route.service_features == {1, 3} and route.service_types == {2}


@pytest.mark.parametrize(
    ("proc", "expected"),
    [
        ({"default": "whisperx"}, "processors.default: unknown processor 'whisperx'"),
        (
            {"routes": [{"match": {}, "processor": "pocketsphinx"},
                        {"match": {"partner_id": 1}, "processor": "nope"}]},
            "processors.routes.1.processor: unknown processor 'nope'; available: ",
        ),
        ({"engines": {"fast": {"type": "vosk"}}}, "processors.engines.fast: unknown processor"),
        (
            {"routes": [{"match": {"service_feature": "ALIGN"}, "processor": "pocketsphinx"}]},
            "processors.routes.0.match.service_feature: unknown service feature 'ALIGN'",
        ),
        (
            {"routes": [{"match": {"speaker": 1}, "processor": "pocketsphinx"}]},
            "processors.routes.0.match.speaker: unknown key",
        ),
        ({"routes": [{"processor": "pocketsphinx"}]}, "processors.routes.0.match: required"),
    ],
)  # fmt: skip
def test_config_errors_name_the_key(proc: dict[str, Any], expected: str) -> None:
    assert config_error(**proc).startswith(expected)


def test_engine_option_errors_stop_start_up_naming_the_engine(tmp_path: Path) -> None:
    cfg = settings(
        default="pocketsphinx",
        engines={"whisper": {"type": "faster-whisper", "model_dir": str(tmp_path / "none")}},
        routes=[{"match": {"partner_id": 7}, "processor": "whisper"}],
    )
    with pytest.raises(ConfigError, match=r"^processors\.engines\.whisper: .*is not a directory"):
        load_processors(cfg)
    bad_option = settings(engines={"pocketsphinx": {"beem": 1}})
    with pytest.raises(ConfigError, match=r"^processors\.engines\.pocketsphinx: .*'beem'"):
        load_processors(bad_option)


def test_older_options_key_still_configures_the_engine() -> None:
    cfg = settings(options={"pocketsphinx": {"beam": 1e-30}})
    pool = load_processors(cfg)
    engine = pool.get("pocketsphinx")
    assert engine.new_decoder().config["beam"] == pytest.approx(1e-30)  # type: ignore[attr-defined]


@dataclass
class Counting:
    options: dict[str, Any]
    name: str = "counting"
    created: list[int] = field(default_factory=list)

    def process(self, request: ProcessingRequest) -> Transcript:
        return Transcript((), request.language, self.name, 1.0)


def test_engines_are_created_once_and_shared(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[dict[str, Any]] = []

    def factory(options: dict[str, Any]) -> Counting:
        made.append(options)
        return Counting(options)

    monkeypatch.setattr(processors, "_factories", dict(processors._factories))
    processors.register("counting", factory)
    pool = ProcessorPool(
        "a",
        {"a": Engine("counting", {"n": 1}), "b": Engine("counting", {"n": 2})},
        [Route("b", partner_ids=frozenset({7}))],
    )
    first = pool.for_task(CAPTIONS_EN)
    assert pool.for_task(CAPTIONS_EN) is first
    assert pool.for_task(TaskTraits(1, 2, "English", 8)) is not first
    assert made == [{"n": 2}, {"n": 1}]


def test_check_config_loads_the_engines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import yaml

    from reach_vendor.ops import cli

    missing = tmp_path / "models" / "tiny.en"
    data = {
        **BASE,
        "processors": {
            "engines": {"whisper": {"type": "faster-whisper", "model_dir": str(missing)}},
            "routes": [{"match": {"language": "English"}, "processor": "whisper"}],
        },
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    assert cli.main(["check-config", "--offline", "--config", str(path)]) == 78
    err = capsys.readouterr().err.strip()
    assert err == (
        "reach-vendor: config error: processors.engines.whisper: faster-whisper option "
        f"'model_dir': {missing} is not a directory"
    )


def test_closing_the_pool_lets_go_of_its_engines() -> None:
    """The daemon closes its pool when it stops: an engine holding a model and a thread
    (whisper-cpp) frees them, once."""

    class Holding(ScriptedProcessor):
        closed = 0

        def close(self) -> None:
            self.closed += 1

    engine = Holding(ScriptedOptions())
    pool = ProcessorPool.fixed(engine)
    assert pool.get(engine.name) is engine
    pool.close()
    pool.close()
    assert engine.closed == 1
