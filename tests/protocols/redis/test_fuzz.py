"""Fuzz the Redis decoder: random bytes give only messages or DecodeError with bounded buffers, and real
traffic cut at random places gives the same records as the same traffic in one piece."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from packetd.protocols.base import MAX_PENDING, Role
from packetd.protocols.redis.decoder import MAX_DEPTH, MAX_LINE, RedisDecoder, new_decoder
from tests.helpers.decoding import project
from tests.helpers.fuzzing_db import drive, events, whole_and_segmented
from tests.protocols.redis.test_decoder import CASES


def bounded(d: RedisDecoder) -> None:
    assert len(d._c.buf) <= MAX_LINE and len(d._s.buf) <= MAX_LINE
    assert len(d._s.stack) <= MAX_DEPTH and d._expect.tracked <= MAX_PENDING
    assert len(d._c.cap) <= 256 and len(d._s.cap) <= 256


@settings(max_examples=300, deadline=None)
@given(events(), st.booleans())
def test_random_bytes_give_messages_or_decode_errors(evs: list, midstream: bool) -> None:
    drive(new_decoder, evs, bounded, midstream)


PREFIXES = [b"*", b"$", b"+", b"-", b":", b"%", b"~", b">", b"|", b"_", b",", b"#", b"!", b"=", b"(", b"\r\n"]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 1),
            st.lists(
                st.one_of(
                    st.sampled_from(PREFIXES),
                    st.binary(max_size=6),
                    st.sampled_from([b"3\r\n", b"-1\r\n", b"?\r\n"]),
                )
            ).map(b"".join),
        ),
        max_size=30,
    )
)
def test_resp_shaped_garbage(chunks: list) -> None:
    drive(new_decoder, [("data", d, b) for d, b in chunks if b], bounded)


CASE = st.sampled_from(sorted(CASES))


@settings(max_examples=200, deadline=None)
@given(CASE, st.data())
def test_any_segmentation_gives_the_same_records(name: str, data: st.DataObject) -> None:
    steps, _ = CASES[name]
    expected, got = whole_and_segmented(RedisDecoder, steps, data)
    assert project(got) == project(expected)
    assert [m.ROLE for m in got] == [m.ROLE for m in expected]
    assert all(m.ROLE is not Role.CONTROL for m in got)
