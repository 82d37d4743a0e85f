"""Kafka fuzzing: random and mutated messages in any segmentation give only messages or DecodeError."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from packetd.protocols.base import DecoderContext
from packetd.protocols.kafka.decoder import MAX_INFLIGHT, KafkaDecoder
from packetd.protocols.kafka.options import KafkaOptions
from tests.helpers.fuzzing import Chunk, chunks, drive
from tests.protocols.kafka.test_decoder import CASES

SEEDS = [data for steps, _ in CASES.values() for _, data in steps]
OPTS = KafkaOptions(max_parse_bytes=64 * 1024)
BOUND = 2 * (OPTS.max_parse_bytes + 16) + MAX_INFLIGHT * 16


def decoder(midstream: bool) -> KafkaDecoder:
    return KafkaDecoder(DecoderContext(options=OPTS, midstream=midstream, shared={}))


@settings(max_examples=400, deadline=None)
@given(chunks(SEEDS), st.integers(0, 9))
def test_random_conversations(conversation: list[Chunk], split: int) -> None:
    drive(decoder, conversation, BOUND, split)
