"""DNS fuzzing: random and mutated datagrams and TCP streams give only messages or DecodeError."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from packetd.protocols.base import DecoderContext
from packetd.protocols.dns.decoder import MAX_MESSAGE, MAX_PENDING_QUERIES, DnsDecoder
from tests.helpers.fuzzing import Chunk, chunks, drive
from tests.protocols.dns.test_decoder import EXCHANGES, tcp

SEEDS = [m.to_wire() for pair in EXCHANGES.values() for m in pair]
# what a flow may hold: one partial message per direction plus the remembered query keys (names ≤ 255)
BOUND = 2 * (MAX_MESSAGE + 2) + MAX_PENDING_QUERIES * 256


def udp(midstream: bool) -> DnsDecoder:
    return DnsDecoder(DecoderContext(midstream=midstream, transport="udp"))


def tcp_dec(midstream: bool) -> DnsDecoder:
    return DnsDecoder(DecoderContext(midstream=midstream, transport="tcp"))


@settings(max_examples=300, deadline=None)
@given(chunks(SEEDS))
def test_udp_datagrams(conversation: list[Chunk]) -> None:
    drive(udp, conversation, BOUND)


@settings(max_examples=300, deadline=None)
@given(chunks([tcp(s) for s in SEEDS]), st.integers(0, 7))
def test_tcp_streams_any_segmentation(conversation: list[Chunk], split: int) -> None:
    drive(tcp_dec, conversation, BOUND, split)
