"""Fuzzing the daemon's untrusted inputs with hypothesis: what Kaltura sends about a task,
the customer's media, and the YAML an operator writes. Whatever comes in must end in a
clear error (or a delivered task), never in an unexpected exception or a crash loop."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reach_devkit.emulator import KalturaEmulator
from reach_devkit.emulator.vendor_setup import Vendor
from reach_vendor.common import metrics
from reach_vendor.common.config_base import ConfigError
from reach_vendor.domain import captions
from reach_vendor.engines.base import Word
from reach_vendor.kaltura.gateway import KalturaApiError, KalturaTransientError, TaskKey
from reach_vendor.store.tasks import TaskStore
from reach_vendor.worker import media
from reach_vendor.worker.config import load_settings, parse_settings
from tests.support.daemon import REPO
from tests.support.gateway import make_gateway

SAMPLE = REPO / "reach_devkit" / "samples" / "thanks.mp3"
FUZZ = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# -- what Kaltura says about a task ----------------------------------------------------

_odd_scalar = st.one_of(
    st.none(),
    st.just(""),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.text(max_size=30),
    st.booleans(),
    st.floats(allow_nan=False, allow_infinity=False),
)
_TASK_FIELDS = [
    "partnerId",
    "version",
    "serviceType",
    "serviceFeature",
    "turnAroundTime",
    "expectedFinishTime",
    "dictionary",
    "entryId",
    "status",
]
_CATALOG_FIELDS = ["serviceType", "serviceFeature", "sourceLanguage", "outputFormat"]
_PROFILE_FIELDS = [
    "defaultOutputFormat",
    "maxCharactersPerCaptionLine",
    "flavorParamsIds",
    "labelAdditionForMachineServiceType",
    "enableProfanityRemoval",
]
_MISSING = object()


def _changes(fields: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    return st.dictionaries(
        st.sampled_from(fields), st.one_of(st.just(_MISSING), _odd_scalar), max_size=4
    )


def _apply(target: dict[str, Any], changes: dict[str, Any]) -> None:
    for key, value in changes.items():
        if value is _MISSING:
            target.pop(key, None)
        else:
            target[key] = value


@pytest.fixture(scope="module")
def fuzz_world() -> Any:
    import secrets

    with KalturaEmulator() as emu:
        vendor = Vendor(9001, "1_fuzz", secrets.token_hex(16))
        emu.add_vendor_partner(
            partner_id=vendor.partner_id,
            app_token_id=vendor.app_token_id,
            app_token=vendor.app_token,
        )
        yield emu, vendor


@FUZZ
@given(
    task=_changes(_TASK_FIELDS),
    catalog=_changes(_CATALOG_FIELDS),
    profile=_changes(_PROFILE_FIELDS),
)
def test_odd_task_payloads_give_a_spec_or_a_kaltura_error(
    fuzz_world: tuple[KalturaEmulator, Vendor],
    task: dict[str, Any],
    catalog: dict[str, Any],
    profile: dict[str, Any],
) -> None:
    emu, vendor = fuzz_world
    task_id = emu.add_task(
        vendor_partner_id=vendor.partner_id, partner_id=4124832, media_path=SAMPLE
    )
    with emu.world.lock:
        stored = emu.world.tasks[task_id]
        key = stored["accessKey"]
        _apply(stored, task)
        _apply(emu.world.catalog_items[stored["catalogItemId"]], catalog)
        _apply(emu.world.reach_profiles[stored["reachProfileId"]], profile)
    gw = make_gateway(emu, vendor, retries=0)
    skipped_before = metrics.OFFERS_SKIPPED.labels(reason="unreadable")._value.get()
    try:
        offered = gw.fetch_jobs()
        spec = gw.get_task(TaskKey(task_id, 4124832, "", key))
    except (KalturaApiError, KalturaTransientError):
        return
    finally:
        with emu.world.lock:  # keep getJobs small for the next example
            emu.world.tasks[task_id]["status"] = 7
    # Listed, or not PENDING any more, or skipped as unusable (no entryId, partnerId...).
    skipped = metrics.OFFERS_SKIPPED.labels(reason="unreadable")._value.get() > skipped_before
    assert task_id in [o.kaltura_task_id for o in offered] or "status" in task or skipped
    assert spec.task_id == task_id
    assert spec.caption_label and spec.language_code
    # Whatever the profile says, captions can be cut and rendered from the spec.
    words = [Word("hello", 0.0, 0.5), Word("world", 0.6, 1.2)]
    cues = captions.build_cues(words, max_chars_per_line=spec.max_chars_per_line)
    text, ext = captions.render(cues, spec.output_format, spec.language_code)
    assert "hello" in text and ext
    # What the store is given must be storable.
    store = TaskStore("sqlite://", migrate=True)
    store.record_offered([o for o in offered if o.kaltura_task_id == task_id])
    store.close()


@pytest.fixture(scope="module")
def noop_registered() -> Any:
    """The benchmarks' no-op processor, registered for this module only."""
    from reach_devkit.harness import register_noop
    from reach_vendor.engines import registry as processors

    saved = dict(processors._factories)
    register_noop()
    yield
    processors._factories.clear()
    processors._factories.update(saved)


_PIPELINE_TASK_FIELDS = [
    "version",
    "serviceType",
    "serviceFeature",
    "turnAroundTime",
    "expectedFinishTime",
    "dictionary",
]


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    task=_changes(_PIPELINE_TASK_FIELDS),
    catalog=_changes(_CATALOG_FIELDS),
    profile=_changes(_PROFILE_FIELDS),
)
def test_odd_tasks_end_delivered_or_in_error_never_in_a_loop(
    noop_registered: None,
    tmp_path: Path,
    fuzz_world: tuple[KalturaEmulator, Vendor],
    task: dict[str, Any],
    catalog: dict[str, Any],
    profile: dict[str, Any],
) -> None:
    """The whole daemon (no-op processor) on one odd task: `run --once` comes back and
    the task is READY or ERROR in Kaltura, and finished in the store."""
    from reach_devkit.harness import write_config as bench_config
    from reach_vendor.worker.daemon import Daemon

    emu, vendor = fuzz_world
    task_id = emu.add_task(
        vendor_partner_id=vendor.partner_id, partner_id=4124832, media_path=SAMPLE
    )
    with emu.world.lock:
        stored = emu.world.tasks[task_id]
        _apply(stored, task)
        _apply(emu.world.catalog_items[stored["catalogItemId"]], catalog)
        _apply(emu.world.reach_profiles[stored["reachProfileId"]], profile)
    cfg = bench_config(
        tmp_path,
        emu,
        vendor,  # type: ignore[arg-type]
        workers={"concurrency": 1, "max_attempts": 2, "retry_base_s": 0},
        logging={"level": "ERROR"},
    )
    daemon = Daemon(load_settings(cfg))
    try:
        daemon.run_once()
        rec = daemon.store.by_kaltura_id(task_id)
    finally:
        daemon.store.close()
        with emu.world.lock:  # keep getJobs small for the next example
            status = emu.world.tasks[task_id]["status"]
            if status in (1, 3):
                emu.world.tasks[task_id]["status"] = 7
    assert status in (2, 6), (status, rec)
    assert rec is not None and rec.state in ("delivered", "failed"), rec
    if status == 6:
        assert rec.error and "internal error" not in rec.error, rec.error


# -- media -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_media(tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    files = [SAMPLE.read_bytes()]
    if shutil.which("ffmpeg"):
        out = tmp_path_factory.mktemp("media")
        for name, args in (
            ("a.wav", ["-f", "lavfi", "-i", "sine=frequency=440:duration=1"]),
            (
                "v.mp4",
                [
                    "-f",
                    "lavfi",
                    "-i",
                    "testsrc=size=64x48:rate=5:duration=1",
                    "-f",
                    "lavfi",
                    "-i",
                    "sine=duration=1",
                    "-shortest",
                ],
            ),
        ):
            subprocess.run(["ffmpeg", "-v", "error", "-y", *args, str(out / name)], check=True)
            files.append((out / name).read_bytes())
    return files


def _decode(tmp_path: Path, data: bytes) -> None:
    src, dest = tmp_path / "media.bin", tmp_path / "audio.pcm"
    dest.unlink(missing_ok=True)  # tmp_path is shared by all examples of a test
    src.write_bytes(data)
    try:
        duration = media.decode_to_pcm(src, dest)
    except media.MediaError as exc:
        assert str(exc) and "\n" not in str(exc) and str(src) not in str(exc)
        assert not dest.exists() and not dest.with_name("audio.pcm.part").exists()
        return
    assert duration > 0 and dest.stat().st_size == round(duration * 16000) * 2


@FUZZ
@given(data=st.binary(max_size=4096))
def test_random_bytes_are_refused_cleanly(tmp_path: Path, data: bytes) -> None:
    _decode(tmp_path, data)


@FUZZ
@given(data=st.data())
def test_truncated_and_damaged_media_decode_or_are_refused(
    tmp_path: Path, real_media: list[bytes], data: st.DataObject
) -> None:
    blob = bytearray(real_media[data.draw(st.integers(0, len(real_media) - 1), label="file")])
    cut = data.draw(st.integers(min_value=0, max_value=len(blob)))
    blob = blob[:cut]
    for _ in range(data.draw(st.integers(min_value=0, max_value=8))):
        if blob:
            i = data.draw(st.integers(min_value=0, max_value=len(blob) - 1))
            blob[i] = data.draw(st.integers(min_value=0, max_value=255))
    _decode(tmp_path, bytes(blob))


# -- configuration ---------------------------------------------------------------------

_yaml_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20)
)
_yaml_value = st.recursive(
    _yaml_leaf,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3)
    ),
    max_leaves=8,
)
_SECTIONS = {
    "kaltura": ["service_url", "partner_id", "app_token", "request_timeout_s", "retries"],
    "database": ["url"],
    "polling": ["interval_s"],
    "workers": ["concurrency", "lease_s", "max_attempts"],
    "processors": ["default", "options"],
    "storage": ["work_dir", "keep_media", "keep_deliverables"],
    "logging": ["format", "level"],
}
_config_like = st.dictionaries(
    st.sampled_from([*_SECTIONS, "bogus"]),
    st.one_of(
        _yaml_value,
        st.dictionaries(
            st.sampled_from(sorted({k for ks in _SECTIONS.values() for k in ks} | {"id"})),
            _yaml_value,
            max_size=4,
        ),
    ),
    max_size=5,
)


def _load(tmp_path: Path, text: str) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    try:
        load_settings(path)
    except ConfigError as exc:
        message = str(exc)
        assert message and "Traceback" not in message, message
        for line in message.splitlines():  # every problem at once, one line each
            assert ": " in line, message  # "<key or file>: <what is wrong>"


@FUZZ
@given(data=_config_like)
def test_config_shaped_yaml_is_accepted_or_names_the_key(tmp_path: Path, data: Any) -> None:
    _load(tmp_path, yaml.safe_dump(data))


@FUZZ
@given(text=st.text(max_size=200))
def test_arbitrary_text_as_config_is_a_config_error(tmp_path: Path, text: str) -> None:
    _load(tmp_path, text)


def test_config_errors_name_the_key() -> None:
    with pytest.raises(ConfigError, match=r"^workers\.concurrency: "):
        parse_settings(
            {
                "kaltura": {
                    "service_url": "http://127.0.0.1:1",
                    "partner_id": 1,
                    "app_token": {"id": "x", "token": "y"},
                },
                "workers": {"concurrency": "many"},
            }
        )


# -- one hostile getJobs entry among good ones ----------------------------------------

_hostile_scalar = st.one_of(
    _odd_scalar,
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from(["../../x", "/etc/passwd", "a/../../b", "\u202e\u0000evil", "x" * 5000]),
    st.text(max_size=40),
)
_OFFER_FIELDS = [
    "id",
    "partnerId",
    "entryId",
    "version",
    "accessKey",
    "createdAt",
    "serviceType",
    "serviceFeature",
    "turnAroundTime",
    "expectedFinishTime",
    "status",
]


@FUZZ
@given(field=st.sampled_from(_OFFER_FIELDS), value=_hostile_scalar)
def test_one_hostile_get_jobs_field_costs_that_task_at_most(
    fuzz_world: tuple[KalturaEmulator, Vendor], field: str, value: Any
) -> None:
    """Issue 13: one malformed entry made every poll fail, for every task. Whatever one
    entry carries (types, sizes, ranges beyond any column, path characters), the others
    are recorded."""
    emu, vendor = fuzz_world
    good = emu.add_task(vendor_partner_id=vendor.partner_id, partner_id=4124832, media_path=SAMPLE)
    bad = emu.add_task(vendor_partner_id=vendor.partner_id, partner_id=4124832, media_path=SAMPLE)
    if field in ("id", "createdAt") and (isinstance(value, bool) or not isinstance(value, int)):
        value = 1 << 70  # the emulator sorts by these: only a number can stand there
    with emu.world.lock:
        emu.world.tasks[bad][field] = value
    store = TaskStore("sqlite://", migrate=True)
    try:
        offered = make_gateway(emu, vendor, retries=0).fetch_jobs()
        store.record_offered(offered)
        assert store.by_kaltura_id(good) is not None
    finally:
        store.close()
        with emu.world.lock:  # keep getJobs small for the next example
            for task_id in (good, bad):
                emu.world.tasks[task_id]["status"] = 7
