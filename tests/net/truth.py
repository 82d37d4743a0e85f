"""Independent truth for L2-L4 decoding: what tshark says every frame of a capture carries.

`tshark_segments(path)` runs tshark over a capture and returns, for every frame that carries a TCP segment
or a UDP datagram directly over IP (not quoted inside ICMP, not tunnelled), the tuple a `Segment` must match:
(ts_ns, transport, src, dst, sport, dport, seq, payload). Frames that are the outgoing copy of a loopback
packet in a Linux cooked capture (sll.pkttype 4 on hatype 772) are left out, as the decoder drops them.
"""

from __future__ import annotations

import ipaddress
import shutil
import subprocess
from decimal import Decimal

from packetd.net.packet import Segment

TSHARK = shutil.which("tshark")

Truth = tuple[int, int, str, str, int, int, int, bytes]

_FIELDS = (
    "frame.number",
    "frame.time_epoch",
    "frame.protocols",
    "ip.src",
    "ip.dst",
    "ipv6.src",
    "ipv6.dst",
    "tcp.srcport",
    "tcp.dstport",
    "tcp.seq_raw",
    "tcp.payload",
    "tcp.len",
    "udp.srcport",
    "udp.dstport",
    "udp.length",
    "udp.payload",
    "sll.pkttype",
    "sll.hatype",
    "frame.cap_len",
    "frame.len",
)


def ts_ns_from_epoch(text: str) -> int:
    """tshark prints frame.time_epoch with exactly nine decimals; convert without float rounding."""
    return int(Decimal(text) * 1_000_000_000)


def tshark_frames(path: str, extra: tuple[str, ...] = ()) -> list[dict[str, str]]:
    assert TSHARK is not None
    cmd = [TSHARK, "-n", "-r", path, "-T", "fields", "-E", "occurrence=f", "-E", "separator=\t"]
    cmd += list(extra)
    for f in _FIELDS:
        cmd += ["-e", f]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rows = []
    for line in out.splitlines():
        values = line.split("\t")
        rows.append(dict(zip(_FIELDS, values, strict=True)))
    return rows


def _layers(protocols: str) -> list[str]:
    return protocols.split(":")


def tshark_segments(path: str, extra: tuple[str, ...] = ()) -> list[Truth]:
    """The segments tshark sees, in frame order (see module docstring for what is excluded)."""
    out: list[Truth] = []
    for row in tshark_frames(path, extra):
        layers = _layers(row["frame.protocols"])
        if row["sll.pkttype"] == "4" and row["sll.hatype"] == "772":
            continue
        ip_layers = [i for i, p in enumerate(layers) if p in ("ip", "ipv6")]
        l4_layers = [i for i, p in enumerate(layers) if p in ("tcp", "udp")]
        if not ip_layers or not l4_layers:
            continue
        # the first transport layer must follow the first IP layer directly (IPv6 extension headers are
        # not listed by tshark as layers, except for "ipv6.hopopts" style names which we skip)
        first_ip, first_l4 = ip_layers[0], l4_layers[0]
        between = [p for p in layers[first_ip + 1 : first_l4] if not p.startswith("ipv6.")]
        if between:
            continue  # tunnelled (IP in IP, GRE), or quoted in ICMP
        transport = 6 if layers[first_l4] == "tcp" else 17
        v6 = layers[first_ip] == "ipv6"
        src = row["ipv6.src" if v6 else "ip.src"]
        dst = row["ipv6.dst" if v6 else "ip.dst"]
        if transport == 6:
            sport, dport = int(row["tcp.srcport"]), int(row["tcp.dstport"])
            seq = int(row["tcp.seq_raw"])
            payload = bytes.fromhex(row["tcp.payload"].replace(":", ""))
        else:
            sport, dport = int(row["udp.srcport"]), int(row["udp.dstport"])
            seq = 0
            payload = bytes.fromhex(row["udp.payload"].replace(":", ""))
        out.append(
            (ts_ns_from_epoch(row["frame.time_epoch"]), transport, src, dst, sport, dport, seq, payload)
        )
    return out


def segment_truth(seg: Segment) -> Truth:
    """A decoded segment in the same shape as `tshark_segments` rows."""
    return (
        seg.ts_ns,
        seg.transport,
        str(ipaddress.ip_address(seg.src)),
        str(ipaddress.ip_address(seg.dst)),
        seg.sport,
        seg.dport,
        seg.seq,
        bytes(seg.payload),
    )
