"""Run a command inside the sandbox deploy/reach-vendor.service declares, so that a test
does real work under the same seccomp filter the unit would load.

What is applied, read from the unit:

* `SystemCallFilter=`: groups expanded with `systemd-analyze syscall-filter`, as systemd
  does it: a first, plain line is an allow-list (plus `@default`), each `~` line removes
  calls from it; a call outside it kills the process with SIGSYS, or fails with
  `SystemCallErrorNumber=`. Only native calls pass (`SystemCallArchitectures=native`).
* `RestrictAddressFamilies=`: other socket families fail with EAFNOSUPPORT.
* `NoNewPrivileges=`, an empty `CapabilityBoundingSet=` (no capabilities after exec) and
  `DynamicUser=yes`, as the unprivileged user nobody (which owns the writable paths). Not
  only for realism: libraries act differently as root (SQLite fchown()s its journal, a
  call the filter denies), so work must run as the service's user would.
* Paths, when a mount namespace can be made (root): `ProtectSystem=strict` (all
  read-only but the writable paths given, /dev, /proc and /sys), `ProtectHome=yes` (home
  directories hidden, but for the interpreter if it lives there) and `PrivateTmp=yes`.

Not applied: the device, kernel and namespace options; they do not decide which calls
decoding and recognition may make.

`python tests/support/sandbox.py SPEC -- COMMAND...` is the wrapper: it sets all this up
in its own process, then execs COMMAND, so COMMAND and every child it starts inherit it.
It uses the standard library only.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno as errno_codes
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "deploy" / "reach-vendor.service"
LIBSECCOMP = "libseccomp.so.2"

SCMP_ACT_KILL_PROCESS = 0x80000000
SCMP_ACT_ALLOW = 0x7FFF0000
SCMP_ACT_ERRNO = 0x00050000
SCMP_CMP_EQ = 4
AF_MAX = 46
SCMP_FLTATR_CTL_NNP = 3
PR_SET_NO_NEW_PRIVS = 38
PR_CAPBSET_DROP = 24
CLONE_NEWNS = 0x00020000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_NOATIME, MS_NODIRATIME, MS_BIND = 32, 1024, 2048, 4096
MS_REC, MS_PRIVATE, MS_RELATIME, MS_STRICTATIME = 16384, 1 << 18, 1 << 21, 1 << 24
O_PATH = 0o10000000
# Flags a bind remount must keep (they may be locked in a container's user namespace).
KEPT_FLAGS = {
    "nosuid": MS_NOSUID,
    "nodev": MS_NODEV,
    "noexec": MS_NOEXEC,
    "noatime": MS_NOATIME,
    "nodiratime": MS_NODIRATIME,
    "relatime": MS_RELATIME,
    "strictatime": MS_STRICTATIME,
}
API_FILESYSTEMS = ("/proc", "/sys", "/dev")
HOMES = ("/home", "/root", "/run/user")
NOBODY = 65534


@dataclass(frozen=True)
class Sandbox:
    """What the wrapper applies (JSON between the test and the wrapper)."""

    syscalls: list[str]
    """Allowed calls (an allow-list filter), or denied ones when `allow_list` is false."""
    allow_list: bool
    errno: int | None
    """What a filtered call returns; None: the process is killed (SIGSYS)."""
    address_families: list[int] | None
    no_new_privileges: bool
    drop_capabilities: bool
    user: int | None
    """The uid (and gid) the command runs as; None: the caller's."""
    protect_paths: bool
    """ProtectSystem=strict, ProtectHome=yes, PrivateTmp=yes (needs a mount namespace)."""
    writable: list[str]
    """The service's state directory and the like: stays writable under ProtectSystem."""
    visible: list[str]
    """Read-only paths that PrivateTmp or ProtectHome would hide but the command needs (its
    config; the interpreter and this checkout are added): the unit's own, in /etc and /opt,
    nothing hides."""


def unit_directives(unit: Path = UNIT) -> list[tuple[str, str]]:
    """The [Service] assignments in order (order matters for SystemCallFilter)."""
    found: list[tuple[str, str]] = []
    section = ""
    for raw in unit.read_text().splitlines():
        line = raw.strip()
        if line.startswith("["):
            section = line
        elif section == "[Service]" and "=" in line and not line.startswith(("#", ";")):
            key, value = line.split("=", 1)
            found.append((key.strip(), value.strip()))
    return found


def expand(name: str) -> set[str]:
    """A syscall or @group, groups expanded recursively by systemd's own tables."""
    if not name.startswith("@"):
        return {name}
    out = subprocess.run(
        ["systemd-analyze", "--no-pager", "syscall-filter", name],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    calls: set[str] = set()
    for line in out.splitlines()[1:]:
        entry = line.strip()
        if entry and not entry.startswith("#"):
            calls |= expand(entry)
    return calls


def syscall_filter(directives: list[tuple[str, str]]) -> tuple[set[str], bool]:
    """The calls and whether they are an allow-list, as systemd builds them from the
    SystemCallFilter= lines (the first line decides the kind)."""
    calls: set[str] = set()
    allow_list: bool | None = None
    for key, value in directives:
        if key != "SystemCallFilter":
            continue
        if not value:
            calls, allow_list = set(), None
            continue
        invert = value.startswith("~")
        names = set().union(*(expand(n) for n in value.lstrip("~").split()))
        if allow_list is None:
            allow_list = not invert
            if allow_list:
                calls |= expand("@default")
        if invert == (not allow_list):
            calls |= names
        else:
            calls -= names
    if allow_list is None:
        raise ValueError("the unit has no SystemCallFilter=")
    return calls, allow_list


def sandbox_from_unit(
    writable: list[Path], visible: list[Path], unit: Path = UNIT, *, protect_paths: bool = True
) -> Sandbox:
    """The unit's sandbox for a command that writes only in `writable` and reads its
    own files in `visible` (both directories)."""
    directives = unit_directives(unit)
    last = {key: value for key, value in directives}
    calls, allow_list = syscall_filter(directives)
    if last.get("SystemCallArchitectures", "native") != "native":
        raise ValueError("only SystemCallArchitectures=native is emulated")
    errno_name = last.get("SystemCallErrorNumber", "kill")
    families = last.get("RestrictAddressFamilies")
    paths = protect_paths and all(
        last.get(key) == value
        for key, value in (
            ("ProtectSystem", "strict"),
            ("ProtectHome", "yes"),
            ("PrivateTmp", "yes"),
        )
    )
    # Only with the mounts: they make the interpreter and the files reachable for nobody.
    dynamic_user = paths and last.get("DynamicUser") == "yes" and os.geteuid() == 0
    return Sandbox(
        syscalls=sorted(calls),
        allow_list=allow_list,
        errno=None if errno_name == "kill" else int(getattr(errno_codes, errno_name)),
        address_families=(
            [int(getattr(socket, f)) for f in families.split()] if families else None
        ),
        no_new_privileges=last.get("NoNewPrivileges") == "yes",
        drop_capabilities=last.get("CapabilityBoundingSet") == "",
        user=NOBODY if dynamic_user else None,
        protect_paths=paths,
        writable=[str(p.resolve()) for p in writable],
        visible=[str(p.resolve()) for p in visible],
    )


def seccomp_unavailable() -> str | None:
    """Why a seccomp filter cannot be loaded here, or None when it can."""
    if not shutil.which("systemd-analyze"):
        return "systemd-analyze is needed to expand the unit's syscall groups"
    if not ctypes.util.find_library("seccomp"):
        return "libseccomp is not installed"
    if not Path("/proc/self/status").read_text().count("Seccomp:"):
        return "the kernel has no seccomp support"
    return None


def mount_namespace_unavailable() -> str | None:
    """Why the unit's read-only paths cannot be emulated here, or None when they can."""
    if os.geteuid() != 0:
        return "making read-only mounts needs root (a private mount namespace)"
    with tempfile.TemporaryDirectory() as state:
        # The wrapper itself, with the mounts and an empty deny-list filter.
        probe = Sandbox(
            syscalls=[],
            allow_list=False,
            errno=None,
            address_families=None,
            no_new_privileges=False,
            drop_capabilities=False,
            user=None,
            protect_paths=True,
            writable=[state],
            visible=[],
        )
        done = subprocess.run(sandboxed(probe, ["true"]), capture_output=True, text=True)
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines() or [f"exit status {done.returncode}"]
        return f"cannot set up the mounts: {lines[-1]}"
    return None


def sandboxed(sandbox: Sandbox, command: list[str]) -> list[str]:
    """`command` run through the wrapper, inside `sandbox`."""
    # -I: no script directory on sys.path, so these helpers never shadow the stdlib.
    return [
        sys.executable,
        "-I",
        str(Path(__file__).resolve()),
        json.dumps(asdict(sandbox)),
        "--",
        *command,
    ]


# The wrapper: runs in the process that then execs the command.


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno() or -result
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str = "") -> None:
    libc = _libc()
    libc.mount.argtypes = [ctypes.c_char_p] * 3 + [ctypes.c_ulong, ctypes.c_char_p]
    encoded = [s.encode() if s is not None else None for s in (source, target, fstype)]
    _check(libc.mount(*encoded, flags, data.encode() or None), f"mount {target}")


def _mounts() -> list[tuple[str, set[str]]]:
    """(mount point, per-mount options) of this namespace, parents first."""
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), fields[4])
        found.append((point, set(fields[5].split(","))))
    return found


def _under(path: str, roots: list[str] | tuple[str, ...]) -> bool:
    return any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)


def _protect_paths(sandbox: Sandbox) -> None:
    """ProtectSystem=strict, ProtectHome=yes and PrivateTmp=yes in a new mount namespace."""
    _check(_libc().unshare(CLONE_NEWNS), "unshare")
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    fresh = [d for d in ("/tmp", "/var/tmp", *HOMES) if os.path.isdir(d)]
    # Writable paths get a mount of their own (left writable below); visible ones are
    # mounted back only where a fresh tmpfs hides them. Opened first: the tmpfs hides them.
    visible = [*sandbox.visible, str(Path(sys.base_prefix).resolve()), str(REPO)]
    kept = sandbox.writable + [p for p in visible if _under(p, fresh)]
    handles = {p: os.open(p, O_PATH) for p in kept}
    for directory in fresh:
        mode = "1777" if directory.endswith("tmp") else "0755"
        _mount("tmpfs", directory, "tmpfs", MS_NOSUID | MS_NODEV, f"mode={mode}")
    for path, fd in handles.items():
        if _under(path, fresh):
            os.makedirs(path, exist_ok=True)
        _mount(f"/proc/self/fd/{fd}", path, None, MS_BIND | MS_REC)
        os.close(fd)
    private_tmp = ["/tmp", "/var/tmp"]
    for point, options in _mounts():
        if "ro" in options or _under(point, API_FILESYSTEMS):
            continue
        if _under(point, sandbox.writable) or point in private_tmp:
            continue
        flags = MS_REMOUNT | MS_BIND | MS_RDONLY
        flags |= sum(bit for name, bit in KEPT_FLAGS.items() if name in options)
        _mount(None, point, None, flags)


def _become(uid: int, writable: list[str]) -> None:
    """Run as `uid`, which owns the writable paths (systemd chowns the StateDirectory)."""
    for top in writable:
        os.chown(top, uid, uid)
        for root, dirs, files in os.walk(top):
            for name in dirs + files:
                os.chown(os.path.join(root, name), uid, uid, follow_symlinks=False)
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)


def _drop_capabilities() -> None:
    libc = _libc()
    last = int(Path("/proc/sys/kernel/cap_last_cap").read_text())
    for cap in range(last + 1):
        _check(libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0), f"drop capability {cap}")


class _ArgCmp(ctypes.Structure):
    """libseccomp's struct scmp_arg_cmp."""

    _fields_ = [
        ("arg", ctypes.c_uint),
        ("op", ctypes.c_int),
        ("datum_a", ctypes.c_uint64),
        ("datum_b", ctypes.c_uint64),
    ]


def _libseccomp() -> ctypes.CDLL:
    lib = ctypes.CDLL(ctypes.util.find_library("seccomp") or LIBSECCOMP, use_errno=True)
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add_exact_array.argtypes = [
        ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint, ctypes.POINTER(_ArgCmp),
    ]  # fmt: skip
    lib.seccomp_attr_set.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32]
    lib.seccomp_load.argtypes = [ctypes.c_void_p]
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    return lib


def _load_filter(
    lib: ctypes.CDLL, default: int, rules: list[tuple[int, str, _ArgCmp | None]]
) -> None:
    """One seccomp filter: `default` but for the (action, call, argument test) rules."""
    ctx = lib.seccomp_init(default)
    if not ctx:
        raise OSError("seccomp_init failed")
    try:
        # NoNewPrivileges is the wrapper's to set (or not), as it is systemd's.
        _check(lib.seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0), "seccomp_attr_set")
        for action, name, arg in rules:
            nr = lib.seccomp_syscall_resolve_name(name.encode())
            if nr < 0:  # unknown to libseccomp or not a call of this architecture: skipped
                continue
            count, args = (1, ctypes.byref(arg)) if arg is not None else (0, None)
            _check(lib.seccomp_rule_add_exact_array(ctx, action, nr, count, args), name)
        _check(lib.seccomp_load(ctx), "seccomp_load")
    finally:
        lib.seccomp_release(ctx)


def _load_seccomp(sandbox: Sandbox) -> None:
    lib = _libseccomp()
    if sandbox.address_families is not None:
        # Its own filter, loaded first: the syscall filter below does not allow seccomp().
        refuse = SCMP_ACT_ERRNO | errno_codes.EAFNOSUPPORT
        _load_filter(
            lib,
            SCMP_ACT_ALLOW,
            [
                (refuse, "socket", _ArgCmp(0, SCMP_CMP_EQ, family, 0))
                for family in range(AF_MAX)
                if family not in sandbox.address_families
            ],
        )
    filtered = SCMP_ACT_KILL_PROCESS if sandbox.errno is None else SCMP_ACT_ERRNO | sandbox.errno
    default, listed = (
        (filtered, SCMP_ACT_ALLOW) if sandbox.allow_list else (SCMP_ACT_ALLOW, filtered)
    )
    _load_filter(lib, default, [(listed, name, None) for name in sandbox.syscalls])


def main(argv: list[str]) -> None:
    spec, separator, *command = argv
    if separator != "--" or not command:
        raise SystemExit("usage: sandbox.py SPEC -- COMMAND...")
    sandbox = Sandbox(**json.loads(spec))
    if sandbox.protect_paths:
        _protect_paths(sandbox)
    if sandbox.drop_capabilities:
        _drop_capabilities()
    if sandbox.user is not None:
        _become(sandbox.user, sandbox.writable)
    if sandbox.no_new_privileges or os.geteuid() != 0:
        _check(_libc().prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
    _load_seccomp(sandbox)
    os.execvp(command[0], command)


if __name__ == "__main__":
    main(sys.argv[1:])
