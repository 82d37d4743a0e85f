"""This host's TCP servers, busiest first: what the live first-run hint names when the kernel filter let
nothing through (packets to ports no rule watches never reach packetd, so they cannot be counted).

A server is a socket in LISTEN (`/proc/net/tcp{,6}`, format in attribution/sockets.py); how busy it is,
the connections in ESTABLISHED whose local port is that port (accepted connections). `busiest_servers`
parses the tables (pure); `read_tables` reads them (I/O; absent off Linux: no servers).
"""

from __future__ import annotations

from packetd.attribution.sockets import TCP_ESTABLISHED, TCP_LISTEN

MAX_LINES = 200_000  # table lines read: a host with more sockets than this is counted on the first ones
TABLES = ("/proc/net/tcp", "/proc/net/tcp6")


def busiest_servers(tables: list[bytes]) -> list[tuple[int, int]]:
    """(port, established connections) of every listening port, busiest first (then by port)."""
    listening: set[int] = set()
    established: dict[int, int] = {}
    for data in tables:
        for line in data.split(b"\n")[1 : MAX_LINES + 1]:  # the first line is the header
            f = line.split()
            if len(f) < 4 or b":" not in f[1]:
                continue
            port = int(f[1].rsplit(b":", 1)[1], 16)
            state = int(f[3], 16)
            if state == TCP_LISTEN:
                listening.add(port)
            elif state == TCP_ESTABLISHED:
                established[port] = established.get(port, 0) + 1
    return sorted(((p, established.get(p, 0)) for p in listening), key=lambda pc: (-pc[1], pc[0]))


def read_tables() -> list[bytes]:
    out = []
    for path in TABLES:
        try:
            with open(path, "rb") as f:
                out.append(f.read())
        except OSError:
            continue  # no IPv6, or not Linux
    return out
