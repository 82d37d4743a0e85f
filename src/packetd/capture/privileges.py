"""Dropping root once the capture sockets are open (`--user NAME`, like tcpdump -Z).

Opening AF_PACKET sockets needs CAP_NET_RAW; reading from them afterwards does not. Parsing hostile
traffic as root is what we avoid: the capture sources are opened first, then the process becomes `user`.
"""

from __future__ import annotations

import os
import pwd
import sys


class PrivilegeError(Exception):
    pass


def drop_privileges(user: str) -> None:
    try:
        pw = pwd.getpwnam(user)
    except KeyError:
        raise PrivilegeError(f"--user: no such user '{user}'") from None
    if os.geteuid() != 0:
        if os.geteuid() == pw.pw_uid:
            return
        raise PrivilegeError(f"--user {user}: only root can change user")
    os.setgroups([])
    os.setgid(pw.pw_gid)
    os.setuid(pw.pw_uid)
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
