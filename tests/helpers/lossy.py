"""Lossy and reordered copies of real captures, and the views the loss/reorder tests compare.

`tcp_segments` lists a capture's TCP segments on the given server ports (frame index, time, connection,
direction, sequence number, payload length), decoded with packetd's own L2-L4 decoder; `write_modified`
writes a copy with chosen frames removed or moved, keeping the original link type and the timestamp of
every slot (a reordered capture still has increasing timestamps: capture time is taken at the capture
point, whatever the order the packets reach it in). `tshark_http` is the independent view of the original.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from packetd.capture.pcapfile import CaptureFile
from packetd.capture.pcapwrite import PcapWriter
from packetd.net.packet import PROTO_TCP, PacketDecoder
from packetd.pairing.roundtrip import Roundtrip

Conn = tuple[str, int, str, int]  # client ip, client port, server ip, server port


@dataclass(frozen=True)
class Seg:
    index: int  # frame number in the file, from 0
    ts_ns: int
    conn: Conn
    direction: int  # 0: client to server (the server is the end on a server port)
    seq: int
    ack: int
    length: int  # payload bytes
    flags: int


def read_frames(path: str) -> tuple[int, list[tuple[int, bytes]]]:
    """The capture's single link type and its frames (copied out of the mapping)."""
    cf = CaptureFile(path)
    try:
        linktypes = set(cf.linktypes)
        frames = [(ts, bytes(data)) for ts, _lt, data in cf]
    finally:
        cf.close()
    assert len(linktypes) == 1, f"{path}: several link types {linktypes}"
    return linktypes.pop(), frames


def tcp_segments(path: str, server_ports: Iterable[int]) -> list[Seg]:
    import socket

    ports = frozenset(server_ports)
    lt, frames = read_frames(path)
    dec = PacketDecoder(frozenset({4, 6}))
    out = []
    for i, (ts, data) in enumerate(frames):
        s = dec.decode(ts, lt, memoryview(data))
        if s is None or s.transport != PROTO_TCP:
            continue
        fam = socket.AF_INET if len(s.src) == 4 else socket.AF_INET6
        src, dst = socket.inet_ntop(fam, s.src), socket.inet_ntop(fam, s.dst)
        if s.dport in ports:
            conn, d = (src, s.sport, dst, s.dport), 0
        elif s.sport in ports:
            conn, d = (dst, s.dport, src, s.sport), 1
        else:
            continue
        out.append(Seg(i, ts, conn, d, s.seq, s.ack, len(s.payload), s.flags))
    return out


def write_modified(src: str, dst: str, drop: Iterable[int] = (), order: Sequence[int] | None = None) -> None:
    """Copy `src` to `dst` with frames `drop` removed; `order` (a permutation of the frame indexes) says
    which frame's bytes go into each slot; every slot keeps its original timestamp."""
    lt, frames = read_frames(src)
    if order is None:
        order = range(len(frames))
    assert sorted(order) == list(range(len(frames)))
    dropped = set(drop)
    with open(dst, "wb") as f:
        w = PcapWriter(f, linktype=lt)
        for slot, i in enumerate(order):
            if i not in dropped:
                w.write(frames[slot][0], frames[i][1])


def swapped(n: int, pairs: Iterable[tuple[int, int]]) -> list[int]:
    order = list(range(n))
    for a, b in pairs:
        order[a], order[b] = order[b], order[a]
    return order


TIMES = ("start_time", "end_time", "duration_ns")


def project(rec: Roundtrip) -> dict[str, Any]:
    """A record's JSON form without its times (a reordered segment arrives in another slot's time)."""
    j = rec.to_json()
    for k in TIMES:
        j.pop(k)
    return j


def conn_of(rec: Roundtrip) -> Conn:
    return (rec.client[0], rec.client[1], rec.server[0], rec.server[1])


def by_conn(records: list[Roundtrip]) -> dict[Conn, list[dict[str, Any]]]:
    """Each connection's records, projected, in their order: what loss or reordering may not change."""
    out: dict[Conn, list[dict[str, Any]]] = {}
    for r in records:
        out.setdefault(conn_of(r), []).append(project(r))
    return out


def pairing(rec: Roundtrip) -> tuple[Conn, str, str, str | None]:
    """What a record claims: on this connection, this request was answered with this status."""
    req = rec.request
    target = req.to_json().get("target", "") if req is not None else ""
    return (conn_of(rec), rec.operation, target, rec.status)


def tshark_http(path: str, ports: Iterable[int]) -> tuple[list[tuple[str, str]], list[str]] | None:
    """tshark's requests (method, uri) and final response codes, in capture order; None without tshark."""
    tshark = shutil.which("tshark")
    if tshark is None:
        return None
    args = [tshark, "-r", path, "-n"]
    for p in ports:
        if p != 80:
            args += ["-d", f"tcp.port=={p},http"]
    args += ["-Y", "http.request or http.response", "-T", "fields", "-E", "separator=\t"]
    args += ["-e", "http.request.method", "-e", "http.request.uri", "-e", "http.response.code"]
    out = subprocess.run(
        args, capture_output=True, text=True, check=True, env={**os.environ, "LC_ALL": "C"}
    ).stdout
    requests, responses = [], []
    for line in out.splitlines():
        method, uri, code = [*line.split("\t"), "", "", ""][:3]
        if method:
            requests.append((method, uri))
        if code and not code.startswith("1"):
            responses.append(code)
    return requests, responses
