"""MongoDB fuzzing: random and mutated messages in any segmentation give only messages or DecodeError."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from packetd.protocols.base import DecoderContext
from packetd.protocols.mongodb.decoder import MAX_EXHAUST, MongoDecoder
from packetd.protocols.mongodb.options import MongoOptions
from tests.helpers.fuzzing import Chunk, chunks, drive
from tests.protocols.mongodb.test_decoder import CASES

SEEDS = [data for steps, _ in CASES.values() for _, data in steps]
OPTS = MongoOptions(max_parse_bytes=64 * 1024, max_decompress=64 * 1024)
BOUND = 2 * (OPTS.max_parse_bytes + 64) + 3 * MAX_EXHAUST * 64  # kept bodies, id maps


def decoder(midstream: bool) -> MongoDecoder:
    return MongoDecoder(DecoderContext(options=OPTS, midstream=midstream))


@settings(max_examples=400, deadline=None)
@given(chunks(SEEDS), st.integers(0, 9))
def test_random_conversations(conversation: list[Chunk], split: int) -> None:
    drive(decoder, conversation, BOUND, split)
