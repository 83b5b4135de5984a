"""Options of the remote engines, one model per service, plus what they share: the poll
policy, S3 staging and credentials read from files.

Kept free of boto3 and the backends, so that validating options loads neither.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BeforeValidator, Field, PlainValidator, model_validator

from reach_vendor.common.redact import register_secret
from reach_vendor.engines.options import EngineOptions, NonNegative, Text

OutputFormat = Literal["transcribe_json", "words_json", "smartdocumentor_json", "text"]
"""What a service's transcript looks like (see `transcripts`)."""


class Secret:
    """A credential read from the file an option names; its repr shows the path only."""

    def __init__(self, path: Path, value: str) -> None:
        self.path = path
        self.value = value

    def __repr__(self) -> str:
        return f"Secret({str(self.path)!r})"


def _read_secret(value: object) -> Secret:
    # Credentials live in files (systemd credentials, mounted secrets), never in the YAML.
    # The value is registered for redaction before anything could log it; errors name the
    # file, never its content.
    if isinstance(value, Secret):
        return value
    if not isinstance(value, str | Path) or not str(value).strip():
        raise ValueError("must name a file holding the secret")
    path = Path(value)
    try:
        secret = path.read_text().strip()
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror}") from None
    if not secret:
        raise ValueError(f"{path} is empty")
    register_secret(secret)
    return Secret(path, secret)


SecretFile = Annotated[Secret, PlainValidator(_read_secret)]


def _whole_number(value: object) -> int:
    # Ids such as a workspace id come as 12 or "12" from YAML; both are sent as a number.
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise ValueError("must be a whole number")


def _upper(value: object) -> object:
    return value.upper() if isinstance(value, str) else value


# A mis-set address or path only shows at run time as a 4xx on every task; the shape of it
# is checked here, at start-up and by `check-config`.
def _service_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http(s) URL with a host, such as https://host/path")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError("must be a plain URL: no query, fragment or credentials in it")
    return value


def _api_path(value: str) -> str:
    if not value.startswith("/") or value.startswith("//") or any(c in value for c in "?#"):
        raise ValueError("must be a path on the service starting with / (no host or query)")
    return value


def _api_version(value: str) -> str:
    if not re.fullmatch(r"v\d+(\.\d+)?", value):
        raise ValueError("must be a Vault API version such as v24.1")
    return value


ServiceUrl = Annotated[Text, AfterValidator(_service_url)]
ApiPath = Annotated[Text, AfterValidator(_api_path)]


class PollOptions(EngineOptions):
    """The driver's poll policy, taken by every remote engine (see `driver.PollPolicy`)."""

    poll_initial_s: NonNegative = 5.0
    poll_max_s: NonNegative = 60.0
    poll_factor: NonNegative = 1.5
    max_wait_s: NonNegative = 24 * 3600.0
    unavailable_limit_s: NonNegative = 900.0


class S3Options(EngineOptions):
    """Where media is staged for services that fetch it themselves."""

    bucket: Text
    prefix: Text = "reach-vendor/"
    region: Text = "us-east-1"
    endpoint_url: ServiceUrl | None = None
    """For S3-compatible stores and tests."""
    access_key_id_file: SecretFile | None = None
    secret_access_key_file: SecretFile | None = None
    """Without key files boto3's own credential chain applies (environment, instance role)."""
    delete_staged_media: bool = True
    url_expiry_s: NonNegative = 7 * 24 * 3600.0
    """Pre-signed links must outlive the remote job; 7 days is SigV4's maximum."""
    multipart_threshold_mb: NonNegative = 64.0
    multipart_chunksize_mb: NonNegative = 16.0

    @model_validator(mode="after")
    def _both_keys_or_none(self) -> S3Options:
        if (self.access_key_id_file is None) != (self.secret_access_key_file is None):
            raise ValueError("access_key_id_file and secret_access_key_file go together")
        return self


class AmazonTranscribeOptions(S3Options, PollOptions):
    output_bucket: Text | None = None
    """Where Transcribe writes its result; default `bucket`."""
    job_name_prefix: str = ""
    """Job names are unique per account and region: deployments sharing one need a prefix."""
    language_codes: dict[str, str] = Field(default_factory=dict)
    """Kaltura language name -> Transcribe code, over `amazon_transcribe.LANGUAGE_CODES`."""


class RemoteTranscriptionOptions(PollOptions):
    base_url: ServiceUrl
    key_file: SecretFile
    secret_file: SecretFile
    profile_id: Text
    profile_name: Text = "General Transcription"
    form_id: Text | None = None
    upload_path: ApiPath = "/upload/audio"
    submit_path: ApiPath = "/jobs/submit"
    details_method: Annotated[Literal["GET", "POST"], BeforeValidator(_upper)] = "POST"
    transcript_suffix: Text = ".txt"
    """Which output file is the plain-text transcript."""
    accuracy: Annotated[float, Field(ge=0, le=1)] = 0.9
    """Reported for the aligned text: the service states no confidence of its own."""
    max_upload_mb: Annotated[float, Field(gt=0)] = 250.0
    """The service's upload cap (250 MB, documented): audio goes up as FLAC, or as Opus
    where FLAC is over it, checked before uploading."""
    request_timeout_s: NonNegative = 90.0


class SmartDocumentorOptions(PollOptions):
    base_url: ServiceUrl = "https://cloud.smartdocumentor.net"
    token_url: ServiceUrl | None = None
    """Default `<base_url>/connect/token`."""
    client_id: Text
    client_secret_file: SecretFile
    scope: Text = "WebAPI"
    workspace_id: Annotated[int, PlainValidator(_whole_number)] | None = None
    request_timeout_s: NonNegative = 60.0
    staging: S3Options


class AlteryxOptions(PollOptions):
    base_url: ServiceUrl
    """The Server's Web API address, e.g. http://host/webapi."""
    client_id: Text
    client_secret_file: SecretFile
    workflow_id: Text
    media_question: Text = "media_url"
    language_question: Text = "language"
    output_file: Text = "transcript.json"
    output_format: OutputFormat = "words_json"
    output_download_format: Text = "Raw"
    priority: Text = "Default"
    request_timeout_s: NonNegative = 60.0
    staging: S3Options


class VeevaVaultOptions(PollOptions):
    base_url: ServiceUrl
    api_version: Annotated[Text, AfterValidator(_api_version)] = "v26.1"
    username: Text
    password_file: SecretFile
    submit_path: ApiPath
    """May contain `{version}`."""
    output_link_rel: Text = "artifacts"
    output_format: OutputFormat = "words_json"
    min_poll_interval_s: NonNegative = 10.0
    """Vault allows one status read per job every 10 s; lower only for a test double."""
    request_timeout_s: NonNegative = 60.0
    staging: S3Options


RemoteOptions = (
    AmazonTranscribeOptions
    | RemoteTranscriptionOptions
    | SmartDocumentorOptions
    | AlteryxOptions
    | VeevaVaultOptions
)
