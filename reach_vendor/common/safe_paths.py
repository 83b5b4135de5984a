"""File names the daemon writes, built from our own ids: no value from Kaltura or a remote
service may name a path (an `entryId` of "../.." or a flavor `fileExt` of "/../x" would
otherwise write, and later delete, files outside the work directory). No I/O."""

from __future__ import annotations

import re
from pathlib import Path

MEDIA_EXTENSIONS = frozenset(
    {
        "3gp", "aac", "ac3", "aif", "aiff", "amr", "avi", "f4v", "flac", "flv", "m2ts", "m4a",
        "m4v", "mkv", "mov", "mp2", "mp3", "mp4", "mpeg", "mpg", "mts", "mxf", "oga", "ogg",
        "ogv", "opus", "ts", "wav", "webm", "wma", "wmv",
    }
)  # fmt: skip
"""Extensions a media file is saved under; anything else is saved as ".bin" (the decoder
reads the content, not the name)."""

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


def media_extension(ext: str) -> str:
    ext = ext.strip().lower()
    return ext if ext in MEDIA_EXTENSIONS else "bin"


def name_part(text: str, limit: int = 64) -> str:
    """`text` reduced to letters, digits, '_' and '-' (at most `limit` of them): safe in a
    file name and in the names Kaltura shows for our uploads."""
    return _UNSAFE.sub("_", text)[:limit].strip("_") or "x"


def inside(base: Path, name: str) -> Path:
    """`base / name`, refused unless it resolves to a file directly inside `base`."""
    path = (base / name).resolve()
    if path.parent != base.resolve():
        raise ValueError(f"refused to write {name!r} outside {base}")
    return path
