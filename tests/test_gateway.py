"""Our Kaltura gateway against the emulator: sessions, paging, access keys."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import requests

from reach_vendor.config import parse_settings
from reach_vendor.emulator import KalturaEmulator
from reach_vendor.kaltura.gateway import (
    Deliverable,
    KalturaApiError,
    KalturaGateway,
    KalturaTransientError,
    PartialDelivery,
)
from tests.conftest import Vendor


def make_gateway(emu: KalturaEmulator, vendor: Vendor, **kaltura: object) -> KalturaGateway:
    settings = parse_settings(
        {
            "kaltura": {
                "service_url": emu.url,
                "partner_id": vendor.partner_id,
                "app_token": {"id": vendor.app_token_id, "token": vendor.app_token},
                **kaltura,
            }
        }
    )
    gw = KalturaGateway(settings.kaltura, vendor.app_token)
    gw.retry_base_s = 0.01
    return gw


def add_tasks(emu: KalturaEmulator, vendor: Vendor, n: int) -> list[int]:
    return [
        emu.add_task(vendor_partner_id=vendor.partner_id, partner_id=4124832, media_path=None)
        for _ in range(n)
    ]


def test_get_jobs_reads_every_page(emulator: KalturaEmulator, vendor: Vendor) -> None:
    ids = add_tasks(emulator, vendor, 25)
    gw = make_gateway(emulator, vendor, page_size=10)
    offered = gw.fetch_jobs()
    assert sorted(o.kaltura_task_id for o in offered) == sorted(ids)
    assert sum(1 for c in emulator.calls if c == ("reach_entryvendortask", "getJobs")) == 3
    assert all(o.access_key and o.access_key_expires_at for o in offered)


def test_expired_app_token_session_is_renewed(emulator: KalturaEmulator) -> None:
    vendor = Vendor(partner_id=9002, app_token_id="1_short", app_token="ab" * 16)
    emulator.add_vendor_partner(
        partner_id=vendor.partner_id,
        app_token_id=vendor.app_token_id,
        app_token=vendor.app_token,
        hash_type="SHA256",
        session_expiry_s=2,
    )
    add_tasks(emulator, vendor, 1)
    gw = make_gateway(emulator, vendor)
    assert len(gw.fetch_jobs()) == 1
    time.sleep(2.5)
    assert len(gw.fetch_jobs()) == 1
    starts = [c for c in emulator.calls if c == ("apptoken", "startSession")]
    assert len(starts) == 2


def test_wrong_app_token_is_a_clear_api_error(emulator: KalturaEmulator, vendor: Vendor) -> None:
    wrong = Vendor(vendor.partner_id, vendor.app_token_id, "0" * 32)
    gw = make_gateway(emulator, wrong)
    with pytest.raises(KalturaApiError) as info:
        gw.fetch_jobs()
    assert "0" * 32 not in str(info.value)


def test_unreachable_kaltura_is_retried_then_transient(vendor: Vendor) -> None:
    class Nowhere:
        url = "http://127.0.0.1:9"

    gw = make_gateway(Nowhere(), vendor, retries=2)  # type: ignore[arg-type]
    started = time.monotonic()
    with pytest.raises(KalturaTransientError, match="after 3 attempts"):
        gw.fetch_jobs()
    assert time.monotonic() - started < 5


def test_start_task_returns_the_spec_and_extends_keys(
    emulator: KalturaEmulator, vendor: Vendor
) -> None:
    (task_id,) = add_tasks(emulator, vendor, 1)
    gw = make_gateway(emulator, vendor)
    (job,) = gw.fetch_jobs()
    spec = gw.start_task(task_id, job.access_key).spec
    assert spec.status == 3 and spec.source_language == "English"
    assert spec.max_chars_per_line == 26 and spec.caption_label == "English (Auto Generated)"
    assert emulator.task(task_id)["status"] == 3
    new_key, expiry = gw.extend_access_key(task_id, job.access_key)
    assert new_key != job.access_key and expiry
    with pytest.raises(KalturaApiError) as info:
        gw.get_task(task_id, gw.vendor_ks())
    assert info.value.code == "ENTRY_VENDOR_TASK_NOT_FOUND"


def test_kaltura_internal_errors_are_retried_as_transient(
    emulator: KalturaEmulator, vendor: Vendor
) -> None:
    """Found by bench/chaos.py: INTERNAL_SERVERL_ERROR was taken as a final answer, so a
    task went to ERROR for a passing Kaltura fault, and when the ERROR report itself met
    one the task was given up locally while Kaltura kept it PROCESSING forever."""
    (task_id,) = add_tasks(emulator, vendor, 1)
    key = emulator.task(task_id)["accessKey"]
    gw = make_gateway(emulator, vendor, retries=2)
    emulator.inject_fault("reach_entryvendortask", "get", times=2)
    assert gw.get_task(task_id, key).task_id == task_id
    emulator.inject_fault("reach_entryvendortask", "updateJob", times=3)
    with pytest.raises(KalturaTransientError, match="INTERNAL_SERVERL_ERROR"):
        gw.set_error(task_id, key, "bad media")
    assert emulator.task(task_id)["status"] == 1
    emulator.inject_fault("reach_entryvendortask", "get", code="SOME_ERROR", message="no")
    with pytest.raises(KalturaApiError, match="SOME_ERROR"):
        gw.get_task(task_id, key)


def _source_and_other_flavor_tasks(
    emu: KalturaEmulator, vendor: Vendor, tmp_path: Path
) -> tuple[int, int, Path, Path]:
    """A task on the source flavor, and one whose profile wants flavor params 5, which its
    entry has as a second flavor (not the first listed): (source task, other task, source
    media, other media)."""
    media = tmp_path / "a.mp3"
    media.write_bytes(b"ID3 not really audio")
    source = emu.add_task(vendor_partner_id=vendor.partner_id, partner_id=4124832, media_path=media)
    wants_other = emu.add_task(
        vendor_partner_id=vendor.partner_id,
        partner_id=4124832,
        media_path=media,
        flavor_params_ids="5",
    )
    other = tmp_path / "b.mp3"
    other.write_bytes(b"the other flavor")
    entry = emu.task(wants_other)["entryId"]
    with emu.world.lock:
        (first,) = [f for f in emu.world.flavors.values() if f["entryId"] == entry]
        emu.world.flavors["0_second"] = {
            **first,
            "id": "0_second",
            "flavorParamsId": 5,
            "isOriginal": False,
            "_path": str(other),
        }
    return source, wants_other, media, other


def test_media_url_costs_one_round_trip_for_the_first_flavor(
    emulator: KalturaEmulator, vendor: Vendor, tmp_path: Path
) -> None:
    source, wants_other, media, other = _source_and_other_flavor_tasks(emulator, vendor, tmp_path)
    gw = make_gateway(emulator, vendor)

    key = emulator.task(source)["accessKey"]
    before = len(emulator.http_requests)
    url, flavor = gw.media_url(gw.get_task(source, key), key)
    assert [r["actions"] for r in emulator.http_requests[before + 1 :]] == [
        "flavorasset.list+flavorasset.getUrl"
    ]
    assert flavor.is_original and requests.get(url, timeout=5).content == media.read_bytes()

    key = emulator.task(wants_other)["accessKey"]
    before = len(emulator.http_requests)
    url, flavor = gw.media_url(gw.get_task(wants_other, key), key)
    assert [r["actions"] for r in emulator.http_requests[before + 1 :]] == [
        "flavorasset.list+flavorasset.getUrl",
        "flavorasset.getUrl",
    ]
    assert flavor.id == "0_second" and requests.get(url, timeout=5).content == other.read_bytes()


def test_start_task_finds_the_media_in_the_same_round_trip(
    emulator: KalturaEmulator, vendor: Vendor, tmp_path: Path
) -> None:
    task_id, wants_other, media, _ = _source_and_other_flavor_tasks(emulator, vendor, tmp_path)
    gw = make_gateway(emulator, vendor)

    before = len(emulator.http_requests)
    started = gw.start_task(task_id, emulator.task(task_id)["accessKey"])
    assert [r["actions"] for r in emulator.http_requests[before:]] == [
        "reach_entryvendortask.updateJob+reach_entryvendortask.get"
        "+flavorasset.list+flavorasset.getUrl"
    ]
    assert started.spec.status == 3 and started.media is not None
    assert started.media.flavor.is_original
    assert requests.get(started.media.url, timeout=5).content == media.read_bytes()
    # Another flavor than the first listed needs its own getUrl: left to media_url.
    other = gw.start_task(wants_other, emulator.task(wants_other)["accessKey"])
    assert other.spec.status == 3 and other.media is None


def _started_task(emu: KalturaEmulator, vendor: Vendor, gw: KalturaGateway) -> tuple[int, str]:
    (task_id,) = add_tasks(emu, vendor, 1)
    key = emu.task(task_id)["accessKey"]
    gw.start_task(task_id, key)
    return task_id, key


CAPTION = Deliverable(b"1\n00:00:00,000 --> 00:00:01,000\nhello\n", "e_1.srt")
TRANSCRIPTS = [Deliverable(b"hello", "e_1.txt"), Deliverable(b'{"words": []}', "e_1.json")]


def test_delivery_is_one_round_trip_with_ready_last(
    emulator: KalturaEmulator, vendor: Vendor
) -> None:
    gw = make_gateway(emulator, vendor)
    task_id, key = _started_task(emulator, vendor, gw)
    spec = gw.get_task(task_id, key)
    state = gw.delivery_state(spec, key)
    assert state.nothing_delivered and (state.status, state.version) == (3, spec.version)

    before = len(emulator.http_requests)
    caption_id, attachment_id = gw.deliver(spec, key, CAPTION, TRANSCRIPTS, 90)
    (request,) = emulator.http_requests[before:]
    assert request["actions"].endswith("+reach_entryvendortask.updateJob")
    task = emulator.task(task_id)
    assert task["status"] == 2 and task["outputObjectId"] == caption_id and task["accuracy"] == 90
    (caption,) = emulator.caption_assets(spec.entry_id)
    assert caption["id"] == caption_id and caption["content"] == CAPTION.content
    attachments = emulator.attachment_assets(spec.entry_id)
    assert sorted(a["content"] for a in attachments) == sorted(t.content for t in TRANSCRIPTS)
    assert attachment_id in {a["id"] for a in attachments}
    state = gw.delivery_state(spec, key)
    assert state.status == 2 and state.caption == (caption_id, True)


def test_a_failed_part_of_the_delivery_keeps_the_task_from_ready(
    emulator: KalturaEmulator, vendor: Vendor
) -> None:
    """Kaltura runs every part of a multirequest; the chained references make the parts
    after a failure fail too, so READY is never set with the caption missing."""
    gw = make_gateway(emulator, vendor)
    task_id, key = _started_task(emulator, vendor, gw)
    spec = gw.get_task(task_id, key)
    emulator.inject_fault("caption_captionAsset", "add", code="SOME_ERROR", message="refused")
    with pytest.raises(KalturaApiError, match="SOME_ERROR"):
        gw.deliver(spec, key, CAPTION, TRANSCRIPTS, 90)
    assert emulator.task(task_id)["status"] == 3
    assert emulator.caption_assets(spec.entry_id) == []
    state = gw.delivery_state(spec, key)
    assert state.status == 3 and state.caption is None and state.attachment_id is not None


def test_delivery_cut_off_part_way_is_not_sent_again(
    emulator: KalturaEmulator, vendor: Vendor
) -> None:
    """A transient failure in one part: what exists is looked up, and since part of the
    delivery took effect it is handed back to the caller instead of being repeated."""
    gw = make_gateway(emulator, vendor)
    task_id, key = _started_task(emulator, vendor, gw)
    spec = gw.get_task(task_id, key)
    emulator.inject_fault("caption_captionAsset", "add")  # INTERNAL_SERVERL_ERROR
    with pytest.raises(PartialDelivery) as info:
        gw.deliver(spec, key, CAPTION, TRANSCRIPTS, 90)
    assert info.value.state.caption is None and info.value.state.attachment_id is not None
    assert len(emulator.attachment_assets(spec.entry_id)) == 2
    assert emulator.calls.count(("attachment_attachmentasset", "add")) == 2


def test_delivery_whose_answer_was_lost_is_not_repeated(
    emulator: KalturaEmulator, vendor: Vendor
) -> None:
    gw = make_gateway(emulator, vendor)
    task_id, key = _started_task(emulator, vendor, gw)
    spec = gw.get_task(task_id, key)
    emulator.inject_fault("reach_entryvendortask", "updateJob", "drop_after")
    caption_id, _ = gw.deliver(spec, key, CAPTION, TRANSCRIPTS, 90)
    assert emulator.task(task_id)["status"] == 2
    assert [c["id"] for c in emulator.caption_assets(spec.entry_id)] == [caption_id]
    assert emulator.calls.count(("caption_captionasset", "add")) == 1
