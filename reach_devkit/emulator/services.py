"""The api_v3 actions the emulator answers, checked the way the server's dispatcher does.

`dispatch` runs one call through the server's order (KalturaDispatcher::dispatch):
service and action lookup, KS parsing, argument deserialization (enum values, response
profile), KS validity, requested-partner check, @validateUser, the action's permission
(KalturaBaseService::initService) and then the action. Each step names its server source;
the rule table in `reach_devkit/emulator/__init__.py` lists them all.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Protocol

from reach_devkit.emulator import errors as E
from reach_devkit.emulator import ks as ks_mod
from reach_devkit.emulator.errors import ApiError, error
from reach_devkit.emulator.wire import NULL, RawFile
from reach_devkit.emulator.world import (
    ABORTABLE,
    ABORTED,
    ASSET_DELETED,
    ASSET_IMPORTING,
    ASSET_QUEUED,
    ASSET_READY,
    FINAL_STATUSES,
    PENDING,
    PROCESSING,
    REACH_VENDOR_ROLE,
    READY,
    SCHEDULED,
    TOKEN_CLOSED,
    TOKEN_DELETED,
    TOKEN_FULL,
    TOKEN_PARTIAL,
    TOKEN_PENDING,
    World,
    as_int,
    kaltura_id,
    status_of,
)


class Settings(Protocol):
    """Run-time switches of the emulator (attributes of KalturaEmulator)."""

    index_lag_s: float
    shuffle_jobs: bool
    jobs_rng: random.Random
    access_key_can_list_captions: bool
    entitlement: bool


# -- permissions (deployment/permissions/*.ini, 03.UserRole.ini) -------------------------

BASE_USER = "BASE_USER_SESSION_PERMISSION"
WIDGET = "WIDGET_SESSION_PERMISSION"
ALWAYS = "ALWAYS_ALLOWED_ACTIONS"
CONTENT_MANAGE = "CONTENT_MANAGE_BASE"
CAPTION_MODIFY = "CAPTION_MODIFY"
ATTACHMENT_MODIFY = "ATTACHMENT_MODIFY"
INGEST = "CONTENT_INGEST_UPLOAD"
PLAYBACK = "PLAYBACK_BASE_PERMISSION"
REACH_VENDOR_PARTNER = "REACH_VENDOR_PARTNER"
# Partner-level permissions come with the partner, not with a role: a partner admin
# session does not have them (kPermissionManager::getPermissionsFromDb).
_PARTNER_LEVEL = frozenset({REACH_VENDOR_PARTNER, "PARTNER_-24_GROUP_*_PERMISSION"})
# 03.UserRole.ini [REACH_VENDOR_ROLE]
_REACH_VENDOR_ROLE = frozenset(
    {
        BASE_USER,
        CONTENT_MANAGE,
        CAPTION_MODIFY,
        "SCHEDULE_EVENT_BASE",
        "SCHEDULE_EVENT_FEATURE_MANAGE",
    }
)


# -- request context -------------------------------------------------------------------


@dataclass
class Ctx:
    world: World
    settings: Settings
    params: dict[str, Any]
    files: dict[str, bytes]
    base_url: str
    session: ks_mod.Session | None = None
    kind: str = "none"
    partner_id: int | None = None
    """kCurrentContext::getCurrentPartnerId: the requested partner, else the KS's."""
    profile: Profile | None = None

    @property
    def s(self) -> ks_mod.Session:
        if self.session is None:  # only reached by actions that need no KS
            raise error(E.MISSING_KS)
        return self.session

    def raw(self, name: str) -> Any:
        value = self.params.get(name)
        return None if value is NULL else value

    def param(self, name: str) -> Any:
        """A mandatory simple action parameter (KalturaRequestDeserializer::
        buildActionArguments): absent is MISSING_MANDATORY_PARAMETER; an empty string is a
        value like any other."""
        value = self.params.get(name)
        if value is None or value is NULL or isinstance(value, dict | list):
            raise error(E.MISSING_MANDATORY_PARAMETER, name)
        return value

    def int_param(self, name: str) -> int:
        """An `int` parameter, cast as PHP's (int) does (castSimpleType)."""
        return php_int(self.param(name))

    def obj(self, name: str) -> dict[str, Any]:
        value = self.params.get(name)
        return value if isinstance(value, dict) else {}


Handler = Callable[[Ctx], Any]


@dataclass(frozen=True)
class Action:
    fn: Handler
    service_id: str
    """The service id as the services map has it (lower case), used in SERVICE_FORBIDDEN."""
    name: str
    """The action name as declared by @action, used in SERVICE_FORBIDDEN."""
    permissions: frozenset[str]
    validate_user: Callable[[Ctx], dict[str, Any] | None] | None = None
    deserialize: Callable[[Ctx], None] | None = None
    ks_ignored: bool = False
    returns_file: bool = False


ACTIONS: dict[tuple[str, str], Action] = {}


def action(
    service: str,
    name: str,
    permissions: set[str],
    *,
    validate_user: Callable[[Ctx], dict[str, Any] | None] | None = None,
    deserialize: Callable[[Ctx], None] | None = None,
    ks_ignored: bool = False,
    returns_file: bool = False,
) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        ACTIONS[(service.lower(), name.lower())] = Action(
            fn,
            service.lower(),
            name,
            frozenset(permissions),
            validate_user,
            deserialize,
            ks_ignored,
            returns_file,
        )
        return fn

    return register


def session_kind(world: World, session: ks_mod.Session | None) -> str:
    """What the call log calls a session: "vendor" (a vendor partner's KS), "access_key"
    (a task's v2 key), "admin", "widget", "user" or "none"."""
    if session is None:
        return "none"
    if session.version == 2:
        return "access_key"
    if session.partner_id in world.vendors:
        return "vendor"
    if session.is_widget:
        return "widget"
    return "admin" if session.is_admin else "user"


def php_int(value: Any) -> int:
    """PHP's (int) cast of a request value: leading digits, else 0."""
    if isinstance(value, bool | int):
        return int(value)
    m = _LEADING_INT.match(str(value))
    return int(m.group(0)) if m else 0


_LEADING_INT = re.compile(r"^\s*[+-]?\d+")


def _php_truthy(value: Any) -> bool:
    return value not in (None, NULL, "", "0", 0, False)


def requested_partner(params: dict[str, Any], session: ks_mod.Session | None) -> int | None:
    """KalturaDispatcher::dispatch reads `p`, else `partnerId` (used only when non-empty
    or a KS is given); kCurrentContext::initKsPartnerUser drops partner 0 under a real
    partner's KS; kPermissionManager::init treats an empty one as none."""
    p = params.get("p")
    if not _php_truthy(p):
        p = params.get("partnerId")
        if p is NULL or not (_php_truthy(p) or session is not None):
            p = None
    if p is None or p is NULL or str(p).strip() == "":
        return None
    try:
        pid = int(str(p).strip())
    except ValueError:
        return None
    if pid == 0 and session is not None and session.partner_id > 0:
        return None
    return pid


def _role_permissions(ctx: Ctx, operating_partner: int | None) -> frozenset[str] | None:
    """kPermissionManager::getRoleIds + initPermissionsMap. None means every role-level
    permission (a partner admin session)."""
    s = ctx.session
    perms: set[str] = {ALWAYS}
    if operating_partner in ctx.world.vendors:
        perms.add(REACH_VENDOR_PARTNER)  # the partner's own feature permission
    if s is None:
        return frozenset(perms)
    if s.privilege("setrole") == REACH_VENDOR_ROLE:
        perms |= _REACH_VENDOR_ROLE
    elif s.is_widget:
        perms.add(WIDGET)
    elif s.is_admin:
        return None
    else:
        perms.add(BASE_USER)
    return frozenset(perms)


def _permitted(ctx: Ctx, spec: Action, operating_partner: int | None) -> bool:
    perms = _role_permissions(ctx, operating_partner)
    if perms is None:  # admin: everything but other partners' features
        allowed = bool(spec.permissions - _PARTNER_LEVEL) or (
            REACH_VENDOR_PARTNER in spec.permissions and operating_partner in ctx.world.vendors
        )
    else:
        allowed = bool(spec.permissions & perms)
    if (
        allowed
        and ctx.kind == "access_key"
        and (spec.service_id, spec.name) == ("caption_captionasset", "list")
    ):
        # Open question switch: the permission files allow it, a Kaltura FAQ says no.
        allowed = ctx.settings.access_key_can_list_captions
    return allowed


def dispatch(ctx: Ctx, service: str, action_name: str) -> Any:
    """One call, in KalturaDispatcher::dispatch's order."""
    spec = ACTIONS.get((service.lower(), action_name.lower()))
    if spec is None:
        if not any(s == service.lower() for s, _ in ACTIONS):
            raise error(E.SERVICE_DOES_NOT_EXISTS, service.lower())
        raise error(E.ACTION_DOES_NOT_EXISTS, action_name.lower(), service.lower())
    ks = ctx.raw("ks")
    if ks and not spec.ks_ignored:
        ctx.session = ctx.world.parse_session(str(ks))  # INVALID_STR if it cannot parse
    ctx.kind = session_kind(ctx.world, ctx.session)
    requested = requested_partner(ctx.params, ctx.session)
    # KalturaRequestDeserializer: arguments and the response profile come first
    ctx.profile = resolve_profile(ctx.obj("responseProfile"))
    if spec.deserialize is not None:
        spec.deserialize(ctx)
    # kPermissionManager::init
    if ctx.session is not None:
        ctx.world.check_session(ctx.session)
    if requested is not None and requested not in ctx.world.secrets:
        raise error(E.SERVICE_FORBIDDEN_CONTENT_BLOCKED)  # initPartnerUserObjects
    operating = ctx.session.partner_id if ctx.session is not None else requested
    ctx.partner_id = requested if requested is not None else operating
    # KalturaDispatcher::validateUser
    if spec.validate_user is not None:
        _validate_user(ctx, spec.validate_user(ctx))
    # KalturaBaseService::initService -> isPermitted -> kPermissionManager::isActionPermitted
    forbidden = error(E.SERVICE_FORBIDDEN, f"{spec.service_id}->{spec.name}")
    if requested is not None and operating is not None and requested != operating:
        raise forbidden  # isPartnerAccessAllowed / myPartnerUtils::allowPartnerAccessPartner
    if not _permitted(ctx, spec, operating):
        raise forbidden
    if spec.returns_file:
        try:
            return spec.fn(ctx)
        except ApiError as err:
            # KalturaDispatcher: a `file` action's exception becomes kRendererDieError
            return RawFile(b"", "text/plain", (("X-Kaltura", f"error-{err.code}"),))
    return apply_profile(ctx, spec.fn(ctx))


def _validate_user(ctx: Ctx, entry: dict[str, Any] | None) -> None:
    """KalturaDispatcher::validateUser for `@validateUser entry ... edit`: a non-admin
    session needs the edit privilege on the entry, or to own it."""
    denied = error(E.INVALID_KS, "", -4, ks_mod.INVALID_TYPE)
    s = ctx.session
    if s is None:
        raise denied
    if s.is_admin or entry is None:
        return
    if s.has_privilege("edit", str(entry["id"])):
        return
    if str(entry.get("userId") or "").lower() != s.user_id.lower():
        raise denied


# -- response profiles -----------------------------------------------------------------

INCLUDE_FIELDS, EXCLUDE_FIELDS = 1, 2  # KalturaResponseProfileType


@dataclass(frozen=True)
class Related:
    name: str
    type: int
    fields: frozenset[str]
    parent_property: str
    store: str
    object_type: str


@dataclass(frozen=True)
class Profile:
    type: int
    fields: frozenset[str]
    related: tuple[Related, ...] = ()


# deployment/updates/scripts/xml/responseProfiles/2021_01_03_update_reach_vendor_response_
# profiles.template.xml (fields) and 2020_11_03_... (relatedProfiles, kept by the update)
REACH_VENDOR_PROFILE_ID = 331


def _csv(text: str) -> frozenset[str]:
    return frozenset(text.split(","))


REACH_VENDOR = Profile(
    INCLUDE_FIELDS,
    _csv(
        "id,partnerId,vendorPartnerId,createdAt,entryId,status,version,reachProfileId,"
        "catalogItemId,accessKey,notes,dictionary,taskJobData,captionAssetId,"
        "jsonTranscriptAssetId,textTranscriptAssetId"
    ),
    (
        Related(
            "reach_vendor_catalog_item",
            EXCLUDE_FIELDS,
            _csv(
                "id,vendorPartnerId,name,systemName,createdAt,updatedAt,status,pricing,"
                "fixedPriceAddons"
            ),
            "catalogItemId",
            "catalog_items",
            "KalturaVendorCatalogItemListResponse",
        ),
        Related(
            "reach_vendor_profile",
            EXCLUDE_FIELDS,
            _csv(
                "id,partnerId,createdAt,updatedAt,status,profileType,rules,credit,usedCredit,"
                "dictionaries,autoDisplayMachineCaptionsOnPlayer,"
                "autoDisplayHumanCaptionsOnPlayer,enableMachineModeration,"
                "enableHumanModeration"
            ),
            "reachProfileId",
            "reach_profiles",
            "KalturaReachProfileListResponse",
        ),
    ),
)
STORED_PROFILES = {"reach_vendor": REACH_VENDOR}


def resolve_profile(given: dict[str, Any]) -> Profile | None:
    """KalturaRequestDeserializer::getResponseProfile: a stored profile by system name or
    id, or a detached one (type and fields) given in the request."""
    name, pid = given.get("systemName"), given.get("id")
    if name not in (None, "", NULL):
        if name not in STORED_PROFILES:
            raise error(E.RESPONSE_PROFILE_NAME_NOT_FOUND, name)
        return STORED_PROFILES[str(name)]
    if pid not in (None, "", NULL):
        if str(pid) != str(REACH_VENDOR_PROFILE_ID):
            raise error(E.RESPONSE_PROFILE_ID_NOT_FOUND, pid)
        return REACH_VENDOR
    kind = str(given.get("type") or "")
    if kind not in (str(INCLUDE_FIELDS), str(EXCLUDE_FIELDS)):
        return None
    fields = frozenset(f.strip() for f in str(given.get("fields") or "").split(",")) - {""}
    return Profile(int(kind), fields)


def _select(obj: dict[str, Any], profile: Profile | Related) -> dict[str, Any]:
    """KalturaObject::shouldGet: INCLUDE keeps the listed fields, EXCLUDE drops them;
    `objectType` always stays. KalturaVendorTaskData::getInstance passes the profile on,
    so a task's taskJobData is trimmed by the same list."""
    include = profile.type == INCLUDE_FIELDS
    out: dict[str, Any] = {}
    for key, value in obj.items():
        if key == "objectType" or key.startswith("_") or (key in profile.fields) == include:
            if isinstance(value, dict) and "objectType" in value:
                value = _select(value, profile)
            out[key] = value
    return out


def apply_profile(ctx: Ctx, result: Any) -> Any:
    profile = ctx.profile
    if profile is None or not isinstance(result, dict):
        return result
    if str(result.get("objectType", "")).endswith("ListResponse"):
        return {**result, "objects": [_shape(ctx, o, profile) for o in result.get("objects") or []]}
    return _shape(ctx, result, profile)


def _shape(ctx: Ctx, obj: dict[str, Any], profile: Profile) -> dict[str, Any]:
    out = _select(obj, profile)
    if profile.related and obj.get("objectType") == "KalturaEntryVendorTask":
        related: dict[str, Any] = {}
        for rel in profile.related:
            store: dict[int, dict[str, Any]] = getattr(ctx.world, rel.store)
            found = store.get(int(obj.get(rel.parent_property) or 0))
            objects = [_select(ctx.world.snapshot(found), rel)] if found else []
            related[rel.name] = {
                "objectType": rel.object_type,
                "objects": objects,
                "totalCount": len(objects),
            }
        out["relatedObjects"] = related
    return out


# -- shared helpers ----------------------------------------------------------------------


def _pager(ctx: Ctx) -> tuple[int | None, int]:
    """KalturaFilterPager: default 30, at most 500 (baseObjectFilter::$maxInValues);
    a size of 0 sets no limit (SphinxCriteria), so the whole list comes back."""
    pager = ctx.obj("pager")
    raw_size, raw_index = pager.get("pageSize"), pager.get("pageIndex")
    try:
        size = 30 if raw_size in (None, "", NULL) else int(str(raw_size))
        index = 1 if raw_index in (None, "", NULL) else int(str(raw_index))
    except ValueError:
        size, index = 30, 1
    size = max(min(size, 500), 0)
    return (size or None), max(1, index)


def _page(ctx: Ctx, items: list[Any]) -> list[Any]:
    size, index = _pager(ctx)
    if size is None:
        return items[:10000]
    return items[(index - 1) * size : index * size]


def _list_response(object_type: str, items: list[dict[str, Any]], ctx: Ctx) -> dict[str, Any]:
    return {
        "objectType": object_type,
        "objects": [ctx.world.snapshot(i) for i in _page(ctx, items)],
        "totalCount": len(items),
    }


def _ints(value: Any) -> set[int]:
    return {int(v) for v in str(value).split(",") if v.strip().lstrip("-").isdigit()}


def _strs(value: Any) -> set[str]:
    return {v.strip() for v in str(value).split(",") if v.strip()}


def _given(flt: dict[str, Any], key: str) -> bool:
    return flt.get(key) not in (None, "", NULL)


def _entry(ctx: Ctx, entry_id: str) -> dict[str, Any] | None:
    """entryPeer::retrieveByPK under the partner filter (myPartnerUtils::applyPartnerFilters)
    and, when the partner enforces entitlement, kEntitlementUtils (an access key then sees
    only the entry of its `disableentitlementforentry` privilege)."""
    entry = ctx.world.entries.get(entry_id)
    if entry is None or entry["partnerId"] != ctx.partner_id:
        return None
    s = ctx.session
    if (
        ctx.settings.entitlement
        and s is not None
        and not s.is_admin
        and not s.has_privilege("disableentitlementforentry", entry_id)
    ):
        return None
    return entry


def _entry_of_param(name: str) -> Callable[[Ctx], dict[str, Any] | None]:
    """`@validateUser entry <name> edit`: the entry, found without a partner filter."""

    def find(ctx: Ctx) -> dict[str, Any] | None:
        return ctx.world.entries.get(str(ctx.raw(name) or ""))

    return find


def _asset_entry_of_param(store: str, name: str) -> Callable[[Ctx], dict[str, Any] | None]:
    """`@validateUser asset::entry <name> edit`: the asset's entry."""

    def find(ctx: Ctx) -> dict[str, Any] | None:
        assets: dict[str, dict[str, Any]] = getattr(ctx.world, store)
        asset = assets.get(str(ctx.raw(name) or ""))
        return ctx.world.entries.get(asset["entryId"]) if asset else None

    return find


def _now() -> int:
    return int(time.time())


# -- session / appToken / system ------------------------------------------------------------


@action("session", "startWidgetSession", {ALWAYS, BASE_USER, WIDGET, PLAYBACK}, ks_ignored=True)
def start_widget_session(ctx: Ctx) -> Any:
    """SessionService::startWidgetSession: widget `_<partnerId>`, privileges
    `view:*,widget:1`."""
    widget = str(ctx.param("widgetId"))
    try:
        partner_id = int(widget.lstrip("_"))
    except ValueError:
        partner_id = -1
    if not widget.startswith("_") or partner_id not in ctx.world.secrets:
        raise error(E.INVALID_WIDGET_ID, widget)
    expiry = int(ctx.raw("expiry") or 86400)
    ks = ctx.world.issue_ks(
        partner_id, expiry_s=expiry, type_=ks_mod.USER, privileges="view:*,widget:1"
    )
    return {
        "objectType": "KalturaStartWidgetSessionResponse",
        "partnerId": partner_id,
        "ks": ks,
        "userId": 0,
    }


_HASHES: dict[str, Callable[[bytes], Any]] = {
    "SHA1": hashlib.sha1,
    "SHA256": hashlib.sha256,
    "SHA512": hashlib.sha512,
    "MD5": hashlib.md5,
}


@action("appToken", "startSession", {BASE_USER, WIDGET})
def app_token_start_session(ctx: Ctx) -> Any:
    """AppTokenService::startSessionAction: hash of (KS + token), expiry capped by the
    token's session expiry."""
    token_id = str(ctx.param("id"))
    token = ctx.world.app_tokens.get(token_id)
    session = ctx.s
    if token is None or token.partner_id != ctx.partner_id:
        raise error(E.APP_TOKEN_ID_NOT_FOUND, token_id)
    expected = _HASHES[token.hash_type]((session.ks + token.token).encode()).hexdigest()
    if not secrets.compare_digest(expected, str(ctx.param("tokenHash"))):
        raise error(E.INVALID_APP_TOKEN_HASH)
    expiry = min(int(ctx.raw("expiry") or token.session_expiry_s), token.session_expiry_s)
    user_id = str(ctx.raw("userId") or "")
    ks = ctx.world.issue_ks(
        token.partner_id,
        expiry_s=expiry,
        type_=token.session_type,
        user_id=user_id,
        privileges=token.privileges,
    )
    return {
        "objectType": "KalturaSessionInfo",
        "ks": ks,
        "sessionType": token.session_type,
        "partnerId": token.partner_id,
        "userId": user_id,
        "expiry": _now() + expiry,
        "privileges": token.privileges,
    }


@action("system", "ping", {ALWAYS, BASE_USER, WIDGET})
def ping(ctx: Ctx) -> Any:
    return True


# -- reach_entryvendortask -------------------------------------------------------------------

_TASK_NOT_FOUND = E.ENTRY_VENDOR_TASK_NOT_FOUND


def _task_by_pk(ctx: Ctx, task_id: int, *, partner_filter: bool) -> dict[str, Any]:
    """EntryVendorTaskPeer::retrieveByPK: ABORTED tasks never show (setDefaultCriteriaFilter);
    with the partner filter (EntryVendorTaskService::initService for every action but
    getJobs, updateJob, list and extendAccessKey) only the current partner's."""
    task = ctx.world.tasks.get(task_id)
    if (
        task is None
        or status_of(task) == ABORTED
        or (partner_filter and task["partnerId"] != ctx.partner_id)
    ):
        raise error(_TASK_NOT_FOUND, task_id)
    return task


def _entry_must_exist(ctx: Ctx, task: dict[str, Any]) -> None:
    """kReachUtils::validateEntryObjectExists."""
    if task["entryId"] not in ctx.world.entries:
        raise error(E.ENTRY_ID_NOT_FOUND, task["entryId"])


_ORDERABLE = {
    "id",
    "createdAt",
    "updatedAt",
    "queueTime",
    "finishTime",
    "status",
    "price",
    "expectedFinishTime",
}


def _task_filter(task: dict[str, Any], flt: dict[str, Any], status: int, vendor: int) -> bool:
    """KalturaEntryVendorTaskBaseFilter's fields (others in the request are ignored, as the
    deserializer ignores properties a class does not declare)."""

    def eq(key: str, value: Any) -> bool:
        return not _given(flt, key) or str(flt[key]).strip() == str(value)

    def within(key: str, values: set[Any], value: Any) -> bool:
        return not _given(flt, key) or value in values

    def bound(prefix: str) -> bool:
        value = task.get(prefix)
        lo, hi = f"{prefix}GreaterThanOrEqual", f"{prefix}LessThanOrEqual"
        if _given(flt, lo) and (value is None or as_int(value) < php_int(flt[lo])):
            return False
        return not (_given(flt, hi) and (value is None or as_int(value) > php_int(flt[hi])))

    return (
        eq("idEqual", task["id"])
        and within("idIn", _ints(flt.get("idIn")), task["id"])
        and not (_given(flt, "idNotIn") and task["id"] in _ints(flt["idNotIn"]))
        and eq("vendorPartnerIdEqual", vendor)
        and within("vendorPartnerIdIn", _ints(flt.get("vendorPartnerIdIn")), vendor)
        and all(
            bound(p)
            for p in ("createdAt", "updatedAt", "queueTime", "finishTime", "expectedFinishTime")
        )
        and eq("entryIdEqual", task["entryId"])
        and eq("statusEqual", status)
        and within("statusIn", _ints(flt.get("statusIn")), status)
        and eq("reachProfileIdEqual", task["reachProfileId"])
        and within("reachProfileIdIn", _ints(flt.get("reachProfileIdIn")), task["reachProfileId"])
        and eq("catalogItemIdEqual", task["catalogItemId"])
        and within("catalogItemIdIn", _ints(flt.get("catalogItemIdIn")), task["catalogItemId"])
        and eq("userIdEqual", task.get("userId"))
        and eq("contextEqual", task.get("context"))
        and eq("entryObjectTypeEqual", task.get("entryObjectType", 1))
        and within(
            "entryObjectTypeIn", _ints(flt.get("entryObjectTypeIn")), task.get("entryObjectType", 1)
        )
        and not (
            _given(flt, "entryObjectTypeNotIn")
            and task.get("entryObjectType", 1) in _ints(flt["entryObjectTypeNotIn"])
        )
    )


def _search_tasks(ctx: Ctx, flt: dict[str, Any], *, partner_id: int | None) -> Any:
    """KalturaEntryVendorTaskFilter::getListResponse: the search index answers which tasks
    match (as it stood `index_lag_s` ago) and how many; the objects are then read from the
    database with their current fields, where ABORTED ones are left out
    (EntryVendorTaskPeer::setDefaultCriteriaFilter)."""
    lag = max(0.0, float(ctx.settings.index_lag_s))
    as_of = time.time() - lag
    with ctx.world.lock:
        matches = []
        for task in ctx.world.tasks.values():
            if partner_id is not None and task["partnerId"] != partner_id:
                continue
            if lag > 0:
                seen = ctx.world.indexed(task, as_of)
                if seen is None:
                    continue
                status, vendor = seen
            else:
                status, vendor = status_of(task), as_int(task.get("vendorPartnerId"))
            if status == ABORTED:  # the default criteria hold in the index too
                continue
            if _task_filter(task, flt, status, vendor):
                matches.append(task)
        order = str(flt.get("orderBy") or "").split(",")[0].strip()
        name = order.lstrip("+-")
        if name in _ORDERABLE:
            matches.sort(
                key=lambda t: (as_int(t.get(name)), t["id"]), reverse=order.startswith("-")
            )
        else:
            matches.sort(key=lambda t: (t["createdAt"], t["id"]))
            if ctx.settings.shuffle_jobs:
                # no documented order: a seeded shuffle makes a vendor cope with any
                ctx.settings.jobs_rng.shuffle(matches)
        page = [t for t in _page(ctx, matches) if status_of(t) != ABORTED]
        return {
            "objectType": "KalturaEntryVendorTaskListResponse",
            "objects": [_public_task(ctx, t) for t in page],
            "totalCount": len(matches),
        }


def _public_task(ctx: Ctx, task: dict[str, Any]) -> dict[str, Any]:
    return ctx.world.snapshot(task)


@action("reach_entryvendortask", "getJobs", {REACH_VENDOR_PARTNER})
def get_jobs(ctx: Ctx) -> Any:
    """EntryVendorTaskService::getJobsAction: the vendor filter is forced; a status filter
    other than PENDING/SCHEDULED (or none) sets statusEqual=PENDING, leaving any statusIn
    in the filter as it was (so both apply)."""
    flt = dict(ctx.obj("filter"))
    flt["vendorPartnerIdEqual"] = ctx.partner_id
    status_eq, status_in = flt.get("statusEqual"), flt.get("statusIn")
    if _php_truthy(status_eq) or _php_truthy(status_in):
        wanted = [str(status_eq)] if _php_truthy(status_eq) else str(status_in).split(",")
        if any(w not in (str(PENDING), str(SCHEDULED)) for w in wanted):
            flt["statusEqual"] = PENDING
    else:
        flt["statusEqual"] = PENDING
    return _search_tasks(ctx, flt, partner_id=None)


@action("reach_entryvendortask", "list", {BASE_USER})
def list_tasks(ctx: Ctx) -> Any:
    """EntryVendorTaskService::listAction / applyFiltersAccordingToPartner: a vendor
    partner lists the tasks it serves, any other partner its own."""
    flt = dict(ctx.obj("filter"))
    if ctx.partner_id in ctx.world.vendors:
        flt["vendorPartnerIdEqual"] = ctx.partner_id
        return _search_tasks(ctx, flt, partner_id=None)
    return _search_tasks(ctx, flt, partner_id=ctx.partner_id)


@action("reach_entryvendortask", "get", {BASE_USER})
def get_task(ctx: Ctx) -> Any:
    """EntryVendorTaskService::getAction (partner filter: the customer's tasks only)."""
    with ctx.world.lock:
        return _public_task(ctx, _task_by_pk(ctx, ctx.int_param("id"), partner_filter=True))


# KalturaEntryVendorTask (plugins/reach/lib/api/data/entryVendorTaks/KalturaEntryVendorTask.php)
_TASK_READONLY = {
    "id",
    "partnerId",
    "vendorPartnerId",
    "createdAt",
    "updatedAt",
    "queueTime",
    "finishTime",
    "price",
    "userId",
    "moderatingUser",
    "accessKey",
    "version",
    "dictionary",
    "creationMode",
    "expectedFinishTime",
    "serviceType",
    "serviceFeature",
    "turnAroundTime",
}
_TASK_INSERTONLY = {
    "entryId",
    "reachProfileId",
    "catalogItemId",
    "entryObjectType",
    "externalObjectId",
}
# @requiresPermission insert,update, granted by object.KalturaEntryVendorTask.ini to
# REACH_VENDOR_PARTNER only; for anyone else KalturaObject::validateForUpdate drops them.
_TASK_VENDOR_ONLY = {"status", "errDescription", "accuracy", "outputObjectId", "externalTaskId"}
_TASK_INT = {"status", "unitsUsed", "accuracy"}
_TASK_PROPS = (
    _TASK_READONLY
    | _TASK_INSERTONLY
    | _TASK_VENDOR_ONLY
    | {"unitsUsed", "notes", "context", "partnerData", "taskJobData"}
)


def _enum_status(ctx: Ctx) -> None:
    """KalturaRequestDeserializer: status is a KalturaEntryVendorTaskStatus."""
    given = ctx.obj("entryVendorTask").get("status")
    if given in (None, NULL):
        return
    text = str(given).strip()
    if text.lower() == "true":
        text = "1"
    if text.lower() == "false":
        text = "0"
    if not text.lstrip("-").isdigit() or int(text) not in range(1, 10):
        raise error(E.INVALID_ENUM_VALUE, given, "status", "KalturaEntryVendorTaskStatus")


def _task_changes(ctx: Ctx, task: dict[str, Any], vendor: bool) -> dict[str, Any]:
    """KalturaEntryVendorTask::toUpdatableObject: validateForUpdate (its own checks, then
    KalturaObject's), toObject, then kReachUtils::getPayPerUsePrice."""
    given: dict[str, Any] = {}
    for key, value in ctx.obj("entryVendorTask").items():
        if key == "objectType" or key not in _TASK_PROPS:
            continue  # unknown properties are not deserialized
        if value is NULL:
            given[key] = NULL
        elif key in _TASK_INT:
            given[key] = php_int(value)
        elif key == "taskJobData":
            given[key] = value if isinstance(value, dict) else None
        else:
            given[key] = str(value)
    current = status_of(task)
    new_status = given.get("status")
    # KalturaEntryVendorTask::validateForUpdate
    if current in FINAL_STATUSES:
        if isinstance(new_status, int) and new_status and new_status != current:
            raise error(
                E.CANNOT_UPDATE_STATUS_OF_TASK_WHICH_IS_IN_FINAL_STATE,
                task["id"],
                current,
                new_status,
            )
        if isinstance(given.get("unitsUsed"), int) and given["unitsUsed"]:
            raise error(
                E.CANNOT_UPDATE_UNIT_USED_OF_TASK_WHICH_IS_IN_FINAL_STATE,
                task["id"],
                task.get("unitsUsed"),
                given["unitsUsed"],
            )
    partner_data = given.get("partnerData")
    if isinstance(partner_data, str) and not _json_object(partner_data):
        raise error(E.PARTNER_DATA_NOT_VALID_JSON_STRING)  # kString::checkIsValidJson
    # KalturaObject::validateForUpdate: an unchanged value is skipped; a read-only or
    # insert-only one that changes is refused; one needing a permission is dropped
    changes: dict[str, Any] = {}
    for key, value in given.items():
        stored = task.get(key)
        if value is not NULL and stored is not None and str(stored) == str(value):
            continue
        if key in _TASK_READONLY or key in _TASK_INSERTONLY:
            raise error(E.PROPERTY_VALIDATION_NOT_UPDATABLE, f"KalturaEntryVendorTask::{key}")
        if key in _TASK_VENDOR_ONLY and not vendor:
            continue
        if key == "taskJobData" and isinstance(value, dict):
            value = {**(task.get("taskJobData") or {}), **value}
        changes[key] = None if value is NULL else value
    # kReachUtils::getPayPerUsePrice: on a READY request for a pay-per-use item
    catalog = ctx.world.catalog_items.get(int(task["catalogItemId"])) or {}
    if given.get("status") == READY and catalog.get("payPerUse"):
        units = given.get("unitsUsed")
        if not isinstance(units, int):
            units = task.get("unitsUsed")
        if not _numeric(units):
            raise error(E.MISSING_MANDATORY_PARAMETER, "unitsUsed")
        price_per_unit = (catalog.get("pricing") or {}).get("pricePerUnit")
        if _numeric(price_per_unit):
            changes["price"] = float(str(price_per_unit)) * float(str(units))
    return changes


def _json_object(text: str) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except ValueError:
        return False


def _numeric(value: Any) -> bool:
    if value is None or isinstance(value, bool):
        return False
    try:
        float(str(value))
    except ValueError:
        return False
    return True


@action("reach_entryvendortask", "updateJob", {REACH_VENDOR_PARTNER}, deserialize=_enum_status)
def update_job(ctx: Ctx) -> Any:
    """EntryVendorTaskService::updateJobAction: the task by id and the KS's partner as its
    vendor (retrieveByPKAndVendorPartnerId), then toUpdatableObject and tryToSave."""
    task_id = ctx.int_param("id")
    with ctx.world.lock:
        task = ctx.world.tasks.get(task_id)
        if (
            task is None
            or status_of(task) == ABORTED
            or task["vendorPartnerId"] != ctx.s.partner_id
        ):
            raise error(_TASK_NOT_FOUND, task_id)
        changes = _task_changes(ctx, task, vendor=True)
        ctx.world.save_task(task, changes)
        return _public_task(ctx, task)


@action("reach_entryvendortask", "update", {BASE_USER}, deserialize=_enum_status)
def update_task(ctx: Ctx) -> Any:
    """EntryVendorTaskService::updateAction (the customer's): partner filter, entry must
    exist, a status ABORTED must be allowed (isAbortAllowed); status, errDescription,
    accuracy, outputObjectId and externalTaskId are silently dropped without
    REACH_VENDOR_PARTNER."""
    task_id = ctx.int_param("id")
    with ctx.world.lock:
        task = _task_by_pk(ctx, task_id, partner_filter=True)
        _entry_must_exist(ctx, task)
        given = ctx.obj("entryVendorTask").get("status")
        if given not in (None, NULL) and str(given).strip() == str(ABORTED):
            _abort_allowed(task)
        vendor = ctx.partner_id in ctx.world.vendors
        ctx.world.save_task(task, _task_changes(ctx, task, vendor=vendor))
        return _public_task(ctx, task)


@action("reach_entryvendortask", "extendAccessKey", {REACH_VENDOR_PARTNER})
def extend_access_key(ctx: Ctx) -> Any:
    """EntryVendorTaskService::extendAccessKeyAction: the task's vendor must be the
    current partner; SCHEDULED or PROCESSING only; a new key valid for the stored
    accessKeyExpiry from now. The old key is not killed: it lives out its own expiry."""
    task_id = ctx.int_param("id")
    with ctx.world.lock:
        task = _task_by_pk(ctx, task_id, partner_filter=False)
        if task["vendorPartnerId"] != ctx.partner_id:
            raise error(_TASK_NOT_FOUND, task_id)
        if status_of(task) not in (SCHEDULED, PROCESSING):
            raise error(E.CANNOT_EXTEND_ACCESS_KEY)
        life = float(task.get("_accessKeyExpiry") or 7 * 86400)
        key = ctx.world.issue_access_key(task, life, time.time())
        ctx.world.save_task(task, {"accessKey": key})
        return _public_task(ctx, task)


def _abort_allowed(task: dict[str, Any]) -> None:
    """EntryVendorTaskService::isAbortAllowed."""
    if status_of(task) not in ABORTABLE:
        raise error(E.CANNOT_ABORT_NOT_MODERATED_TASK, task["id"])


@action("reach_entryvendortask", "abort", {BASE_USER})
def abort(ctx: Ctx) -> Any:
    """EntryVendorTaskService::abortAction: PENDING_MODERATION, PENDING or SCHEDULED only;
    a non-admin session must be the task's user."""
    task_id = ctx.int_param("id")
    with ctx.world.lock:
        task = _task_by_pk(ctx, task_id, partner_filter=True)
        _entry_must_exist(ctx, task)
        _abort_allowed(task)
        s = ctx.s
        if not s.is_admin and s.user_id != task.get("userId"):
            raise error(E.ENTRY_VENDOR_TASK_ACTION_NOT_ALLOWED, task_id, s.user_id)
        ctx.world.save_task(task, {"status": ABORTED, "errDescription": ctx.raw("abortReason")})
        return _public_task(ctx, task)


@action("reach_entryvendortask", "reset", {"PARTNER_-24_GROUP_*_PERMISSION"})
def reset_api(ctx: Ctx) -> Any:
    """Kaltura's own partner -24 only; KalturaEmulator.reset_task plays it."""
    raise error(E.SERVICE_FORBIDDEN, "reach_entryvendortask->reset")


# -- flavors -----------------------------------------------------------------------------


def _asset_visible(ctx: Ctx, asset: dict[str, Any] | None) -> bool:
    """assetPeer: DELETED never shows (setDefaultCriteriaFilter); partner filter and
    entitlement through the asset's entry."""
    return (
        asset is not None
        and asset.get("status") != ASSET_DELETED
        and asset["partnerId"] == ctx.partner_id
        and _entry(ctx, asset["entryId"]) is not None
    )


def _asset_filter(flt: dict[str, Any], asset: dict[str, Any]) -> bool:
    """KalturaAssetFilter's common fields."""
    if _given(flt, "entryIdEqual") and asset["entryId"] != str(flt["entryIdEqual"]):
        return False
    if _given(flt, "entryIdIn") and asset["entryId"] not in _strs(flt["entryIdIn"]):
        return False
    if _given(flt, "idEqual") and asset["id"] != str(flt["idEqual"]):
        return False
    if _given(flt, "idIn") and asset["id"] not in _strs(flt["idIn"]):
        return False
    if _given(flt, "statusEqual") and str(asset.get("status")) != str(flt["statusEqual"]).strip():
        return False
    return not (
        _given(flt, "statusIn") and int(asset.get("status", 0)) not in _ints(flt["statusIn"])
    )


@action("flavorAsset", "list", {CONTENT_MANAGE, BASE_USER, WIDGET, PLAYBACK})
def flavor_list(ctx: Ctx) -> Any:
    flt = ctx.obj("filter")
    with ctx.world.lock:
        # The filter first: both tests only read, and it spares the entry lookup of
        # `_asset_visible` for every other entry's assets (a bench holds thousands).
        flavors = [
            f
            for f in ctx.world.flavors.values()
            if _asset_filter(flt, f) and _asset_visible(ctx, f)
        ]
        return _list_response("KalturaFlavorAssetListResponse", flavors, ctx)


@action("flavorAsset", "getUrl", {INGEST, CONTENT_MANAGE, BASE_USER, WIDGET, PLAYBACK})
def flavor_get_url(ctx: Ctx) -> Any:
    """FlavorAssetService::getUrlAction: a serveFlavor URL carrying the caller's KS."""
    flavor_id = str(ctx.param("id"))
    flavor = ctx.world.flavors.get(flavor_id)
    if flavor is None or not _asset_visible(ctx, flavor):
        raise error(E.FLAVOR_ASSET_ID_NOT_FOUND, flavor_id)
    pid = flavor["partnerId"]
    return (
        f"{ctx.base_url}/p/{pid}/sp/{pid}00/serveFlavor/entryId/{flavor['entryId']}"
        f"/v/1/flavorId/{flavor_id}/ks/{ctx.s.ks}/name/a.{flavor['fileExt']}"
    )


# -- upload tokens (api_v3/services/UploadTokenService.php) ----------------------------------


def _owned_token(ctx: Ctx, token_id: str) -> dict[str, Any] | None:
    """UploadTokenPeer under the partner filter and restrictPeerToCurrentUser (a
    non-admin session sees only its own user's tokens)."""
    token = ctx.world.upload_tokens.get(token_id)
    if token is None or token["partnerId"] != ctx.partner_id:
        return None
    s = ctx.session
    if s is not None and not s.is_admin and token.get("_user") != s.user_id:
        return None
    return token


@action("uploadToken", "add", {ATTACHMENT_MODIFY, CAPTION_MODIFY, INGEST, BASE_USER})
def upload_token_add(ctx: Ctx) -> Any:
    spec = ctx.obj("uploadToken")
    for key in ("id", "partnerId", "userId", "status", "uploadedFileSize", "createdAt"):
        if spec.get(key) not in (None, NULL):  # KalturaObject::validateForInsert
            raise error(E.PROPERTY_VALIDATION_NOT_UPDATABLE, f"KalturaUploadToken::{key}")
    token_id = "0_" + secrets.token_hex(16)
    now = _now()
    token = {
        "objectType": "KalturaUploadToken",
        "id": token_id,
        "partnerId": ctx.partner_id,
        "userId": ctx.s.user_id,
        "status": TOKEN_PENDING,
        "fileName": str(spec["fileName"]) if spec.get("fileName") not in (None, NULL) else None,
        "fileSize": float(spec["fileSize"]) if spec.get("fileSize") not in (None, NULL) else None,
        "uploadedFileSize": 0.0,
        "createdAt": now,
        "updatedAt": now,
        "_user": ctx.s.user_id,
        "_content": b"",
    }
    with ctx.world.lock:
        ctx.world.upload_tokens[token_id] = token
        return ctx.world.snapshot(token)


@action("uploadToken", "upload", {ATTACHMENT_MODIFY, CAPTION_MODIFY, INGEST, BASE_USER})
def upload_token_upload(ctx: Ctx) -> Any:
    """UploadTokenService::uploadAction / validateForUpload / kUploadTokenMgr."""
    with ctx.world.lock:
        token = _owned_token(ctx, str(ctx.param("uploadTokenId")))
        if token is None:
            raise error(E.UPLOAD_TOKEN_NOT_FOUND)
        if token["status"] not in (TOKEN_PENDING, TOKEN_PARTIAL):
            raise error(E.UPLOAD_TOKEN_INVALID_STATUS_FOR_UPLOAD)
        if "fileData" not in ctx.files:
            raise error(E.MISSING_MANDATORY_PARAMETER, "fileData")
        data = ctx.files["fileData"]
        resume = str(ctx.raw("resume") or "0").lower() in ("1", "true")
        final = str(ctx.raw("finalChunk") or "1").lower() in ("1", "true")
        content: bytes = token["_content"]
        if resume:
            at = int(float(str(ctx.raw("resumeAt") or -1) or -1))
            content = content + data if at < 0 else content[:at] + data
        else:
            content = data
        token["_content"] = content
        token["uploadedFileSize"] = float(len(content))
        token["status"] = TOKEN_FULL if final else TOKEN_PARTIAL
        token["updatedAt"] = _now()
        if final:
            _upload_finished(ctx, token)
        return ctx.world.snapshot(token)


def _upload_finished(ctx: Ctx, token: dict[str, Any]) -> None:
    """kFlowHelper::handleUploadFinished: a token already attached to an asset (setContent
    ran before the upload ended) fills it; the asset goes READY, the token CLOSED."""
    store = {"CaptionAsset": ctx.world.captions, "AttachmentAsset": ctx.world.attachments}.get(
        str(token.get("attachedObjectType"))
    )
    if store is None:
        return
    asset = store.get(str(token.get("attachedObjectId")))
    if asset is None:
        return
    _fill_asset(asset, token["_content"], _ext(token.get("fileName")))
    if asset["status"] == ASSET_IMPORTING:
        asset["status"] = ASSET_READY
    token["status"] = TOKEN_CLOSED


def _ext(file_name: Any) -> str | None:
    name = str(file_name or "")
    return name.rsplit(".", 1)[1] if "." in name else None


@action("uploadToken", "get", {INGEST, BASE_USER, WIDGET})
def upload_token_get(ctx: Ctx) -> Any:
    token = _owned_token(ctx, str(ctx.param("uploadTokenId")))
    if token is None:
        raise error(E.UPLOAD_TOKEN_NOT_FOUND)
    return ctx.world.snapshot(token)


@action("uploadToken", "list", {INGEST, BASE_USER, WIDGET})
def upload_token_list(ctx: Ctx) -> Any:
    """UploadTokenService::listAction: a fileNameEqual without a status filter gets
    statusIn=PENDING,PARTIAL_UPLOAD,FULL_UPLOAD."""
    flt = dict(ctx.obj("filter"))
    if (
        _given(flt, "fileNameEqual")
        and not _given(flt, "statusEqual")
        and not _given(flt, "statusIn")
    ):
        flt["statusIn"] = f"{TOKEN_PENDING},{TOKEN_PARTIAL},{TOKEN_FULL}"
    with ctx.world.lock:
        tokens = [
            t
            for t in ctx.world.upload_tokens.values()
            if _owned_token(ctx, t["id"]) is not None
            and (not _given(flt, "idEqual") or t["id"] == str(flt["idEqual"]))
            and (not _given(flt, "idIn") or t["id"] in _strs(flt["idIn"]))
            and (not _given(flt, "userIdEqual") or t["userId"] == str(flt["userIdEqual"]))
            and (not _given(flt, "statusEqual") or str(t["status"]) == str(flt["statusEqual"]))
            and (not _given(flt, "statusIn") or t["status"] in _ints(flt["statusIn"]))
            and (not _given(flt, "fileNameEqual") or t.get("fileName") == str(flt["fileNameEqual"]))
            and (
                not _given(flt, "fileSizeEqual")
                or float(t.get("fileSize") or -1) == float(flt["fileSizeEqual"])
            )
        ]
        return _list_response("KalturaUploadTokenListResponse", tokens, ctx)


@action("uploadToken", "delete", {INGEST, BASE_USER, "BASE_UPLOAD_PERMISSION"})
def upload_token_delete(ctx: Ctx) -> Any:
    with ctx.world.lock:
        token = _owned_token(ctx, str(ctx.param("uploadTokenId")))
        if token is None:
            raise error(E.UPLOAD_TOKEN_NOT_FOUND)
        token["status"] = TOKEN_DELETED
    return None


# -- caption and attachment assets -----------------------------------------------------------


@dataclass(frozen=True)
class AssetKind:
    store: str
    param: str
    object_type: str
    core_class: str
    not_found: str
    fields: frozenset[str]
    readonly: frozenset[str]
    insertonly: frozenset[str]
    enum_checks: tuple[tuple[str, str], ...] = field(default_factory=tuple)


# KalturaAsset (api_v3/lib/types/conversionProfile/KalturaAsset.php)
_ASSET_READONLY = frozenset(
    {
        "id",
        "entryId",
        "partnerId",
        "version",
        "size",
        "createdAt",
        "updatedAt",
        "deletedAt",
        "description",
        "sizeInBytes",
    }
)
_ASSET_FIELDS = frozenset(
    {"tags", "fileExt", "partnerData", "partnerDescription", "actualSourceAssetParamsIds"}
)
CAPTION = AssetKind(
    "captions",
    "captionAsset",
    "KalturaCaptionAsset",
    "CaptionAsset",
    E.CAPTION_ASSET_ID_NOT_FOUND,
    # plugins/content/caption/base/lib/api/KalturaCaptionAsset.php
    _ASSET_FIELDS
    | {
        "captionParamsId",
        "language",
        "isDefault",
        "label",
        "format",
        "source",
        "parentId",
        "accuracy",
        "displayOnPlayer",
        "associatedTranscriptIds",
        "usage",
    },
    _ASSET_READONLY | {"languageCode", "status"},
    frozenset({"fileExt", "captionParamsId", "format", "source", "parentId"}),
    (("language", "KalturaLanguage"), ("format", "KalturaCaptionType")),
)
ATTACHMENT = AssetKind(
    "attachments",
    "attachmentAsset",
    "KalturaAttachmentAsset",
    "AttachmentAsset",
    E.ATTACHMENT_ASSET_ID_NOT_FOUND,
    # plugins/content/attachment/lib/api/KalturaAttachmentAsset.php
    _ASSET_FIELDS | {"filename", "title", "format"},
    _ASSET_READONLY | {"status"},
    frozenset({"fileExt"}),
    (("format", "KalturaAttachmentType"),),
)
# CaptionType / AttachmentType: dynamic enums whose core values are 1..5
_ENUM_VALUES: dict[str, Callable[[], frozenset[str]]] = {
    "KalturaCaptionType": lambda: frozenset({"1", "2", "3", "4", "5"}),
    "KalturaAttachmentType": lambda: frozenset({"1", "2", "3", "4", "5"}),
}
# CaptionPlugin::getCaptionNamesByTypes: the file extension of each caption format
_CAPTION_EXT = {"1": "srt", "2": "dfxp", "3": "vtt", "4": "cap", "5": "scc"}


@cache
def kaltura_languages() -> dict[str, str]:
    """KalturaLanguage values -> their constant (api_v3/lib/types/enums/KalturaLanguage.php;
    the official client's KalturaLanguage carries the same 576 values)."""
    from KalturaClient.Plugins.Core import KalturaLanguage

    out: dict[str, str] = {}
    for name, value in vars(KalturaLanguage).items():
        if name.isupper() and isinstance(value, str):
            out.setdefault(value, name.rstrip("_"))
    return out


@cache
def _language_values() -> frozenset[str]:
    # Once: a caption's enum check ran on every asset add (576 values into a new set).
    return frozenset(kaltura_languages())


_ENUM_VALUES["KalturaLanguage"] = _language_values


def _asset_enums(kind: AssetKind) -> Callable[[Ctx], None]:
    """KalturaRequestDeserializer: an enum property must hold one of its type's values."""

    def check(ctx: Ctx) -> None:
        given = ctx.obj(kind.param)
        for prop, enum_type in kind.enum_checks:
            value = given.get(prop)
            if value in (None, NULL):
                continue
            if str(value) not in _ENUM_VALUES[enum_type]():
                raise error(E.INVALID_ENUM_VALUE, value, prop, enum_type)

    return check


def _assets(ctx: Ctx, kind: AssetKind) -> dict[str, dict[str, Any]]:
    store: dict[str, dict[str, Any]] = getattr(ctx.world, kind.store)
    return store


def _asset(ctx: Ctx, kind: AssetKind, asset_id: str) -> dict[str, Any]:
    """assetPeer::retrieveById: partner filter, DELETED hidden."""
    asset = _assets(ctx, kind).get(asset_id)
    if asset is None or not _asset_visible(ctx, asset):
        raise error(kind.not_found, asset_id)
    return asset


def _media_entry(ctx: Ctx, entry_id: str) -> dict[str, Any]:
    """CaptionAssetService::addAction: the entry must be a VIDEO or AUDIO media entry."""
    entry = _entry(ctx, entry_id)
    if entry is None or entry.get("mediaType") not in (1, 5):
        raise error(E.ENTRY_ID_NOT_FOUND, entry_id)
    return entry


def _asset_add(ctx: Ctx, kind: AssetKind) -> Any:
    """Caption/AttachmentAssetService::addAction: toInsertableObject (read-only properties
    refused), status QUEUED; a caption without format is SRT."""
    entry_id = str(ctx.param("entryId"))
    given = {k: v for k, v in ctx.obj(kind.param).items() if k != "objectType"}
    for key, value in given.items():
        if key in kind.readonly and value is not NULL:
            raise error(E.PROPERTY_VALIDATION_NOT_UPDATABLE, f"{kind.object_type}::{key}")
    now = _now()
    with ctx.world.lock:
        if kind is CAPTION:
            entry = _media_entry(ctx, entry_id)
        else:  # AttachmentAssetService::addAction: any entry the partner may edit
            found = _entry(ctx, entry_id)
            if found is None:
                raise error(E.ENTRY_ID_NOT_FOUND, entry_id)
            entry = found
        asset: dict[str, Any] = {
            "objectType": kind.object_type,
            "id": kaltura_id(),
            "entryId": entry_id,
            "partnerId": entry["partnerId"],
            "version": "0",
            "size": 0,
            "status": ASSET_QUEUED,
            "createdAt": now,
            "updatedAt": now,
            "_content": None,
        }
        for key, value in given.items():
            if key in kind.fields and value is not NULL:
                asset[key] = value
        if kind is CAPTION:
            asset.setdefault("format", "1")
            for key in ("isDefault", "displayOnPlayer"):
                if key in asset:
                    asset[key] = str(asset[key]).lower() in ("1", "true")
            if "accuracy" in asset:
                asset["accuracy"] = php_int(asset["accuracy"])
            code = kaltura_languages().get(str(asset.get("language")))
            if code:
                asset["languageCode"] = code.lower()
        if "filename" in asset:  # KalturaAttachmentAsset::toObject
            asset["filename"] = " ".join(str(asset["filename"]).splitlines()).strip()
        _assets(ctx, kind)[asset["id"]] = asset
        return ctx.world.snapshot(asset)


def _fill_asset(asset: dict[str, Any], content: bytes, ext: str | None) -> None:
    """attachFile: version up, the file's extension (or the caption format's), size."""
    asset["_content"] = content
    asset["version"] = str(int(asset.get("version") or 0) + 1)
    if not ext and asset.get("objectType") == "KalturaCaptionAsset":
        ext = _CAPTION_EXT.get(str(asset.get("format")))
    if ext:
        asset["fileExt"] = ext
    asset["size"] = len(content)
    asset["sizeInBytes"] = len(content)
    asset["updatedAt"] = _now()


def _asset_set_content(ctx: Ctx, kind: AssetKind) -> Any:
    """setContentAction with kUploadedFileTokenResource or a string resource:
    - a FULL_UPLOAD token: the file is attached (asset READY), then entryHandled closes
      the token (CLOSED), except for SCC captions (converted by a batch job first);
    - any other token status, CLOSED included: KalturaUploadedFileTokenResource::toObject
      marks the resource not ready, so the asset goes IMPORTING and the token is attached
      to it (kUploadedFileTokenResource::attachCreatedObject) to fill it when its upload
      ends; no error."""
    resource = ctx.obj("contentResource")
    if not resource:
        raise error(E.MISSING_MANDATORY_PARAMETER, "contentResource")
    with ctx.world.lock:
        asset = _asset(ctx, kind, str(ctx.param("id")))
        if asset["entryId"] not in ctx.world.entries:
            raise error(E.ENTRY_ID_NOT_FOUND, asset["entryId"])
        rtype = str(resource.get("objectType") or "")
        if rtype == "KalturaStringResource":
            _fill_asset(asset, str(resource.get("content") or "").encode(), None)
            asset["status"] = ASSET_READY
        elif rtype == "KalturaUploadedFileTokenResource":
            token_id = resource.get("token")
            if token_id in (None, "", NULL):
                raise error(
                    E.PROPERTY_VALIDATION_CANNOT_BE_NULL, "KalturaUploadedFileTokenResource::token"
                )
            token = ctx.world.upload_tokens.get(str(token_id))
            if token is None or token["partnerId"] != ctx.partner_id:
                raise error(E.UPLOAD_TOKEN_NOT_FOUND)
            if token["status"] == TOKEN_FULL:
                _fill_asset(asset, token["_content"], _ext(token.get("fileName")))
                asset["status"] = ASSET_READY
                if not (kind is CAPTION and str(asset.get("format")) == "5"):
                    token["status"] = TOKEN_CLOSED
                    token["updatedAt"] = _now()
            else:
                asset["status"] = ASSET_IMPORTING
                asset["updatedAt"] = _now()
                token["attachedObjectType"] = kind.core_class
                token["attachedObjectId"] = asset["id"]
                token["updatedAt"] = _now()
        else:
            raise error(E.RESOURCE_TYPE_NOT_SUPPORTED, _core_resource(rtype))
        return ctx.world.snapshot(asset)


def _core_resource(api_type: str) -> str:
    """The core resource class named in RESOURCE_TYPE_NOT_SUPPORTED (KalturaUrlResource
    -> kUrlResource)."""
    return "k" + api_type[len("Kaltura") :] if api_type.startswith("Kaltura") else api_type


def _asset_list(ctx: Ctx, kind: AssetKind) -> Any:
    flt = ctx.obj("filter")
    with ctx.world.lock:
        assets = [
            a
            for a in _assets(ctx, kind).values()
            if _asset_filter(flt, a) and _asset_visible(ctx, a)
        ]
        return _list_response(kind.object_type + "ListResponse", assets, ctx)


def _asset_get(ctx: Ctx, kind: AssetKind, id_param: str) -> Any:
    with ctx.world.lock:
        return ctx.world.snapshot(_asset(ctx, kind, str(ctx.param(id_param))))


def _asset_delete(ctx: Ctx, kind: AssetKind, id_param: str) -> Any:
    with ctx.world.lock:
        asset = _asset(ctx, kind, str(ctx.param(id_param)))
        asset["status"] = ASSET_DELETED
        asset["deletedAt"] = asset["updatedAt"] = _now()
    return None


def _asset_update(ctx: Ctx, kind: AssetKind) -> Any:
    """updateAction: KalturaObject::validateForUpdate on the asset's properties."""
    given = {k: v for k, v in ctx.obj(kind.param).items() if k != "objectType"}
    with ctx.world.lock:
        asset = _asset(ctx, kind, str(ctx.param("id")))
        changes: dict[str, Any] = {}
        for key, value in given.items():
            if key not in kind.fields | kind.readonly:
                continue
            if value is not NULL and str(asset.get(key)) == str(value):
                continue
            if key in kind.readonly or key in kind.insertonly:
                raise error(E.PROPERTY_VALIDATION_NOT_UPDATABLE, f"{kind.object_type}::{key}")
            changes[key] = None if value is NULL else value
        for key, value in changes.items():
            if value is None:
                asset.pop(key, None)
            else:
                asset[key] = value
        asset["updatedAt"] = _now()
        return ctx.world.snapshot(asset)


# plugins/content/caption/base/services/CaptionAssetService.php and
# deployment/permissions/service.caption.captionasset.ini
_CAPTION_EDIT = _asset_entry_of_param("captions", "id")


@action(
    "caption_captionAsset",
    "add",
    {CAPTION_MODIFY},
    validate_user=_entry_of_param("entryId"),
    deserialize=_asset_enums(CAPTION),
)
def caption_add(ctx: Ctx) -> Any:
    return _asset_add(ctx, CAPTION)


@action("caption_captionAsset", "setContent", {CAPTION_MODIFY}, validate_user=_CAPTION_EDIT)
def caption_set_content(ctx: Ctx) -> Any:
    return _asset_set_content(ctx, CAPTION)


@action(
    "caption_captionAsset",
    "update",
    {CAPTION_MODIFY},
    validate_user=_CAPTION_EDIT,
    deserialize=_asset_enums(CAPTION),
)
def caption_update(ctx: Ctx) -> Any:
    return _asset_update(ctx, CAPTION)


@action("caption_captionAsset", "get", {CONTENT_MANAGE, BASE_USER})
def caption_get(ctx: Ctx) -> Any:
    return _asset_get(ctx, CAPTION, "captionAssetId")


@action(
    "caption_captionAsset",
    "list",
    {"CONTENT_MODERATE_BASE", CONTENT_MANAGE, BASE_USER, WIDGET, PLAYBACK},
)
def caption_list(ctx: Ctx) -> Any:
    return _asset_list(ctx, CAPTION)


@action(
    "caption_captionAsset",
    "delete",
    {CAPTION_MODIFY},
    validate_user=_asset_entry_of_param("captions", "captionAssetId"),
)
def caption_delete(ctx: Ctx) -> Any:
    return _asset_delete(ctx, CAPTION, "captionAssetId")


# plugins/content/attachment/services/AttachmentAssetService.php and
# deployment/permissions/service.attachment.attachmentasset.ini
_ATTACHMENT_EDIT = _asset_entry_of_param("attachments", "id")


@action(
    "attachment_attachmentAsset",
    "add",
    {ATTACHMENT_MODIFY, BASE_USER},
    validate_user=_entry_of_param("entryId"),
    deserialize=_asset_enums(ATTACHMENT),
)
def attachment_add(ctx: Ctx) -> Any:
    return _asset_add(ctx, ATTACHMENT)


@action(
    "attachment_attachmentAsset",
    "setContent",
    {ATTACHMENT_MODIFY, BASE_USER},
    validate_user=_ATTACHMENT_EDIT,
)
def attachment_set_content(ctx: Ctx) -> Any:
    return _asset_set_content(ctx, ATTACHMENT)


@action(
    "attachment_attachmentAsset",
    "update",
    {ATTACHMENT_MODIFY, BASE_USER},
    validate_user=_ATTACHMENT_EDIT,
    deserialize=_asset_enums(ATTACHMENT),
)
def attachment_update(ctx: Ctx) -> Any:
    return _asset_update(ctx, ATTACHMENT)


@action("attachment_attachmentAsset", "get", {INGEST, CONTENT_MANAGE, BASE_USER, WIDGET})
def attachment_get(ctx: Ctx) -> Any:
    return _asset_get(ctx, ATTACHMENT, "attachmentAssetId")


@action(
    "attachment_attachmentAsset",
    "list",
    {INGEST, "CONTENT_MODERATE_BASE", CONTENT_MANAGE, BASE_USER, WIDGET, PLAYBACK},
)
def attachment_list(ctx: Ctx) -> Any:
    return _asset_list(ctx, ATTACHMENT)


@action(
    "attachment_attachmentAsset",
    "delete",
    {ATTACHMENT_MODIFY},  # not in REACH_VENDOR_ROLE: an access key may not delete
    validate_user=_asset_entry_of_param("attachments", "attachmentAssetId"),
)
def attachment_delete(ctx: Ctx) -> Any:
    return _asset_delete(ctx, ATTACHMENT, "attachmentAssetId")


@action(
    "attachment_attachmentAsset", "getUrl", {INGEST, CONTENT_MANAGE, BASE_USER, WIDGET, PLAYBACK}
)
def attachment_get_url(ctx: Ctx) -> Any:
    """AttachmentAssetService::getUrlAction: READY assets only (the error is thrown
    without its argument, hence "N/A"); a serve URL carrying the caller's KS."""
    with ctx.world.lock:
        asset = _asset(ctx, ATTACHMENT, str(ctx.param("id")))
        if asset["status"] != ASSET_READY:
            raise error(E.ATTACHMENT_ASSET_IS_NOT_READY)
        asset_id = asset["id"]
    return (
        f"{ctx.base_url}/api_v3/index.php/service/attachment_attachmentAsset/action/serve"
        f"/attachmentAssetId/{asset_id}/ks/{ctx.s.ks}"
    )


@action(
    "attachment_attachmentAsset",
    "serve",
    {INGEST, CONTENT_MANAGE, ALWAYS, BASE_USER, WIDGET},
    returns_file=True,
)
def attachment_serve(ctx: Ctx) -> Any:
    """AttachmentAssetService::serveAction: the file itself."""
    asset_id = str(ctx.param("attachmentAssetId"))
    with ctx.world.lock:
        asset = _asset(ctx, ATTACHMENT, asset_id)
        content = asset.get("_content")
    if content is None:
        raise error(E.ATTACHMENT_ASSET_ID_NOT_FOUND, asset_id)
    return RawFile(bytes(content), "text/plain; charset=utf-8")
