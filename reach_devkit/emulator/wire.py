"""The api_v3 wire format: how requests arrive and how answers are written.

Kaltura accepts the same call several ways (JSON body, form fields with bracket keys,
multipart with a `json` field plus files, query string) and answers in XML (`format=2`,
what the official clients parse) or JSON (`format=1`, what curl users see). Keeping the
encoding here lets the service handlers deal in plain dicts.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from email.message import Message
from email.parser import BytesParser
from email.policy import compat32
from typing import Any
from urllib.parse import parse_qsl
from xml.sax.saxutils import escape

from reach_devkit.emulator.errors import SERVICE_NOT_SPECIFIED, ApiError, error

__all__ = ["ApiError", "Call", "RawFile", "Request", "build_request", "parse_body", "render"]

FORMAT_JSON = 1
FORMAT_XML = 2

# KalturaFrontController::getMultiRequestResultsPaths and replaceMultiRequestResults, as
# written there: the first finds a reference anywhere in a value (greedy up to the last
# "}"), the second reads the index and the attribute path from exactly that match.
_PATH_IN_VALUE = re.compile(r"\{[0-9]+:result:?(.*)?\}")
_PATH_EXACT = re.compile(r"^\{([0-9]+):result:?(.*)?\}$")


@dataclass(frozen=True)
class RawFile:
    """What a `file` action (attachment serve) answers: the bytes themselves."""

    content: bytes
    content_type: str = "application/octet-stream"
    headers: tuple[tuple[str, str], ...] = ()


@dataclass
class Call:
    """One service action with its parameters (already nested) and uploaded files."""

    service: str
    action: str
    params: dict[str, Any]
    files: dict[str, bytes] = field(default_factory=dict)
    index: int = 0
    """The request's index in a multirequest as the client numbered it (0 if single)."""


@dataclass
class Request:
    calls: list[Call]
    multirequest: bool
    response_format: int


def _nest(flat: list[tuple[str, Any]]) -> dict[str, Any]:
    """`filter[objectType]=X` and `1:filter:objectType=X` become nested dicts."""
    out: dict[str, Any] = {}
    for key, value in flat:
        parts = [p for p in re.split(r"[\[\]:]+", key) if p != ""]
        if not parts:
            continue
        node = out
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = {}
                node[part] = child
            node = child
        node[parts[-1]] = value
    return out


def _merge(into: dict[str, Any], other: dict[str, Any]) -> None:
    for k, v in other.items():
        if isinstance(v, dict) and isinstance(into.get(k), dict):
            _merge(into[k], v)
        else:
            into[k] = v


def parse_body(
    content_type: str, body: bytes, query: str
) -> tuple[dict[str, Any], dict[str, bytes]]:
    """Parameters and files of one HTTP request, whatever encoding the client chose."""
    params: dict[str, Any] = _nest(parse_qsl(query, keep_blank_values=True))
    files: dict[str, bytes] = {}
    ctype = content_type.split(";")[0].strip().lower()
    if ctype == "application/json" and body.strip():
        try:
            decoded = json.loads(body)
        except ValueError:
            raise ApiError("INVALID_JSON", "Request body is not valid JSON") from None
        if isinstance(decoded, dict):
            _merge(params, _nest_flat_keys(decoded))
    elif ctype == "multipart/form-data":
        # compat32, not the modern policy: it reads the same parts and is ~6x cheaper
        # (the header registry dominated the emulator's share of a benchmark's CPU).
        msg = BytesParser(policy=compat32).parsebytes(
            b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
        )
        parts = msg.get_payload() if msg.is_multipart() else []
        flat: list[tuple[str, Any]] = []
        for part in parts:
            if not isinstance(part, Message):
                continue
            name = part.get_param("name", header="content-disposition")
            if not isinstance(name, str):
                continue
            payload = part.get_payload(decode=True)
            data = payload if isinstance(payload, bytes) else b""
            if part.get_filename() is not None:
                files[name] = data
            elif name == "json":
                _merge(params, _nest_flat_keys(json.loads(data or b"{}")))
            else:
                flat.append((name, data.decode("utf-8")))
        _merge(params, _nest(flat))
    elif body.strip():
        _merge(params, _nest(parse_qsl(body.decode("utf-8"), keep_blank_values=True)))
    return params, files


def _nest_flat_keys(decoded: dict[str, Any]) -> dict[str, Any]:
    """JSON bodies may still use `1:service`-style keys for multirequest."""
    plain = {k: v for k, v in decoded.items() if ":" not in k}
    flat = [(k, v) for k, v in decoded.items() if ":" in k]
    out = dict(plain)
    _merge(out, _nest(flat))
    return out


# KalturaFrontController::handleMultiRequest copies only these common parameters into a
# call that lacks them; everything else at the top level (format, apiVersion...) is not
# the call's. A call's own value wins, so calls may carry different sessions.
_INHERITED = ("clientTag", "ks", "partnerId")


def build_request(
    path_service: str | None,
    path_action: str | None,
    params: dict[str, Any],
    files: dict[str, bytes],
) -> Request:
    try:
        response_format = int(params.get("format") or FORMAT_XML)
    except (TypeError, ValueError):
        response_format = FORMAT_XML
    service = path_service or params.get("service")
    action = path_action or params.get("action")
    if service and str(service).lower() == "multirequest":
        return Request(_multirequest_calls(params, files), True, response_format)
    if not service:
        raise error(SERVICE_NOT_SPECIFIED)
    return Request([Call(str(service), str(action or ""), params, files)], False, response_format)


def _multirequest_calls(params: dict[str, Any], files: dict[str, bytes]) -> list[Call]:
    """handleMultiRequest: requests run from the lowest index (at most 1) to the highest,
    stopping at the first one without service and action."""
    indexes = [int(k) for k in params if k.lstrip("-").isdigit()]
    common = {k: v for k, v in params.items() if not k.lstrip("-").isdigit()}
    calls: list[Call] = []
    if not indexes:
        return calls
    for idx in range(min(1, *indexes), max(1, *indexes) + 1):
        sub = params.get(str(idx))
        if not isinstance(sub, dict) or "service" not in sub or "action" not in sub:
            break
        merged = dict(sub)
        for key in _INHERITED:
            if key in common and key not in merged:
                merged[key] = common[key]
        merged.pop("format", None)
        prefix = f"{idx}:"
        sub_files = {k[len(prefix) :]: v for k, v in files.items() if k.startswith(prefix)}
        service, action = str(merged.pop("service")), str(merged.pop("action"))
        calls.append(Call(service, action, merged, sub_files, idx))
    return calls


def result_paths(value: Any) -> Any:
    """getMultiRequestResultsPaths: where a call's parameters hold a `{N:result...}`."""
    if isinstance(value, dict):
        found = {k: p for k, v in value.items() if (p := result_paths(v)) is not None}
        return found or None
    if isinstance(value, list):
        found_l = {i: p for i, v in enumerate(value) if (p := result_paths(v)) is not None}
        return found_l or None
    if isinstance(value, str):
        m = _PATH_IN_VALUE.search(value)
        return m.group(0) if m else None
    return None


def replace_results(index: int, paths: Any, params: Any, result: Any) -> Any:
    """replaceMultiRequestResults: after call number `index` (counted from 1 in the order
    run) each reference to it becomes the value found in its result, or the empty string
    when there is none (the call failed, the field is absent, empty or trimmed by a
    response profile). It is a str_replace, so text around the reference stays."""
    if not isinstance(paths, dict):
        return params
    out: Any = dict(params) if isinstance(params, dict) else list(params)
    for key, path in paths.items():
        try:
            current = out[key]
        except (KeyError, IndexError, TypeError):
            continue
        if isinstance(path, dict):
            out[key] = replace_results(index, path, current, result)
            continue
        m = _PATH_EXACT.match(path)
        if not m or int(m.group(1)) != index or not isinstance(current, str):
            continue
        value = _value_from_object(result, (m.group(2) or "").split(":"))
        out[key] = current.replace(path, _php_str(value))
    return out


def _value_from_object(obj: Any, path: list[str]) -> Any:
    """KalturaFrontController::getValueFromObject over the call's answer."""
    prop, rest = (path[0], path[1:]) if path else (None, [])
    if prop is None or prop == "":
        return None if isinstance(obj, dict | list | ApiError) else obj
    if isinstance(obj, dict):
        public = _public(obj)
        return _value_from_object(public[prop], rest) if prop in public else None
    if isinstance(obj, list):
        if prop == "_all":
            # getValuesFromObjectsArray: "a,b," from each object having the attribute
            attr = rest[0] if rest else ""
            vals = [
                _php_str(o[attr]) for o in obj if isinstance(o, dict) and o.get(attr) is not None
            ]
            return "".join(v + "," for v in vals) or None
        if prop.isdigit() and int(prop) < len(obj):
            return _value_from_object(obj[int(prop)], rest)
    return None


def _php_str(value: Any) -> str:
    """str_replace's string conversion; objects and arrays make no sense there: empty."""
    if value is None or isinstance(value, dict | list | ApiError):
        return ""
    if isinstance(value, bool):
        return "1" if value else ""
    return str(value)


class NullField:
    """KalturaNullField: `x__null` in a request sets property x to null (the client sends
    it for a property set to None); a plain parameter so marked is simply absent."""

    def __repr__(self) -> str:
        return "NULL"


NULL = NullField()


def clean_params(params: dict[str, Any]) -> dict[str, Any]:
    """`x__null` markers become x = NULL, unless x itself was sent."""
    out: dict[str, Any] = {}
    for k, v in params.items():
        if k.endswith("__null"):
            out.setdefault(k[: -len("__null")], NULL)
            continue
        out[k] = clean_params(v) if isinstance(v, dict) else v
    return out


# -- responses -------------------------------------------------------------------------


def _public(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if not k.startswith("_") and v is not None}


# Properties typed `bigint` (KalturaEntryVendorTask::$id): the JSON serializer writes them
# as strings, as the REACH vendor guide's getJobs/get examples show ("id": "364983352").
_BIGINT = {"KalturaEntryVendorTask": ("id",)}


def to_json_value(value: Any) -> Any:
    if isinstance(value, ApiError):
        return value.as_object()
    if isinstance(value, dict):
        out = {k: to_json_value(v) for k, v in _public(value).items()}
        for key in _BIGINT.get(str(value.get("objectType")), ()):
            if key in out:
                out[key] = str(out[key])
        return out
    if isinstance(value, list):
        return [to_json_value(v) for v in value]
    return value


def _xml_scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    return escape(str(value))


def _xml_fields(obj: dict[str, Any]) -> str:
    parts = []
    for key, value in _public(obj).items():
        parts.append(f"<{key}>{_xml_value(value)}</{key}>")
    return "".join(parts)


def _xml_value(value: Any) -> str:
    if isinstance(value, ApiError):
        return _xml_error(value)
    if isinstance(value, dict):
        if "objectType" in value:
            return _xml_fields(value)
        # A map: each item carries its key as <itemKey>.
        return "".join(
            f"<item><itemKey>{escape(str(k))}</itemKey>{_xml_value(v)}</item>"
            for k, v in value.items()
        )
    if isinstance(value, list):
        return "".join(f"<item>{_xml_value(v)}</item>" for v in value)
    if value is None:
        return ""
    return _xml_scalar(value)


def _xml_error(err: ApiError) -> str:
    args = "".join(
        "<item><objectType>KalturaApiExceptionArg</objectType>"
        f"<name>{escape(k)}</name><value>{escape(v)}</value></item>"
        for k, v in err.args_map.items()
    )
    return (
        "<error><objectType>KalturaAPIException</objectType>"
        f"<code>{escape(err.code)}</code><message>{escape(err.message)}</message>"
        f"<args>{args}</args></error>"
    )


def render(result: Any, request: Request | None, elapsed_s: float) -> tuple[bytes, str]:
    """Body and content type for a result (a list of results for a multirequest)."""
    fmt = request.response_format if request else FORMAT_XML
    if fmt == FORMAT_JSON:
        return json.dumps(to_json_value(result)).encode(), "application/json"
    inner = _xml_value(result)
    body = (
        '<?xml version="1.0" encoding="utf-8"?>'
        f"<xml><result>{inner}</result><executionTime>{elapsed_s:.6f}</executionTime></xml>"
    )
    return body.encode("utf-8"), "text/xml; charset=utf-8"
