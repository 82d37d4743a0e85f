"""AMQP fuzzing: random and mutated frames in any segmentation give only messages or DecodeError."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from packetd.protocols.amqp.decoder import MAX_FRAME_BUFFER, MAX_PENDING, AmqpDecoder
from packetd.protocols.base import DecoderContext
from tests.helpers.fuzzing import Chunk, chunks, drive
from tests.protocols.amqp.test_decoder import CASES, HEADER

SEEDS = [data for steps, _ in CASES.values() for _, data in steps] + [HEADER]
# a partial frame per direction, one content header per channel in progress, pending keys; generous
BOUND = 2 * (MAX_FRAME_BUFFER + 16) + MAX_PENDING * 64


def decoder(midstream: bool) -> AmqpDecoder:
    return AmqpDecoder(DecoderContext(midstream=midstream))


@settings(max_examples=300, deadline=None)
@given(chunks(SEEDS), st.integers(0, 9))
def test_random_conversations(conversation: list[Chunk], split: int) -> None:
    drive(decoder, conversation, BOUND, split)


@settings(max_examples=200, deadline=None)
@given(chunks(SEEDS), st.integers(0, 9))
def test_after_a_valid_handshake(conversation: list[Chunk], split: int) -> None:
    drive(decoder, [(0, HEADER), *conversation], BOUND, split)
