"""The daemon's allocator settings: applied on glibc, never over an ops choice."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from reach_vendor.common import native_memory

_PROBE = "from reach_vendor.common import native_memory as m; print(m.share_one_arena())"


def _probe(env: dict[str, str]) -> str:
    clean = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    out = subprocess.run(
        [sys.executable, "-c", _PROBE], env={**clean, **env}, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


@pytest.mark.skipif(native_memory._libc() is None, reason="not glibc")
def test_one_arena_is_set_unless_ops_chose_a_limit() -> None:
    assert _probe({}) == "True"
    # MALLOC_ARENA_MAX in the unit's environment is the vendor's choice: left as it is.
    assert _probe({"MALLOC_ARENA_MAX": "4"}) == "False"


_HELD = """
import ctypes
from reach_vendor.common import native_memory as m

libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
def rss():
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmRSS"))
libc.mallopt(-1, 2**30)  # M_TRIM_THRESHOLD: free() itself never gives the top back
blocks = [libc.malloc(100_000) for _ in range(1000)]  # under the mmap threshold: the heap
for b in blocks:
    ctypes.memset(b, 1, 100_000)
pin = libc.malloc(100_000)  # from the top, above them all: no free chunk is that large
for b in blocks:
    libc.free(b)
freed = rss()
m.release_free_memory()
print(freed - rss())
"""


@pytest.mark.skipif(native_memory._libc() is None, reason="not glibc")
def test_freed_heap_pages_go_back_to_the_kernel() -> None:
    out = subprocess.run([sys.executable, "-c", _HELD], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) > 50_000  # KiB of the ~98 MiB freed
