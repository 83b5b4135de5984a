"""The Kaltura emulator speaks the wire format real clients see: curl-style form posts with
JSON answers (format=1), the official client's JSON/multipart posts with XML answers
(format=2), multirequest references, and Kaltura's KS and permission rules.

These tests drive the emulator with the official client or raw HTTP only, never through
the daemon; tests/test_emulator_rules.py checks each server rule on its own."""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from KalturaClient import KalturaClient
from KalturaClient.exceptions import KalturaClientException, KalturaException
from KalturaClient.Plugins.Caption import KalturaCaptionAsset
from KalturaClient.Plugins.Core import (
    KalturaAssetFilter,
    KalturaDetachedResponseProfile,
    KalturaUploadedFileTokenResource,
    KalturaUploadToken,
)
from KalturaClient.Plugins.Reach import KalturaEntryVendorTask, KalturaEntryVendorTaskFilter
from lxml import etree

from reach_devkit.emulator import KalturaEmulator
from reach_devkit.emulator.vendor_setup import Vendor
from tests.support.kaltura_calls import (
    CUSTOMER,
    client,
    pending_task,
    post,
    vendor_client,
    vendor_ks,
)


def test_curl_style_get_jobs_and_get_match_the_reference_page(
    emulator: KalturaEmulator, vendor: Vendor
) -> None:
    task_id = pending_task(emulator, vendor)
    ks = vendor_ks(emulator, vendor)

    jobs = post(
        emulator,
        "reach_entryvendortask",
        "getJobs",
        ks=ks,
        **{"filter[objectType]": "KalturaEntryVendorTaskFilter"},
    )
    assert jobs["objectType"] == "KalturaEntryVendorTaskListResponse"
    assert jobs["totalCount"] == 1
    (job,) = jobs["objects"]
    # KalturaEntryVendorTask::$id is a bigint: JSON carries it as a string, as on the page
    assert job["id"] == str(task_id) and job["status"] == 1
    assert job["accessKey"].startswith("djJ8")  # a KS v2
    assert {"serviceType", "serviceFeature", "turnAroundTime", "expectedFinishTime"} <= set(job)
    assert not any(k.startswith("_") for k in job)

    task = post(
        emulator,
        "reach_entryvendortask",
        "get",
        ks=job["accessKey"],
        id=task_id,
        **{"responseProfile[systemName]": "reach_vendor"},
    )
    related = task["relatedObjects"]
    (catalog,) = related["reach_vendor_catalog_item"]["objects"]
    (profile,) = related["reach_vendor_profile"]["objects"]
    assert catalog["objectType"] == "KalturaVendorCaptionsCatalogItem"
    assert catalog["sourceLanguage"] == "English" and catalog["serviceFeature"] == 1
    assert profile["objectType"] == "KalturaReachProfile"
    assert profile["maxCharactersPerCaptionLine"] == 26
    assert profile["labelAdditionForMachineServiceType"] == "(Auto Generated)"
    # the profile is include-only on the task: none of these come with it
    assert not {"serviceType", "serviceFeature", "turnAroundTime", "expectedFinishTime"} & set(task)
    assert "id" not in catalog and "id" not in profile  # excluded in the related profiles


def test_detached_response_profile_selects_fields(
    emulator: KalturaEmulator, vendor: Vendor
) -> None:
    task_id = pending_task(emulator, vendor)
    ks = vendor_ks(emulator, vendor)
    listing = {"filter[objectType]": "KalturaEntryVendorTaskFilter"}

    def get_jobs(kind: int, fields: str) -> Any:
        return post(
            emulator,
            "reach_entryvendortask",
            "getJobs",
            ks=ks,
            **listing,
            **{
                "responseProfile[objectType]": "KalturaDetachedResponseProfile",
                "responseProfile[type]": kind,
                "responseProfile[fields]": fields,
            },
        )

    included = get_jobs(1, "id, accessKey")  # INCLUDE_FIELDS; Kaltura trims the names
    assert included["totalCount"] == 1  # the list's own fields are not the profile's
    (job,) = included["objects"]
    assert set(job) == {"objectType", "id", "accessKey"} and job["id"] == str(task_id)

    (job,) = get_jobs(2, "accessKey,entryId")["objects"]  # EXCLUDE_FIELDS
    assert "accessKey" not in job and "entryId" not in job and job["status"] == 1

    # The same through the official client (XML): the fields a vendor stores all arrive.
    c = vendor_client(emulator, vendor)
    c.setResponseProfile(
        KalturaDetachedResponseProfile(
            type=1,
            fields="id,partnerId,entryId,version,accessKey,serviceType,serviceFeature,"
            "turnAroundTime,expectedFinishTime",
        )
    )
    (offer,) = c.reach.entryVendorTask.getJobs(KalturaEntryVendorTaskFilter()).objects
    task = emulator.task(task_id)
    assert (offer.id, offer.partnerId, offer.entryId, int(offer.version)) == (
        task_id,
        task["partnerId"],
        task["entryId"],
        task["version"],
    )
    assert offer.accessKey == task["accessKey"]
    assert offer.serviceType.getValue() == task["serviceType"]
    assert offer.expectedFinishTime == task["expectedFinishTime"]
    assert offer.notes is NotImplemented  # not in the profile


def test_errors_are_kaltura_api_exceptions(emulator: KalturaEmulator, vendor: Vendor) -> None:
    task_id = pending_task(emulator, vendor)
    ks = vendor_ks(emulator, vendor)

    not_found = post(emulator, "reach_entryvendortask", "get", ks=ks, id=task_id)
    assert not_found["objectType"] == "KalturaAPIException"
    assert not_found["code"] == "ENTRY_VENDOR_TASK_NOT_FOUND"
    assert not_found["message"] == f"Entry vendor task item with id provided not found [{task_id}]"
    assert not_found["args"] == {"ID": str(task_id)}

    cannot = post(emulator, "reach_entryvendortask", "extendAccessKey", ks=ks, id=task_id)
    assert cannot["code"] == "CANNOT_EXTEND_ACCESS_KEY" and cannot["args"] == []  # PENDING

    access_key = emulator.task(task_id)["accessKey"]
    forbidden = post(
        emulator, "reach_entryvendortask", "extendAccessKey", ks=access_key, id=task_id
    )
    assert forbidden["code"] == "SERVICE_FORBIDDEN"
    assert forbidden["args"] == {"SERVICE": "reach_entryvendortask->extendAccessKey"}

    forged = access_key[:-8] + ("A" * 8 if not access_key.endswith("A" * 8) else "B" * 8)
    invalid = post(emulator, "reach_entryvendortask", "get", ks=forged, id=task_id)
    assert invalid["code"] == "INVALID_KS"
    assert invalid["args"] == {"KSID": forged, "ERR_CODE": "-1", "ERR_DESC": "INVALID_STR"}
    # no KS: partner 0's no-session role lacks the permission (not MISSING_KS)
    assert post(emulator, "reach_entryvendortask", "get", id=task_id)["code"] == (
        "SERVICE_FORBIDDEN"
    )
    assert post(emulator, "nosuch", "get")["code"] == "SERVICE_DOES_NOT_EXISTS"

    # XML (format=2) is what the official client parses: <result><error>...</error></result>
    r = requests.post(
        f"{emulator.url}/api_v3/service/reach_entryvendortask/action/get",
        json={"format": 2, "ks": ks, "id": task_id},
    )
    root = etree.fromstring(r.content)
    assert root.findtext("result/error/code") == "ENTRY_VENDOR_TASK_NOT_FOUND"
    assert root.findtext("result/error/objectType") == "KalturaAPIException"
    assert root.find("executionTime") is not None


def test_expired_access_key_is_invalid_ks(emulator: KalturaEmulator, vendor: Vendor) -> None:
    # created long enough ago that its first key has one second left
    task_id = emulator.add_task(
        vendor_partner_id=vendor.partner_id,
        partner_id=CUSTOMER,
        media_path=None,
        access_key_ttl_s=1,
    )
    key = emulator.task(task_id)["accessKey"]
    time.sleep(2.1)
    with pytest.raises(KalturaException) as info:
        client(emulator, key).reach.entryVendorTask.get(task_id)
    assert info.value.code == "INVALID_KS"
    assert info.value.message == 'Invalid KS "EXPIRED", Error "-1,INVALID_STR"'


def test_status_rules_and_access_key_extension(emulator: KalturaEmulator, vendor: Vendor) -> None:
    task_id = pending_task(emulator, vendor)
    key = emulator.task(task_id)["accessKey"]
    v = vendor_client(emulator, vendor)
    v.reach.entryVendorTask.updateJob(task_id, KalturaEntryVendorTask(status=3))
    extended = v.reach.entryVendorTask.extendAccessKey(task_id)
    assert extended.accessKey != key
    # the old key is not killed by the extension: it lives out its own expiry
    assert client(emulator, key).reach.entryVendorTask.get(task_id).id == task_id
    v.reach.entryVendorTask.updateJob(
        task_id, KalturaEntryVendorTask(status=2, outputObjectId="0_abc", accuracy=93)
    )
    task = emulator.task(task_id)
    assert (task["status"], task["outputObjectId"], task["accuracy"]) == (2, "0_abc", 93)
    with pytest.raises(KalturaException) as info:
        v.reach.entryVendorTask.updateJob(task_id, KalturaEntryVendorTask(status=6))
    assert info.value.code == "CANNOT_UPDATE_STATUS_OF_TASK_WHICH_IS_IN_FINAL_STATE"
    with pytest.raises(KalturaException) as info:
        v.reach.entryVendorTask.updateJob(task_id, KalturaEntryVendorTask(catalogItemId=5))
    assert info.value.code == "PROPERTY_VALIDATION_NOT_UPDATABLE"
    # READY killed the current key
    with pytest.raises(KalturaException) as info:
        client(emulator, extended.accessKey).reach.entryVendorTask.get(task_id)
    assert info.value.code == "INVALID_KS" and "LOGOUT" in info.value.message


def test_multirequest_references_deliver_a_caption(
    emulator: KalturaEmulator, vendor: Vendor
) -> None:
    task_id = pending_task(emulator, vendor)
    task = emulator.task(task_id)
    c = client(emulator, task["accessKey"])
    content = b"1\n00:00:00,000 --> 00:00:01,000\nhello\n"
    c.startMultiRequest()
    token = c.uploadToken.add(KalturaUploadToken(fileName="a.srt"))
    c.uploadToken.upload(token.id, _Named(content, "a.srt"))
    asset = c.caption.captionAsset.add(
        task["entryId"], KalturaCaptionAsset(language="English", label="English", format="1")
    )
    c.caption.captionAsset.setContent(asset.id, KalturaUploadedFileTokenResource(token=token.id))
    results = c.doMultiRequest()
    assert not [r for r in results if isinstance(r, KalturaException)], results
    assert results[1].status.getValue() == 2  # FULL_UPLOAD
    (stored,) = emulator.caption_assets(task["entryId"])
    assert stored["content"] == content and stored["status"] == 2
    assert stored["id"] == results[2].id == results[3].id
    parts = [c for c in emulator.calls if c[0] in ("uploadtoken", "caption_captionasset")]
    assert len(parts) == 4

    # An error in one part does not stop the others, and is reported in place.
    c.startMultiRequest()
    c.caption.captionAsset.get("0_missing")
    c.uploadToken.add(KalturaUploadToken(fileName="b.srt"))
    missing, added = c.doMultiRequest()
    assert isinstance(missing, KalturaException) and missing.code == "CAPTION_ASSET_ID_NOT_FOUND"
    assert added.id

    # A part referring to a failed one still runs, with the reference replaced by the
    # empty string (KalturaFrontController::replaceMultiRequestResults): a multirequest
    # cannot make a last part depend on the parts before it.
    c.startMultiRequest()
    gone = c.caption.captionAsset.get("0_missing")
    c.caption.captionAsset.get(gone.id)
    c.uploadToken.add(KalturaUploadToken(fileName=gone.fileExt))
    missing, dependent, also = c.doMultiRequest()
    assert isinstance(missing, KalturaException)
    assert isinstance(dependent, KalturaException)
    assert dependent.code == "CAPTION_ASSET_ID_NOT_FOUND"
    assert dependent.message == 'Caption asset id "" not found'
    assert not isinstance(also, KalturaException) and also.fileName == ""


def test_vendor_session_cannot_touch_customer_entries(
    emulator: KalturaEmulator, vendor: Vendor, tmp_path: Path
) -> None:
    media = tmp_path / "m.mp3"
    media.write_bytes(b"ID3" + bytes(range(256)) * 40)
    task_id = pending_task(emulator, vendor, media)
    task = emulator.task(task_id)
    ks = vendor_ks(emulator, vendor)
    assert client(emulator, ks).flavorAsset.list().totalCount == 0
    with pytest.raises(KalturaException) as info:
        client(emulator, ks).caption.captionAsset.add(
            task["entryId"], KalturaCaptionAsset(language="English")
        )
    assert info.value.code == "ENTRY_ID_NOT_FOUND"  # the partner filter hides the entry

    # another entry of the same customer: the key has no `edit` on it (validateUser)
    other = pending_task(emulator, vendor)
    other_entry = emulator.task(other)["entryId"]
    with pytest.raises(KalturaException) as info:
        client(emulator, task["accessKey"]).caption.captionAsset.add(
            other_entry, KalturaCaptionAsset(language="English")
        )
    assert info.value.code == "INVALID_KS"
    assert info.value.message == 'Invalid KS "", Error "-4,INVALID_TYPE"'

    c = client(emulator, task["accessKey"])
    # without entitlement the key reads the customer's other entries too: filter by entry
    assert c.flavorAsset.list().totalCount == 2
    (flavor,) = c.flavorAsset.list(KalturaAssetFilter(entryIdEqual=task["entryId"])).objects
    url = c.flavorAsset.getUrl(flavor.id)
    assert requests.get(url).content == media.read_bytes()
    assert requests.get(url.replace(task["accessKey"], ks)).status_code == 404
    assert requests.get(url.replace(task["accessKey"], "garbage")).status_code == 403


def test_scripted_faults(emulator: KalturaEmulator, vendor: Vendor) -> None:
    task_id = pending_task(emulator, vendor)
    c = client(emulator, emulator.task(task_id)["accessKey"])
    emulator.inject_fault("reach_entryvendortask", "get", "drop")
    with pytest.raises(KalturaClientException):
        c.reach.entryVendorTask.get(task_id)
    emulator.inject_fault("reach_entryvendortask", "get", "http500")
    with pytest.raises(KalturaClientException):
        c.reach.entryVendorTask.get(task_id)
    emulator.inject_fault("reach_entryvendortask", "get", code="SOME_ERROR", message="boom")
    with pytest.raises(KalturaException) as info:
        c.reach.entryVendorTask.get(task_id)
    assert info.value.code == "SOME_ERROR"
    assert c.reach.entryVendorTask.get(task_id).id == task_id

    emulator.inject_fault("reach_entryvendortask", "updateJob", "drop_after")
    with pytest.raises(KalturaClientException):
        vendor_client(emulator, vendor).reach.entryVendorTask.updateJob(
            task_id, KalturaEntryVendorTask(status=3)
        )
    assert emulator.task(task_id)["status"] == 3  # it took effect; only the answer was lost


class _Named(io.BytesIO):
    """In-memory file with a name, as the client's multipart upload wants."""

    def __init__(self, data: bytes, name: str) -> None:
        super().__init__(data)
        self.name = name


def _outcomes(emu: KalturaEmulator, c: KalturaClient, task_id: int, n: int) -> list[str]:
    out = []
    for _ in range(n):
        try:
            c.reach.entryVendorTask.get(task_id)
            out.append("ok")
        except KalturaException as exc:
            out.append(str(exc.code))
        except KalturaClientException:
            out.append("transport")
    return out


def test_random_faults_are_seeded_and_counted(emulator: KalturaEmulator, vendor: Vendor) -> None:
    task_id = pending_task(emulator, vendor)
    c = client(emulator, emulator.task(task_id)["accessKey"])
    c.config.requestTimeout = 5
    runs = []
    for _ in range(2):
        emulator.set_chaos(
            7, http500=0.2, drop=0.1, drop_after=0.1, error=0.1, delay=0.1, delay_s=0.01
        )
        runs.append(_outcomes(emulator, c, task_id, 40))
    assert runs[0] == runs[1]  # same seed, same faults
    outcomes = runs[0]
    assert {"ok", "transport", "INTERNAL_SERVERL_ERROR"} <= set(outcomes)
    counts = emulator.chaos_counts()
    assert set(counts) == {"http500", "drop", "drop_after", "error", "delay"}
    assert sum(counts.values()) == len([o for o in outcomes if o != "ok"]) + counts["delay"]
    emulator.clear_chaos()
    assert _outcomes(emulator, c, task_id, 5) == ["ok"] * 5
    with pytest.raises(ValueError):
        emulator.set_chaos(1, http500=0.8, drop=0.5)


def test_keys_can_be_expired_on_demand(emulator: KalturaEmulator, vendor: Vendor) -> None:
    task_id = pending_task(emulator, vendor)
    key = emulator.task(task_id)["accessKey"]
    old = vendor_ks(emulator, vendor)
    assert emulator.expire_vendor_sessions() >= 1
    with pytest.raises(KalturaException) as info:
        client(emulator, old).reach.entryVendorTask.getJobs()
    assert info.value.code == "INVALID_KS" and "EXPIRED" in str(info.value)
    # A new app-token session works at once.
    jobs = vendor_client(emulator, vendor).reach.entryVendorTask.getJobs()
    assert [t.id for t in jobs.objects] == [task_id]

    assert client(emulator, key).reach.entryVendorTask.get(task_id).id == task_id
    emulator.expire_access_key(task_id)
    with pytest.raises(KalturaException) as info:
        client(emulator, key).reach.entryVendorTask.get(task_id)
    assert info.value.code == "INVALID_KS"


def test_customer_abort_only_while_the_task_is_open(
    emulator: KalturaEmulator, vendor: Vendor
) -> None:
    task_id = pending_task(emulator, vendor)
    v = vendor_client(emulator, vendor)
    v.reach.entryVendorTask.updateJob(task_id, KalturaEntryVendorTask(status=2))
    assert emulator.abort_task(task_id) is False
    assert emulator.task(task_id)["status"] == 2
    other = pending_task(emulator, vendor)
    assert emulator.abort_task(other) is True
    task = emulator.task(other)
    assert task["status"] == 7
    assert [s for s, _ in task["_statusLog"]] == [7]
    assert [s for s, _ in emulator.task(task_id)["_statusLog"]] == [2]


def test_alignment_task_carries_its_transcript_as_an_attachment(
    emulator: KalturaEmulator, vendor: Vendor
) -> None:
    """Like Kaltura: `taskJobData` names the text attachment, `getUrl` gives a serve URL
    with the caller's KS. Another task's key of the same customer can read it too, unless
    the customer enforces entitlement (switch `entitlement`)."""
    task_id = emulator.add_task(
        vendor_partner_id=vendor.partner_id,
        partner_id=CUSTOMER,
        media_path=None,
        service_feature=3,
        transcript_text="Hello there, world.",
    )
    other_task = pending_task(emulator, vendor)
    key = emulator.task(task_id)["accessKey"]
    task = client(emulator, key).reach.entryVendorTask.get(task_id)
    job = task.taskJobData
    assert type(job).__name__ == "KalturaAlignmentVendorTaskData"
    url = client(emulator, key).attachment.attachmentAsset.getUrl(job.textTranscriptAssetId)
    assert requests.get(url, timeout=5).text == "Hello there, world."
    other_key = emulator.task(other_task)["accessKey"]
    forged = url.replace(key, other_key)
    assert requests.get(forged, timeout=5).text == "Hello there, world."
    emulator.entitlement = True
    with pytest.raises(KalturaException) as err:
        client(emulator, other_key).attachment.attachmentAsset.getUrl(job.textTranscriptAssetId)
    assert err.value.code == "ATTACHMENT_ASSET_ID_NOT_FOUND"
    # a serve action's error is an empty answer with Kaltura's error header
    refused = requests.get(forged, timeout=5)
    assert refused.content == b""
    assert refused.headers["X-Kaltura"] == "error-ATTACHMENT_ASSET_ID_NOT_FOUND"
    assert requests.get(url, timeout=5).text == "Hello there, world."
