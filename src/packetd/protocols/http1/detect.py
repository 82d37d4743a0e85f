"""HTTP/1 detection: a request line in the client's bytes, or a status line in the server's.

    request-line = method SP request-target SP HTTP-version CRLF     (RFC 9112 §3)
    status-line  = HTTP-version SP 3DIGIT SP [ reason-phrase ] CRLF   (RFC 9112 §4)

The method must be a registered one (RFC 9110 §9, WebDAV RFC 4918, PATCH RFC 5789): a token alone would
claim SIP, RTSP and many text protocols. The version must be HTTP/1.0 or HTTP/1.1 (the HTTP/2 preface says
HTTP/2.0; RTSP and SIP name themselves). Either line may start anywhere in a stream, so a connection
joined mid-stream is detected from its next request or response that starts a segment.
"""

from __future__ import annotations

from packetd.protocols.detection import DETECT_WINDOW, MORE, NO, YES, Verdict, either_side

METHODS = frozenset(
    b"GET HEAD POST PUT DELETE CONNECT OPTIONS TRACE PATCH PROPFIND PROPPATCH MKCOL COPY MOVE LOCK UNLOCK "
    b"REPORT SEARCH".split()
)
_LONGEST_METHOD = max(len(m) for m in METHODS)
_VERSIONS = (b"HTTP/1.1", b"HTTP/1.0")


def _request(c2s: bytes) -> Verdict:
    sp = c2s.find(b" ", 0, _LONGEST_METHOD + 1)
    if sp < 0:
        head = c2s[: _LONGEST_METHOD + 1]
        if len(head) <= _LONGEST_METHOD and any(m.startswith(head) for m in METHODS):
            return MORE
        return NO
    if c2s[:sp] not in METHODS:
        return NO
    eol = c2s.find(b"\n", sp, DETECT_WINDOW)
    if eol < 0:
        if len(c2s) >= DETECT_WINDOW:
            return NO  # a request line longer than the window: not decided here (counted undetected)
        tail = c2s[sp + 1 :]
        return NO if b"\r" in tail[:-1] or b"\x00" in tail else MORE  # a CR may end the line's bytes so far
    line = c2s[sp + 1 : eol]
    if line.endswith(b"\r"):
        line = line[:-1]
    target, _, version = line.rpartition(b" ")
    if version not in _VERSIONS or not target or b" " in target:
        return NO
    if any(b < 0x21 or b == 0x7F for b in target):
        return NO
    return YES


def _status(s2c: bytes) -> Verdict:
    if len(s2c) < 13:
        head = s2c[:9]
        return MORE if b"HTTP/1.1 ".startswith(head) or b"HTTP/1.0 ".startswith(head) else NO
    if s2c[:8] not in _VERSIONS or s2c[8] != 0x20:
        return NO
    code = s2c[9:12]
    if not code.isdigit() or not 0x31 <= code[0] <= 0x35 or s2c[12] not in b" \r\n":
        return NO
    return YES


def detect(c2s: bytes, s2c: bytes) -> Verdict:
    """A request line from the client, or a status line from the server (joined mid-stream)."""
    return either_side(c2s, s2c, _request, _status)
