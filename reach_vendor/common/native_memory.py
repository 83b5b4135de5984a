"""The C allocator's behaviour in the daemon process (glibc; elsewhere these do nothing).

Native engines (CTranslate2) allocate their large buffers from several threads of their
own. glibc gives each thread an arena, and an arena keeps what it once held: every engine
thread kept its own transcription peak resident for the life of the daemon.
"""

from __future__ import annotations

import ctypes
import functools
import os

_M_ARENA_MAX = -8  # glibc's malloc.h


@functools.cache
def _libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(None)
    except OSError:
        return None
    if not (hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim")):
        return None  # not glibc (musl, say)
    return libc


def share_one_arena() -> bool:
    """All threads allocate from one arena: a transcription's peak is held once, not once
    per engine thread, for a little recognition speed (README, Performance). Called where
    the daemon starts, before its threads do. An ops choice (`MALLOC_ARENA_MAX` in the
    unit's environment) is left alone. True if the setting took."""
    libc = _libc()
    if libc is None or "MALLOC_ARENA_MAX" in os.environ:
        return False
    return bool(libc.mallopt(_M_ARENA_MAX, 1) == 1)


def release_free_memory() -> None:
    """Return the allocator's free pages to the kernel: after a transcription, so that the
    daemon's resident memory between tasks is what it uses, not what it once did."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)
