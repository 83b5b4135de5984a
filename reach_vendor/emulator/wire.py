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

FORMAT_JSON = 1
FORMAT_XML = 2

_REFERENCE = re.compile(r"^\{(\d+):result(?::([^}]*))?\}$")


class ApiError(Exception):
    """A KalturaAPIException: the server answered, the call was refused."""

    def __init__(self, code: str, message: str, **args: Any) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.args_map = {k: str(v) for k, v in args.items()}

    def as_object(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": self.message,
            "objectType": "KalturaAPIException",
            "args": self.args_map,
        }


@dataclass
class Call:
    """One service action with its parameters (already nested) and uploaded files."""

    service: str
    action: str
    params: dict[str, Any]
    files: dict[str, bytes] = field(default_factory=dict)


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


_SHARED_KEYS = (
    "ks",
    "partnerId",
    "clientTag",
    "apiVersion",
    "format",
    "responseProfile",
    "language",
)


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
        indexes = sorted(int(k) for k in params if k.isdigit())
        shared = {k: params[k] for k in _SHARED_KEYS if k in params}
        calls = []
        for idx in indexes:
            sub = params[str(idx)]
            if not isinstance(sub, dict):
                continue
            merged = {**shared, **sub}
            prefix = f"{idx}:"
            sub_files = {k[len(prefix) :]: v for k, v in files.items() if k.startswith(prefix)}
            calls.append(
                Call(
                    str(merged.pop("service", "")),
                    str(merged.pop("action", "")),
                    merged,
                    sub_files,
                )
            )
        return Request(calls, True, response_format)
    if not service or not action:
        raise ApiError("SERVICE_FORBIDDEN", "Service or action missing from the request")
    return Request([Call(str(service), str(action), params, files)], False, response_format)


def resolve_references(value: Any, results: list[Any]) -> Any:
    """Replace `{N:result:path}` (N counts from 1) with a value of an earlier result.

    As in Kaltura (`KalturaFrontController::replaceMultiRequestResults`), a reference that
    finds nothing (the earlier call failed, or the path is empty) fails the call that
    holds it with MISSING_MANDATORY_PARAMETER; clients chain calls on this so that a
    later call (say, setting a task READY) never runs on the back of a failed one.
    """
    if isinstance(value, dict):
        return {k: resolve_references(v, results) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve_references(v, results) for v in value]
    if not isinstance(value, str):
        return value
    m = _REFERENCE.match(value)
    if not m:
        return value
    index = int(m.group(1))
    if not 1 <= index <= len(results):
        return value
    node: Any = results[index - 1]
    for part in (m.group(2) or "").split(":"):
        if not part:
            continue
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            node = None
    if node is None or node == "" or isinstance(node, ApiError):
        raise ApiError(
            "MISSING_MANDATORY_PARAMETER", f"Missing parameter \"{value}\"", PARAM_NAME=value
        )
    return node


def clean_params(params: dict[str, Any]) -> dict[str, Any]:
    """Drop `x__null` markers (the client's way of saying "unset") and private keys."""
    out: dict[str, Any] = {}
    for k, v in params.items():
        if k.endswith("__null"):
            continue
        out[k] = clean_params(v) if isinstance(v, dict) else v
    return out


# -- responses -------------------------------------------------------------------------


def _public(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if not k.startswith("_") and v is not None}


def to_json_value(value: Any) -> Any:
    if isinstance(value, ApiError):
        return value.as_object()
    if isinstance(value, dict):
        return {k: to_json_value(v) for k, v in _public(value).items()}
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
