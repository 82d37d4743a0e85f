"""How a Kafka record reads in `watch`'s text line (see protocols/display.py): the API and the topic (the
first, and how many more) or the consumer group. The status is already the error's name from the official
schemas (`UNKNOWN_TOPIC_OR_PARTITION`)."""

from __future__ import annotations

from packetd.protocols.display import Display, Record, join, request


def what(rec: Record) -> str:
    req = request(rec)
    topics = [t.get("name") for t in req.get("topics") or () if isinstance(t, dict) and t.get("name")]
    if topics:
        more = f"+{len(topics) - 1}" if len(topics) > 1 else ""
        return join(rec.get("operation"), topics[0], more)
    group = req.get("group_id")
    return join(rec.get("operation"), f"group {group}" if group else "")


DISPLAY = Display(what=what)
