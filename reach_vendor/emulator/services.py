"""The api_v3 service actions the emulator answers, with Kaltura's permission rules.

Rules worth knowing (they are what the daemon must cope with in production):
- getJobs needs the vendor partner's KS (from its app token) and lists PENDING tasks;
- a task, its entry's flavors and the entry's assets are visible only with the task's
  access key (a KS of the customer partner limited to that entry): with any other KS the
  task is ENTRY_VENDOR_TASK_NOT_FOUND and lists come back empty;
- an expired or forged KS is INVALID_KS; extending the access key of a task that is not
  PROCESSING is CANNOT_EXTEND_ACCESS_KEY; a task in a final status cannot change status.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from reach_vendor.emulator import ks as ks_mod
from reach_vendor.emulator.wire import ApiError
from reach_vendor.emulator.world import (
    ABORTABLE,
    ABORTED,
    ERROR,
    FINAL_STATUSES,
    PENDING,
    PROCESSING,
    READY,
    World,
    kaltura_id,
)

REACH_VENDOR_PROFILE = "reach_vendor"
_HASHES: dict[str, Callable[[bytes], Any]] = {
    "SHA1": hashlib.sha1,
    "SHA256": hashlib.sha256,
    "SHA512": hashlib.sha512,
    "MD5": hashlib.md5,
}
_VENDOR_UPDATABLE = {
    "status",
    "errDescription",
    "accuracy",
    "outputObjectId",
    "externalTaskId",
    "externalObjectId",
    "unitsUsed",
    "partnerData",
    "notes",
    "context",
    "taskJobData",
    "unitsUsedArray",
}


@dataclass
class Ctx:
    world: World
    params: dict[str, Any]
    files: dict[str, bytes]
    base_url: str
    _session: ks_mod.Session | None = None

    @property
    def session(self) -> ks_mod.Session:
        if self._session is None:
            ks = self.params.get("ks")
            if not ks:
                raise ApiError("MISSING_KS", "Missing KS, session not established")
            self._session = self.world.session(str(ks))
        return self._session

    def param(self, name: str) -> Any:
        value = self.params.get(name)
        if value is None or value == "":
            raise ApiError(
                "MISSING_MANDATORY_PARAMETER", f'Missing parameter "{name}"', PARAM_NAME=name
            )
        return value

    def int_param(self, name: str) -> int:
        value = self.param(name)
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ApiError(
                "INVALID_PARAMETER_VALUE",
                f'Invalid value "{value}" for parameter "{name}"',
            ) from None

    def obj(self, name: str) -> dict[str, Any]:
        value = self.params.get(name)
        return value if isinstance(value, dict) else {}


Handler = Callable[[Ctx], Any]
HANDLERS: dict[tuple[str, str], Handler] = {}


def action(service: str, name: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        HANDLERS[(service.lower(), name.lower())] = fn
        return fn

    return register


def dispatch(ctx: Ctx, service: str, action_name: str) -> Any:
    handler = HANDLERS.get((service.lower(), action_name.lower()))
    if handler is None:
        if not any(s == service.lower() for s, _ in HANDLERS):
            raise ApiError("SERVICE_DOES_NOT_EXISTS", f'Service "{service}" does not exists')
        raise ApiError(
            "ACTION_DOES_NOT_EXISTS",
            f'Action "{action_name}" does not exists for service "{service}"',
        )
    return _select_fields(handler(ctx), ctx.obj("responseProfile"))


# KalturaResponseProfileType
INCLUDE_FIELDS = 1
EXCLUDE_FIELDS = 2


def _select_fields(result: Any, profile: dict[str, Any]) -> Any:
    """A detached response profile's field list, applied as Kaltura's generated
    `doFromObject` applies it: to the returned object, or to each object of a list
    response (whose totalCount is set outside the profile). Callers use it to keep
    long answers short, e.g. getJobs with only the fields a vendor stores."""
    kind = str(profile.get("type") or "")
    if kind not in (str(INCLUDE_FIELDS), str(EXCLUDE_FIELDS)) or not isinstance(result, dict):
        return result
    fields = {f.strip() for f in str(profile.get("fields") or "").split(",")} - {""}
    include = kind == str(INCLUDE_FIELDS)

    def select(obj: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in obj.items() if k == "objectType" or (k in fields) == include}

    if str(result.get("objectType", "")).endswith("ListResponse"):
        return {**result, "objects": [select(o) for o in result.get("objects") or []]}
    return select(result)


# -- helpers ---------------------------------------------------------------------------


def _pager(ctx: Ctx) -> tuple[int, int]:
    pager = ctx.obj("pager")
    size = int(pager.get("pageSize") or 30)
    index = int(pager.get("pageIndex") or 1)
    return max(1, min(size, 500)), max(1, index)


def _list_response(object_type: str, items: list[dict[str, Any]], ctx: Ctx) -> dict[str, Any]:
    size, index = _pager(ctx)
    page = items[(index - 1) * size : index * size]
    return {
        "objectType": object_type,
        "objects": [ctx.world.snapshot(i) for i in page],
        "totalCount": len(items),
    }


def _ints(value: Any) -> set[int]:
    return {int(v) for v in str(value).split(",") if v.strip().lstrip("-").isdigit()}


def _entry_visible(ctx: Ctx, entry_id: str) -> dict[str, Any] | None:
    entry = ctx.world.entries.get(entry_id)
    s = ctx.session
    if entry is None or entry["partnerId"] != s.partner_id or not s.can_edit(entry_id):
        return None
    return entry


def _visible_entry_or_error(ctx: Ctx, entry_id: str) -> dict[str, Any]:
    entry = _entry_visible(ctx, entry_id)
    if entry is None:
        raise ApiError("ENTRY_ID_NOT_FOUND", f'Entry id "{entry_id}" not found', ENTRY_ID=entry_id)
    return entry


def _task(ctx: Ctx, task_id: int) -> dict[str, Any]:
    task = ctx.world.tasks.get(task_id)
    s = ctx.session
    vendor = s.privilege("reachvendor")
    if (
        task is None
        or task["partnerId"] != s.partner_id
        or not s.can_edit(task["entryId"])
        or (vendor is not None and vendor != str(task["vendorPartnerId"]))
    ):
        raise ApiError(
            "ENTRY_VENDOR_TASK_NOT_FOUND",
            f"Entry vendor task item with id provided not found [{task_id}]",
            ID=task_id,
        )
    return task


def _touch(obj: dict[str, Any]) -> None:
    obj["updatedAt"] = int(time.time())


# -- session / appToken ----------------------------------------------------------------


@action("session", "startWidgetSession")
def start_widget_session(ctx: Ctx) -> Any:
    widget = str(ctx.param("widgetId"))
    try:
        partner_id = int(widget.lstrip("_"))
    except ValueError:
        partner_id = -1
    if not widget.startswith("_") or partner_id not in ctx.world.secrets:
        raise ApiError("INVALID_WIDGET_ID", f"Invalid widget id [{widget}]", ID=widget)
    expiry = int(ctx.params.get("expiry") or 86400)
    ks = ctx.world.issue_ks(
        partner_id, expiry_s=expiry, type_=ks_mod.USER, privileges="widget:1,view:*"
    )
    return {
        "objectType": "KalturaStartWidgetSessionResponse",
        "partnerId": partner_id,
        "ks": ks,
        "userId": 0,
    }


@action("apptoken", "startSession")
def app_token_start_session(ctx: Ctx) -> Any:
    token_id = str(ctx.param("id"))
    token = ctx.world.app_tokens.get(token_id)
    session = ctx.session
    if token is None or token.partner_id != session.partner_id:
        raise ApiError(
            "APP_TOKEN_ID_NOT_FOUND", f"Invalid application token id [{token_id}]", ID=token_id
        )
    expected = _HASHES[token.hash_type]((session.ks + token.token).encode()).hexdigest()
    if not secrets.compare_digest(expected, str(ctx.param("tokenHash"))):
        raise ApiError("INVALID_APP_TOKEN_HASH", "Invalid application token hash")
    expiry = min(int(ctx.params.get("expiry") or token.session_expiry_s), token.session_expiry_s)
    ks = ctx.world.issue_ks(
        token.partner_id,
        expiry_s=expiry,
        type_=token.session_type,
        user_id=str(ctx.params.get("userId") or ""),
        privileges=token.privileges,
    )
    return {
        "objectType": "KalturaSessionInfo",
        "ks": ks,
        "sessionType": token.session_type,
        "partnerId": token.partner_id,
        "userId": str(ctx.params.get("userId") or ""),
        "expiry": int(time.time()) + expiry,
        "privileges": token.privileges,
    }


@action("system", "ping")
def ping(ctx: Ctx) -> Any:
    return True


# -- reach_entryvendortask ---------------------------------------------------------------


@action("reach_entryvendortask", "getJobs")
def get_jobs(ctx: Ctx) -> Any:
    partner_id = ctx.session.partner_id
    if partner_id not in ctx.world.vendors:
        raise ApiError(
            "VENDOR_TASK_SERVICE__GET_JOB_NOT_ALLOWED",
            "Vendor Task Service 'Get Job' action Not allowed. "
            f"Vendor partner Type is not enabled on partner [{partner_id}]",
            ID=partner_id,
        )
    flt = ctx.obj("filter")
    statuses = _ints(flt["statusIn"]) if flt.get("statusIn") else set()
    if flt.get("statusEqual") not in (None, ""):
        statuses = {int(flt["statusEqual"])}
    statuses = statuses or {PENDING}
    equal = {
        "id": flt.get("idEqual"),
        "partnerId": flt.get("partnerIdEqual"),
        "entryId": flt.get("entryIdEqual"),
        "serviceType": flt.get("serviceTypeEqual"),
        "serviceFeature": flt.get("serviceFeatureEqual"),
        "catalogItemId": flt.get("catalogItemIdEqual"),
    }
    ids_in = _ints(flt["idIn"]) if flt.get("idIn") else None
    with ctx.world.lock:
        tasks = [
            t
            for t in ctx.world.tasks.values()
            if t["vendorPartnerId"] == partner_id
            and t["status"] in statuses
            and all(v in (None, "") or str(t[k]) == str(v) for k, v in equal.items())
            and (ids_in is None or t["id"] in ids_in)
        ]
        descending = str(flt.get("orderBy") or "").startswith("-")
        tasks.sort(key=lambda t: (t["createdAt"], t["id"]), reverse=descending)
        return _list_response("KalturaEntryVendorTaskListResponse", tasks, ctx)


def _with_related(ctx: Ctx, task: dict[str, Any]) -> dict[str, Any]:
    out = ctx.world.snapshot(task)
    profile = ctx.obj("responseProfile")
    name = profile.get("systemName")
    if not profile or (name is None and profile.get("id") is None):
        return out
    if name != REACH_VENDOR_PROFILE:
        raise ApiError(
            "RESPONSE_PROFILE_NAME_NOT_FOUND",
            f"Response profile name [{name}] not found",
            SYSTEM_NAME=name,
        )
    catalog = ctx.world.catalog_items.get(task["catalogItemId"])
    reach_profile = ctx.world.reach_profiles.get(task["reachProfileId"])
    out["relatedObjects"] = {
        "reach_vendor_catalog_item": {
            "objectType": "KalturaVendorCatalogItemListResponse",
            "objects": [ctx.world.snapshot(catalog)] if catalog else [],
            "totalCount": 1 if catalog else 0,
        },
        "reach_vendor_profile": {
            "objectType": "KalturaReachProfileListResponse",
            "objects": [ctx.world.snapshot(reach_profile)] if reach_profile else [],
            "totalCount": 1 if reach_profile else 0,
        },
    }
    return out


@action("reach_entryvendortask", "get")
def get_task(ctx: Ctx) -> Any:
    return _with_related(ctx, _task(ctx, ctx.int_param("id")))


@action("reach_entryvendortask", "updateJob")
@action("reach_entryvendortask", "update")
def update_job(ctx: Ctx) -> Any:
    task_id = ctx.int_param("id")
    changes = {k: v for k, v in ctx.obj("entryVendorTask").items() if k != "objectType"}
    with ctx.world.lock:
        task = _task(ctx, task_id)
        for key in changes:
            if key not in _VENDOR_UPDATABLE:
                raise ApiError(
                    "PROPERTY_VALIDATION_NOT_UPDATABLE",
                    f"Property [{key}] is not updatable",
                    PROP_NAME=key,
                )
        if "status" in changes:
            new = int(changes["status"])
            old = task["status"]
            if new not in range(1, 10):
                raise ApiError(
                    "INVALID_ENUM_VALUE",
                    f"Invalid enumeration value [{new}] for property [status]",
                )
            if old in FINAL_STATUSES and new != old:
                raise ApiError(
                    "CANNOT_UPDATE_STATUS_OF_TASK_WHICH_IS_IN_FINAL_STATE",
                    f"Cannot update status from [{old}] to [{new}] for task with id "
                    f"[{task_id}], since task is in final status",
                    ID=task_id,
                    OLD_STATUS=old,
                    NEW_STATUS=new,
                )
            task["status"] = new
            task.setdefault("_statusLog", []).append((new, time.time()))
            if new in (READY, ERROR):
                task["finishTime"] = int(time.time())
        for key in ("errDescription", "outputObjectId", "externalTaskId", "partnerData", "notes"):
            if key in changes:
                task[key] = str(changes[key])
        for key in ("accuracy", "unitsUsed"):
            if key in changes:
                task[key] = int(float(changes[key]))
        _touch(task)
        return _with_related(ctx, task)


@action("reach_entryvendortask", "extendAccessKey")
def extend_access_key(ctx: Ctx) -> Any:
    with ctx.world.lock:
        task = _task(ctx, ctx.int_param("id"))
        if task["status"] != PROCESSING:
            raise ApiError(
                "CANNOT_EXTEND_ACCESS_KEY",
                "Extending accessKey for non processing task is not allowed",
            )
        task["accessKey"] = ctx.world.access_key(task)
        _touch(task)
        return ctx.world.snapshot(task)


@action("reach_entryvendortask", "abort")
def abort(ctx: Ctx) -> Any:
    with ctx.world.lock:
        task = _task(ctx, ctx.int_param("id"))
        if task["status"] not in ABORTABLE:
            raise ApiError(
                "CANNOT_ABORT_NOT_MODERATED_TASK",
                "Cannot abort task which is not pending moderation",
            )
        task["status"] = ABORTED
        task.setdefault("_statusLog", []).append((ABORTED, time.time()))
        task["errDescription"] = str(ctx.params.get("abortReason") or "Aborted by the customer")
        _touch(task)
        return ctx.world.snapshot(task)


# -- flavors ---------------------------------------------------------------------------


@action("flavorAsset", "list")
def flavor_list(ctx: Ctx) -> Any:
    flt = ctx.obj("filter")
    entry_ids = {flt["entryIdEqual"]} if flt.get("entryIdEqual") else None
    if flt.get("entryIdIn"):
        entry_ids = set(str(flt["entryIdIn"]).split(","))
    with ctx.world.lock:
        flavors = [
            f
            for f in ctx.world.flavors.values()
            if (entry_ids is None or f["entryId"] in entry_ids)
            and _entry_visible(ctx, f["entryId"]) is not None
        ]
        return _list_response("KalturaFlavorAssetListResponse", flavors, ctx)


@action("flavorAsset", "getUrl")
def flavor_get_url(ctx: Ctx) -> Any:
    flavor_id = str(ctx.param("id"))
    flavor = ctx.world.flavors.get(flavor_id)
    if flavor is None or _entry_visible(ctx, flavor["entryId"]) is None:
        raise ApiError(
            "FLAVOR_ASSET_ID_NOT_FOUND", f'Flavor asset id "{flavor_id}" not found', ID=flavor_id
        )
    pid = flavor["partnerId"]
    return (
        f"{ctx.base_url}/p/{pid}/sp/{pid}00/serveFlavor/entryId/{flavor['entryId']}"
        f"/v/1/flavorId/{flavor_id}/ks/{ctx.session.ks}/name/a.{flavor['fileExt']}"
    )


# -- upload tokens ---------------------------------------------------------------------


@action("uploadToken", "add")
def upload_token_add(ctx: Ctx) -> Any:
    spec = ctx.obj("uploadToken")
    token_id = "0_" + secrets.token_hex(16)
    now = int(time.time())
    token = {
        "objectType": "KalturaUploadToken",
        "id": token_id,
        "partnerId": ctx.session.partner_id,
        "userId": ctx.session.user_id,
        "status": 0,
        "fileName": str(spec.get("fileName") or ""),
        "fileSize": float(spec["fileSize"]) if spec.get("fileSize") else None,
        "uploadedFileSize": 0.0,
        "createdAt": now,
        "updatedAt": now,
        "_content": b"",
    }
    with ctx.world.lock:
        ctx.world.upload_tokens[token_id] = token
        return ctx.world.snapshot(token)


def _upload_token(ctx: Ctx, token_id: str) -> dict[str, Any]:
    token = ctx.world.upload_tokens.get(token_id)
    if token is None or token["partnerId"] != ctx.session.partner_id:
        raise ApiError("UPLOAD_TOKEN_NOT_FOUND", "Upload token not found")
    return token


@action("uploadToken", "upload")
def upload_token_upload(ctx: Ctx) -> Any:
    with ctx.world.lock:
        token = _upload_token(ctx, str(ctx.param("uploadTokenId")))
        if token["status"] not in (0, 1):
            raise ApiError(
                "UPLOAD_TOKEN_INVALID_STATUS_FOR_UPLOAD",
                "Upload token is in an invalid status for upload",
            )
        if "fileData" not in ctx.files:
            raise ApiError("MISSING_MANDATORY_PARAMETER", 'Missing parameter "fileData"')
        data = ctx.files["fileData"]
        resume = str(ctx.params.get("resume", "0")).lower() in ("1", "true")
        final = str(ctx.params.get("finalChunk", "1")).lower() in ("1", "true")
        content: bytes = token["_content"]
        if resume:
            at = int(float(ctx.params.get("resumeAt") or -1))
            content = content + data if at < 0 else content[:at] + data
        else:
            content = data
        token["_content"] = content
        token["uploadedFileSize"] = float(len(content))
        token["status"] = 2 if final else 1
        _touch(token)
        return ctx.world.snapshot(token)


@action("uploadToken", "get")
def upload_token_get(ctx: Ctx) -> Any:
    return ctx.world.snapshot(_upload_token(ctx, str(ctx.param("uploadTokenId"))))


def _content_from(ctx: Ctx) -> bytes:
    resource = ctx.obj("contentResource")
    kind = resource.get("objectType")
    if kind == "KalturaStringResource":
        return str(resource.get("content") or "").encode()
    if kind == "KalturaUploadedFileTokenResource":
        token = _upload_token(ctx, str(resource.get("token") or ""))
        if token["status"] != 2:
            raise ApiError(
                "UPLOAD_TOKEN_INVALID_STATUS_FOR_ADD_ENTRY",
                "Upload token is in an invalid status for adding entry",
            )
        token["status"] = 3
        content: bytes = token["_content"]
        return content
    raise ApiError("RESOURCE_TYPE_NOT_SUPPORTED", f"Resource type [{kind}] not supported")


# -- caption and attachment assets -----------------------------------------------------

_ASSET_KINDS = {
    "caption": ("captions", "captionAsset", "KalturaCaptionAsset", "CAPTION_ASSET_ID_NOT_FOUND"),
    "attachment": (
        "attachments",
        "attachmentAsset",
        "KalturaAttachmentAsset",
        "ATTACHMENT_ASSET_ID_NOT_FOUND",
    ),
}
_ASSET_FIELDS = {
    "caption": {
        "language",
        "label",
        "format",
        "accuracy",
        "tags",
        "fileExt",
        "isDefault",
        "displayOnPlayer",
        "partnerData",
        "languageCode",
    },
    "attachment": {"filename", "title", "format", "tags", "fileExt", "partnerData", "description"},
}


def _assets(ctx: Ctx, kind: str) -> dict[str, dict[str, Any]]:
    store: dict[str, dict[str, Any]] = getattr(ctx.world, _ASSET_KINDS[kind][0])
    return store


def _asset(ctx: Ctx, kind: str, asset_id: str) -> dict[str, Any]:
    asset = _assets(ctx, kind).get(asset_id)
    if asset is None or asset["status"] == 3 or _entry_visible(ctx, asset["entryId"]) is None:
        code = _ASSET_KINDS[kind][3]
        noun = "Caption" if kind == "caption" else "Attachment"
        raise ApiError(code, f'{noun} asset id "{asset_id}" not found', ID=asset_id)
    return asset


def _asset_add(ctx: Ctx, kind: str) -> Any:
    entry_id = str(ctx.param("entryId"))
    _, param, object_type, _ = _ASSET_KINDS[kind]
    given = ctx.obj(param)
    unknown = set(given) - _ASSET_FIELDS[kind] - {"objectType"}
    if unknown:
        name = sorted(unknown)[0]
        raise ApiError(
            "PROPERTY_VALIDATION_NOT_UPDATABLE",
            f"Property [{name}] is not updatable",
            PROP_NAME=name,
        )
    now = int(time.time())
    with ctx.world.lock:
        entry = _visible_entry_or_error(ctx, entry_id)
        asset: dict[str, Any] = {
            "objectType": object_type,
            "id": kaltura_id(),
            "entryId": entry_id,
            "partnerId": entry["partnerId"],
            "version": 0,
            "size": 0,
            "status": 0,
            "createdAt": now,
            "updatedAt": now,
            **{k: v for k, v in given.items() if k != "objectType"},
            "_content": None,
        }
        for key in ("isDefault", "displayOnPlayer"):
            if key in asset:
                asset[key] = str(asset[key]).lower() in ("1", "true")
        if "accuracy" in asset:
            asset["accuracy"] = int(float(asset["accuracy"]))
        _assets(ctx, kind)[asset["id"]] = asset
        return ctx.world.snapshot(asset)


def _asset_set_content(ctx: Ctx, kind: str) -> Any:
    with ctx.world.lock:
        asset = _asset(ctx, kind, str(ctx.param("id")))
        content = _content_from(ctx)
        asset["_content"] = content
        asset["size"] = max(1, len(content) // 1024) if content else 0
        asset["status"] = 2
        asset["version"] = int(asset["version"]) + 1
        _touch(asset)
        return ctx.world.snapshot(asset)


def _asset_list(ctx: Ctx, kind: str) -> Any:
    flt = ctx.obj("filter")
    object_type = _ASSET_KINDS[kind][2] + "ListResponse"
    with ctx.world.lock:
        assets = [
            a
            for a in _assets(ctx, kind).values()
            if a["status"] != 3
            and (not flt.get("entryIdEqual") or a["entryId"] == flt["entryIdEqual"])
            and (not flt.get("idEqual") or a["id"] == flt["idEqual"])
            and _entry_visible(ctx, a["entryId"]) is not None
        ]
        return _list_response(object_type, assets, ctx)


def _asset_delete(ctx: Ctx, kind: str, id_param: str) -> Any:
    with ctx.world.lock:
        asset = _asset(ctx, kind, str(ctx.param(id_param)))
        asset["status"] = 3
        _touch(asset)
    return None


def _register_asset_service(kind: str, service: str) -> None:
    """caption_captionAsset and attachment_attachmentAsset share their rules."""
    id_name = f"{kind}AssetId"
    action(service, "add")(lambda ctx: _asset_add(ctx, kind))
    action(service, "setContent")(lambda ctx: _asset_set_content(ctx, kind))
    action(service, "list")(lambda ctx: _asset_list(ctx, kind))
    action(service, "get")(
        lambda ctx: ctx.world.snapshot(_asset(ctx, kind, str(ctx.param(id_name))))
    )
    action(service, "delete")(lambda ctx: _asset_delete(ctx, kind, id_name))


_register_asset_service("caption", "caption_captionAsset")
_register_asset_service("attachment", "attachment_attachmentAsset")


@action("attachment_attachmentAsset", "getUrl")
def attachment_get_url(ctx: Ctx) -> Any:
    """Like Kaltura: a serve URL carrying the caller's KS (the vendor's access key)."""
    with ctx.world.lock:
        asset = _asset(ctx, "attachment", str(ctx.param("id")))
        asset_id = asset["id"]
    return (
        f"{ctx.base_url}/api_v3/index.php/service/attachment_attachmentAsset/action/serve"
        f"/attachmentAssetId/{asset_id}/ks/{ctx.session.ks}"
    )
