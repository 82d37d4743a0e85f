"""Golden tests (PostgreSQL): every capture of the shared corpus, replayed through the whole engine.

The truth: tshark's message counts from MANIFEST.tsv (the counts below equal tshark's unless a difference is
listed with its reason). The checked-in expected records (tests/golden/<protocol>/<file>.jsonl) are compared
by one parametrised test for every protocol: tests/protocols/test_golden_records.py.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.helpers.golden import RULES_FOR, ManifestRow, manifest, note_count, run_file

# -- PostgreSQL ----------------------------------------------------------------------------------------------
# tshark counts one response per query cycle (ReadyForQuery after a simple Query or a Sync); we report one
# roundtrip per statement result of a simple Query and per Execute. They agree unless listed here.
POSTGRES_EXPLAINED: dict[str, tuple[int, str]] = {
    "ntop_nDPI__pgsql.pcap": (
        7,
        "frame 23 carries one extended-query cycle with two Executes (Parse/Bind/Execute, "
        "Parse/Bind/Describe/Execute, one Sync): tshark counts the cycle once, we count each Execute",
    ),
}

POSTGRES = manifest("postgresql")


def _answered_startups(row: ManifestRow) -> int:
    """TCP streams where tshark saw a Startup message and a backend answer to it (an Authentication
    request or an ErrorResponse)."""
    if not note_count(row, "Startup"):
        return 0
    if shutil.which("tshark") is None:
        pytest.skip("tshark is not installed (make test-deps)")
    decode = [a for p in row.ports for a in ("-d", f"tcp.port=={p},pgsql")]
    out = subprocess.run(
        ["tshark", "-r", row.path, *decode, "-Y", "pgsql", "-T", "fields", "-e", "tcp.stream", "-e", "pgsql.type"],
        capture_output=True, text=True, check=True, timeout=120,
    ).stdout  # fmt: skip
    started: set[str] = set()
    answered: set[str] = set()
    for line in out.splitlines():
        stream, _, types = line.partition("\t")
        if "Startup message" in types:
            started.add(stream)
        elif stream in started and ("Authentication request" in types or "Error" in types):
            answered.add(stream)
    return len(answered)


@pytest.mark.parametrize("row", POSTGRES, ids=lambda r: r.name)
def test_postgresql_counts_against_tshark(row: ManifestRow) -> None:
    records, engine = run_file(row.path, RULES_FOR["postgresql"](row))
    roundtrips = [r for r in records if r.kind == "roundtrip"]
    expected = POSTGRES_EXPLAINED[row.name][0] if row.name in POSTGRES_EXPLAINED else row.tshark_responses
    assert len(roundtrips) == expected
    # start-ups: every StartupMessage the server answered (tshark: an Authentication request or an error in
    # its stream) is one handshake record, those that reached AuthenticationOk and those the client left
    # after the password prompt (psql does, then connects again: issue 9 item 17); only a StartupMessage
    # the server never answered is an unanswered request
    answered = _answered_startups(row)
    handshakes = [r for r in records if r.kind == "handshake" and r.operation == "StartupMessage"]
    assert len(handshakes) == answered >= note_count(row, "AuthOk")
    unfinished = [r for r in records if r.kind == "unanswered" and r.operation == "StartupMessage"]
    assert len(unfinished) == note_count(row, "Startup") - answered
    stats = engine.protocol_stats["postgresql"]
    assert stats.resets == 0, stats.decode_errors
    assert stats.pairing.orphans == 0


def test_postgresql_gss_and_ssl_answers() -> None:
    row = next(r for r in POSTGRES if r.name == "ntop_nDPI__pgsql.pcap")
    records, engine = run_file(row.path, RULES_FOR["postgresql"](row))
    # streams 2 and 4: GSSENCRequest answered 'G' (frames 45, 68): encrypted, nothing decoded
    assert engine.protocol_stats["postgresql"].encrypted == 2
    # stream 5: SSLRequest answered 'N' (frame 78), then SCRAM: the handshake says so
    scram = [
        r.to_json()
        for r in records
        if r.kind == "handshake" and r.to_json()["response"]["auth"] == "SCRAM-SHA-256"
    ]
    assert (
        len(scram) == 1
        and scram[0]["request"]["ssl_request"]
        and scram[0]["response"]["encryption_answer"] == "N"
    )
