"""The kernel's socket tables (`/proc/<pid>/net/{tcp,tcp6,udp,udp6}`): which lines are the sockets we want (pure).

    sl  local_address                         rem_address                           st ... uid timeout inode
     0: 0100007F:1F90                         0100007F:C350                         01 ...   0       0 41230
        addr: the 32-bit words of the address, each printed `%08X` in host byte order; port: `%04X`

Rather than decode every line's addresses, the endpoints wanted are encoded the kernel's way once
(`socket_key`) and each line's two address fields are looked up as they are: one split per line. An IPv4
connection may sit in the IPv6 table of a dual-stack socket (`::ffff:a.b.c.d`), so an IPv4 endpoint has two
encodings. Unconnected UDP sockets (a DNS server) print the remote as all zeros, and a socket bound to the
any-address prints its local address as zeros: `udp_fallback_keys` gives those forms, tried after the exact one.
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Container, Iterator

Endpoint = tuple[str, int]
Key = tuple[bytes, bytes]  # (local_address field, rem_address field), as the table prints them

# TCP states (include/net/tcp_states.h) that matter here
TCP_ESTABLISHED = 0x01
TCP_SYN_SENT = 0x02
TCP_SYN_RECV = 0x03
TCP_LISTEN = 0x0A
_V4_MAPPED = b"\x00" * 10 + b"\xff\xff"


def _words(packed: bytes) -> bytes:
    return b"".join(
        b"%08X" % int.from_bytes(packed[i : i + 4], sys.byteorder) for i in range(0, len(packed), 4)
    )


def encode(ip: str, port: int) -> tuple[bytes, ...]:
    """`ip:port` as the table prints it: one form for IPv6, two for IPv4 (IPv4 table, IPv4-mapped IPv6)."""
    p = b":%04X" % port
    if ":" in ip:
        return (_words(socket.inet_pton(socket.AF_INET6, ip)) + p,)
    packed = socket.inet_pton(socket.AF_INET, ip)
    return (_words(packed) + p, _words(_V4_MAPPED + packed) + p)


def socket_keys(local: Endpoint, remote: Endpoint) -> tuple[Key, ...]:
    """The table keys of the socket whose local end is `local`, connected to `remote`."""
    return tuple(zip(encode(*local), encode(*remote), strict=True))


_ANY4 = b"00000000"
_ANY6 = b"0" * 32


def udp_fallback_keys(local: Endpoint) -> tuple[Key, ...]:
    """Keys of an unconnected UDP socket that would receive for `local`: bound to its address, then to
    the any-address (IPv4 and dual-stack IPv6)."""
    p = b":%04X" % local[1]
    any4, any6 = _ANY4 + b":0000", _ANY6 + b":0000"
    bound = tuple((form, any4 if len(form) == 13 else any6) for form in encode(*local))
    if ":" in local[0]:
        return (*bound, (_ANY6 + p, any6))
    return (*bound, (_ANY4 + p, any4), (_ANY6 + p, any6))


def scan(data: bytes, wanted: Container[Key]) -> Iterator[tuple[Key, int, int]]:
    """The lines of one table whose (local, remote) is wanted: (key, state, inode). Inode 0: no process
    holds the socket (a connection not yet accepted, a half-open SYN_RECV, TIME_WAIT)."""
    lines = data.split(b"\n")
    # a /proc/net table is read in pages, and a socket opened or closed meanwhile shifts the rest: the kernel
    # then prints some lines twice (seen here: one socket three times in a busy tcp6 table). Each (key,
    # state, inode) is given once; the set holds at most the wanted lines of this one table.
    seen: set[tuple[Key, int, int]] = set()
    for line in lines[1:]:  # the first line is the header
        f = line.split()
        if len(f) < 10:
            continue
        key = (f[1], f[2])
        if key in wanted:
            hit = key, int(f[3], 16), int(f[9])
            if hit in seen:
                continue
            seen.add(hit)
            yield hit
