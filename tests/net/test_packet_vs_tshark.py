"""PacketDecoder against tshark: for real captures and for every link-type variant derived from them, the
sequence of (ts_ns, transport, src, dst, sport, dport, seq, payload) must be exactly what tshark reads from
the same file (tests/net/truth.py says which frames count as segments)."""

from __future__ import annotations

import os

import pytest

from packetd.net.packet import PacketDecoder
from tests.net import variants as v
from tests.net.fixtures import needs_tshark
from tests.net.truth import (
    CORPUS,
    RawFrame,
    Truth,
    our_segments,
    tshark_l4_positions,
    tshark_segment_rows,
    tshark_segments,
)

pytestmark = needs_tshark

DATA = os.path.join(os.path.dirname(__file__), "..", "capture", "data")
FIXTURES = sorted(os.path.join(DATA, f) for f in os.listdir(DATA) if f.endswith(".pcap"))


def test_corpus_merged(corpus_merged: str, corpus_truth: list[Truth]) -> None:
    """All corpus files in one multi-interface pcapng (Ethernet, Linux cooked, BSD loopback)."""
    assert len(corpus_truth) > 5000
    assert our_segments(corpus_merged) == corpus_truth


@pytest.mark.slow
@pytest.mark.parametrize("path", CORPUS, ids=os.path.basename)
def test_corpus_file(path: str) -> None:
    assert our_segments(path) == tshark_segments(path)


@pytest.mark.slow
@pytest.mark.parametrize("path", CORPUS, ids=os.path.basename)
def test_corpus_file_other_formats(path: str, tmp_path: object) -> None:
    """Each corpus file rewritten by editcap as pcapng and as nanosecond pcap."""
    expected = tshark_segments(path)
    for fmt in ("pcapng", "nsecpcap"):
        variant = v.editcap(path, os.path.join(str(tmp_path), "v." + fmt), "-F", fmt)
        truth = tshark_segments(variant)
        assert truth == expected
        assert our_segments(variant) == truth


@pytest.mark.parametrize("path", FIXTURES, ids=os.path.basename)
def test_recorded_fixture(path: str) -> None:
    """Real loopback captures (tcpdump -i any: SLL and SLL2; -i lo: nanosecond Ethernet) with IPv4 and
    IPv6 HTTP, fragmented UDP and ICMP errors quoting UDP (see data/make_fixtures.py)."""
    truth = tshark_segments(path)
    assert {t[2] for t in truth} == {"127.0.0.1", "::1"}
    assert sum(len(t[7]) == 2822 for t in truth) == 2  # the two reassembled 2822-byte datagrams
    assert our_segments(path) == truth


VARIANTS = {
    "raw101": (101, v.to_raw),
    "raw12": (12, v.to_raw),
    "raw14": (14, v.to_raw),
    "null_le": (0, lambda fr: v.to_null(fr, "<")),
    "null_be": (0, lambda fr: v.to_null(fr, ">")),
    "loop": (108, lambda fr: v.to_null(fr, ">")),
    "sll": (113, v.to_sll),
    "sll2": (276, v.to_sll2),
    "sll_loopback_copies": (113, lambda fr: v.to_sll(fr, duplicates=True)),
    "sll2_loopback_copies": (276, lambda fr: v.to_sll2(fr, duplicates=True)),
    "vlan_8021q": (1, lambda fr: v.with_vlans(fr, (0x8100,))),
    "vlan_8021ad": (1, lambda fr: v.with_vlans(fr, (0x88A8,))),
    "vlan_qinq": (1, lambda fr: v.with_vlans(fr, (0x88A8, 0x8100))),
    "vlan_9100_qinq": (1, lambda fr: v.with_vlans(fr, (0x9100, 0x8100))),
    "vlan_triple": (1, lambda fr: v.with_vlans(fr, (0x88A8, 0x8100, 0x8100))),
}


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_link_type_variant(name: str, eth_frames: list[v.TsFrame], tmp_path: object) -> None:
    linktype, convert = VARIANTS[name]
    frames = eth_frames[:2500]
    path = v.write_pcap(os.path.join(str(tmp_path), name + ".pcap"), convert(frames), linktype)
    truth = tshark_segments(path)
    assert len(truth) > 2000
    assert our_segments(path) == truth


def test_raw_ipv4_ipv6_link_types(eth_frames: list[v.TsFrame], tmp_path: object) -> None:
    """LINKTYPE_IPV4 (228) and LINKTYPE_IPV6 (229) each carry one IP version."""
    for linktype, et in ((228, 0x0800), (229, 0x86DD)):
        frames = [(ts, f[14:]) for ts, f in eth_frames if v.ethertype(f) == et]
        path = v.write_pcap(os.path.join(str(tmp_path), f"lt{linktype}.pcap"), frames, linktype)
        truth = tshark_segments(path)
        assert truth
        assert our_segments(path) == truth


def test_ip_version_filter(corpus_merged: str, corpus_truth: list[Truth]) -> None:
    """--ipv 4 / --ipv 6: exactly tshark's IPv4 (IPv6) segments, the rest counted as filtered."""
    v4 = [t for t in corpus_truth if ":" not in t[2]]
    v6 = [t for t in corpus_truth if ":" in t[2]]
    assert v4 and v6
    dec4 = PacketDecoder(ip_versions=frozenset({4}))
    assert our_segments(corpus_merged, dec4) == v4
    dec6 = PacketDecoder(ip_versions=frozenset({6}))
    assert our_segments(corpus_merged, dec6) == v6
    assert dec4.stats.filtered_ip_version >= len(v6)
    assert dec6.stats.filtered_ip_version >= len(v4)


def _snapped_expectation(path: str, snaplen: int) -> list[Truth]:
    """What a capture of `path` snapped to `snaplen` bytes must decode to, worked out from tshark's
    reading of the whole frames: a segment when its transport header's ports, sequence and flags (14
    bytes of TCP, 6 of UDP) were captured, with the captured part of its payload."""
    rows = tshark_segment_rows(path)
    pos = tshark_l4_positions(path)
    out = []
    for number, t in rows:
        l4, payload_at = pos[number]
        need = l4 + (14 if t[1] == 6 else 6)
        if snaplen < need:
            continue
        keep = max(0, snaplen - payload_at)
        out.append((*t[:7], t[7][:keep]))
    return out


@pytest.mark.parametrize("snaplen", [40, 54, 60, 64, 68, 74, 80, 96, 128, 200, 1000])
def test_snapped_frames(snaplen: int, tmp_path: object) -> None:
    """caplen < wire length: what was captured is decoded, never more (editcap -s cuts the frames)."""
    sources = [os.path.join(DATA, "lo_ether_ns.pcap"), os.path.join(DATA, "any_sll2.pcap")]
    for src in sources:
        whole = [t for t in tshark_segments(src) if len(t[7]) != 2822]  # fragments cannot be snapped
        assert whole
        path = v.editcap(src, os.path.join(str(tmp_path), f"s{snaplen}.pcap"), "-s", str(snaplen))
        expected = [t for t in _snapped_expectation(src, snaplen) if len(t[7]) < 2822 or snaplen >= 1000]
        ours = our_segments(path)
        # the datagrams reassembled from fragments are lost once a fragment is cut
        assert [t for t in ours if t[1] == 6] == [t for t in expected if t[1] == 6]
        assert len([t for t in ours if t[1] == 17]) <= len([t for t in expected if t[1] == 17])


def test_mixed_link_types_in_one_file(corpus_frames: list[RawFrame], tmp_path: object) -> None:
    """One pcapng whose interfaces are raw IP, NULL, LOOP, SLL, SLL2 and VLAN-tagged Ethernet, with the
    packets interleaved: each frame decoded by its own interface's link type."""
    eth = [(ts, d) for ts, encap, d in corpus_frames if encap == 1 and ts is not None][:1500]
    kinds = [
        (101, v.to_raw),
        (0, lambda fr: v.to_null(fr, "<")),
        (108, lambda fr: v.to_null(fr, ">")),
        (113, v.to_sll),
        (276, lambda fr: v.to_sll2(fr, duplicates=True)),
        (1, lambda fr: v.with_vlans(fr, (0x88A8, 0x8100))),
    ]
    path = os.path.join(str(tmp_path), "mixed.pcapng")
    with open(path, "wb") as f:
        from packetd.capture.pcapwrite import PcapngWriter

        w = PcapngWriter(f)
        ifaces = [w.add_interface(lt, tsresol=9) for lt, _ in kinds]
        for i, fr in enumerate(eth):
            k = i % len(kinds)
            for ts, data in kinds[k][1]([fr]):
                w.write(ifaces[k], ts, data)
    truth = tshark_segments(path)
    assert len(truth) > 1000
    assert our_segments(path) == truth


def test_format_variants_give_identical_segments(eth_frames: list[v.TsFrame], tmp_path: object) -> None:
    """The same packets in pcap (both byte orders, µs and ns) and pcapng (both byte orders, editcap's and
    ours, µs/ns/2^-30 resolutions): the same segments as tshark reads from the nanosecond pcap."""
    frames = eth_frames[:2000]
    d = str(tmp_path)
    paths = [
        v.write_pcap(os.path.join(d, f"{o}{ns}.pcap"), frames, 1, byteorder=o, nanosecond=ns)
        for o in "<>"
        for ns in (False, True)
    ]
    paths.append(v.editcap(paths[0], os.path.join(d, "e.pcapng"), "-F", "pcapng"))
    paths.append(v.editcap(paths[3], os.path.join(d, "e_ns.pcapng"), "-F", "pcapng"))
    for o, res in ((">", 6), ("<", 9), (">", 0x80 | 30)):
        name = os.path.join(d, f"{o}{res}.pcapng")
        paths.append(
            v.write_pcapng_sections(name, [(1, frames)], lambda i, o=o, res=res: {"order": o, "tsresol": res})
        )
    # a coarser resolution rounds the time down, by less than its unit (1 µs at most here)
    expected = tshark_segments(paths[1])  # nanosecond pcap: the frames' own times
    assert len(expected) > 1500
    for path in paths:
        ours = our_segments(path)
        assert [t[1:] for t in ours] == [t[1:] for t in expected], path
        assert all(0 <= e[0] - o[0] < 1000 for o, e in zip(ours, expected, strict=True)), path
