"""Golden tests (MySQL): every capture of the shared corpus, replayed through the whole engine.

The truth: tshark's message counts from MANIFEST.tsv (the counts below equal tshark's unless a difference is
listed with its reason). The checked-in expected records (tests/golden/<protocol>/<file>.jsonl) are compared
by one parametrised test for every protocol: tests/protocols/test_golden_records.py.
"""

from __future__ import annotations

import re

import pytest

from tests.helpers.golden import RULES_FOR, ManifestRow, manifest, note_count, run_file

# -- MySQL ---------------------------------------------------------------------------------------------------
# tshark's responses are commands answered (manifest README); COM_QUIT, COM_STMT_SEND_LONG_DATA and
# COM_STMT_CLOSE are never answered and are one-way records; the notes' `cmds=` histogram counts them and
# `login_requests=` the logins. Every file agrees, except for this explained difference:
MYSQL_SSL_REQUESTS: dict[str, tuple[int, str]] = {
    "ntop_nDPI__mysql.pcapng": (
        1,
        "tshark counts the SSLRequest of stream 1 (frame 21, 32-byte payload with CLIENT_SSL) among the "
        "login requests; TLS follows, so it is counted as an encrypted connection, not a handshake record",
    ),
}
MYSQL = manifest("mysql")
MYSQL_ONEWAY_CODES = (1, 24, 25)
# `tshark -r njcx_packetbeat__mysql_long.pcap -Y mysql -T fields -E occurrence=a -e mysql.row.text`: 400 values
MYSQL_LONG_ROWS = 400


def _histogram(row: ManifestRow) -> dict[int, int]:
    m = re.search(r"\bcmds=([0-9:;]+)", row.notes)
    assert m is not None
    return {int(k): int(v) for k, v in (kv.split(":") for kv in m.group(1).split(";") if kv)}


@pytest.mark.parametrize("row", MYSQL, ids=lambda r: r.name)
def test_mysql_counts_against_tshark(row: ManifestRow) -> None:
    records, engine = run_file(row.path, RULES_FOR["mysql"](row))
    kinds: dict[str, int] = {}
    for r in records:
        kinds[r.kind] = kinds.get(r.kind, 0) + 1
    oneway_commands = sum(n for code, n in _histogram(row).items() if code in MYSQL_ONEWAY_CODES)
    assert kinds.get("roundtrip", 0) == row.tshark_responses
    assert sum(1 for r in records if r.kind == "oneway" and r.request is not None) == oneway_commands
    ssl = MYSQL_SSL_REQUESTS.get(row.name, (0, ""))[0]
    assert kinds.get("handshake", 0) == note_count(row, "login_requests") - ssl
    assert engine.protocol_stats["mysql"].encrypted == ssl
    # commands whose answer is not in the capture (truncated connections): unanswered, never invented
    unanswered = row.tshark_requests - row.tshark_responses - oneway_commands
    assert kinds.get("unanswered", 0) == unanswered
    stats = engine.protocol_stats["mysql"]
    assert stats.resets == 0, stats.decode_errors
    assert stats.pairing.orphans == 0


def test_mysql_long_result_counts_every_row_across_sequence_id_wraps() -> None:
    row = next(r for r in MYSQL if r.name == "njcx_packetbeat__mysql_long.pcap")
    records, _ = run_file(row.path, RULES_FOR["mysql"](row))
    (rt,) = records
    # tshark: the result set's row packets (mysql.packet_number wraps past 255)
    assert rt.to_json()["response"]["rows"] == MYSQL_LONG_ROWS
