"""A Kaltura api_v3 emulator for tests and the demo: REACH vendor tasks over real HTTP.

It speaks the wire format the official clients use (service/action URLs, JSON, form and
multipart requests, XML `format=2` and JSON `format=1` answers, multirequest with
`{N:result:...}` references, signed KS with expiry) so the daemon under test runs exactly
the code it runs against kaltura.com. Its rules copy the kaltura/server sources; each
rule names the file (and function) it copies. Paths are in the kaltura/server repository.

Rule -> server file (R = rule, -> = the server file/function it copies)
=======================================================================

R1a  getJobs, updateJob, extendAccessKey need REACH_VENDOR_PARTNER: a KS of a vendor partner.
     Anyone else, an access key included: SERVICE_FORBIDDEN "The access to service
     [reach_entryvendortask->getJobs] is forbidden".
  -> deployment/permissions/service.reach.entryVendorTask.ini (items 4, 8, 12);
     api_v3/lib/KalturaBaseService.php initService/isPermitted;
     alpha/apps/kaltura/lib/kPermissionManager.php isActionPermitted (partner-level permissions
     join any role: getPermissionsFromDb)
R1b  Access keys (role REACH_VENDOR_ROLE) may call reach get/list/update/abort, flavorAsset
     list/getUrl, uploadToken add/upload/get/list/delete, captionAsset
     add/setContent/update/get/list/delete, attachmentAsset
     add/setContent/update/get/list/getUrl/serve; not attachmentAsset.delete (ATTACHMENT_MODIFY
     only). No KS: only ALWAYS_ALLOWED actions (startWidgetSession, ping), else
     SERVICE_FORBIDDEN (partner 0 exists, so not MISSING_KS).
  -> deployment/base/scripts/init_data/03.UserRole.ini [REACH_VENDOR_ROLE];
     deployment/permissions/service.{caption.captionasset,attachment.attachmentasset,
     uploadtoken,flavorasset}.ini
R1c  Partner filter: a session sees its own partner's objects only. The vendor's session: tasks
     ENTRY_VENDOR_TASK_NOT_FOUND, entries ENTRY_ID_NOT_FOUND, lists empty.
  -> api_v3/lib/KalturaBaseService.php setPartnerFilters;
     plugins/reach/services/EntryVendorTaskService.php initService (applyPartnerFilterForClass)
R1d  Requested partner = the call's `partnerId` (`p` first); absent, empty, `partnerId__null` or
     0 under a KS: none. Different from the KS's partner: SERVICE_FORBIDDEN; an unknown partner:
     SERVICE_FORBIDDEN_CONTENT_BLOCKED. In a multirequest only clientTag, ks and partnerId are
     inherited from the common params, a call's own wins.
  -> api_v3/lib/KalturaDispatcher.php dispatch; alpha/apps/kaltura/lib/kCurrentContext.class.php
     initKsPartnerUser; kPermissionManager.php isPartnerAccessAllowed, initPartnerUserObjects;
     alpha/apps/kaltura/lib/myPartnerUtils.class.php allowPartnerAccessPartner;
     api_v3/lib/KalturaFrontController.php handleMultiRequest
R1e  Writes on an entry (caption/attachment add, setContent, update, delete) by a non-admin KS
     without `edit` on the entry: INVALID_KS "", "-4,INVALID_TYPE".
  -> api_v3/lib/KalturaDispatcher.php validateUser (the actions' @validateUser tags)
R2   Access keys are KS v2 `base64("v2|<pid>|"+opaque)` (start `djJ8`), a USER session of the
     customer with privileges edit/sview/download/disableentitlementforentry on the entry and
     setrole:REACH_VENDOR_ROLE; life max(2 x TAT, 7 days) from createdAt (extended: from the
     extension).
  -> alpha/apps/kaltura/lib/request/kSessionBase.class.php generateKsV2;
     plugins/reach/lib/model/VendorCatalogItem.php generateReachVendorKs, getPrivileges,
     getKsExpiry; plugins/reach/lib/kReachManager.php addEntryVendorTask (accessKeyExpiry)
R2b  KS errors: unparseable/forged/unknown partner -> INVALID_KS (KSID=the KS,
     "-1,INVALID_STR"); expired -> KSID "EXPIRED", killed -> KSID "LOGOUT", both with
     "-1,INVALID_STR" (message `Invalid KS "EXPIRED", Error "-1,INVALID_STR"`).
  -> kCurrentContext.class.php initKsPartnerUser; kPermissionManager.php errorIfKsNotValid;
     KalturaFrontController.php getExceptionObject (INVALID_KS case); kSessionBase.class.php
     isValidBase/tryToValidateKS
R3   extendAccessKey: retrieveByPK, vendorPartnerId must be the current partner (else
     ENTRY_VENDOR_TASK_NOT_FOUND); SCHEDULED/PROCESSING only (else CANNOT_EXTEND_ACCESS_KEY);
     new key valid for accessKeyExpiry from now; the old key is not killed.
  -> plugins/reach/services/EntryVendorTaskService.php extendAccessKeyAction
R4a  updateJob: by id and vendorPartnerId = KS partner; ABORTED tasks are invisible everywhere
     -> ENTRY_VENDOR_TASK_NOT_FOUND.
  -> EntryVendorTaskService.php updateJobAction; plugins/reach/lib/model/EntryVendorTaskPeer.php
     retrieveByPKAndVendorPartnerId, setDefaultCriteriaFilter
R4b  Final task (ABORTED, READY, REJECTED, ERROR): another status ->
     CANNOT_UPDATE_STATUS_OF_TASK_WHICH_IS_IN_FINAL_STATE (ID, OLD_STATUS, NEW_STATUS);
     unitsUsed -> CANNOT_UPDATE_UNIT_USED_...; the same status: nothing happens. partnerData
     must be a JSON object (PARTNER_DATA_NOT_VALID_JSON_STRING).
  -> plugins/reach/lib/api/data/entryVendorTaks/KalturaEntryVendorTask.php validateForUpdate
R4c  Read-only/insert-only properties that change -> PROPERTY_VALIDATION_NOT_UPDATABLE
     "KalturaEntryVendorTask::<prop>"; an unchanged value is skipped; unknown properties
     ignored; status/errDescription/accuracy/outputObjectId/externalTaskId silently dropped
     without REACH_VENDOR_PARTNER (reach `update` by the customer or an access key).
  -> api_v3/lib/types/KalturaObject.php validateForUpdate; KalturaEntryVendorTask.php
     (@readonly/@insertonly); deployment/permissions/object.KalturaEntryVendorTask.ini
R4d  Status change to PROCESSING or ABORTED only from PENDING, PENDING_MODERATION,
     PENDING_ENTRY_READY, SCHEDULED, else ENTRY_VENDOR_TASK_ITEM_COULD_NOT_BE_UPDATED (REASON
     "Entry vendor task item with id [X] could not be updated to status [Y]").
  -> plugins/reach/lib/model/EntryVendorTask.php save; EntryVendorTaskService.php tryToSave
R4e  Pay-per-use item: a READY request without numeric unitsUsed (given or stored) ->
     MISSING_MANDATORY_PARAMETER "unitsUsed".
  -> plugins/reach/lib/kReachUtils.php getPayPerUsePrice (from
     KalturaEntryVendorTask::toUpdatableObject)
R4f  preSave: READY/ERROR set finishTime; PENDING sets queueTime and expectedFinishTime (-1 -> 7
     days, 1..7 -> business days in New York time, else seconds).
  -> EntryVendorTask.php preSave, calculateBusinessDays, calculateSecondsToNextBusinessDay
R5   On READY: CAPTIONS tasks append the profile's label addition (HUMAN/MACHINE only) to the
     output caption's label ("{label} {addition}"); then the task's current key is killed
     (INVALID_KS LOGOUT).
  -> plugins/reach/lib/kReachManager.php objectChanged -> handleEntryVendorTaskStatusChanged,
     addLabelAddition, getLabelAdditionByType, invalidateAccessKey
R6   `{N:result:path}` is replaced in later calls by the value of call N's answer, or "" (failed
     call, missing/empty/trimmed field); str_replace, the call still runs. Requests run from the
     lowest index to the first gap; a serve action answers alone.
  -> api_v3/lib/KalturaFrontController.php getMultiRequestResultsPaths,
     replaceMultiRequestResults, getValueFromObject, getValuesFromObjectsArray,
     handleMultiRequest
R7a  getJobs forces vendorPartnerIdEqual; a statusEqual/statusIn not all PENDING/SCHEDULED (or
     none) sets statusEqual=PENDING, leaving statusIn in place (both apply).
  -> EntryVendorTaskService.php getJobsAction
R7b  Filter fields of KalturaEntryVendorTaskBaseFilter only; pager default 30, max 500, 0 = no
     limit.
  -> plugins/reach/lib/api/data/entryVendorTaks/filters/KalturaEntryVendorTaskFilter.php
     getListResponse; api_v3/lib/types/filters/KalturaFilterPager.php;
     plugins/search/providers/sphinx_search/lib/SphinxCriteria.php
R7c  Lagging index (switch `index_lag_s`): matched and counted by the status (and vendor) as of
     `index_lag_s` ago, objects with current fields; currently ABORTED ones dropped from the
     objects, still counted. No documented order (switch `shuffle_jobs`, seeded by `jobs_seed`);
     orderBy honoured.
  -> EntryVendorTask.php postSave/indexToSearchIndex (sphinx index);
     KalturaEntryVendorTaskFilter::getListResponse;
     EntryVendorTaskPeer::setDefaultCriteriaFilter
R7d  reach `list`: a vendor partner lists the tasks it serves, others their own partner's (also
     index-based).
  -> EntryVendorTaskService.php listAction, applyFiltersAccordingToPartner
R8   Customer abort from PENDING_MODERATION, PENDING, SCHEDULED only
     (CANNOT_ABORT_NOT_MODERATED_TASK); a non-admin KS must be the task's user
     (ENTRY_VENDOR_TASK_ACTION_NOT_ALLOWED).
  -> EntryVendorTaskService.php abortAction, isAbortAllowed
R9   Re-order = new task id (`reorder_task`): new media -> next version; older active task
     PENDING -> ABORTED "Aborted following cancel request", PROCESSING ->
     ENTRY_VENDOR_TASK_DUPLICATION, PENDING_MODERATION left alone.
  -> EntryVendorTaskService.php addAction, handlingExistingTasks; kReachUtils.php
     tryToCancelTask; EntryVendorTaskPeer.php retrieveOneActiveTask (PROCESSING, PENDING,
     PENDING_MODERATION), retrieveOneActiveOrCompleteTask
R10  `reset_task`: PENDING again (preSave times), optionally to another vendor through a linked
     catalog item; key kept.
  -> EntryVendorTaskService.php resetAction
R11  `reach_vendor` response profile: task INCLUDE list (also trims taskJobData), catalog item
     and reach profile as relatedObjects with their EXCLUDE lists. Detached profiles
     (type/fields) too; unknown name -> RESPONSE_PROFILE_NAME_NOT_FOUND.
  -> deployment/updates/scripts/xml/responseProfiles/
     2021_01_03_update_reach_vendor_response_profiles.template.xml, 2020_11_03_...;
     KalturaEntryVendorTask::doFromObject (KalturaVendorTaskData::getInstance);
     api_v3/lib/KalturaRequestDeserializer.php getResponseProfile
R12a uploadToken get/list/upload/delete: a non-admin KS sees its own user's tokens only (all
     access keys of a customer are the same "" user); UPLOAD_TOKEN_NOT_FOUND otherwise.
  -> api_v3/services/UploadTokenService.php restrictPeerToCurrentUser, listAction (fileNameEqual
     without a status filter -> statusIn 0,1,2), validateForUpload
R12b setContent with a FULL_UPLOAD token: asset READY, token CLOSED (3) (not for SCC captions);
     attachedObject* is NOT set. With any other token status (a CLOSED token reused included):
     no error, asset IMPORTING, token attached (attachedObjectType CaptionAsset/AttachmentAsset,
     attachedObjectId); its later final upload fills the asset (READY) and closes the token.
  -> api_v3/lib/types/resource/KalturaUploadedFileTokenResource.php toObject, entryHandled;
     alpha/apps/kaltura/lib/kUploadTokenMgr.php closeUploadTokenById;
     plugins/content/caption/base/services/CaptionAssetService.php attachLocalFileResource;
     alpha/lib/data/resource/kUploadedFileTokenResource.php attachCreatedObject;
     api_v3/lib/types/KalturaUploadToken.php; alpha/apps/kaltura/lib/batch2/kFlowHelper.php
     handleUploadFinished
R13  Enum properties are checked while deserializing: captionAsset.language (KalturaLanguage,
     "Auto Detect" is not one), captionAsset.format (KalturaCaptionType 1..5),
     attachmentAsset.format (KalturaAttachmentType 1..5), entryVendorTask.status (1..9).
  -> api_v3/lib/KalturaRequestDeserializer.php (INVALID_ENUM_VALUE, args ENUM_VAL, PARAM_NAME,
     ENUM_TYPE); api_v3/lib/types/enums/KalturaLanguage.php;
     plugins/content/caption/base/lib/model/enums/CaptionType.php;
     plugins/content/attachment/lib/model/enums/AttachmentType.php
R14  SWITCH `access_key_can_list_captions` (default True): False -> caption_captionAsset.list
     with an access key is SERVICE_FORBIDDEN.
  -> open: service.caption.captionasset.ini allows it, a Kaltura FAQ says vendors cannot list
     caption assets
R15  SWITCH `entitlement` (default False): an access key reads every entry of its customer
     (assets and flavors; tasks are partner-filtered only); True: only its own entry
     (disableentitlementforentry).
  -> alpha/apps/kaltura/lib/kEntitlementUtils.php (enforced only for partners with entitlement);
     FlavorAssetService/AttachmentAssetService validateEntryEntitlement
R16  Assets: DELETED assets never show; caption add needs a VIDEO/AUDIO entry, format defaults
     to SRT, status QUEUED; attachment getUrl needs READY (ATTACHMENT_ASSET_IS_NOT_READY,
     ASSET_ID "N/A"); serve errors are an empty answer with an X-Kaltura error header.
  -> alpha/lib/model/assetPeer.php setDefaultCriteriaFilter; CaptionAssetService.php addAction;
     KalturaCaptionAsset.php toInsertableObject; AttachmentAssetService.php getUrlAction,
     serveAction; KalturaDispatcher.php (file actions -> kRendererDieError)
R17  Errors are KalturaAPIException with the server's code, message and named args; "args": []
     when there are none.
  -> alpha/apps/kaltura/lib/webservices/APIErrors.class.php getErrorData; see errors.py for each
     constant's file

Switches where the sources leave things open: `access_key_can_list_captions` (R14),
`entitlement` (R15), `index_lag_s` (R7c: how much the index lags is not in the sources),
`shuffle_jobs` (R7c: no documented order). Session kinds in `call_log`: "vendor",
"access_key", "admin", "widget", "user", "none", "invalid".
"""

from reach_devkit.emulator.errors import ApiError
from reach_devkit.emulator.server import KalturaEmulator

__all__ = ["ApiError", "KalturaEmulator"]
