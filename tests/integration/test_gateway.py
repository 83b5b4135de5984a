"""Our Kaltura gateway against the emulator: sessions, paging, access keys."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from reach_devkit.emulator import KalturaEmulator
from reach_devkit.emulator.vendor_setup import Vendor
from reach_vendor.common.metrics import REGISTRY
from reach_vendor.domain.delivery import DeliveryRecord
from reach_vendor.domain.task_spec import TaskSpec
from reach_vendor.kaltura.gateway import (
    Deliverable,
    KalturaApiError,
    KalturaGateway,
    KalturaTransientError,
    TaskKey,
)
from tests.support.gateway import add_tasks, make_gateway


def test_get_jobs_reads_every_page(emulator: KalturaEmulator, vendor: Vendor) -> None:
    ids = add_tasks(emulator, vendor, 25)
    gw = make_gateway(emulator, vendor, page_size=10)
    offered = gw.fetch_jobs()
    assert sorted(o.kaltura_task_id for o in offered) == sorted(ids)
    assert sum(1 for c in emulator.calls if c == ("reach_entryvendortask", "getJobs")) == 3
    assert all(o.access_key and o.access_key_expires_at for o in offered)


def test_each_request_is_timed_by_action(emulator: KalturaEmulator, vendor: Vendor) -> None:
    """reach_vendor_kaltura_request_duration_seconds{action} counts every request."""

    def timed() -> float:
        value = REGISTRY.get_sample_value(
            "reach_vendor_kaltura_request_duration_seconds_count",
            {"action": "reach_entryvendortask.getJobs"},
        )
        return value or 0.0

    add_tasks(emulator, vendor, 3)
    before = timed()
    make_gateway(emulator, vendor).fetch_jobs()
    assert timed() == before + 1


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


def _key(
    emu: KalturaEmulator, task_id: int, seen: list[tuple[str, float]] | None = None
) -> TaskKey:
    task = emu.task(task_id)
    return TaskKey(
        task_id=task_id,
        partner_id=int(task["partnerId"]),
        entry_id=str(task["entryId"]),
        access_key=str(task["accessKey"]),
        turn_around_time=int(task["turnAroundTime"]),
        on_new_key=None if seen is None else (lambda k, e: seen.append((k, e))),
    )


TOKEN_FILES = [("caption", "e_1_caption"), ("text", "e_1.txt"), ("json", "e_1.json")]


def test_start_task_returns_the_spec_and_extends_keys(
    emulator: KalturaEmulator, vendor: Vendor
) -> None:
    (task_id,) = add_tasks(emulator, vendor, 1)
    gw = make_gateway(emulator, vendor)
    (job,) = gw.fetch_jobs()
    started = gw.start_task(_key(emulator, task_id), TOKEN_FILES)
    spec = started.spec
    assert spec.status == 3 and spec.source_language == "English"
    assert spec.max_chars_per_line == 26 and spec.caption_label == "English (Auto Generated)"
    assert sorted(started.tokens) == ["caption", "json", "text"]
    assert emulator.task(task_id)["status"] == 3
    new_key, expiry = gw.extend_access_key(task_id, 1800)
    assert new_key != job.access_key
    # A v2 key's expiry cannot be read: it is Kaltura's key life from the extension.
    assert abs(expiry - (time.time() + 7 * 86400)) < 60


def test_each_call_carries_the_session_and_partner_kaltura_wants(
    emulator: KalturaEmulator, vendor: Vendor
) -> None:
    """service.reach.entryVendorTask.ini: updateJob, extendAccessKey and getJobs need the
    vendor's REACH_VENDOR_PARTNER session; the access key (customer partner) is for the
    entry's calls, and carrying the vendor's partnerId with it is impersonation
    (KalturaDispatcher / kPermissionManager::isPartnerAccessAllowed)."""
    (task_id,) = add_tasks(emulator, vendor, 1)
    gw = make_gateway(emulator, vendor)
    gw.fetch_jobs()
    before = len(emulator.call_log)
    gw.start_task(_key(emulator, task_id), TOKEN_FILES)
    gw.extend_access_key(task_id, 1800)
    calls = emulator.call_log[before:]
    by_session = {(c["service"].lower(), c["action"]): c for c in calls}
    update = by_session[("reach_entryvendortask", "updateJob")]
    assert update["session"] == "vendor" and str(update["partnerId"]) == str(vendor.partner_id)
    extend = by_session[("reach_entryvendortask", "extendAccessKey")]
    assert extend["session"] == "vendor"
    for name in (("reach_entryvendortask", "get"), ("flavorasset", "list"), ("uploadtoken", "add")):
        call = by_session[name]
        assert call["session"] == "access_key" and str(call["partnerId"]) == "4124832", call
    # Kaltura's client tag for vendors: <client default>_<vendorName>-<vendorPartnerId>,
    # and the task id on a task's calls.
    assert all(
        c["clientTag"].endswith(f"_reach-vendor-{vendor.partner_id}_{task_id}") for c in calls
    )


def test_kaltura_internal_errors_are_retried_as_transient(
    emulator: KalturaEmulator, vendor: Vendor
) -> None:
    """Found by bench/chaos.py: INTERNAL_SERVERL_ERROR was taken as a final answer, so a
    task went to ERROR for a passing Kaltura fault, and when the ERROR report itself met
    one the task was given up locally while Kaltura kept it PROCESSING forever."""
    (task_id,) = add_tasks(emulator, vendor, 1)
    key = _key(emulator, task_id)
    gw = make_gateway(emulator, vendor, retries=2)
    emulator.inject_fault("reach_entryvendortask", "get", times=2)
    assert gw.get_task(key).task_id == task_id
    emulator.inject_fault("reach_entryvendortask", "updateJob", times=3)
    with pytest.raises(KalturaTransientError, match="INTERNAL_SERVERL_ERROR"):
        gw.set_error(task_id, "bad media")
    assert emulator.task(task_id)["status"] == 1
    emulator.inject_fault("reach_entryvendortask", "get", code="SOME_ERROR", message="no")
    with pytest.raises(KalturaApiError, match="SOME_ERROR"):
        gw.get_task(key)


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

    key = _key(emulator, source)
    before = len(emulator.http_requests)
    url, flavor = gw.media_url(gw.get_task(key), key)
    assert [r["actions"] for r in emulator.http_requests[before + 1 :]] == [
        "flavorasset.list+flavorasset.getUrl"
    ]
    assert flavor.is_original and requests.get(url, timeout=5).content == media.read_bytes()

    key = _key(emulator, wants_other)
    before = len(emulator.http_requests)
    url, flavor = gw.media_url(gw.get_task(key), key)
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
    gw.vendor_ks()

    before = len(emulator.http_requests)
    started = gw.start_task(_key(emulator, task_id), TOKEN_FILES)
    assert [r["actions"] for r in emulator.http_requests[before:]] == [
        "reach_entryvendortask.updateJob+reach_entryvendortask.get"
        "+flavorasset.list+flavorasset.getUrl" + "+uploadtoken.add" * 3
    ]
    assert started.spec.status == 3 and started.media is not None
    assert started.media.flavor.is_original
    assert requests.get(started.media.url, timeout=5).content == media.read_bytes()
    # Another flavor than the first listed needs its own getUrl: left to media_url.
    other = gw.start_task(_key(emulator, wants_other), TOKEN_FILES)
    assert other.spec.status == 3 and other.media is None


def _started_task(
    emu: KalturaEmulator, vendor: Vendor, gw: KalturaGateway, **kw: object
) -> tuple[TaskKey, TaskSpec, DeliveryRecord]:
    task_id = emu.add_task(
        vendor_partner_id=vendor.partner_id, partner_id=4124832, media_path=None, **kw
    )
    key = _key(emu, task_id)
    started = gw.start_task(key, TOKEN_FILES)
    return key, started.spec, DeliveryRecord(tokens=dict(started.tokens))


FILES = {
    "caption": Deliverable(b"1\n00:00:00,000 --> 00:00:01,000\nhello\n", "e_1.srt"),
    "text": Deliverable(b"hello", "e_1.txt"),
    "json": Deliverable(b'{"words": []}', "e_1.json"),
}


def test_delivery_is_one_round_trip_and_ready_is_a_call_of_its_own(
    emulator: KalturaEmulator, vendor: Vendor
) -> None:
    """KalturaFrontController::replaceMultiRequestResults runs a call whose reference
    failed on an empty string: READY never rides with the uploads it names."""
    gw = make_gateway(emulator, vendor)
    key, spec, record = _started_task(emulator, vendor, gw)
    before = len(emulator.http_requests)
    assert gw.upload_deliverables(spec, key, record, FILES, 90) == []
    (request,) = emulator.http_requests[before:]
    assert "updateJob" not in request["actions"]
    assert record.complete and not record.tokens and not record.sent
    assert emulator.task(key.task_id)["status"] == 3
    gw.set_ready(key.task_id, record.assets["caption"], 90, None)
    task = emulator.task(key.task_id)
    assert task["status"] == 2 and task["outputObjectId"] == record.assets["caption"]
    (caption,) = emulator.caption_assets(spec.entry_id)
    assert caption["content"] == FILES["caption"].content
    # We send the language; Kaltura appends the profile's addition on READY, once.
    assert caption["label"] == "English (Auto Generated)"
    attachments = emulator.attachment_assets(spec.entry_id)
    assert sorted(a["content"] for a in attachments) == sorted(
        FILES[k].content for k in ("text", "json")
    )


def test_a_refused_part_keeps_ready_back_and_its_asset_is_reused(
    emulator: KalturaEmulator, vendor: Vendor
) -> None:
    gw = make_gateway(emulator, vendor)
    key, spec, record = _started_task(emulator, vendor, gw)
    emulator.inject_fault("caption_captionAsset", "setContent", code="SOME_ERROR", message="no")
    (refused,) = gw.upload_deliverables(spec, key, record, FILES, 90)
    assert refused.code == "SOME_ERROR"
    assert record.missing() == ["caption"] and "caption" in record.assets
    assert emulator.task(key.task_id)["status"] == 3
    # The token was uploaded without being attached: a fresh one fills the same asset.
    assert "caption" not in record.tokens
    record.tokens.update(gw.create_upload_tokens(key, [("caption", "e_1_caption")]))
    assert gw.upload_deliverables(spec, key, record, FILES, 90) == []
    assert record.complete
    assert len(emulator.caption_assets(spec.entry_id)) == 1
    assert emulator.calls.count(("caption_captionasset", "add")) == 1


@pytest.mark.parametrize("listing", [True, False], ids=["captions-listable", "listing-refused"])
def test_an_upload_whose_answer_was_lost_is_looked_up_not_repeated(
    emulator: KalturaEmulator, vendor: Vendor, listing: bool
) -> None:
    """Whether a vendor's access key may list caption assets is open (the permission
    files allow it, Kaltura's FAQ says no): the upload tokens answer either way."""
    emulator.access_key_can_list_captions = listing
    gw = make_gateway(emulator, vendor)
    key, spec, record = _started_task(emulator, vendor, gw)
    emulator.inject_fault("caption_captionAsset", "setContent", "drop_after")
    record.sent = True
    with pytest.raises(KalturaTransientError):
        gw.upload_deliverables(spec, key, record, FILES, 90)
    assert record.sent
    gw.reconcile_delivery(spec, key, record)
    assert record.complete and not record.sent
    assert len(emulator.caption_assets(spec.entry_id)) == 1
    assert len(emulator.attachment_assets(spec.entry_id)) == 2
    assert emulator.calls.count(("caption_captionasset", "add")) == 1


def test_ready_sent_again_after_a_lost_answer_is_no_change(
    emulator: KalturaEmulator, vendor: Vendor
) -> None:
    """validateForUpdate: the same status again is no change; a final task refuses only a
    second unitsUsed (pay-per-use), which is then left out."""
    gw = make_gateway(emulator, vendor)
    key, spec, record = _started_task(emulator, vendor, gw, pay_per_use=True)
    assert spec.pay_per_use
    gw.upload_deliverables(spec, key, record, FILES, 90)
    with pytest.raises(KalturaApiError, match="MISSING_MANDATORY_PARAMETER"):
        gw.set_ready(key.task_id, record.assets["caption"], 90, None)
    emulator.inject_fault("reach_entryvendortask", "updateJob", "drop_after")
    gw.set_ready(key.task_id, record.assets["caption"], 90, 5000)
    task = emulator.task(key.task_id)
    assert task["status"] == 2 and int(task["unitsUsed"]) == 5000
    gw.set_ready(key.task_id, record.assets["caption"], 90, 5000)
    assert emulator.caption_assets(spec.entry_id)[0]["label"] == "English (Auto Generated)"
    # READY killed the access key; the ERROR report and READY need only the vendor session.
    with pytest.raises(KalturaApiError) as info:
        gw.set_error(key.task_id, "too late")
    assert info.value.code == "CANNOT_UPDATE_STATUS_OF_TASK_WHICH_IS_IN_FINAL_STATE"


def test_a_dead_access_key_is_replaced_through_the_vendor_session(
    emulator: KalturaEmulator, vendor: Vendor
) -> None:
    gw = make_gateway(emulator, vendor)
    seen: list[tuple[str, float]] = []
    task_id = emulator.add_task(
        vendor_partner_id=vendor.partner_id, partner_id=4124832, media_path=None
    )
    emulator.expire_access_key(task_id)
    key = _key(emulator, task_id, seen)
    started = gw.start_task(key, TOKEN_FILES)
    assert started.spec.status == 3 and len(started.tokens) == 3
    ((new_key, _expires),) = seen
    assert key.access_key == new_key == emulator.task(task_id)["accessKey"]


def test_a_key_two_threads_find_dead_at_once_is_extended_once(
    emulator: KalturaEmulator, vendor: Vendor
) -> None:
    """A run's worker and keeper share its key: both meet it dead, one extension serves
    both, and each call is answered with the new key."""
    gw = make_gateway(emulator, vendor)
    seen: list[tuple[str, float]] = []
    (task_id,) = add_tasks(emulator, vendor, 1)
    key = _key(emulator, task_id, seen)
    gw.start_task(key, TOKEN_FILES)
    emulator.expire_access_key(task_id)
    emulator.latency_s = 0.3  # both calls are out with the dead key before either answer
    before = len(emulator.call_log)
    with ThreadPoolExecutor(2) as pool:
        status = pool.submit(gw.task_status_and_version, key)
        spec = pool.submit(gw.get_task, key)
        assert status.result(timeout=30)[0] == 3 and spec.result(timeout=30).status == 3
    extends = [c for c in emulator.call_log[before:] if c["action"] == "extendAccessKey"]
    assert len(extends) == 1 and len(seen) == 1
    assert key.access_key == seen[0][0] == emulator.task(task_id)["accessKey"]
