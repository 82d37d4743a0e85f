"""Session fixtures shared by tests/net and tests/capture: the corpus merged into one capture, and
tshark's reading of it (computed once: tshark starts slowly, and one merged file costs one start)."""

from __future__ import annotations

import os

import pytest

from tests.net.truth import CORPUS, MERGECAP, TSHARK, RawFrame, Truth, tshark_raw_frames, tshark_segments
from tests.net.variants import TsFrame, mergecap

needs_tshark = pytest.mark.skipif(
    TSHARK is None or MERGECAP is None or not CORPUS, reason="needs tshark, mergecap and the corpus"
)


@pytest.fixture(scope="session")
def corpus_merged(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Every corpus file concatenated (`mergecap -a`) into one pcapng: one interface per input file,
    Ethernet, Linux cooked and BSD loopback interfaces mixed."""
    if TSHARK is None or MERGECAP is None or not CORPUS:
        pytest.skip("needs tshark, mergecap and the corpus")
    path = str(tmp_path_factory.mktemp("corpus") / "corpus.pcapng")
    return mergecap(path, CORPUS, "-a", "-F", "pcapng")


@pytest.fixture(scope="session")
def corpus_frames(corpus_merged: str) -> list[RawFrame]:
    return tshark_raw_frames(corpus_merged)


@pytest.fixture(scope="session")
def corpus_truth(corpus_merged: str) -> list[Truth]:
    return tshark_segments(corpus_merged)


@pytest.fixture(scope="session")
def eth_frames(corpus_frames: list[RawFrame]) -> list[TsFrame]:
    """The corpus's Ethernet frames, in order (Ethernet is WTAP encapsulation 1)."""
    out = []
    for ts, encap, data in corpus_frames:
        if encap == 1:
            assert ts is not None
            out.append((ts, data))
    assert len(out) > 4000
    return out


def corpus_file(name: str) -> str:
    for path in CORPUS:
        if os.path.basename(path) == name:
            return path
    pytest.skip(f"{name} not in the corpus")
    raise AssertionError
