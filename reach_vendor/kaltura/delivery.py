"""Putting the deliverables on the entry (access key): upload tokens, one multirequest
that adds, attaches and fills the assets, and looking up what took effect when its answer
was lost."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from KalturaClient.exceptions import KalturaException
from KalturaClient.Plugins.Attachment import KalturaAttachmentAsset, KalturaAttachmentAssetFilter
from KalturaClient.Plugins.Caption import KalturaCaptionAsset, KalturaCaptionAssetFilter
from KalturaClient.Plugins.Core import (
    KalturaFilterPager,
    KalturaNullableBoolean,
    KalturaUploadedFileTokenResource,
    KalturaUploadToken,
)

from reach_vendor.domain.delivery import DeliveryRecord
from reach_vendor.domain.task_spec import TaskSpec, task_tag
from reach_vendor.kaltura.calls import (
    TOKEN_NOT_FOUND,
    KalturaApiError,
    KalturaTransientError,
    api_error,
    is_error,
    is_token_unusable,
    is_transient,
    raise_error,
)
from reach_vendor.kaltura.client import KeepAliveClient
from reach_vendor.kaltura.conversion import (
    ASSET_FIELDS,
    ASSET_READY,
    ID_FIELDS,
    TOKEN_FIELDS,
    TOKEN_FULL_UPLOAD,
    as_int,
    as_str,
)
from reach_vendor.kaltura.session import Sessions, TaskKey


@dataclass(frozen=True)
class Deliverable:
    """A file to attach to the entry: the caption itself or a transcript attachment."""

    content: bytes
    filename: str


def queue_upload_tokens(c: KeepAliveClient, token_files: Sequence[tuple[str, str]]) -> None:
    """Queue an upload token for each (kind, file name)."""
    c.setResponseProfile(ID_FIELDS)
    for _kind, filename in token_files:
        c.uploadToken.add(KalturaUploadToken(fileName=filename))


class DeliveryCalls:
    def __init__(self, sessions: Sessions) -> None:
        self._sessions = sessions

    def create_upload_tokens(
        self, key: TaskKey, token_files: Sequence[tuple[str, str]]
    ) -> dict[str, str]:
        """An upload token for each (kind, file name); a lost answer costs only unused
        tokens, which Kaltura expires, so this is safe to repeat."""

        def run(c: KeepAliveClient) -> list[Any]:
            c.startMultiRequest()
            queue_upload_tokens(c, token_files)
            return list(c.doMultiRequest())

        results = self._sessions.with_key("uploadToken.add", key, run)
        tokens = {}
        for (kind, _filename), token in zip(token_files, results, strict=True):
            raise_error("uploadToken.add", token)
            tokens[kind] = as_str(token.id)
        return tokens

    def upload_deliverables(
        self,
        spec: TaskSpec,
        key: TaskKey,
        record: DeliveryRecord,
        files: Mapping[str, Deliverable],
        accuracy: int,
    ) -> list[KalturaApiError]:
        """One multirequest for what `record` says is missing: add each asset (unless
        recorded), attach its still-empty token, upload the file into the token; the
        attached token then names the asset it filled (kUploadedFileTokenResource). Updates
        `record`, returns the refusals. Sent once: a lost answer may have taken effect, so
        the caller looks with `reconcile_delivery` first."""
        kinds = [k for k in record.missing() if k in record.tokens]

        def run(c: KeepAliveClient) -> list[Any]:
            c.startMultiRequest()
            index = 0  # calls queued so far; references count from 1
            for kind in kinds:
                token = record.tokens[kind]
                service = (
                    c.caption.captionAsset if kind == "caption" else c.attachment.attachmentAsset
                )
                asset_id = record.assets.get(kind)
                if asset_id is None:
                    c.setResponseProfile(ID_FIELDS)
                    if kind == "caption":
                        service.add(spec.entry_id, _caption_asset(spec, files[kind], accuracy))
                    else:
                        service.add(spec.entry_id, _attachment_asset(spec, files[kind]))
                    index += 1
                    asset_id = f"{{{index}:result:id}}"
                if kind not in record.attached:
                    c.setResponseProfile(ASSET_FIELDS)
                    service.setContent(asset_id, KalturaUploadedFileTokenResource(token=token))
                    index += 1
                c.setResponseProfile(TOKEN_FIELDS)
                c.uploadToken.upload(token, _NamedBytes(files[kind]))
                index += 1
            return list(c.doMultiRequest())

        results = iter(self._sessions.with_key("delivery", key, run, attempts=1))
        refused: list[KalturaApiError] = []
        transient: list[str] = []
        for kind in kinds:
            added = next(results) if kind not in record.assets else None
            content = next(results) if kind not in record.attached else None
            upload = next(results)
            if added is not None and not isinstance(added, KalturaException):
                record.assets[kind] = as_str(added.id)
            if content is not None and not isinstance(content, KalturaException):
                record.mark_attached(kind, as_str(content.id))
            if not isinstance(upload, KalturaException):
                if (
                    kind in record.attached
                    and as_str(upload.attachedObjectId) == record.assets[kind]
                ):
                    record.mark_filled(kind, record.assets[kind])
                    continue
                record.drop_token(kind)  # uploaded but attached to nothing
            failed = [r for r in (added, content, upload) if isinstance(r, KalturaException)]
            if any(is_token_unusable(r) for r in failed):
                record.drop_token(kind)
            if not failed or any(is_transient(r) for r in failed):
                transient.append(f"{kind}: {failed[0].code if failed else 'not filled'}")
            else:
                # The first refusal is the cause: later parts ran on an empty reference.
                refused.append(api_error(failed[0], f"{kind} delivery"))
        record.sent = False
        if transient:
            raise KalturaTransientError(f"delivery: Kaltura failed on {', '.join(transient)}")
        return refused

    def reconcile_delivery(self, spec: TaskSpec, key: TaskKey, record: DeliveryRecord) -> None:
        """After an upload whose answer was lost: what took effect, from the upload tokens
        (the asset each is attached to, whether the file arrived) and, where an access key
        may list the entry's assets, from our tagged assets."""
        kinds = record.missing()
        tokens = [(k, record.tokens[k]) for k in kinds if k in record.tokens]

        def run(c: KeepAliveClient) -> list[Any]:
            c.startMultiRequest()
            c.setResponseProfile(TOKEN_FIELDS)
            for _kind, token in tokens:
                c.uploadToken.get(token)
            c.setResponseProfile(None)
            flt = KalturaCaptionAssetFilter()
            flt.entryIdEqual = spec.entry_id
            c.caption.captionAsset.list(flt, KalturaFilterPager(pageSize=500))
            aflt = KalturaAttachmentAssetFilter()
            aflt.entryIdEqual = spec.entry_id
            c.attachment.attachmentAsset.list(aflt, KalturaFilterPager(pageSize=500))
            return list(c.doMultiRequest())

        results = self._sessions.with_key("delivery lookup", key, run)
        for (kind, _token), got in zip(tokens, results, strict=False):
            if is_error(got, TOKEN_NOT_FOUND):
                record.drop_token(kind)
                continue
            raise_error("uploadToken.get", got)
            attached = as_str(got.attachedObjectId)
            uploaded = (as_int(got.status, 0) or 0) >= TOKEN_FULL_UPLOAD
            if attached and uploaded:
                record.mark_filled(kind, attached)
            elif attached:
                record.mark_attached(kind, attached)
            elif uploaded:
                record.drop_token(kind)
        captions, attachments = results[len(tokens)], results[len(tokens) + 1]
        for kind in record.missing():
            if kind in record.assets:
                continue
            listed = captions if kind == "caption" else attachments
            if isinstance(listed, KalturaException):
                continue  # listing refused for vendors: the tokens are all we know
            asset = _tagged(spec, listed, _deliverable_suffix(kind))
            if asset is not None:
                record.assets[kind] = as_str(asset.id)
                if as_int(asset.status) == ASSET_READY:
                    record.mark_filled(kind, as_str(asset.id))
        record.sent = False


def _deliverable_suffix(kind: str) -> str:
    return {"caption": "", "text": ".txt", "json": ".json"}[kind]


def _tagged(spec: TaskSpec, listed: Any, suffix: str) -> Any:
    """The first asset in a list response that carries this task's tag (and, for
    attachments, whose file name ends in `suffix`), or None."""
    tag = task_tag(spec.task_id)
    for asset in listed.objects or []:
        if tag not in [t.strip() for t in as_str(asset.tags).split(",")]:
            continue
        if suffix and not as_str(getattr(asset, "filename", "")).endswith(suffix):
            continue
        return asset
    return None


def _caption_asset(spec: TaskSpec, caption: Deliverable, accuracy: int) -> KalturaCaptionAsset:
    # The label is the language alone: Kaltura appends the profile's label addition
    # itself when the task turns READY (kReachManager::addLabelAddition).
    return KalturaCaptionAsset(
        language=spec.source_language,
        label=spec.source_language,
        format=spec.caption_type,
        accuracy=accuracy,
        tags=task_tag(spec.task_id),
        fileExt=caption.filename.rsplit(".", 1)[-1],
        isDefault=KalturaNullableBoolean.FALSE_VALUE,
    )


def _attachment_asset(spec: TaskSpec, transcript: Deliverable) -> KalturaAttachmentAsset:
    kind = "word timings" if transcript.filename.endswith(".json") else "text"
    return KalturaAttachmentAsset(
        filename=transcript.filename,
        title=f"Transcript ({spec.source_language}, {kind})",
        format=_attachment_format(transcript.filename),
        tags=task_tag(spec.task_id),
    )


def _attachment_format(filename: str) -> str:
    # KalturaAttachmentType: TEXT=1, JSON=4
    return "4" if filename.endswith(".json") else "1"


class _NamedBytes(io.BytesIO):
    """In-memory file with a name: the client's multipart upload reads `.name`."""

    def __init__(self, deliverable: Deliverable) -> None:
        super().__init__(deliverable.content)
        self.name = deliverable.filename
