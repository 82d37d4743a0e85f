"""How an HTTP/1 record reads in `watch`'s text line (see protocols/display.py): method, the redacted
target, and (after it, so a cut line loses it first) the Host header when it is not just the server's address; the status with its reason phrase
when that says more than the number does (anything but 2xx)."""

from __future__ import annotations

from http import HTTPStatus

from packetd.protocols.display import Display, Record, join, other_host, plain_status

# IANA's HTTP status code registry as Python ships it; the wire's own reason phrase is the server's choice
# (and absent in HTTP/2), so the standard phrase is shown
REASONS = {int(s): s.phrase for s in HTTPStatus}


def what(rec: Record) -> str:
    req = rec.get("request") or {}
    host = other_host(req.get("host"), rec)
    target = req.get("target") or req.get("path") or ""
    return join(rec.get("operation"), target, f"({host})" if host else "")


def status(rec: Record) -> str:
    code = str(rec.get("status") or "")
    if code.isdigit() and not 200 <= int(code) < 300 and int(code) in REASONS:
        return f"{code} {REASONS[int(code)]}"
    return plain_status(rec)


DISPLAY = Display(what=what, status=status)
