"""Independent truth for L2-L4 decoding: what tshark says every frame of a capture carries.

`tshark_segments(path)` runs tshark over a capture and returns, for every frame that carries a TCP segment
or a UDP datagram directly over IP (not quoted inside ICMP, not tunnelled), the tuple a `Segment` must match:
(ts_ns, transport, src, dst, sport, dport, seq, payload). Frames that are the outgoing copy of a loopback
packet in a Linux cooked capture (sll.pkttype 4 on hatype 772) are left out, as the decoder drops them.
"""

from __future__ import annotations

import functools
import glob
import ipaddress
import os
import shutil
import subprocess
from decimal import Decimal

import orjson

from packetd.capture.pcapfile import CaptureFile
from packetd.net.packet import PacketDecoder, Segment

TSHARK = shutil.which("tshark")
EDITCAP = shutil.which("editcap")
MERGECAP = shutil.which("mergecap")
CORPUS_DIR = "/work/shared/corpus"
CORPUS = sorted(glob.glob(os.path.join(CORPUS_DIR, "*", "*.pcap*")))

# Wireshark's WTAP_ENCAP_* (wiretap/wtap.h) for the link types we decode: tshark reports frames by these
WTAP_ENCAP = {0: 15, 1: 1, 12: 7, 14: 7, 101: 7, 108: 174, 113: 25, 228: 129, 229: 130, 276: 210}

RawFrame = tuple[int | None, int, bytes]  # ts_ns (None: the block carries no time), WTAP encap, bytes

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


def _cached(fn):  # type: ignore[no-untyped-def]
    """Memoise a function of a capture's path on (path, size, mtime): tshark starts slowly."""
    memo = functools.lru_cache(maxsize=64)(lambda path, _stamp, *a: fn(path, *a))

    @functools.wraps(fn)
    def wrapper(path: str, *args):  # type: ignore[no-untyped-def]
        st = os.stat(path)
        return memo(path, (st.st_size, st.st_mtime_ns, st.st_ino), *args)

    return wrapper


@_cached
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


@_cached
def tshark_raw_frames(path: str) -> list[RawFrame]:
    """Every frame as tshark reads it: (ts_ns, WTAP encapsulation, captured bytes)."""
    assert TSHARK is not None
    cmd = [TSHARK, "-n", "-r", path, "-T", "json", "-x", "-J", "frame"]
    out = subprocess.run(cmd, capture_output=True, check=True).stdout
    frames: list[RawFrame] = []
    for pkt in orjson.loads(out):
        layers = pkt["_source"]["layers"]
        frame = layers["frame"]
        if "frame.encap_type" not in frame:
            continue  # not a packet: tshark lists pcapng custom blocks as records too
        epoch = frame.get("frame.time_epoch")
        ts = ts_ns_from_epoch(epoch) if epoch and "frame.time" in frame else None
        raw = bytes.fromhex(layers["frame_raw"][0]) if "frame_raw" in layers else b""
        frames.append((ts, int(frame["frame.encap_type"]), raw))
    return frames


def our_raw_frames(path: str) -> tuple[list[RawFrame], list[str]]:
    """What CaptureFile yields, in the same shape (link types mapped to tshark's encapsulations)."""
    cf = CaptureFile(path)
    frames: list[RawFrame] = [(ts, WTAP_ENCAP.get(lt, -lt), bytes(d)) for ts, lt, d in cf]
    cf.close()
    return frames, cf.warnings


def our_segments(path: str, decoder: PacketDecoder | None = None) -> list[Truth]:
    """What CaptureFile + PacketDecoder produce, in the shape of `tshark_segments`."""
    dec = decoder or PacketDecoder()
    cf = CaptureFile(path)
    out = []
    for ts, lt, d in cf:
        seg = dec.decode(ts, lt, d)
        if seg is not None:
            out.append(segment_truth(seg))
    cf.close()
    return out


_EXT = frozenset({"ah", "shim6"})


def _layers(protocols: str) -> list[str]:
    return protocols.split(":")


def tshark_segment_rows(path: str, extra: tuple[str, ...] = ()) -> list[tuple[int, Truth]]:
    """(frame number, segment) for every frame that carries one (see the module docstring)."""
    out: list[tuple[int, Truth]] = []
    for row in tshark_frames(path, extra):
        layers = _layers(row["frame.protocols"])
        if row["sll.pkttype"] == "4" and row["sll.hatype"] == "772":
            continue
        ip_layers = [i for i, p in enumerate(layers) if p in ("ip", "ipv6")]
        l4_layers = [i for i, p in enumerate(layers) if p in ("tcp", "udp")]
        if not ip_layers or not l4_layers:
            continue
        # the first transport layer must follow the first IP layer directly, but for the extension headers
        # tshark lists as layers ("ipv6.hopopts", "ipv6.routing", "ipv6.dstopts", "ah", "shim6")
        first_ip, first_l4 = ip_layers[0], l4_layers[0]
        between = [p for p in layers[first_ip + 1 : first_l4] if not p.startswith("ipv6.") and p not in _EXT]
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
        ts = ts_ns_from_epoch(row["frame.time_epoch"])
        out.append((int(row["frame.number"]), (ts, transport, src, dst, sport, dport, seq, payload)))
    return out


def tshark_segments(path: str, extra: tuple[str, ...] = ()) -> list[Truth]:
    """The segments tshark sees, in frame order (see the module docstring for what is excluded)."""
    return [t for _, t in tshark_segment_rows(path, extra)]


@_cached
def tshark_l4_positions(path: str) -> dict[int, tuple[int, int]]:
    """frame number -> (offset of the transport header, offset of its payload) within the frame."""
    assert TSHARK is not None
    cmd = [TSHARK, "-n", "-r", path, "-T", "json", "-x", "-J", "frame tcp udp"]
    out: dict[int, tuple[int, int]] = {}
    for pkt in orjson.loads(subprocess.run(cmd, capture_output=True, check=True).stdout):
        layers = pkt["_source"]["layers"]
        number = int(layers["frame"]["frame.number"])
        for proto in ("tcp", "udp"):
            if proto + "_raw" not in layers:
                continue
            start = layers[proto + "_raw"][1]
            hdr = int(layers["tcp"]["tcp.hdr_len"]) if proto == "tcp" else 8
            out[number] = (start, start + hdr)
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
