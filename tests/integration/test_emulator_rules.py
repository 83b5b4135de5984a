"""One test per rule of the Kaltura emulator, each naming the kaltura/server source it
copies (the rule table is in reach_devkit/emulator/__init__.py). The emulator is driven
over real HTTP with the official client or raw requests, never through the daemon."""

from __future__ import annotations

import base64
import io
import time
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests
from KalturaClient import KalturaClient
from KalturaClient.exceptions import KalturaException
from KalturaClient.Plugins.Attachment import KalturaAttachmentAsset
from KalturaClient.Plugins.Caption import KalturaCaptionAsset, KalturaCaptionAssetFilter
from KalturaClient.Plugins.Core import (
    KalturaAssetFilter,
    KalturaDetachedResponseProfile,
    KalturaFilterPager,
    KalturaResponseProfileHolder,
    KalturaStringResource,
    KalturaUploadedFileTokenResource,
    KalturaUploadToken,
    KalturaUploadTokenFilter,
)
from KalturaClient.Plugins.Reach import KalturaEntryVendorTask, KalturaEntryVendorTaskFilter

from reach_devkit.emulator import ApiError, KalturaEmulator
from reach_devkit.emulator.vendor_setup import Vendor
from reach_devkit.emulator.world import business_days
from tests.support.kaltura_calls import client, pending_task, post, vendor_client, vendor_ks

CUSTOMER = 4124832
PENDING, READY, PROCESSING, ERROR, ABORTED = 1, 2, 3, 6, 7
SRT = b"1\n00:00:00,000 --> 00:00:01,000\nhello\n"


class _Named(io.BytesIO):
    def __init__(self, data: bytes, name: str) -> None:
        super().__init__(data)
        self.name = name


def key_client(emu: KalturaEmulator, task_id: int) -> KalturaClient:
    """A client on the task's access key, sending no partnerId (as a vendor must)."""
    return client(emu, emu.task(task_id)["accessKey"])


def refused(call: Any) -> KalturaException:
    with pytest.raises(KalturaException) as info:
        call()
    return info.value


def deliver_caption(emu: KalturaEmulator, task_id: int, label: str = "English") -> str:
    c = key_client(emu, task_id)
    entry_id = emu.task(task_id)["entryId"]
    asset = c.caption.captionAsset.add(
        entry_id, KalturaCaptionAsset(language="English", label=label, format="1")
    )
    c.caption.captionAsset.setContent(asset.id, KalturaStringResource(content=SRT.decode()))
    return str(asset.id)


def started(emu: KalturaEmulator, vendor: Vendor, **kw: Any) -> tuple[int, KalturaClient]:
    task_id = emu.add_task(
        vendor_partner_id=vendor.partner_id, partner_id=CUSTOMER, media_path=None, **kw
    )
    v = vendor_client(emu, vendor)
    v.reach.entryVendorTask.updateJob(task_id, KalturaEntryVendorTask(status=PROCESSING))
    return task_id, v


# -- R1: permissions, partner filter, impersonation ----------------------------------------


def test_r1a_vendor_actions_need_the_vendor_partner(
    emulator: KalturaEmulator, vendor: Vendor
) -> None:
    """service.reach.entryVendorTask.ini items 4/8/12 (REACH_VENDOR_PARTNER) checked by
    KalturaBaseService::initService -> kPermissionManager::isActionPermitted: an access key
    (customer partner, REACH_VENDOR_ROLE) and a customer admin get SERVICE_FORBIDDEN."""
    task_id = pending_task(emulator, vendor)
    key = key_client(emulator, task_id)
    for call, name in (
        (lambda: key.reach.entryVendorTask.getJobs(), "getJobs"),
        (
            lambda: key.reach.entryVendorTask.updateJob(task_id, KalturaEntryVendorTask(status=3)),
            "updateJob",
        ),
        (lambda: key.reach.entryVendorTask.extendAccessKey(task_id), "extendAccessKey"),
    ):
        err = refused(call)
        assert err.code == "SERVICE_FORBIDDEN"
        assert err.message == f"The access to service [reach_entryvendortask->{name}] is forbidden"
    admin = client(emulator, emulator.admin_ks(CUSTOMER))
    assert refused(admin.reach.entryVendorTask.getJobs).code == "SERVICE_FORBIDDEN"
    assert vendor_client(emulator, vendor).reach.entryVendorTask.getJobs().totalCount == 1


def test_r1b_access_key_actions(emulator: KalturaEmulator, vendor: Vendor, tmp_path: Any) -> None:
    """03.UserRole.ini [REACH_VENDOR_ROLE] (BASE_USER_SESSION_PERMISSION, CONTENT_MANAGE_BASE,
    CAPTION_MODIFY) against service.caption.captionasset.ini, service.attachment.
    attachmentasset.ini, service.uploadtoken.ini, service.flavorasset.ini: the vendor's
    calls are allowed, attachmentAsset.delete (ATTACHMENT_MODIFY only) is not; without a
    KS only ALWAYS_ALLOWED actions run (KalturaBaseService::isPermitted)."""
    media = tmp_path / "m.mp3"
    media.write_bytes(b"ID3" + bytes(200))
    task_id = pending_task(emulator, vendor, media)
    entry_id = emulator.task(task_id)["entryId"]
    c = key_client(emulator, task_id)
    assert c.reach.entryVendorTask.get(task_id).id == task_id
    (flavor,) = c.flavorAsset.list(KalturaAssetFilter(entryIdEqual=entry_id)).objects
    assert requests.get(c.flavorAsset.getUrl(flavor.id), timeout=5).content == media.read_bytes()
    token = c.uploadToken.add(KalturaUploadToken(fileName="a.srt"))
    c.uploadToken.upload(token.id, _Named(SRT, "a.srt"))
    assert c.uploadToken.get(token.id).status.getValue() == 2
    assert c.uploadToken.list().totalCount == 1
    caption = c.caption.captionAsset.add(entry_id, KalturaCaptionAsset(language="English"))
    c.caption.captionAsset.setContent(caption.id, KalturaUploadedFileTokenResource(token=token.id))
    assert c.caption.captionAsset.get(caption.id).status.getValue() == 2
    assert (
        c.caption.captionAsset.list(KalturaCaptionAssetFilter(entryIdEqual=entry_id)).totalCount
        == 1
    )
    c.caption.captionAsset.delete(caption.id)
    attachment = c.attachment.attachmentAsset.add(
        entry_id, KalturaAttachmentAsset(filename="t.txt")
    )
    c.attachment.attachmentAsset.setContent(attachment.id, KalturaStringResource(content="text"))
    assert c.attachment.attachmentAsset.get(attachment.id).id == attachment.id
    assert c.attachment.attachmentAsset.list().totalCount == 1
    url = c.attachment.attachmentAsset.getUrl(attachment.id)
    assert requests.get(url, timeout=5).text == "text"
    err = refused(lambda: c.attachment.attachmentAsset.delete(attachment.id))
    assert err.code == "SERVICE_FORBIDDEN"
    assert err.message == "The access to service [attachment_attachmentasset->delete] is forbidden"
    none = post(emulator, "reach_entryvendortask", "get", id=task_id)
    assert none["code"] == "SERVICE_FORBIDDEN"
    assert post(emulator, "system", "ping") is True


def test_r1c_the_vendor_session_sees_none_of_the_customers_objects(
    emulator: KalturaEmulator, vendor: Vendor
) -> None:
    """KalturaBaseService::setPartnerFilters and EntryVendorTaskService::initService
    (applyPartnerFilterForClass): the vendor partner's KS finds no customer object."""
    task_id = pending_task(emulator, vendor)
    entry_id = emulator.task(task_id)["entryId"]
    deliver_caption(emulator, task_id)
    v = vendor_client(emulator, vendor)
    err = refused(lambda: v.reach.entryVendorTask.get(task_id))
    assert err.code == "ENTRY_VENDOR_TASK_NOT_FOUND"
    err = refused(
        lambda: v.caption.captionAsset.add(entry_id, KalturaCaptionAsset(language="English"))
    )
    assert (err.code, err.message) == ("ENTRY_ID_NOT_FOUND", f'Entry id "{entry_id}" not found')
    assert v.flavorAsset.list().totalCount == 0
    assert v.caption.captionAsset.list().totalCount == 0
    assert v.attachment.attachmentAsset.list().totalCount == 0


def test_r1d_the_partner_id_parameter_is_the_requested_partner(
    emulator: KalturaEmulator, vendor: Vendor
) -> None:
    """KalturaDispatcher::dispatch (partnerId is the requested partner),
    kPermissionManager::isPartnerAccessAllowed / myPartnerUtils::allowPartnerAccessPartner
    (impersonation refused), initPartnerUserObjects (unknown partner blocked),
    KalturaFrontController::handleMultiRequest (a call's own partnerId wins)."""
    task_id = pending_task(emulator, vendor)
    key = emulator.task(task_id)["accessKey"]
    c = client(emulator, key)
    c.setPartnerId(vendor.partner_id)
    err = refused(lambda: c.reach.entryVendorTask.get(task_id))
    assert err.code == "SERVICE_FORBIDDEN"
    c.setPartnerId(CUSTOMER)
    assert c.reach.entryVendorTask.get(task_id).id == task_id
    c.setPartnerId(0)  # partner 0 under a partner's KS is dropped (initKsPartnerUser)
    assert c.reach.entryVendorTask.get(task_id).id == task_id
    c.setPartnerId(None)  # partnerId__null: none requested
    assert c.reach.entryVendorTask.get(task_id).id == task_id
    c.setPartnerId(777)
    err = refused(lambda: c.reach.entryVendorTask.get(task_id))
    assert err.code == "SERVICE_FORBIDDEN_CONTENT_BLOCKED"

    url = f"{emulator.url}/api_v3/service/multirequest"
    call = {"service": "reach_entryvendortask", "action": "get", "id": task_id, "ks": key}
    answer = requests.post(
        url,
        json={
            "format": 1,
            "partnerId": vendor.partner_id,
            "1": {**call, "partnerId": CUSTOMER},
            "2": call,
        },
        timeout=5,
    ).json()
    assert answer[0]["id"] == str(task_id)  # its own partnerId
    assert answer[1]["code"] == "SERVICE_FORBIDDEN"  # the common one, inherited
    # no KS: a widget session with the vendor's partnerId is not affected
    w = client(emulator, None)
    w.setPartnerId(vendor.partner_id)
    assert w.session.startWidgetSession(f"_{vendor.partner_id}").ks


def test_r1e_writing_on_another_entry_needs_its_edit_privilege(
    emulator: KalturaEmulator, vendor: Vendor
) -> None:
    """KalturaDispatcher::validateUser (`@validateUser entry entryId edit`, `asset::entry id
    edit` on CaptionAssetService add/setContent/update/delete): INVALID_KS "-4,INVALID_TYPE"."""
    first, second = pending_task(emulator, vendor), pending_task(emulator, vendor)
    caption_id = deliver_caption(emulator, second)
    c = key_client(emulator, first)
    err = refused(
        lambda: c.caption.captionAsset.setContent(caption_id, KalturaStringResource(content="x"))
    )
    assert err.code == "INVALID_KS"
    assert err.message == 'Invalid KS "", Error "-4,INVALID_TYPE"'
    assert c.caption.captionAsset.get(caption_id).id == caption_id  # reading is not a write


# -- R2: access keys --------------------------------------------------------------------


def test_r2_access_keys_are_opaque_v2_sessions_living_from_the_task_creation(
    emulator: KalturaEmulator, vendor: Vendor
) -> None:
    """VendorCatalogItem::generateReachVendorKs (a KS v2 of the customer,
    kSessionBase::generateKsV2) and getKsExpiry (max(2 x turnaround, 7 days)) from the
    task's creation (kReachManager::addEntryVendorTask)."""
    task_id = pending_task(emulator, vendor)
    key = emulator.task(task_id)["accessKey"]
    assert key.startswith("djJ8")
    assert base64.urlsafe_b64decode(key).startswith(f"v2|{CUSTOMER}|".encode())
    assert key_client(emulator, task_id).reach.entryVendorTask.get(task_id).id == task_id

    ten_days = 864000  # life 20 days
    backdated = emulator.add_task(
        vendor_partner_id=vendor.partner_id,
        partner_id=CUSTOMER,
        media_path=None,
        turn_around_time=ten_days,
        access_key_ttl_s=3600,
    )
    created = emulator.task(backdated)["createdAt"]
    assert abs(created - (time.time() - (2 * ten_days - 3600))) < 5
    assert key_client(emulator, backdated).reach.entryVendorTask.get(backdated).id == backdated

    old = emulator.add_task(
        vendor_partner_id=vendor.partner_id,
        partner_id=CUSTOMER,
        media_path=None,
        created_at=time.time() - 7 * 86400 - 10,
    )
    err = refused(lambda: key_client(emulator, old).reach.entryVendorTask.get(old))
    assert (
        err.code == "INVALID_KS" and err.message == 'Invalid KS "EXPIRED", Error "-1,INVALID_STR"'
    )


def test_r2b_ks_errors_name_the_ks_or_the_reason(emulator: KalturaEmulator, vendor: Vendor) -> None:
    """kCurrentContext::initKsPartnerUser (an unparseable KS: KSID is the KS) and
    kPermissionManager::errorIfKsNotValid (expired/killed: KSID is EXPIRED/LOGOUT), both
    rendered by KalturaFrontController::getExceptionObject with "-1,INVALID_STR"."""
    task_id = pending_task(emulator, vendor)
    garbage = post(emulator, "reach_entryvendortask", "get", ks="not-a-ks", id=task_id)
    assert garbage["args"] == {"KSID": "not-a-ks", "ERR_CODE": "-1", "ERR_DESC": "INVALID_STR"}
    emulator.kill_access_key(task_id)
    killed = post(
        emulator, "reach_entryvendortask", "get", ks=emulator.task(task_id)["accessKey"], id=task_id
    )
    assert killed["message"] == 'Invalid KS "LOGOUT", Error "-1,INVALID_STR"'
    other = pending_task(emulator, vendor)
    emulator.expire_access_key(other)
    expired = post(
        emulator, "reach_entryvendortask", "get", ks=emulator.task(other)["accessKey"], id=other
    )
    assert expired["args"] == {"KSID": "EXPIRED", "ERR_CODE": "-1", "ERR_DESC": "INVALID_STR"}


# -- R3: extendAccessKey ---------------------------------------------------------------------


def test_r3_extend_access_key(emulator: KalturaEmulator, vendor: Vendor) -> None:
    """EntryVendorTaskService::extendAccessKeyAction: the task's vendor must be the current
    partner, SCHEDULED or PROCESSING only; the new key is regenerated with the stored
    accessKeyExpiry and does not need the old one alive."""
    task_id = emulator.add_task(
        vendor_partner_id=vendor.partner_id,
        partner_id=CUSTOMER,
        media_path=None,
        access_key_ttl_s=1,
    )
    v = vendor_client(emulator, vendor)
    err = refused(lambda: v.reach.entryVendorTask.extendAccessKey(task_id))
    assert (err.code, err.message) == (
        "CANNOT_EXTEND_ACCESS_KEY",
        "Extending accessKey for non processing task is not allowed",
    )
    v.reach.entryVendorTask.updateJob(task_id, KalturaEntryVendorTask(status=PROCESSING))
    old = emulator.task(task_id)["accessKey"]
    time.sleep(1.2)
    assert (
        refused(lambda: client(emulator, old).reach.entryVendorTask.get(task_id)).code
        == "INVALID_KS"
    )
    extended = v.reach.entryVendorTask.extendAccessKey(task_id)
    assert extended.accessKey != old and extended.accessKey == emulator.task(task_id)["accessKey"]
    assert client(emulator, extended.accessKey).reach.entryVendorTask.get(task_id).id == task_id

    emulator.add_vendor_partner(partner_id=9002, app_token_id="1_other", app_token="b" * 32)
    other = vendor_client(emulator, Vendor(9002, "1_other", "b" * 32))
    err = refused(lambda: other.reach.entryVendorTask.extendAccessKey(task_id))
    assert err.code == "ENTRY_VENDOR_TASK_NOT_FOUND"


# -- R4: updateJob -------------------------------------------------------------------------


def test_r4a_update_job_finds_the_vendors_tasks_and_never_aborted_ones(
    emulator: KalturaEmulator, vendor: Vendor
) -> None:
    """EntryVendorTaskPeer::retrieveByPKAndVendorPartnerId and setDefaultCriteriaFilter
    (status != ABORTED) under EntryVendorTaskService::updateJobAction."""
    task_id = pending_task(emulator, vendor)
    emulator.add_vendor_partner(partner_id=9002, app_token_id="1_other", app_token="b" * 32)
    other = vendor_client(emulator, Vendor(9002, "1_other", "b" * 32))
    err = refused(
        lambda: other.reach.entryVendorTask.updateJob(task_id, KalturaEntryVendorTask(notes="x"))
    )
    assert err.code == "ENTRY_VENDOR_TASK_NOT_FOUND"
    assert emulator.abort_task(task_id)
    v = vendor_client(emulator, vendor)
    err = refused(
        lambda: v.reach.entryVendorTask.updateJob(task_id, KalturaEntryVendorTask(status=3))
    )
    assert err.message == f"Entry vendor task item with id provided not found [{task_id}]"
    err = refused(lambda: key_client(emulator, task_id).reach.entryVendorTask.get(task_id))
    assert err.code == "ENTRY_VENDOR_TASK_NOT_FOUND"


def test_r4b_final_tasks_keep_their_status_and_units(
    emulator: KalturaEmulator, vendor: Vendor
) -> None:
    """KalturaEntryVendorTask::validateForUpdate: closed statuses ABORTED/READY/REJECTED/
    ERROR; another status or a truthy unitsUsed is refused; the same status again changes
    nothing; partnerData must be a JSON object (kString::checkIsValidJson)."""
    task_id, v = started(emulator, vendor)
    err = refused(
        lambda: v.reach.entryVendorTask.updateJob(
            task_id, KalturaEntryVendorTask(partnerData="[1]")
        )
    )
    assert err.code == "PARTNER_DATA_NOT_VALID_JSON_STRING"
    caption_id = deliver_caption(emulator, task_id)
    v.reach.entryVendorTask.updateJob(
        task_id, KalturaEntryVendorTask(status=READY, outputObjectId=caption_id)
    )
    before = emulator.task(task_id)
    err = refused(
        lambda: v.reach.entryVendorTask.updateJob(task_id, KalturaEntryVendorTask(status=ERROR))
    )
    assert err.code == "CANNOT_UPDATE_STATUS_OF_TASK_WHICH_IS_IN_FINAL_STATE"
    assert err.message == (
        f"Cannot update status from [2] to [6] for task with id [{task_id}], "
        "since task is in final status"
    )
    err = refused(
        lambda: v.reach.entryVendorTask.updateJob(task_id, KalturaEntryVendorTask(unitsUsed=5))
    )
    assert err.code == "CANNOT_UPDATE_UNIT_USED_OF_TASK_WHICH_IS_IN_FINAL_STATE"
    again = v.reach.entryVendorTask.updateJob(task_id, KalturaEntryVendorTask(status=READY))
    assert again.status.getValue() == READY
    after = emulator.task(task_id)
    assert after["_statusLog"] == before["_statusLog"] and after["updatedAt"] == before["updatedAt"]
    (caption,) = emulator.caption_assets(after["entryId"])
    assert caption["label"] == "English (Auto Generated)"  # no second label addition


def test_r4c_read_only_properties_and_vendor_only_ones(
    emulator: KalturaEmulator, vendor: Vendor
) -> None:
    """KalturaObject::validateForUpdate (unchanged values skipped, @readonly/@insertonly
    refused with PROPERTY_VALIDATION_NOT_UPDATABLE, @requiresPermission dropped without the
    permission: object.KalturaEntryVendorTask.ini grants them to REACH_VENDOR_PARTNER)."""
    task_id = pending_task(emulator, vendor)
    task = emulator.task(task_id)
    v = vendor_client(emulator, vendor)
    err = refused(
        lambda: v.reach.entryVendorTask.updateJob(
            task_id, KalturaEntryVendorTask(catalogItemId=task["catalogItemId"] + 1)
        )
    )
    assert err.code == "PROPERTY_VALIDATION_NOT_UPDATABLE"
    assert err.message == 'The property "KalturaEntryVendorTask::catalogItemId" cannot be updated'
    same = KalturaEntryVendorTask(
        catalogItemId=task["catalogItemId"], entryId=task["entryId"], notes="n"
    )
    assert v.reach.entryVendorTask.updateJob(task_id, same).notes == "n"
    # the customer's `update` (here with the access key): status silently dropped
    updated = key_client(emulator, task_id).reach.entryVendorTask.update(
        task_id, KalturaEntryVendorTask(status=PROCESSING, notes="from the key")
    )
    assert updated.status.getValue() == PENDING and updated.notes == "from the key"


def test_r4d_processing_and_aborted_only_from_a_pending_status(
    emulator: KalturaEmulator, vendor: Vendor
) -> None:
    """EntryVendorTask::save throws for PROCESSING/ABORTED from anything but PENDING,
    PENDING_MODERATION, PENDING_ENTRY_READY, SCHEDULED; EntryVendorTaskService::tryToSave
    answers ENTRY_VENDOR_TASK_ITEM_COULD_NOT_BE_UPDATED with the reason."""
    task_id, v = started(emulator, vendor)
    assert (
        v.reach.entryVendorTask.updateJob(task_id, KalturaEntryVendorTask(status=PROCESSING)).id
        == task_id
    )
    err = refused(
        lambda: v.reach.entryVendorTask.updateJob(task_id, KalturaEntryVendorTask(status=ABORTED))
    )
    assert err.code == "ENTRY_VENDOR_TASK_ITEM_COULD_NOT_BE_UPDATED"
    assert (
        err.message
        == f"Entry vendor task item with id [{task_id}] could not be updated to status [7]"
    )
    assert emulator.task(task_id)["status"] == PROCESSING


def test_r4e_pay_per_use_ready_needs_units_used(emulator: KalturaEmulator, vendor: Vendor) -> None:
    """kReachUtils::getPayPerUsePrice (from KalturaEntryVendorTask::toUpdatableObject): READY
    on a pay-per-use item without a numeric unitsUsed, given or stored, is refused."""
    task_id, v = started(emulator, vendor, pay_per_use=True)
    err = refused(
        lambda: v.reach.entryVendorTask.updateJob(task_id, KalturaEntryVendorTask(status=READY))
    )
    assert (err.code, err.message) == (
        "MISSING_MANDATORY_PARAMETER",
        'Missing parameter "unitsUsed"',
    )
    v.reach.entryVendorTask.updateJob(task_id, KalturaEntryVendorTask(unitsUsed=1234))
    done = v.reach.entryVendorTask.updateJob(task_id, KalturaEntryVendorTask(status=READY))
    assert done.status.getValue() == READY and done.unitsUsed == 1234
    plain, w = started(emulator, vendor)
    assert (
        w.reach.entryVendorTask.updateJob(plain, KalturaEntryVendorTask(status=READY)).id == plain
    )


def test_r4f_pre_save_times(emulator: KalturaEmulator, vendor: Vendor) -> None:
    """EntryVendorTask::preSave: finishTime on READY/ERROR; queueTime and
    expectedFinishTime on a change to PENDING (BEST_EFFORT -> 7 days, 1..7 -> business days
    by calculateBusinessDays in New York time, else seconds)."""
    best = emulator.add_task(
        vendor_partner_id=vendor.partner_id,
        partner_id=CUSTOMER,
        media_path=None,
        turn_around_time=-1,
    )
    task = emulator.task(best)
    assert (
        task["expectedFinishTime"] == task["createdAt"] + 604800
        and task["queueTime"] == task["createdAt"]
    )
    half_hour = pending_task(emulator, vendor)
    assert (
        emulator.task(half_hour)["expectedFinishTime"]
        == emulator.task(half_hour)["createdAt"] + 1800
    )
    ny = ZoneInfo("America/New_York")
    friday_5pm = int(datetime(2024, 3, 1, 17, 0, tzinfo=ny).timestamp())
    assert business_days(1, friday_5pm) == 72 * 3600  # Saturday 17:00 -> Monday 17:00
    saturday = int(datetime(2024, 3, 2, 10, 0, tzinfo=ny).timestamp())
    assert (
        business_days(1, saturday)
        == int(datetime(2024, 3, 4, 18, 0, tzinfo=ny).timestamp()) - saturday
    )

    task_id, v = started(emulator, vendor)
    failed = v.reach.entryVendorTask.updateJob(
        task_id, KalturaEntryVendorTask(status=ERROR, errDescription="x")
    )
    assert abs(failed.finishTime - time.time()) < 5
    requeued = pending_task(emulator, vendor)
    emulator.world.tasks[requeued]["queueTime"] = 0  # so that the recomputation shows
    emulator.reset_task(requeued)  # PENDING -> PENDING: no change, nothing recomputed
    assert emulator.task(requeued)["queueTime"] == 0
    other, w = started(emulator, vendor)
    emulator.reset_task(other)
    assert abs(emulator.task(other)["queueTime"] - time.time()) < 5


# -- R5: what READY does -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("service_type", "feature", "label"),
    [
        (2, 1, "English (Auto Generated)"),  # MACHINE captions
        (1, 1, "English (Human)"),  # HUMAN captions
        (3, 1, "English"),  # HYBRID: getLabelAdditionByType knows HUMAN and MACHINE only
        (2, 2, "English"),  # TRANSLATION: captions only
    ],
)
def test_r5_ready_adds_the_label_addition_and_kills_the_key(
    emulator: KalturaEmulator, vendor: Vendor, service_type: int, feature: int, label: str
) -> None:
    """kReachManager::objectChanged -> handleEntryVendorTaskStatusChanged(READY):
    addLabelAddition (CAPTIONS, getLabelAdditionByType) then invalidateAccessKey (ks::kill,
    INVALID_KS LOGOUT for every later call with the key)."""
    task_id, v = started(
        emulator,
        vendor,
        service_type=service_type,
        service_feature=feature,
        label_human="(Human)",
        label_hybrid="(Hybrid)",
    )
    caption_id = deliver_caption(emulator, task_id)
    v.reach.entryVendorTask.updateJob(
        task_id, KalturaEntryVendorTask(status=READY, outputObjectId=caption_id)
    )
    (caption,) = emulator.caption_assets(emulator.task(task_id)["entryId"])
    assert caption["label"] == label
    err = refused(lambda: key_client(emulator, task_id).caption.captionAsset.get(caption_id))
    assert (err.code, err.message) == ("INVALID_KS", 'Invalid KS "LOGOUT", Error "-1,INVALID_STR"')


def test_r5_error_does_not_kill_the_key(emulator: KalturaEmulator, vendor: Vendor) -> None:
    """kReachManager::handleEntryVendorTaskStatusChanged: only READY invalidates the key."""
    task_id, v = started(emulator, vendor)
    v.reach.entryVendorTask.updateJob(
        task_id, KalturaEntryVendorTask(status=ERROR, errDescription="no")
    )
    assert (
        key_client(emulator, task_id).reach.entryVendorTask.get(task_id).status.getValue() == ERROR
    )


# -- R6: multirequest references -----------------------------------------------------------


def test_r6_a_failed_reference_is_the_empty_string_and_the_call_runs(
    emulator: KalturaEmulator, vendor: Vendor
) -> None:
    """KalturaFrontController::replaceMultiRequestResults / getValueFromObject: a reference
    to a failed call (or a missing, empty or trimmed field) becomes "", inside the string
    too (str_replace); the call still runs. Calls may carry different sessions: the client
    copies the KS into each call as it is queued."""
    task_id, v = started(emulator, vendor)
    key = emulator.task(task_id)["accessKey"]
    v.setKs(key)
    v.setPartnerId(None)
    v.startMultiRequest()
    gone = v.caption.captionAsset.get("0_missing")
    v.setKs(vendor_ks(emulator, vendor))
    v.reach.entryVendorTask.updateJob(
        task_id, KalturaEntryVendorTask(status=READY, outputObjectId=gone.id, notes=f"x{gone.id}y")
    )
    failed, ready = v.doMultiRequest()
    assert isinstance(failed, KalturaException) and not isinstance(ready, KalturaException)
    task = emulator.task(task_id)
    assert task["status"] == READY and task["outputObjectId"] == "" and task["notes"] == "xy"

    other = pending_task(emulator, vendor)
    c = key_client(emulator, other)
    c.setResponseProfile(KalturaDetachedResponseProfile(type=2, fields="entryId"))
    c.startMultiRequest()
    trimmed = c.reach.entryVendorTask.get(other)
    c.setResponseProfile(None)
    c.uploadToken.add(KalturaUploadToken(fileName=f"{trimmed.entryId}.srt"))  # trimmed
    c.uploadToken.add(KalturaUploadToken(fileName=f"{trimmed.id}.srt"))
    # one reference per value: the server's pattern is greedy up to the last "}", so two
    # references read as one path that finds nothing
    c.uploadToken.add(KalturaUploadToken(fileName=f"{trimmed.id}-{trimmed.id}"))
    _, gone_field, by_id, greedy = c.doMultiRequest()
    assert (gone_field.fileName, by_id.fileName, greedy.fileName) == (".srt", f"{other}.srt", "")


def test_r6_a_reference_to_a_later_call_stays_as_written(
    emulator: KalturaEmulator, vendor: Vendor
) -> None:
    """handleMultiRequest replaces a reference only in the calls after the one it names."""
    task_id = pending_task(emulator, vendor)
    key = emulator.task(task_id)["accessKey"]
    answer = requests.post(
        f"{emulator.url}/api_v3/service/multirequest",
        json={
            "format": 1,
            "ks": key,
            "1": {
                "service": "uploadToken",
                "action": "add",
                "uploadToken": {"fileName": "{2:result:id}"},
            },
            "2": {
                "service": "uploadToken",
                "action": "add",
                "uploadToken": {"fileName": "{1:result:id}.srt"},
            },
        },
        timeout=5,
    ).json()
    assert answer[0]["fileName"] == "{2:result:id}"
    assert answer[1]["fileName"] == f"{answer[0]['id']}.srt"


# -- R7: getJobs and list ------------------------------------------------------------------


def test_r7a_get_jobs_forces_the_vendor_and_pending(
    emulator: KalturaEmulator, vendor: Vendor
) -> None:
    """EntryVendorTaskService::getJobsAction: vendorPartnerIdEqual forced; a statusEqual or
    statusIn other than PENDING/SCHEDULED sets statusEqual=PENDING (a given statusIn stays)."""
    pending = pending_task(emulator, vendor)
    busy, v = started(emulator, vendor)

    def ids(**flt: Any) -> list[int]:
        return [
            t.id
            for t in v.reach.entryVendorTask.getJobs(KalturaEntryVendorTaskFilter(**flt)).objects
        ]

    assert ids() == [pending]
    assert ids(statusEqual=PROCESSING) == [pending]
    assert ids(statusIn="1,9") == [pending]
    assert ids(statusIn="3") == []  # statusEqual=1 and statusIn=3 both apply
    assert ids(vendorPartnerIdEqual=1234) == [pending]
    assert ids(entryIdEqual=emulator.task(busy)["entryId"]) == []


def test_r7b_pager_default_30_and_at_most_500(emulator: KalturaEmulator, vendor: Vendor) -> None:
    """KalturaFilterPager (default 30, baseObjectFilter::$maxInValues 500); the filter's
    fields are KalturaEntryVendorTaskBaseFilter's (partnerIdEqual is not one: ignored)."""
    for _ in range(501):
        pending_task(emulator, vendor)
    v = vendor_client(emulator, vendor)
    jobs = v.reach.entryVendorTask.getJobs()
    assert (len(jobs.objects), jobs.totalCount) == (30, 501)
    jobs = v.reach.entryVendorTask.getJobs(None, KalturaFilterPager(pageSize=1000))
    assert len(jobs.objects) == 500
    jobs = v.reach.entryVendorTask.getJobs(None, KalturaFilterPager(pageSize=500, pageIndex=2))
    assert len(jobs.objects) == 1
    raw = post(
        emulator,
        "reach_entryvendortask",
        "getJobs",
        ks=vendor_ks(emulator, vendor),
        **{"filter[objectType]": "KalturaEntryVendorTaskFilter", "filter[partnerIdEqual]": 1},
    )
    assert raw["totalCount"] == 501


def test_r7c_a_lagging_index_lists_started_tasks_with_their_current_fields(
    emulator: KalturaEmulator, vendor: Vendor
) -> None:
    """The sphinx index (EntryVendorTask::indexToSearchIndex) answers getJobs
    (KalturaEntryVendorTaskFilter::getListResponse) as it stood `index_lag_s` ago; objects
    are read with their current fields. No documented order: `shuffle_jobs`."""
    task_id = pending_task(emulator, vendor)
    emulator.index_lag_s = 1.0
    time.sleep(1.1)
    v = vendor_client(emulator, vendor)
    v.reach.entryVendorTask.updateJob(task_id, KalturaEntryVendorTask(status=PROCESSING))
    late = pending_task(emulator, vendor)
    (listed,) = v.reach.entryVendorTask.getJobs().objects
    assert listed.id == task_id and listed.status.getValue() == PROCESSING
    time.sleep(1.1)
    assert [t.id for t in v.reach.entryVendorTask.getJobs().objects] == [late]

    emulator.index_lag_s = 0.0
    more = [pending_task(emulator, vendor) for _ in range(12)]
    in_order = [t.id for t in v.reach.entryVendorTask.getJobs().objects]
    assert in_order == [late, *more]
    emulator.shuffle_jobs = True
    shuffled = [t.id for t in v.reach.entryVendorTask.getJobs().objects]
    assert sorted(shuffled) == sorted(in_order) and shuffled != in_order


def test_r7d_list_by_the_vendor_and_by_the_customer(
    emulator: KalturaEmulator, vendor: Vendor
) -> None:
    """EntryVendorTaskService::listAction / applyFiltersAccordingToPartner: a vendor
    partner lists the tasks it serves in any status but ABORTED, a customer its own."""
    task_id, v = started(emulator, vendor)
    v.reach.entryVendorTask.updateJob(task_id, KalturaEntryVendorTask(status=READY))
    (listed,) = v.reach.entryVendorTask.list().objects
    assert listed.id == task_id and listed.status.getValue() == READY
    other = pending_task(emulator, vendor)
    by_key = key_client(emulator, other).reach.entryVendorTask.list()
    assert {t.id for t in by_key.objects} == {task_id, other}


# -- R8-R10: the customer's and Kaltura's side ----------------------------------------------


def test_r8_abort_only_before_processing(emulator: KalturaEmulator, vendor: Vendor) -> None:
    """EntryVendorTaskService::abortAction / isAbortAllowed (PENDING_MODERATION, PENDING,
    SCHEDULED); a non-admin session must be the task's user."""
    task_id = pending_task(emulator, vendor)
    err = refused(lambda: key_client(emulator, task_id).reach.entryVendorTask.abort(task_id))
    assert err.code == "ENTRY_VENDOR_TASK_ACTION_NOT_ALLOWED"
    admin = client(emulator, emulator.admin_ks(CUSTOMER))
    busy, _ = started(emulator, vendor)
    err = refused(lambda: admin.reach.entryVendorTask.abort(busy, "stop"))
    assert (err.code, err.message) == (
        "CANNOT_ABORT_NOT_MODERATED_TASK",
        "Cannot abort task which is not pending moderation",
    )
    assert emulator.abort_task(busy) is False
    aborted = admin.reach.entryVendorTask.abort(task_id, "changed my mind")
    assert aborted.status.getValue() == ABORTED and aborted.errDescription == "changed my mind"
    assert emulator.abort_task(task_id) is False
    moderated = pending_task(emulator, vendor)
    emulator.moderate_task(moderated)
    assert emulator.abort_task(moderated) is True


def test_r9_a_reorder_is_a_new_task(emulator: KalturaEmulator, vendor: Vendor) -> None:
    """EntryVendorTaskService::addAction -> handlingExistingTasks: for the next media
    version an active older task PENDING is cancelled (kReachUtils::tryToCancelTask),
    PROCESSING refuses the order (ENTRY_VENDOR_TASK_DUPLICATION), PENDING_MODERATION is
    left (EntryVendorTaskPeer::retrieveOneActiveTask); the same version again needs
    allowResubmission and a finished task."""
    old = pending_task(emulator, vendor)
    new = emulator.reorder_task(old)
    assert new != old
    assert emulator.task(old)["status"] == ABORTED
    assert emulator.task(old)["errDescription"] == "Aborted following cancel request"
    assert (emulator.task(new)["version"], emulator.task(new)["status"]) == (2, PENDING)
    assert emulator.task(new)["entryId"] == emulator.task(old)["entryId"]

    busy, _ = started(emulator, vendor)
    with pytest.raises(ApiError) as info:
        emulator.reorder_task(busy)
    entry, catalog = emulator.task(busy)["entryId"], emulator.task(busy)["catalogItemId"]
    assert info.value.code == "ENTRY_VENDOR_TASK_DUPLICATION"
    assert info.value.args_map == {
        "ENTRY_ID": entry,
        "CATALOG_ITEM_ID": str(catalog),
        "VERSION": "1",
    }

    moderated = pending_task(emulator, vendor)
    emulator.moderate_task(moderated)
    emulator.reorder_task(moderated)
    assert emulator.task(moderated)["status"] == 4

    with pytest.raises(ApiError):
        emulator.reorder_task(new, new_media=False)  # PENDING on the same version
    done, v = started(emulator, vendor, allow_resubmission=True)
    v.reach.entryVendorTask.updateJob(done, KalturaEntryVendorTask(status=READY))
    again = emulator.reorder_task(done, new_media=False)
    assert emulator.task(again)["version"] == 1 and emulator.task(done)["status"] == READY


def test_r10_reset_returns_the_task_to_pending(emulator: KalturaEmulator, vendor: Vendor) -> None:
    """EntryVendorTaskService::resetAction: PENDING again, optionally for another vendor
    (the linked catalog item's); the access key stays."""
    task_id, v = started(emulator, vendor)
    key = emulator.task(task_id)["accessKey"]
    emulator.reset_task(task_id)
    assert [t.id for t in v.reach.entryVendorTask.getJobs().objects] == [task_id]
    assert emulator.task(task_id)["accessKey"] == key
    emulator.add_vendor_partner(partner_id=9002, app_token_id="1_other", app_token="b" * 32)
    emulator.reset_task(task_id, vendor_partner_id=9002)
    assert v.reach.entryVendorTask.getJobs().totalCount == 0
    err = refused(
        lambda: v.reach.entryVendorTask.updateJob(task_id, KalturaEntryVendorTask(status=3))
    )
    assert err.code == "ENTRY_VENDOR_TASK_NOT_FOUND"
    other = vendor_client(emulator, Vendor(9002, "1_other", "b" * 32))
    assert [t.id for t in other.reach.entryVendorTask.getJobs().objects] == [task_id]


# -- R11: the reach_vendor response profile -------------------------------------------------


def test_r11_reach_vendor_profile(emulator: KalturaEmulator, vendor: Vendor) -> None:
    """2021_01_03_update_reach_vendor_response_profiles.template.xml (task fields) and
    2020_11_03_... (related catalog item and reach profile, EXCLUDE lists);
    KalturaVendorTaskData::getInstance trims taskJobData by the same list."""
    task_id = emulator.add_task(
        vendor_partner_id=vendor.partner_id,
        partner_id=CUSTOMER,
        media_path=None,
        service_feature=3,
        transcript_text="Hello.",
    )
    emulator.world.tasks[task_id]["taskJobData"]["entryDuration"] = 1000
    key = emulator.task(task_id)["accessKey"]
    task = post(
        emulator,
        "reach_entryvendortask",
        "get",
        ks=key,
        id=task_id,
        **{"responseProfile[systemName]": "reach_vendor"},
    )
    fields = (
        "id,partnerId,vendorPartnerId,createdAt,entryId,status,version,reachProfileId,catalogItemId,"
        "accessKey,notes,dictionary,taskJobData,objectType,relatedObjects"
    )
    allowed = set(fields.split(","))
    assert set(task) <= allowed and "serviceType" not in task and "expectedFinishTime" not in task
    assert set(task["taskJobData"]) == {"objectType", "textTranscriptAssetId"}
    (catalog,) = task["relatedObjects"]["reach_vendor_catalog_item"]["objects"]
    assert not {"id", "vendorPartnerId", "name", "systemName", "createdAt", "status"} & set(catalog)
    assert {
        "serviceType",
        "serviceFeature",
        "turnAroundTime",
        "sourceLanguage",
        "payPerUse",
    } <= set(catalog)
    (profile,) = task["relatedObjects"]["reach_vendor_profile"]["objects"]
    assert not {"id", "partnerId", "createdAt", "status", "profileType"} & set(profile)
    unknown = post(
        emulator,
        "reach_entryvendortask",
        "get",
        ks=key,
        id=task_id,
        **{"responseProfile[systemName]": "x"},
    )
    assert (unknown["code"], unknown["message"]) == (
        "RESPONSE_PROFILE_NAME_NOT_FOUND",
        "Response profile name [x] not found",
    )
    c = client(emulator, key)
    c.setResponseProfile(KalturaResponseProfileHolder(systemName="reach_vendor"))
    got = c.reach.entryVendorTask.get(task_id)
    assert got.serviceType is NotImplemented and got.taskJobData.textTranscriptAssetId


# -- R12: upload tokens --------------------------------------------------------------------


def test_r12_a_consumed_token_is_closed_and_not_attached(
    emulator: KalturaEmulator, vendor: Vendor
) -> None:
    """KalturaUploadedFileTokenResource::toObject/entryHandled with a FULL_UPLOAD token:
    the file goes in, kUploadTokenMgr::closeUploadTokenById sets CLOSED (3), and
    attachCreatedObject is not reached (CaptionAssetService::attachLocalFileResource), so
    attachedObjectId stays empty. Reusing the CLOSED token is not refused: the new asset
    waits for it (IMPORTING) and the token is attached to it."""
    task_id = pending_task(emulator, vendor)
    c = key_client(emulator, task_id)
    entry_id = emulator.task(task_id)["entryId"]
    token = c.uploadToken.add(KalturaUploadToken(fileName="a.srt"))
    c.uploadToken.upload(token.id, _Named(SRT, "a.srt"))
    first = c.caption.captionAsset.add(entry_id, KalturaCaptionAsset(language="English"))
    filled = c.caption.captionAsset.setContent(
        first.id, KalturaUploadedFileTokenResource(token=token.id)
    )
    assert filled.status.getValue() == 2 and filled.fileExt == "srt"
    consumed = c.uploadToken.get(token.id)
    assert consumed.status.getValue() == 3 and consumed.attachedObjectId is NotImplemented
    second = c.caption.captionAsset.add(entry_id, KalturaCaptionAsset(language="English"))
    waiting = c.caption.captionAsset.setContent(
        second.id, KalturaUploadedFileTokenResource(token=token.id)
    )
    assert waiting.status.getValue() == 7  # IMPORTING, for ever
    reused = c.uploadToken.get(token.id)
    assert (reused.attachedObjectType, reused.attachedObjectId) == ("CaptionAsset", second.id)
    assert c.uploadToken.list(KalturaUploadTokenFilter(fileNameEqual="a.srt")).totalCount == 0


def test_r12_a_token_attached_before_its_upload_fills_the_asset(
    emulator: KalturaEmulator, vendor: Vendor
) -> None:
    """kUploadedFileTokenResource::attachCreatedObject (objectType/objectId, shown as
    attachedObjectType/attachedObjectId by KalturaUploadToken) and
    kFlowHelper::handleUploadFinished when the upload ends."""
    task_id = pending_task(emulator, vendor)
    c = key_client(emulator, task_id)
    entry_id = emulator.task(task_id)["entryId"]
    token = c.uploadToken.add(KalturaUploadToken(fileName="b.srt"))
    asset = c.caption.captionAsset.add(entry_id, KalturaCaptionAsset(language="English"))
    c.caption.captionAsset.setContent(asset.id, KalturaUploadedFileTokenResource(token=token.id))
    attached = c.uploadToken.get(token.id)
    assert (attached.attachedObjectType, attached.attachedObjectId) == ("CaptionAsset", asset.id)
    assert c.uploadToken.list(KalturaUploadTokenFilter(fileNameEqual="b.srt")).totalCount == 1
    c.uploadToken.upload(token.id, _Named(SRT, "b.srt"))
    assert c.caption.captionAsset.get(asset.id).status.getValue() == 2
    assert emulator.caption_assets(entry_id)[0]["content"] == SRT
    assert c.uploadToken.get(token.id).status.getValue() == 3
    listed = c.uploadToken.list(KalturaUploadTokenFilter(statusIn="3", idIn=token.id))
    assert [t.id for t in listed.objects] == [token.id]


def test_r12_tokens_belong_to_their_user(emulator: KalturaEmulator, vendor: Vendor) -> None:
    """UploadTokenService::restrictPeerToCurrentUser: a USER session sees its own user's
    tokens; all access keys of a customer are user "" (generateReachVendorKs), so they see
    each other's; the vendor's partner sees none (partner filter)."""
    first, second = pending_task(emulator, vendor), pending_task(emulator, vendor)
    token = key_client(emulator, first).uploadToken.add(KalturaUploadToken(fileName="c.srt"))
    assert key_client(emulator, second).uploadToken.get(token.id).id == token.id
    err = refused(lambda: vendor_client(emulator, vendor).uploadToken.get(token.id))
    assert (err.code, err.message) == ("UPLOAD_TOKEN_NOT_FOUND", "Upload token not found")


# -- R13: enums -------------------------------------------------------------------------------


def test_r13_enum_values_are_checked(emulator: KalturaEmulator, vendor: Vendor) -> None:
    """KalturaRequestDeserializer::buildObject: INVALID_ENUM_VALUE (ENUM_VAL, PARAM_NAME,
    ENUM_TYPE) for KalturaLanguage (api_v3/lib/types/enums/KalturaLanguage.php has no
    "Auto Detect"), KalturaCaptionType, KalturaAttachmentType, KalturaEntryVendorTaskStatus."""
    task_id = pending_task(emulator, vendor)
    c = key_client(emulator, task_id)
    entry_id = emulator.task(task_id)["entryId"]
    err = refused(
        lambda: c.caption.captionAsset.add(entry_id, KalturaCaptionAsset(language="Auto Detect"))
    )
    assert err.code == "INVALID_ENUM_VALUE"
    assert err.message == (
        'Invalid enumeration value "Auto Detect" for parameter "language", expecting enumeration '
        'type "KalturaLanguage"'
    )
    err = refused(
        lambda: c.caption.captionAsset.add(
            entry_id, KalturaCaptionAsset(language="English", format="6")
        )
    )
    assert err.code == "INVALID_ENUM_VALUE" and "KalturaCaptionType" in err.message
    err = refused(
        lambda: c.attachment.attachmentAsset.add(entry_id, KalturaAttachmentAsset(format="9"))
    )
    assert err.code == "INVALID_ENUM_VALUE" and "KalturaAttachmentType" in err.message
    v = vendor_client(emulator, vendor)
    err = refused(
        lambda: v.reach.entryVendorTask.updateJob(task_id, KalturaEntryVendorTask(status=12))
    )
    assert err.code == "INVALID_ENUM_VALUE" and "KalturaEntryVendorTaskStatus" in err.message
    added = c.caption.captionAsset.add(entry_id, KalturaCaptionAsset(language="English"))
    assert added.format.getValue() == "1" and added.languageCode.getValue() == "en"


# -- R14-R16: switches and assets -----------------------------------------------------------


@pytest.mark.parametrize("allowed", [True, False])
def test_r14_listing_captions_with_an_access_key_is_a_switch(
    emulator: KalturaEmulator, vendor: Vendor, allowed: bool
) -> None:
    """Open: service.caption.captionasset.ini lets REACH_VENDOR_ROLE list captions; a
    Kaltura FAQ says vendors cannot. `access_key_can_list_captions` plays both."""
    task_id = pending_task(emulator, vendor)
    emulator.access_key_can_list_captions = allowed
    c = key_client(emulator, task_id)
    if allowed:
        assert c.caption.captionAsset.list().totalCount == 0
    else:
        err = refused(c.caption.captionAsset.list)
        assert err.message == "The access to service [caption_captionasset->list] is forbidden"
    assert c.caption.captionAsset.add(emulator.task(task_id)["entryId"], KalturaCaptionAsset()).id


def test_r15_entitlement_limits_an_access_key_to_its_entry(
    emulator: KalturaEmulator, vendor: Vendor
) -> None:
    """kEntitlementUtils: enforced only for partners with entitlement; the key's
    disableentitlementforentry privilege (VendorCatalogItem::getPrivileges) opens its entry."""
    first, _ = pending_task(emulator, vendor), pending_task(emulator, vendor)
    c = key_client(emulator, first)
    assert c.flavorAsset.list().totalCount == 2
    emulator.entitlement = True
    (flavor,) = c.flavorAsset.list().objects
    assert flavor.entryId == emulator.task(first)["entryId"]


def test_r16_asset_rules(emulator: KalturaEmulator, vendor: Vendor) -> None:
    """CaptionAssetService::addAction (format defaults to SRT, status QUEUED),
    assetPeer::setDefaultCriteriaFilter (DELETED hidden), AttachmentAssetService::
    getUrlAction (READY only; the error is thrown without its argument: "N/A")."""
    task_id = pending_task(emulator, vendor)
    c = key_client(emulator, task_id)
    entry_id = emulator.task(task_id)["entryId"]
    caption = c.caption.captionAsset.add(entry_id, KalturaCaptionAsset(language="English"))
    assert (caption.format.getValue(), caption.status.getValue()) == ("1", 0)
    c.caption.captionAsset.delete(caption.id)
    err = refused(lambda: c.caption.captionAsset.get(caption.id))
    assert err.message == f'Caption asset id "{caption.id}" not found'
    attachment = c.attachment.attachmentAsset.add(
        entry_id, KalturaAttachmentAsset(filename="x.txt")
    )
    err = refused(lambda: c.attachment.attachmentAsset.getUrl(attachment.id))
    assert (err.code, err.message) == (
        "ATTACHMENT_ASSET_IS_NOT_READY",
        'Attachment asset "N/A" is not ready',
    )


# -- call log ------------------------------------------------------------------------------


def test_call_log_records_session_partner_and_client_tag(
    emulator: KalturaEmulator, vendor: Vendor
) -> None:
    """KalturaFrontController::handleMultiRequest: a call without its own clientTag gets
    the common one; the log tells which session and partnerId each call carried."""
    task_id = pending_task(emulator, vendor)
    key = emulator.task(task_id)["accessKey"]
    vks = vendor_ks(emulator, vendor)
    before = len(emulator.call_log)
    requests.post(
        f"{emulator.url}/api_v3/service/multirequest",
        json={
            "format": 1,
            "clientTag": "common_tag",
            "1": {"service": "reach_entryvendortask", "action": "get", "id": task_id, "ks": key},
            "2": {
                "service": "reach_entryvendortask",
                "action": "getJobs",
                "ks": vks,
                "partnerId": 9001,
                "clientTag": "own",
            },
            "3": {"service": "system", "action": "ping"},
        },
        timeout=5,
    )
    log = emulator.call_log[before:]
    assert [(e["session"], e["partnerId"], e["clientTag"]) for e in log] == [
        ("access_key", None, "common_tag"),
        ("vendor", 9001, "own"),
        ("none", None, "common_tag"),
    ]
    assert emulator.calls[-3:] == [
        ("reach_entryvendortask", "get"),
        ("reach_entryvendortask", "getJobs"),
        ("system", "ping"),
    ]
