"""The statement text rule (packetd.protocols.sqltext), case by case, against forms written by hand."""

from __future__ import annotations

import pytest

from packetd.protocols.redact import statement
from packetd.protocols.sqltext import normalize, split_statements

CASES = [
    # (dialect, sent, recorded)
    (
        "postgresql",
        "SELECT * FROM users WHERE email = 'a@b.c' AND id = 42",
        "SELECT * FROM users WHERE email = ? AND id = ?",
    ),
    ("postgresql", "select 'it''s', E'\\'x', B'0101', X'1F', U&'d\\0061t'", "select ?, ?, ?, ?, ?"),
    (
        "postgresql",
        "SELECT $1::int, $2 FROM t1 JOIN t_2 ON t1.a = t_2.b",
        "SELECT $1::int, $2 FROM t1 JOIN t_2 ON t1.a = t_2.b",
    ),
    ("postgresql", 'SELECT "Col 1", "x""y" FROM "T"', 'SELECT "Col 1", "x""y" FROM "T"'),
    ("postgresql", "DO $$ BEGIN RAISE NOTICE 'hi'; END $$", "DO ?"),
    ("postgresql", "SELECT $tag$ a $$ b $tag$, 1.5e-3, .5, 0x1F", "SELECT ?, ?, ?, ?"),
    (
        "postgresql",
        "WHERE id IN (1, 2, 3) AND x = ANY(ARRAY[4, 5])",
        "WHERE id IN (?) AND x = ANY(ARRAY[?, ?])",
    ),
    ("postgresql", "INSERT INTO t VALUES (1, 'a'), (2, 'b'),\n (3, 'c')", "INSERT INTO t VALUES (?)"),
    (
        "postgresql",
        "SELECT 1 /* traceparent='00-abc' */ -- note 'x'",
        "SELECT ? /* traceparent='00-abc' */ -- note 'x'",
    ),
    ("postgresql", "ALTER USER bob PASSWORD 'hunter2'", "ALTER USER bob PASSWORD ?"),
    ("postgresql", "SELECT 'unterminated", "SELECT ?"),
    (
        "mysql",
        "SELECT * FROM `t` WHERE name = \"bob\" AND note = 'it\\'s' AND n = -7",
        "SELECT * FROM `t` WHERE name = ? AND note = ? AND n = -?",
    ),
    (
        "mysql",
        "SELECT _utf8mb4'x', x'4D', b'01', 0b101, 0xFF # comment 'kept'",
        "SELECT ?, ?, ?, ?, ? # comment 'kept'",
    ),
    ("mysql", "INSERT INTO t (a, b) VALUES (?, ?)", "INSERT INTO t (a, b) VALUES (?)"),
    ("mysql", "select  a,\n\tb  from t", "select a, b from t"),
]


@pytest.mark.parametrize(("dialect", "sent", "recorded"), CASES)
def test_literals_replaced(dialect: str, sent: str, recorded: str) -> None:
    assert normalize(sent, dialect) == recorded


def test_split_statements_respects_literals_and_comments() -> None:
    text = "SELECT ';'; /* ; */ SELECT $$;$$;; SELECT \"a;b\" -- ;\n; "
    assert split_statements(text, "postgresql") == ["SELECT ';'", "/* ; */ SELECT $$;$$", 'SELECT "a;b" -- ;']


def test_statement_text_drops_a_character_cut_by_the_cap_and_can_keep_literals() -> None:
    raw = "SELECT 'Zoë'".encode()[:11]  # cut inside the two-byte ë
    assert statement(raw, True, True, "postgresql") == "SELECT 'Zo"
    assert statement(raw, True, False, "postgresql") == "SELECT ?"
