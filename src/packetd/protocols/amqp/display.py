"""How an AMQP record reads in `watch`'s text line (see protocols/display.py): the method with the
exchange (`x=`), queue (`q=`) and routing key (`rk=`) it names (a Queue.Declare's queue from the broker's
answer when the client let it choose); the reply code with its name from the spec (`404 NOT_FOUND`)."""

from __future__ import annotations

from packetd.protocols.display import Display, Record, join, plain_status, request, response


def what(rec: Record) -> str:
    req = request(rec)
    resp = response(rec)
    queue = req.get("queue") or resp.get("queue")
    parts = [
        f"x={req['exchange']}" if req.get("exchange") else "",
        f"q={queue}" if queue else "",
        f"rk={req['routing_key']}" if req.get("routing_key") else "",
    ]
    return join(rec.get("operation"), *parts)


def status(rec: Record) -> str:
    name = response(rec).get("reply_name")
    code = rec.get("status")
    return f"{code} {name}" if name and code and name != code else plain_status(rec)


DISPLAY = Display(what=what, status=status)
