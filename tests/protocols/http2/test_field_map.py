"""`field_map` keeps what it built for a fields tuple it saw before (the decoder hands out the same tuple for
a repeated header block): the same map as building it anew for any fields, redact set and never-indexed
names; a fresh dict of fresh lists every call (a caller may change its own); bounded in entries and in
what one entry keeps."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from packetd.protocols.http2 import fields as mod
from packetd.protocols.http2.fields import MAX_FIELD_MAPS, MAX_MAPPED_BYTES, field_map

NAMES = st.sampled_from([b"content-type", b"authorization", b"x-token", b"grpc-message", b"host", b"te",
                         b"x-bin", b"cookie", b"x-a"])  # fmt: skip
VALUES = st.one_of(
    st.sampled_from([b"Bearer abc", b"a 'quoted' x", b"u:p@h", b"\xff\xfe"]), st.binary(max_size=12)
)
FIELDS = st.lists(st.tuples(NAMES, VALUES), max_size=8).map(tuple)
REDACT = st.sampled_from([frozenset(), frozenset({"authorization"}), frozenset({"*token*", "cookie"})])
SENSITIVE = st.sampled_from([frozenset(), frozenset({b"x-a"}), frozenset({b"te", b"cookie"})])


@settings(max_examples=300, deadline=None)
@given(FIELDS, REDACT, SENSITIVE)
def test_the_same_map_as_built_anew(fields: tuple, redact: frozenset, sensitive: frozenset) -> None:
    fresh = mod._build_field_map(fields, redact, sensitive)
    first = field_map(fields, redact, sensitive)
    again = field_map(fields, redact, sensitive)
    assert first == fresh and again == fresh
    if again:
        key = next(iter(again))
        again[key].append("changed")
        again["new"] = ["x"]
        assert field_map(fields, redact, sensitive) == fresh  # what a caller does to its map stays its own


def test_bounded() -> None:
    for i in range(3 * MAX_FIELD_MAPS):
        field_map(((b"x-n", str(i).encode()),), frozenset(), frozenset())
        assert len(mod._field_maps) <= MAX_FIELD_MAPS
    big = ((b"x-big", b"v" * (MAX_MAPPED_BYTES + 1)),)
    assert field_map(big, frozenset(), frozenset()) == {"x-big": ["v" * 4096]}
    assert (big, frozenset(), frozenset()) not in mod._field_maps
