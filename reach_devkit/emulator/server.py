"""The emulator's HTTP side: api_v3 endpoints and flavor downloads on loopback.

Tests and the demo drive it through `KalturaEmulator`: seed partners and tasks, run the
daemon against `.url`, then inspect tasks and delivered assets. Faults can be scripted
per service action to see how the daemon copes with a misbehaving Kaltura. What each
call does, and which server source it copies, is in the package docstring's rule table.
"""

from __future__ import annotations

import contextlib
import gzip
import logging
import random
import re
import socket
import ssl
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import unquote, urlsplit

from reach_devkit.emulator import errors as E
from reach_devkit.emulator import services
from reach_devkit.emulator.errors import ApiError, error
from reach_devkit.emulator.wire import (
    NULL,
    RawFile,
    Request,
    build_request,
    clean_params,
    parse_body,
    render,
    replace_results,
    result_paths,
)
from reach_devkit.emulator.world import (
    ABORTABLE,
    ABORTED,
    ACTIVE,
    ACTIVE_OR_COMPLETE,
    PENDING,
    PENDING_ENTRY_READY,
    PENDING_MODERATION,
    PROCESSING,
    AppToken,
    Fault,
    World,
    access_key_life,
    kaltura_id,
    status_of,
)

_CHAOS_KINDS = ("http500", "drop", "drop_after", "delay", "error")


@dataclass
class Chaos:
    """Random faults on every api_v3 request (flavor downloads are left alone), drawn
    from a seeded generator so that a failing run can be replayed."""

    rng: random.Random
    probabilities: dict[str, float]
    delay_s: float
    counts: dict[str, int] = field(default_factory=dict)

    def draw(self) -> str | None:
        roll = self.rng.random()
        for kind in _CHAOS_KINDS:
            p = self.probabilities.get(kind, 0.0)
            if roll < p:
                self.counts[kind] = self.counts.get(kind, 0) + 1
                return kind
            roll -= p
        return None


log = logging.getLogger(__name__)

# /api_v3[/index.php][/service/S[/action/A]][/name/value...]: requestUtils reads the
# name/value pairs after the action as parameters (serve URLs carry the KS that way).
_API_PATH = re.compile(
    r"^/api_v3(?:/index\.php)?(?:/service/([^/]+)(?:/action/([^/?]+))?)?((?:/[^/]+/[^/]*)*)/?$"
)
_SERVE_FLAVOR = re.compile(r"/serveFlavor/.*?flavorId/([^/]+)/.*?ks/([^/]+)")
_KS_IN_PATH = re.compile(r"/ks/[^/]+")
# Smaller answers are not worth compressing (nginx's gzip_min_length is a similar cut-off).
_GZIP_MIN_BYTES = 1024


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    # Keep-alive, as Kaltura's nginx does; headers and body go out as separate writes, and
    # with Nagle on the client's delayed ACK would hold every body back ~40 ms.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: the default access log would print KS-bearing paths to stderr."""

    def setup(self) -> None:
        super().setup()
        self.server.emulator._connection_opened(self.connection)

    def finish(self) -> None:
        self.server.emulator._connection_closed(self.connection)
        super().finish()

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def _handle(self) -> None:
        emu = self.server.emulator
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        entry = {
            "method": self.command,
            "path": _KS_IN_PATH.sub("/ks/***", url.path),
            "actions": "",
        }
        with emu.lock:
            emu.http_requests.append(entry)
        if emu.latency_s > 0:
            # Not a server rule: the network between a vendor and Kaltura, one round trip.
            time.sleep(emu.latency_s)
        flavor = _SERVE_FLAVOR.search(url.path)
        if flavor:
            entry["actions"] = "serveFlavor"
            self._serve_flavor(flavor.group(1), flavor.group(2))
            return
        match = _API_PATH.match(url.path)
        if not match:
            self._send(404, b"Not Found", "text/plain")
            return
        started = time.monotonic()
        request: Request | None = None
        try:
            params, files = parse_body(self.headers.get("Content-Type", ""), body, url.query)
            for name, value in _path_params(match.group(3) or "").items():
                params.setdefault(name, value)
            request = build_request(match.group(1), match.group(2), params, files)
            entry["actions"] = "+".join(f"{c.service}.{c.action}" for c in request.calls)
            fault = emu.take_fault(request)
            if fault is not None and fault.kind == "error":
                raise ApiError(fault.code, fault.message)
            if fault is not None and fault.kind in ("http500", "drop"):
                self._fail(fault)
                return
            if fault is not None and fault.kind == "delay":
                time.sleep(fault.delay_s)
            results = emu.execute(request, self._base_url())
            if fault is not None and fault.kind == "drop_after":
                self._fail(fault)
                return
            # a serve action answers alone, even inside a multirequest (handleMultiRequest)
            raw = next((r for r in results if isinstance(r, RawFile)), None)
            if raw is not None:
                self._send(200, raw.content, raw.content_type, headers=raw.headers)
                return
            result: Any = results if request.multirequest else results[0]
        except ApiError as err:
            result = err
        payload, ctype = render(result, request, time.monotonic() - started)
        self._send(200, payload, ctype, compressible=True)

    def _base_url(self) -> str:
        return self.server.emulator.url

    def _fail(self, fault: Fault) -> None:
        if fault.kind == "http500":
            self._send(500, b"<html>Internal Server Error</html>", "text/html")
            return
        self.close_connection = True
        self.wfile.flush()
        self.connection.close()

    def _send(
        self,
        status: int,
        payload: bytes,
        ctype: str,
        *,
        compressible: bool = False,
        headers: tuple[tuple[str, str], ...] = (),
    ) -> None:
        """`compressible`: an API answer, gzipped (at nginx's default level) for a client
        that accepts it, as a gzip-enabled front end does; media are sent as they are."""
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        for name, value in headers:
            self.send_header(name, value)
        accepted = self.headers.get("Accept-Encoding", "").lower()
        if compressible and "gzip" in accepted and len(payload) >= _GZIP_MIN_BYTES:
            payload = gzip.compress(payload, compresslevel=1)
            self.send_header("Content-Encoding", "gzip")
            with self.server.emulator.lock:
                self.server.emulator.gzipped_responses += 1
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("X-Me", "reach-vendor-emulator")
        self.end_headers()
        self.wfile.write(payload)

    def _serve_flavor(self, flavor_id: str, ks: str) -> None:
        """/p/.../serveFlavor/...: a KS that is not valid is refused (403); the flavor must
        be the KS partner's (and, with entitlement on, the key's entry) or it is 404."""
        emu = self.server.emulator
        try:
            session = emu.world.session(ks)
        except ApiError:
            self._send(403, b"Forbidden", "text/plain")
            return
        flavor = emu.world.flavors.get(flavor_id)
        if (
            flavor is None
            or flavor["partnerId"] != session.partner_id
            or (
                emu.entitlement
                and not session.is_admin
                and not session.has_privilege("download", flavor["entryId"])
            )
        ):
            self._send(404, b"Not Found", "text/plain")
            return
        path = Path(flavor["_path"]) if flavor.get("_path") else None
        if path is None or not path.is_file():
            self._send(404, b"Not Found", "text/plain")
            return
        size = path.stat().st_size
        # A "delay" fault on ("serveFlavor", "download") stalls the transfer half-way.
        fault = emu._take_call_fault("serveFlavor", "download", ("delay",))
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(size))
        self.end_headers()
        with path.open("rb") as fh:
            if fault is not None:
                self.wfile.write(fh.read(size // 2))
                self.wfile.flush()
                time.sleep(fault.delay_s)
            while chunk := fh.read(1 << 16):
                self.wfile.write(chunk)


def _path_params(tail: str) -> dict[str, str]:
    parts = [unquote(p) for p in tail.strip("/").split("/") if tail.strip("/")]
    return {parts[i]: parts[i + 1] for i in range(0, len(parts) - 1, 2)}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    emulator: KalturaEmulator

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hung up (timed out, was killed) is normal here: no traceback."""
        exc = sys.exc_info()[1]
        if isinstance(exc, ConnectionError | TimeoutError):
            return
        super().handle_error(request, client_address)


class KalturaEmulator:
    """A Kaltura api_v3 server on 127.0.0.1 with REACH, flavors, captions, attachments."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        tls: tuple[Path, Path] | None = None,
        access_key_can_list_captions: bool = True,
        index_lag_s: float = 0.0,
        shuffle_jobs: bool = False,
        jobs_seed: int = 0,
        entitlement: bool = False,
    ) -> None:
        """`tls`: (certificate, key) PEM files, to serve https as Kaltura does. The other
        arguments set the run-time switches of the same names (see the attributes)."""
        self.world = World()
        self.lock = threading.Lock()
        self.calls: list[tuple[str, str]] = []
        """(service, action) of every call received, multirequest parts included."""
        self.call_log: list[dict[str, Any]] = []
        """Per call received: service, action, session ("vendor", "access_key", "admin",
        "widget", "user", "none", or "invalid" for a KS that does not parse), the
        `partnerId` parameter sent (None if none) and the `clientTag`."""
        self.access_key_can_list_captions = access_key_can_list_captions
        """Open question (sources allow it, a Kaltura FAQ says no): False makes
        caption_captionAsset.list with an access key SERVICE_FORBIDDEN."""
        self.index_lag_s = index_lag_s
        """How far getJobs/list's search index lags the database, in seconds."""
        self.shuffle_jobs = shuffle_jobs
        """getJobs/list without orderBy in a seeded random order (no documented order)."""
        self.jobs_rng = random.Random(jobs_seed)
        self.entitlement = entitlement
        """The customer partner enforces entitlement: an access key then reads only its
        own entry (off: it reads every entry of the customer, the server's default)."""
        self.connections_opened = 0
        """TCP connections accepted so far: keep-alive clients open few."""
        self.gzipped_responses = 0
        self._open_connections: set[socket.socket] = set()
        self.http_requests: list[dict[str, str]] = []
        """Method, path (KS masked) and `actions` ("service.action" of each call, joined with
        "+"; "serveFlavor" for downloads) of every HTTP request received."""
        self.chaos: Chaos | None = None
        self.latency_s = 0.0
        """Added to every HTTP request (API calls and downloads alike), as a network between
        the vendor and Kaltura would; settable while running."""
        self._server = _Server((host, port), _Handler)
        self._server.emulator = self
        self._scheme = "http"
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(certfile=tls[0], keyfile=tls[1])
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
            self._scheme = "https"
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"{self._scheme}://{host!s}:{port}"

    def _connection_opened(self, conn: socket.socket) -> None:
        with self.lock:
            self.connections_opened += 1
            self._open_connections.add(conn)

    def _connection_closed(self, conn: socket.socket) -> None:
        with self.lock:
            self._open_connections.discard(conn)

    def drop_idle_connections(self) -> int:
        """Close every kept-alive connection, as a server does when its keep-alive
        timeout runs out; returns how many. Clients must notice before reusing one."""
        with self.lock:
            conns = list(self._open_connections)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        return len(conns)

    def start(self) -> KalturaEmulator:
        # The language table imports the official client's enums (~0.5 s of CPU): at start,
        # not inside the first caption upload of a burst.
        services.kaltura_languages()
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="kaltura-emulator", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> KalturaEmulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- request execution ----------------------------------------------------------

    def execute(self, request: Request, base_url: str) -> list[Any]:
        """Run the calls in order (KalturaFrontController::handleMultiRequest): each
        result is substituted into the `{N:result...}` references of the calls after it,
        and a serve action's file ends the request."""
        calls = request.calls
        pending = [call.params for call in calls]
        paths = [result_paths(call.params) for call in calls]
        results: list[Any] = []
        for pos, call in enumerate(calls):
            params = clean_params(pending[pos])
            self._log_call(call.service, call.action, params)
            try:
                fault = self._take_call_fault(call.service, call.action, ("error",))
                if fault is not None:
                    raise ApiError(fault.code, fault.message)
                ctx = services.Ctx(self.world, self, params, call.files, base_url)
                result = services.dispatch(ctx, call.service, call.action)
            except ApiError as err:
                result = err
            except Exception:  # noqa: BLE001 - a server answers, whatever broke inside
                log.error(
                    "emulator bug in %s.%s:\n%s", call.service, call.action, traceback.format_exc()
                )
                result = error(E.INTERNAL_SERVERL_ERROR)
            results.append(result)
            if isinstance(result, RawFile):
                break
            for later in range(pos + 1, len(calls)):
                pending[later] = replace_results(pos + 1, paths[later], pending[later], result)
        return results

    def _log_call(self, service: str, action: str, params: dict[str, Any]) -> None:
        ks = params.get("ks")
        kind = "none"
        if ks and ks is not NULL:
            try:
                kind = services.session_kind(self.world, self.world.parse_session(str(ks)))
            except ApiError:
                kind = "invalid"
        partner = params.get("partnerId")
        with self.lock:
            self.calls.append((service.lower(), action))
            self.call_log.append(
                {
                    "service": service,
                    "action": action,
                    "session": kind,
                    "partnerId": None if partner is NULL else partner,
                    "clientTag": params.get("clientTag"),
                }
            )

    def take_fault(self, request: Request) -> Fault | None:
        """An HTTP-level fault scripted for any call of this request, if one is due;
        else one drawn at random when chaos is on."""
        for call in request.calls:
            fault = self._take_call_fault(
                call.service, call.action, ("http500", "drop", "drop_after", "delay")
            )
            if fault is not None:
                return fault
        with self.lock:
            kind = self.chaos.draw() if self.chaos is not None else None
            delay_s = self.chaos.delay_s if self.chaos is not None else 0.0
        if kind is None or not request.calls:
            return None
        call = request.calls[0]
        if kind == "error":
            # Kaltura's own "something broke" answer for the whole request.
            return Fault(call.service, call.action, "error", 0)
        return Fault(call.service, call.action, kind, 0, delay_s=delay_s)

    def _take_call_fault(self, service: str, action: str, kinds: tuple[str, ...]) -> Fault | None:
        with self.lock:
            for fault in self.world.faults:
                if (
                    fault.times > 0
                    and fault.kind in kinds
                    and fault.service.lower() == service.lower()
                    and fault.action.lower() == action.lower()
                ):
                    fault.times -= 1
                    return fault
        return None

    # -- seeding --------------------------------------------------------------------

    def add_vendor_partner(
        self,
        *,
        partner_id: int,
        app_token_id: str,
        app_token: str,
        hash_type: str = "SHA256",
        session_expiry_s: int = 86400,
    ) -> None:
        """A vendor partner (it has REACH_VENDOR_PARTNER) with an app token, as Kaltura
        sets one up for a REACH vendor."""
        with self.world.lock:
            self.world.ensure_partner(partner_id)
            self.world.vendors.add(partner_id)
            self.world.app_tokens[app_token_id] = AppToken(
                id=app_token_id,
                partner_id=partner_id,
                token=app_token,
                hash_type=hash_type.upper(),
                session_expiry_s=session_expiry_s,
                privileges="setrole:REACH_VENDOR_ROLE",
            )

    def add_task(
        self,
        *,
        vendor_partner_id: int,
        partner_id: int,
        media_path: Path | str | None,
        media_ext: str = "mp3",
        entry_id: str | None = None,
        service_type: int = 2,
        service_feature: int = 1,
        turn_around_time: int = 1800,
        source_language: str = "English",
        target_language: str | None = None,
        output_format: int = 1,
        max_chars_per_line: int = 26,
        label_machine: str = "(Auto Generated)",
        label_human: str = "",
        label_hybrid: str = "",
        flavor_params_ids: str = "",
        enable_profanity_removal: bool = True,
        enable_speaker_change_indication: bool = False,
        enable_audio_tags: bool = False,
        dictionary: str = "",
        access_key_ttl_s: float | None = None,
        expected_finish_time: int | None = None,
        transcript_text: str | None = None,
        pay_per_use: bool = False,
        created_at: float | None = None,
        allow_resubmission: bool = False,
    ) -> int:
        """A PENDING REACH task for a new entry whose source flavor is `media_path`.

        `media_path=None` makes an entry whose flavor download 404s. `transcript_text`
        (ALIGNMENT tasks) is attached to the entry as the customer's text transcript and
        named in the task's `taskJobData`, as Kaltura does for alignment orders.

        The task's access key lives max(2 x turnaround, 7 days) from `createdAt`
        (VendorCatalogItem::getKsExpiry). `access_key_ttl_s=X` backdates the task so that
        its first key has X seconds left; `created_at` sets the creation time directly
        (epoch seconds); by default the task is created now. `label_hybrid` is stored on
        the profile when given, but the server applies no hybrid label addition.
        """
        catalog: dict[str, Any] = {
            "serviceType": service_type,
            "serviceFeature": service_feature,
            "turnAroundTime": turn_around_time,
            "sourceLanguage": source_language,
            "outputFormat": output_format,
            "payPerUse": pay_per_use,
            "allowResubmission": allow_resubmission,
        }
        if target_language:
            catalog["targetLanguage"] = target_language
            catalog["objectType"] = "KalturaVendorTranslationCatalogItem"
        profile: dict[str, Any] = {
            "defaultOutputFormat": output_format,
            "maxCharactersPerCaptionLine": max_chars_per_line,
            "labelAdditionForMachineServiceType": label_machine,
            "labelAdditionForHumanServiceType": label_human,
            "flavorParamsIds": flavor_params_ids,
            "enableProfanityRemoval": enable_profanity_removal,
            "enableSpeakerChangeIndication": enable_speaker_change_indication,
            "enableAudioTags": enable_audio_tags,
        }
        if label_hybrid:
            profile["labelAdditionForHybridServiceType"] = label_hybrid
        if created_at is not None and access_key_ttl_s is not None:
            raise ValueError("give created_at or access_key_ttl_s, not both")
        if access_key_ttl_s is not None:
            created_at = time.time() - (access_key_life(catalog) - access_key_ttl_s)
        task_fields: dict[str, Any] = {"dictionary": dictionary} if dictionary else {}
        if expected_finish_time is not None:
            task_fields["expectedFinishTime"] = expected_finish_time
        task_id = self.world.add_task(
            vendor_partner_id=vendor_partner_id,
            partner_id=partner_id,
            media_path=Path(media_path) if media_path else None,
            media_ext=media_ext,
            entry_id=entry_id,
            catalog=catalog,
            profile=profile,
            task_fields=task_fields,
            created_at=time.time() if created_at is None else created_at,
        )
        if transcript_text is not None:
            self._attach_transcript(task_id, transcript_text)
        return task_id

    def _attach_transcript(self, task_id: int, text: str) -> None:
        now = int(time.time())
        with self.world.lock:
            task = self.world.tasks[task_id]
            content = text.encode("utf-8")
            asset = {
                "objectType": "KalturaAttachmentAsset",
                "id": kaltura_id(),
                "entryId": task["entryId"],
                "partnerId": task["partnerId"],
                "version": "1",
                "size": len(content),
                "sizeInBytes": len(content),
                "status": 2,
                "filename": "transcript.txt",
                "title": "Customer transcript",
                "format": "1",
                "fileExt": "txt",
                "tags": "",
                "createdAt": now,
                "updatedAt": now,
                "_content": content,
            }
            self.world.attachments[asset["id"]] = asset
            task["taskJobData"] = {
                "objectType": "KalturaAlignmentVendorTaskData",
                "textTranscriptAssetId": asset["id"],
            }

    def inject_fault(
        self,
        service: str,
        action: str,
        kind: str = "error",
        *,
        times: int = 1,
        code: str = "INTERNAL_SERVERL_ERROR",
        message: str = "Internal server error occurred",
        delay_s: float = 0.0,
    ) -> None:
        """Make the next `times` calls of service.action misbehave.

        kind: "error" (a KalturaAPIException instead of running the action),
        "http500", "drop" (connection closed before anything happens), "drop_after"
        (the action takes effect, the answer is lost), "delay" (answer after delay_s).
        """
        if kind not in ("error", "http500", "drop", "drop_after", "delay"):
            raise ValueError(f"unknown fault kind {kind!r}")
        with self.lock:
            self.world.faults.append(Fault(service, action, kind, times, code, message, delay_s))

    def set_chaos(
        self,
        seed: int,
        *,
        http500: float = 0.0,
        drop: float = 0.0,
        drop_after: float = 0.0,
        delay: float = 0.0,
        error: float = 0.0,
        delay_s: float = 1.0,
    ) -> None:
        """Misbehave at random on every api_v3 request from now on: each request draws
        at most one fault, with these probabilities (kinds as in `inject_fault`; "error"
        answers the whole request with INTERNAL_SERVERL_ERROR). Scripted faults go first.
        `clear_chaos` stops it; `chaos_counts` says what was injected."""
        probabilities = {
            "http500": http500,
            "drop": drop,
            "drop_after": drop_after,
            "delay": delay,
            "error": error,
        }
        if any(p < 0 for p in probabilities.values()) or sum(probabilities.values()) > 1:
            raise ValueError("fault probabilities must be >= 0 and add up to at most 1")
        with self.lock:
            self.chaos = Chaos(random.Random(seed), probabilities, delay_s)

    def clear_chaos(self) -> None:
        with self.lock:
            self.chaos = None

    def chaos_counts(self) -> dict[str, int]:
        with self.lock:
            return dict(self.chaos.counts) if self.chaos is not None else {}

    # -- sessions -------------------------------------------------------------------

    def expire_ks(self, ks: str) -> None:
        """Make `ks` expire now: every later request with it gets INVALID_KS (EXPIRED)."""
        with self.world.lock:
            self.world.revoked_ks.add(ks)

    def expire_access_key(self, task_id: int) -> None:
        """Expire the task's current access key (as if its time ran out)."""
        with self.world.lock:
            self.world.revoked_ks.add(str(self.world.tasks[task_id]["accessKey"]))

    def kill_access_key(self, task_id: int) -> None:
        """Invalidate the task's current access key as ks::kill() does (INVALID_KS LOGOUT),
        what the server does on READY."""
        with self.world.lock:
            self.world.killed_ks.add(str(self.world.tasks[task_id]["accessKey"]))

    def reissue_access_key(self, task_id: int, ttl_s: float | None = None) -> str:
        """Give the task a new access key valid from now for `ttl_s` (default: the task's
        key life), as after Kaltura support regenerates it; getJobs hands the new one
        out. Returns it."""
        with self.world.lock:
            task = self.world.tasks[task_id]
            life = float(task["_accessKeyExpiry"] if ttl_s is None else ttl_s)
            task["accessKey"] = self.world.issue_access_key(task, life, time.time())
            return str(task["accessKey"])

    def expire_vendor_sessions(self) -> int:
        """Expire every KS issued so far to a vendor partner (app-token sessions): the
        daemon must start a new session. Returns how many were expired."""
        with self.world.lock:
            expired = 0
            for ks in self.world.issued_ks:
                if ks in self.world.access_keys:
                    continue
                try:
                    session = self.world.session(ks)
                except ApiError:
                    continue
                if session.partner_id in self.world.vendors:
                    self.world.revoked_ks.add(ks)
                    expired += 1
            return expired

    def admin_ks(self, partner_id: int, expiry_s: float = 3600) -> str:
        """A customer admin KS, for tests acting as the customer through the API."""
        self.world.ensure_partner(partner_id)
        return self.world.issue_ks(partner_id, expiry_s=expiry_s)

    # -- the customer's and Kaltura's side ----------------------------------------------

    def abort_task(self, task_id: int, reason: str = "Aborted by the customer") -> bool:
        """The customer aborts the task (EntryVendorTaskService::abortAction with an admin
        KS): only from PENDING_MODERATION, PENDING or SCHEDULED (isAbortAllowed); returns
        False where the server answers CANNOT_ABORT_NOT_MODERATED_TASK or, for an
        already ABORTED task, ENTRY_VENDOR_TASK_NOT_FOUND."""
        with self.world.lock:
            task = self.world.tasks[task_id]
            if status_of(task) not in ABORTABLE:
                return False
            self.world.save_task(task, {"status": ABORTED, "errDescription": reason})
            return True

    def reorder_task(self, task_id: int, *, new_media: bool = True) -> int:
        """The customer orders the same service again for the task's entry
        (EntryVendorTaskService::addAction -> handlingExistingTasks); returns the new
        task's id.

        `new_media` (default): the entry's media was replaced, so the order is for the
        next version. An active task on an older version that is PENDING is cancelled
        first (kReachUtils::tryToCancelTask: ABORTED, "Aborted following cancel
        request"); one that is PROCESSING refuses the order with
        ENTRY_VENDOR_TASK_DUPLICATION (raised as ApiError); a PENDING_MODERATION one is
        left as it is. `new_media=False`: the same version again, refused unless the
        catalog item allows resubmission and the existing task is done.
        """
        with self.world.lock:
            old = self.world.tasks[task_id]
            entry_id, catalog_id = old["entryId"], int(old["catalogItemId"])
            catalog = self.world.catalog_items[catalog_id]
            version = int(old["version"]) + (1 if new_media else 0)

            def latest(statuses: tuple[int, ...], version_eq: int | None) -> dict[str, Any] | None:
                # EntryVendorTaskPeer::retrieveOneTaskByStatus: highest version, then id
                found = [
                    t
                    for t in self.world.tasks.values()
                    if t["entryId"] == entry_id
                    and int(t["catalogItemId"]) == catalog_id
                    and t["partnerId"] == old["partnerId"]
                    and status_of(t) in statuses
                    and (version_eq is None or int(t["version"]) == version_eq)
                ]
                found.sort(key=lambda t: (int(t["version"]), t["id"]), reverse=True)
                return found[0] if found else None

            existing = latest(ACTIVE_OR_COMPLETE, version)
            if existing is not None:
                if not catalog.get("allowResubmission") or status_of(existing) in ACTIVE:
                    raise error(
                        E.ENTRY_VENDOR_TASK_DUPLICATION, entry_id, catalog_id, existing["version"]
                    )
            else:
                active = latest(ACTIVE, None)
                if active is not None:
                    if status_of(active) in (PENDING, PENDING_ENTRY_READY):
                        self.world.save_task(
                            active,
                            {
                                "status": ABORTED,
                                "errDescription": "Aborted following cancel request",
                            },
                        )
                    elif status_of(active) == PROCESSING:
                        raise error(
                            E.ENTRY_VENDOR_TASK_DUPLICATION, entry_id, catalog_id, active["version"]
                        )
            if new_media:
                for flavor in self.world.flavors.values():
                    if flavor["entryId"] == entry_id and flavor.get("isOriginal"):
                        flavor["version"] = str(version)
            carried: dict[str, Any] = {k: old[k] for k in ("dictionary", "taskJobData") if k in old}
            return self.world.create_task(
                entry_id=entry_id,
                catalog_id=catalog_id,
                profile_id=int(old["reachProfileId"]),
                task_fields=self.world.snapshot(carried),
                created_at=time.time(),
                version=version,
            )

    def reset_task(self, task_id: int, vendor_partner_id: int | None = None) -> None:
        """Kaltura takes the task back (EntryVendorTaskService::resetAction): PENDING again
        (preSave sets queueTime and expectedFinishTime anew), optionally for another
        vendor through a linked catalog item of that vendor. The access key is kept.
        An ABORTED task is not found (raised as ApiError ENTRY_VENDOR_TASK_NOT_FOUND)."""
        with self.world.lock:
            task = self.world.tasks[task_id]
            if status_of(task) == ABORTED:
                raise error(E.ENTRY_VENDOR_TASK_NOT_FOUND, task_id)
            changes: dict[str, Any] = {"status": PENDING}
            if vendor_partner_id is not None and vendor_partner_id != task["vendorPartnerId"]:
                current = self.world.catalog_items[int(task["catalogItemId"])]
                linked_id = self.world.new_int_id()
                self.world.catalog_items[linked_id] = {
                    **self.world.snapshot(current),
                    "id": linked_id,
                    "vendorPartnerId": vendor_partner_id,
                }
                changes["catalogItemId"] = linked_id
                changes["vendorPartnerId"] = vendor_partner_id
            self.world.save_task(task, changes)

    def moderate_task(self, task_id: int) -> None:
        """Put a PENDING task in PENDING_MODERATION, as a reach profile with moderation
        does on order (kReachManager::getEntryVendorTaskStatus)."""
        with self.world.lock:
            task = self.world.tasks[task_id]
            self.world.save_task(task, {"status": PENDING_MODERATION})

    # -- inspection -----------------------------------------------------------------

    def task(self, task_id: int) -> dict[str, Any]:
        return self.world.snapshot(self.world.tasks[task_id])

    def tasks(self) -> list[dict[str, Any]]:
        with self.world.lock:
            return [self.world.snapshot(t) for t in self.world.tasks.values()]

    def _assets(self, store: dict[str, dict[str, Any]], entry_id: str) -> list[dict[str, Any]]:
        with self.world.lock:
            out = []
            for asset in store.values():
                if asset["entryId"] != entry_id or asset["status"] == 3:
                    continue
                copy = self.world.snapshot(asset)
                copy["content"] = copy.pop("_content", None)
                out.append(copy)
            return out

    def caption_assets(self, entry_id: str) -> list[dict[str, Any]]:
        """Caption assets of an entry (deleted ones left out), with their `content` bytes."""
        return self._assets(self.world.captions, entry_id)

    def attachment_assets(self, entry_id: str) -> list[dict[str, Any]]:
        return self._assets(self.world.attachments, entry_id)

    def upload_tokens(self) -> list[dict[str, Any]]:
        with self.world.lock:
            return [self.world.snapshot(t) for t in self.world.upload_tokens.values()]

    def issued_ks(self) -> list[str]:
        """Every KS this server handed out (access keys included): for tests that grep
        logs for secrets."""
        with self.world.lock:
            return list(self.world.issued_ks)
