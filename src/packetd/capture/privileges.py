"""Dropping root once the capture sockets are open (`--user NAME`, like tcpdump -Z).

Opening AF_PACKET sockets needs CAP_NET_RAW; reading from them afterwards does not. Parsing hostile
traffic as root is what we avoid: the capture sources are opened first, then the process becomes `user`.

A caller may `keep` a few named capabilities across the change of user (Linux only): the thread asks the
kernel to keep its permitted set over setuid (PR_SET_KEEPCAPS), then capset() narrows permitted and
effective to exactly `keep` — every other capability is gone for good, and nothing is inheritable, so no
program it could exec gains any. With `keep` empty the user change clears every capability as usual.
Capabilities are per thread: call this before starting threads (the ones already running lose all).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import pwd
import sys
from collections.abc import Sequence

# linux/capability.h numbers of the capabilities a caller may keep; only these are accepted, so a typo
# cannot silently keep nothing and an unforeseen name cannot widen what a worker holds.
CAPS = {"CAP_DAC_READ_SEARCH": 2, "CAP_SYS_PTRACE": 19}

_PR_SET_KEEPCAPS = 8
_LINUX_CAPABILITY_VERSION_3 = 0x20080522


class PrivilegeError(Exception):
    pass


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _set_caps(libc: ctypes.CDLL, mask: int) -> None:
    """This thread's permitted and effective sets become `mask` (version 3: two 32-bit words)."""
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    for i in range(2):
        word = (mask >> (32 * i)) & 0xFFFFFFFF
        data[i].effective = data[i].permitted = word
    if libc.capset(ctypes.byref(header), data) != 0:
        err = ctypes.get_errno()
        raise PrivilegeError(f"could not keep capabilities: {os.strerror(err)}")


def drop_privileges(user: str, keep: Sequence[str] = ()) -> None:
    try:
        pw = pwd.getpwnam(user)
    except KeyError:
        raise PrivilegeError(f"--user: no such user '{user}'") from None
    if os.geteuid() != 0:
        if os.geteuid() == pw.pw_uid:
            return
        raise PrivilegeError(f"--user {user}: only root can change user")
    mask = 0
    for name in keep:
        mask |= 1 << CAPS[name]
    libc = _libc() if mask and sys.platform == "linux" else None
    os.setgroups([])
    os.setgid(pw.pw_gid)
    if libc is not None and libc.prctl(_PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0:
        raise PrivilegeError(f"could not keep capabilities: {os.strerror(ctypes.get_errno())}")
    os.setuid(pw.pw_uid)
    if libc is not None:
        _set_caps(libc, mask)  # permitted was kept whole: narrow it to `keep` before anything else runs
        libc.prctl(_PR_SET_KEEPCAPS, 0, 0, 0, 0)  # a later change of user would clear them again
    if os.getuid() != pw.pw_uid or os.geteuid() != pw.pw_uid or os.getegid() != pw.pw_gid:
        raise PrivilegeError(f"could not drop privileges to {user}")


PRIVILEGE_HINT = (
    "live capture needs CAP_NET_RAW: run as root (sudo), or grant it with "
    "`setcap cap_net_raw,cap_net_admin=eip $(readlink -f $(which python3))`; "
    "or read a capture file with --pcap-file"
)


def privilege_hint() -> str:
    """PRIVILEGE_HINT naming the interpreter actually running (a virtualenv's `python` is a symlink, and
    capabilities are set on the real file)."""
    real = os.path.realpath(sys.executable)
    prog = sys.argv[0] or "packetd"
    if prog.endswith("__main__.py"):  # python -m packetd
        prog = f"{sys.executable} -m packetd"
    return (
        f"live capture needs CAP_NET_RAW: run as root (sudo {prog} ...), or grant it to "
        f"this interpreter with `sudo setcap cap_net_raw,cap_net_admin=eip {real}`; "
        "or read a capture file with --pcap-file (-r)"
    )
