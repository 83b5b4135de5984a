"""What a REACH task asks for, in plain Python (no Kaltura client types, no I/O).

The gateway builds a `TaskSpec` from `get` with the `reach_vendor` response profile; the
pipeline and the caption formatter only ever see this, so they can be tested without a
server and do not break when the client library changes its classes.
"""

from __future__ import annotations

from dataclasses import dataclass

from reach_vendor.domain.states import ServiceFeature, ServiceType

OUTPUT_FORMAT_SRT = 1
OUTPUT_FORMAT_DFXP = 2
OUTPUT_FORMAT_VTT = 3

# KalturaVendorCatalogItemOutputFormat -> KalturaCaptionType (SRT='1', DFXP='2', WEBVTT='3').
CAPTION_TYPE_BY_OUTPUT_FORMAT = {
    OUTPUT_FORMAT_SRT: "1",
    OUTPUT_FORMAT_DFXP: "2",
    OUTPUT_FORMAT_VTT: "3",
}

DEFAULT_MAX_CHARS_PER_LINE = 42

# Names to values, for configs and error messages.
SERVICE_FEATURES = {f.name: int(f) for f in ServiceFeature}
SERVICE_TYPES = {t.name: int(t) for t in ServiceType}
SUPPORTED_FEATURES = frozenset({ServiceFeature.CAPTIONS, ServiceFeature.ALIGNMENT})


def feature_name(feature: int) -> str:
    try:
        return ServiceFeature(feature).name
    except ValueError:
        return f"#{feature}"


# Kaltura language names to the ISO codes caption formats want (DFXP xml:lang, VTT).
_LANGUAGE_CODES = {
    "english": "en",
    "english (american)": "en-US",
    "english (british)": "en-GB",
    "french": "fr",
    "german": "de",
    "spanish": "es",
    "italian": "it",
    "portuguese": "pt",
    "dutch": "nl",
    "hebrew": "he",
    "japanese": "ja",
    "chinese": "zh",
}


@dataclass(frozen=True)
class TaskSpec:
    task_id: int
    partner_id: int
    entry_id: str
    status: int
    version: int
    service_type: int
    service_feature: int
    source_language: str
    target_language: str | None
    output_format: int
    max_chars_per_line: int
    enable_profanity_removal: bool
    enable_speaker_change_indication: bool
    enable_audio_tags: bool
    label_addition: str
    flavor_params_ids: tuple[int, ...]
    dictionary: str
    expected_finish_time: int | None
    transcript_asset_id: str | None = None
    """ALIGNMENT tasks: the attachment asset holding the customer's text transcript
    (`KalturaAlignmentVendorTaskData.textTranscriptAssetId`)."""
    pay_per_use: bool = False
    """The catalog item is priced per use: READY must carry `unitsUsed`."""

    @property
    def language_code(self) -> str:
        return language_code(self.source_language)

    @property
    def caption_type(self) -> str:
        return CAPTION_TYPE_BY_OUTPUT_FORMAT.get(self.output_format, "1")

    @property
    def caption_label(self) -> str:
        """The label customers see in the player, e.g. "English (Auto Generated)": we
        send the language, Kaltura appends the addition on READY."""
        return f"{self.source_language} {self.label_addition}".strip()

    @property
    def auto_detect_language(self) -> bool:
        """The catalog item asks the vendor to find the language ("Auto Detect"), which
        is no caption language Kaltura accepts."""
        return self.source_language.strip().lower().replace("-", " ") == "auto detect"


def language_code(name: str) -> str:
    key = name.strip().lower()
    if key in _LANGUAGE_CODES:
        return _LANGUAGE_CODES[key]
    return key[:2] if len(key) >= 2 else "en"


def pick_label_addition(
    service_type: int, machine: str | None, human: str | None, hybrid: str | None
) -> str:
    by_type = {ServiceType.MACHINE: machine, ServiceType.HUMAN: human, ServiceType.HYBRID: hybrid}
    return (by_type.get(ServiceType(service_type)) if service_type in (1, 2, 3) else None) or ""


def task_tag(task_id: int) -> str:
    """Tag put on our deliverables so a restart can find what it already uploaded."""
    return f"reach_vendor_task_{task_id}"
