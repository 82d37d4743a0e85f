"""Redis detection: a command as clients send it, a RESP array of bulk strings (RESP2/RESP3 "Sending
commands to a Redis server"); an inline command only with a RESP reply as evidence.

    *<count>\\r\\n $<len>\\r\\n <command name> \\r\\n ...        count 1..1048576, the name letters

The command name must be letters (modules add `.` `_` `-`: JSON.SET, FT._LIST) and its length must be
what `$` said. Any command may start a segment mid-stream, so a connection joined mid-stream is detected
from its next command. An inline command (`PING\\r\\n`) is any text line; it counts only when the server's
bytes are a RESP reply to it, and not for verbs of the line protocols that answer `+OK` too (POP3's QUIT).
"""

from __future__ import annotations

from packetd.protocols.detection import MORE, NO, YES, Verdict

_MAX_ARGS = 1024 * 1024  # the server's own limit on a multibulk length
_MAX_NAME = 32  # the longest command name (CLIENT ... subcommands are arguments) is ~25 letters
_NAME_CHARS = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz._-|")
# inline verbs accepted with a RESP reply: Redis's own, none of POP3/IMAP/SMTP/FTP's (they answer +OK too)
_INLINE = frozenset(
    b"PING ECHO INFO GET SET DEL EXISTS KEYS SCAN TYPE TTL PTTL AUTH SELECT DBSIZE HELLO PUBLISH SUBSCRIBE "
    b"PSUBSCRIBE UNSUBSCRIBE MGET MSET SETEX SETNX INCR INCRBY DECR DECRBY EXPIRE HGET HSET HGETALL HDEL LPUSH "
    b"RPUSH LPOP RPOP LRANGE LLEN SADD SREM SMEMBERS ZADD ZRANGE ZREM MULTI EXEC DISCARD WATCH FLUSHDB "
    b"FLUSHALL CONFIG CLIENT MONITOR COMMAND EVAL XADD XREAD".split()
)
_REPLY_TYPES = frozenset(b"+-:$*%_,#(=!|>~")


def _digits(buf: bytes, start: int, limit: int) -> tuple[int, int] | Verdict:
    """The decimal number at `start` ended by CRLF: (value, index after CRLF), or MORE / NO."""
    end = buf.find(b"\r\n", start, start + 9)
    if end < 0:
        frag = buf[start : start + 9]
        if frag.endswith(b"\r"):
            frag = frag[:-1]  # the CRLF cut in half
        return MORE if len(buf) - start < 9 and (not frag or frag.isdigit()) else NO
    text = buf[start:end]
    if not text.isdigit() or len(text) > 8:
        return NO
    value = int(text)
    return (value, end + 2) if 0 < value <= limit else NO


def _array(c2s: bytes) -> Verdict:
    count = _digits(c2s, 1, _MAX_ARGS)
    if not isinstance(count, tuple):
        return count
    pos = count[1]
    if len(c2s) <= pos:
        return MORE
    if c2s[pos] != 0x24:  # '$'
        return NO
    size = _digits(c2s, pos + 1, _MAX_NAME)
    if not isinstance(size, tuple):
        return size
    length, pos = size
    name = c2s[pos : pos + length]
    if any(b not in _NAME_CHARS for b in name):
        return NO
    if len(c2s) < pos + length + 2:
        return MORE
    return YES if c2s[pos + length : pos + length + 2] == b"\r\n" else NO


def _inline(c2s: bytes, s2c: bytes) -> Verdict:
    eol = c2s.find(b"\r\n", 0, 256)
    head = c2s[:eol] if eol >= 0 else c2s[:256]
    verb = head.split(b" ", 1)[0].upper()
    if not verb or any(b not in _NAME_CHARS for b in verb):
        return NO
    if eol < 0:
        return MORE if len(c2s) < 256 and any(v.startswith(verb) for v in _INLINE) else NO
    if verb not in _INLINE:
        return NO
    if not s2c:
        return MORE
    if s2c[0] not in _REPLY_TYPES:
        return NO
    line_end = s2c.find(b"\r\n", 0, 256)
    if line_end < 0:
        return MORE if len(s2c) < 256 else NO
    return YES


def detect(c2s: bytes, s2c: bytes) -> Verdict:
    """A RESP command array from the client; or an inline Redis command answered by a RESP reply."""
    if not c2s:
        return MORE
    if c2s[0] == 0x2A:  # '*'
        return _array(c2s)
    return _inline(c2s, s2c)
