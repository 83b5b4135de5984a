"""Kaltura's API error strings, copied as the server declares them, and how it fills them.

Each constant is the server's own "CODE;ARG,NAMES;message with @ARG@" string (the file it
comes from is named beside it); `error()` builds the exception the way
`APIErrors::getErrorData` does (alpha/apps/kaltura/lib/webservices/APIErrors.class.php):
positional arguments fill the named args in order, a missing one reads "N/A", and the
message gets each `@NAME@` replaced.
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """A KalturaAPIException: the server answered, the call was refused."""

    def __init__(self, code: str, message: str, **args: Any) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.args_map = {k: str(v) for k, v in args.items()}

    def as_object(self) -> dict[str, Any]:
        # PHP serializes an empty args array as a JSON list (`"args": []`), a filled one
        # as an object: KalturaAPIException in api_v3/lib/exceptions.
        return {
            "code": self.code,
            "message": self.message,
            "objectType": "KalturaAPIException",
            "args": self.args_map or [],
        }


# api_v3/lib/KalturaErrors.php
SERVICE_NOT_SPECIFIED = "SERVICE_NOT_SPECIFIED;;Service name was not specified, please specify one"
INTERNAL_SERVERL_ERROR = "INTERNAL_SERVERL_ERROR;;Internal server error occurred"
MISSING_KS = "MISSING_KS;;Missing KS, session not established"
INVALID_KS = 'INVALID_KS;KSID,ERR_CODE,ERR_DESC;Invalid KS "@KSID@", Error "@ERR_CODE@,@ERR_DESC@"'
SERVICE_DOES_NOT_EXISTS = 'SERVICE_DOES_NOT_EXISTS;SRV_NAME;Service "@SRV_NAME@" does not exists'
ACTION_DOES_NOT_EXISTS = (
    "ACTION_DOES_NOT_EXISTS;ACTION_NAME,SERVICE_NAME;"
    'Action "@ACTION_NAME@" does not exists for service "@SERVICE_NAME@"'
)
MISSING_MANDATORY_PARAMETER = (
    'MISSING_MANDATORY_PARAMETER;PARAM_NAME;Missing parameter "@PARAM_NAME@"'
)
INVALID_PARAMETER_VALUE = (
    'INVALID_PARAMETER_VALUE;PARAM_NAME;invalid value for parameter "@PARAM_NAME@"'
)
INVALID_ENUM_VALUE = (
    "INVALID_ENUM_VALUE;ENUM_VAL,PARAM_NAME,ENUM_TYPE;"
    'Invalid enumeration value "@ENUM_VAL@" for parameter "@PARAM_NAME@", '
    'expecting enumeration type "@ENUM_TYPE@"'
)
PROPERTY_VALIDATION_NOT_UPDATABLE = (
    'PROPERTY_VALIDATION_NOT_UPDATABLE;PROP_NAME;The property "@PROP_NAME@" cannot be updated'
)
PROPERTY_VALIDATION_CANNOT_BE_NULL = (
    'PROPERTY_VALIDATION_CANNOT_BE_NULL;PROP_NAME;The property "@PROP_NAME@" cannot be null'
)
RESOURCE_TYPE_NOT_SUPPORTED = (
    'RESOURCE_TYPE_NOT_SUPPORTED;RES_TYPE;Resource type "@RES_TYPE@" not supported'
)
APP_TOKEN_ID_NOT_FOUND = 'APP_TOKEN_ID_NOT_FOUND;ID;Application token id "@ID@" not found'
INVALID_APP_TOKEN_HASH = "INVALID_APP_TOKEN_HASH;;Invalid application token hash"
FLAVOR_ASSET_ID_NOT_FOUND = 'FLAVOR_ASSET_ID_NOT_FOUND;ID;Flavor asset id "@ID@" not found'
UPLOAD_TOKEN_NOT_FOUND = "UPLOAD_TOKEN_NOT_FOUND;;Upload token not found"
UPLOAD_TOKEN_INVALID_STATUS_FOR_UPLOAD = (
    "UPLOAD_TOKEN_INVALID_STATUS_FOR_UPLOAD;;Upload token is in an invalid status for "
    "uploading a file, maybe the file was already uploaded"
)
RESPONSE_PROFILE_NAME_NOT_FOUND = (
    "RESPONSE_PROFILE_NAME_NOT_FOUND;SYSTEM_NAME;Response profile name [@SYSTEM_NAME@] not found"
)
RESPONSE_PROFILE_ID_NOT_FOUND = (
    "RESPONSE_PROFILE_ID_NOT_FOUND;ID;Response profile id [@ID@] not found"
)

# alpha/apps/kaltura/lib/webservices/APIErrors.class.php
ENTRY_ID_NOT_FOUND = 'ENTRY_ID_NOT_FOUND;ENTRY_ID;Entry id "@ENTRY_ID@" not found'
INVALID_WIDGET_ID = "INVALID_WIDGET_ID;WIDGET_ID;Unknown widget [@WIDGET_ID@]"
SERVICE_FORBIDDEN = "SERVICE_FORBIDDEN;SERVICE;The access to service [@SERVICE@] is forbidden"
SERVICE_FORBIDDEN_CONTENT_BLOCKED = (
    "SERVICE_FORBIDDEN_CONTENT_BLOCKED;;The access to this service is forbidden since the "
    "specified partner is blocked"
)

# plugins/content/caption/base/lib/errors/KalturaCaptionErrors.php
CAPTION_ASSET_ID_NOT_FOUND = (
    'CAPTION_ASSET_ID_NOT_FOUND;ASSET_ID;Caption asset id "@ASSET_ID@" not found'
)
# plugins/content/attachment/lib/errors/KalturaAttachmentErrors.php
ATTACHMENT_ASSET_ID_NOT_FOUND = (
    'ATTACHMENT_ASSET_ID_NOT_FOUND;ASSET_ID;Attachment asset id "@ASSET_ID@" not found'
)
ATTACHMENT_ASSET_IS_NOT_READY = (
    'ATTACHMENT_ASSET_IS_NOT_READY;ASSET_ID;Attachment asset "@ASSET_ID@" is not ready'
)

# plugins/reach/errors/KalturaReachErrors.php
ENTRY_VENDOR_TASK_NOT_FOUND = (
    "ENTRY_VENDOR_TASK_NOT_FOUND;ID;Entry vendor task item with id provided not found [@ID@]"
)
ENTRY_VENDOR_TASK_ITEM_COULD_NOT_BE_UPDATED = (
    "ENTRY_VENDOR_TASK_ITEM_COULD_NOT_BE_UPDATED;REASON;@REASON@"
)
ENTRY_VENDOR_TASK_ACTION_NOT_ALLOWED = (
    "ENTRY_VENDOR_TASK_ACTION_NOT_ALLOWED;ID,USER_ID;"
    "User id [@USER_ID@] is not allowed to do actions on entryVendorTask [@ID@]"
)
ENTRY_VENDOR_TASK_DUPLICATION = (
    "ENTRY_VENDOR_TASK_DUPLICATION;ENTRY_ID,CATALOG_ITEM_ID,VERSION;Entry vendor task already "
    "exists for entry [@ENTRY_ID@] and catalog item [@CATALOG_ITEM_ID@] and version [@VERSION@]"
)
CANNOT_ABORT_NOT_MODERATED_TASK = (
    "CANNOT_ABORT_NOT_MODERATED_TASK;;Cannot abort task which is not pending moderation"
)
PARTNER_DATA_NOT_VALID_JSON_STRING = (
    "PARTNER_DATA_NOT_VALID_JSON_STRING;;Partner data must be a valid json string"
)
CANNOT_UPDATE_STATUS_OF_TASK_WHICH_IS_IN_FINAL_STATE = (
    "CANNOT_UPDATE_STATUS_OF_TASK_WHICH_IS_IN_FINAL_STATE;ID,OLD_STATUS,NEW_STATUS;"
    "Cannot update status from [@OLD_STATUS@] to [@NEW_STATUS@] for task with id [@ID@], "
    "since task is in final status"
)
CANNOT_UPDATE_UNIT_USED_OF_TASK_WHICH_IS_IN_FINAL_STATE = (
    "CANNOT_UPDATE_UNIT_USED_OF_TASK_WHICH_IS_IN_FINAL_STATE;ID,OLD_UNITS_USED,NEW_UNITS_USED;"
    "Cannot update unitsUsed from [@OLD_UNITS_USED@] to [@NEW_UNITS_USED@] for task with id "
    "[@ID@], since task is in final state"
)
CANNOT_EXTEND_ACCESS_KEY = (
    "CANNOT_EXTEND_ACCESS_KEY;;Extending accessKey for non processing task is not allowed"
)
CATALOG_ITEM_NOT_FOUND = "CATALOG_ITEM_NOT_FOUND;ID;Catalog item with id provided not found [@ID@]"


def error(const: str, *args: Any) -> ApiError:
    """A KalturaAPIException as `APIErrors::getErrorData` builds one from `const`."""
    code, names, message = const.split(";", 2)
    values: dict[str, str] = {}
    for i, name in enumerate(n for n in names.split(",") if n) if names else ():
        value = "N/A" if i >= len(args) or args[i] is None else _php_str(args[i])
        values[name] = value
        message = message.replace(f"@{name}@", value)
    return ApiError(code, message, **values)


def _php_str(value: Any) -> str:
    """PHP's (string) cast: booleans are "1" and ""."""
    if isinstance(value, bool):
        return "1" if value else ""
    return str(value)
