"""What has been delivered to Kaltura for one task, as plain data the store keeps (no I/O).

Delivery is three assets on the entry (the caption, a plain-text and a JSON transcript),
each filled from an upload token, then READY. Every step is written here before and after
it is sent, so that after a lost answer, a crash or a killed access key the daemon knows
what exists without listing the entry's assets (Kaltura does not let vendors list caption
assets): an asset's content is set from an upload token *before* the file is uploaded into
it, so the token is attached to the asset (`attachedObjectId`) and says which asset it
fills and whether the file arrived.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

KINDS = ("caption", "text", "json")
"""The deliverables of a task, in the order they are uploaded."""


@dataclass
class DeliveryRecord:
    tokens: dict[str, str] = field(default_factory=dict)
    """kind -> upload token id created for it (not yet known to be consumed)."""
    assets: dict[str, str] = field(default_factory=dict)
    """kind -> id of our asset on the entry (it exists; its content may not be set)."""
    attached: list[str] = field(default_factory=list)
    """Kinds whose current token is attached to their asset: only the upload is left."""
    filled: list[str] = field(default_factory=list)
    """Kinds whose asset holds its content: an answer or the token said so."""
    sent: bool = False
    """An upload went out whose answer did not come back: look before sending again."""
    accuracy: int | None = None
    units_used: int | None = None
    ready_sent: bool = False
    """READY went out: the access key may be dead now; only the vendor session is used."""

    def missing(self) -> list[str]:
        return [k for k in KINDS if k not in self.filled]

    @property
    def complete(self) -> bool:
        return not self.missing()

    @property
    def caption_asset_id(self) -> str | None:
        return self.assets.get("caption") if "caption" in self.filled else None

    def mark_attached(self, kind: str, asset_id: str) -> None:
        self.assets[kind] = asset_id
        if kind not in self.attached:
            self.attached.append(kind)

    def mark_filled(self, kind: str, asset_id: str) -> None:
        self.assets[kind] = asset_id
        if kind not in self.filled:
            self.filled.append(kind)
        # A used token cannot fill anything else.
        self.drop_token(kind)

    def drop_token(self, kind: str) -> None:
        """Forget a token that cannot be used (gone, or uploaded without being attached,
        so nothing would tell what it filled): a fresh one is made for the next try."""
        self.tokens.pop(kind, None)
        if kind in self.attached:
            self.attached.remove(kind)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | None) -> DeliveryRecord:
        if not text:
            return cls()
        data = json.loads(text)
        return cls(
            tokens={str(k): str(v) for k, v in (data.get("tokens") or {}).items()},
            assets={str(k): str(v) for k, v in (data.get("assets") or {}).items()},
            attached=[str(k) for k in data.get("attached") or [] if k in KINDS],
            filled=[str(k) for k in data.get("filled") or [] if k in KINDS],
            sent=bool(data.get("sent")),
            accuracy=data.get("accuracy"),
            units_used=data.get("units_used"),
            ready_sent=bool(data.get("ready_sent")),
        )
