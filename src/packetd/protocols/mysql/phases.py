"""The MySQL connection's phases: everything that moves a connection through its greeting and login to
commands, LOCAL INFILE and back, or to being given up, lives here in one table (h11's `_state.py`).

A connection is in one `Conn` state; each state fixes what the client's and the server's next packets are
read as (`SIDES`: the decoder's `Phase` per direction). An `Event` is something the decoder read that can
change the state; `TRANSITIONS` says where each (state, event) goes; `step` turns a pair the table does
not have into a DecodeError (a counted reset, never a silent jump; tests/protocols/mysql/test_phases.py
walks every pair).

    GREETING --greeting--> LOGIN --handshake response--> AUTH --OK/ERR of the login--> COMMAND
        \\--handshake response (greeting not captured)--> AUTH        COMMAND --0xFB answer--> INFILE
    GREETING, LOGIN --SSLRequest--> DEAD (TLS)                       INFILE --empty packet / answer--> COMMAND
    COMMAND (joined mid-stream) --a greeting at a segment start--> GREETING
    any state --gave up (gap in compressed framing or the login, pipeline overflow, ERR greeting, zstd)--> DEAD
    any state --framing lost--> COMMAND
"""

from __future__ import annotations

from enum import IntEnum

from packetd.protocols.base import transition


class Phase(IntEnum):
    """What one direction's next packets are read as."""

    GREETING = 0  # server: the greeting comes next; client: nothing expected yet
    LOGIN = 1  # client: the handshake response comes next
    AUTH = 2  # the login was sent: auth switch / more data / OK / ERR
    COMMAND = 3
    INFILE = 4  # client: LOCAL INFILE contents, until an empty packet
    DEAD = 5


class Conn(IntEnum):
    """The connection's state."""

    GREETING = 0  # the server's greeting comes next
    LOGIN = 1  # greeting seen: the client's handshake response comes next
    AUTH = 2  # the login was sent: authentication until the server's OK or ERR
    COMMAND = 3  # commands and their answers (also where a connection joined mid-stream starts)
    INFILE = 4  # the client sends a LOCAL INFILE file; the server's side reads answers as usual
    DEAD = 5  # encrypted or given up: nothing more is decoded


class Event(IntEnum):
    """What the decoder read that can change the state."""

    GREETING_SEEN = 0  # a greeting at a segment start of a connection joined mid-stream
    GREETING = 1  # the server's greeting (protocol 10)
    HANDSHAKE_RESPONSE = 2  # the client's login
    SSL_REQUEST = 3  # the client asked for TLS: encrypted from here on
    LOGIN_DONE = 4  # the server's final OK / ERR of the login
    INFILE_REQUESTED = 5  # a COM_QUERY answered 0xFB: the client sends the file next
    INFILE_ENDED = 6  # the file's empty packet, or the server's answer to it
    GAVE_UP = 7  # nothing more can be decoded truthfully
    SYNC_LOST = 8  # framing was lost (a gap): what follows is read as commands


# Conn → (client phase, server phase)
SIDES: dict[Conn, tuple[Phase, Phase]] = {
    Conn.GREETING: (Phase.LOGIN, Phase.GREETING),
    Conn.LOGIN: (Phase.LOGIN, Phase.AUTH),
    Conn.AUTH: (Phase.AUTH, Phase.AUTH),
    Conn.COMMAND: (Phase.COMMAND, Phase.COMMAND),
    Conn.INFILE: (Phase.INFILE, Phase.COMMAND),
    Conn.DEAD: (Phase.DEAD, Phase.DEAD),
}

_ALWAYS = {Event.GAVE_UP: Conn.DEAD, Event.SYNC_LOST: Conn.COMMAND}
TRANSITIONS: dict[Conn, dict[Event, Conn]] = {
    Conn.GREETING: {
        Event.GREETING: Conn.LOGIN,
        Event.HANDSHAKE_RESPONSE: Conn.AUTH,  # the client's side reads a login in GREETING too
        Event.SSL_REQUEST: Conn.DEAD,
        **_ALWAYS,
    },
    Conn.LOGIN: {
        Event.HANDSHAKE_RESPONSE: Conn.AUTH,
        Event.SSL_REQUEST: Conn.DEAD,
        Event.LOGIN_DONE: Conn.COMMAND,  # the server's side reads the login's answer in LOGIN too
        **_ALWAYS,
    },
    Conn.AUTH: {Event.LOGIN_DONE: Conn.COMMAND, **_ALWAYS},
    Conn.COMMAND: {
        Event.GREETING_SEEN: Conn.GREETING,
        Event.INFILE_REQUESTED: Conn.INFILE,
        Event.INFILE_ENDED: Conn.COMMAND,  # the client's empty packet came first, then the answer
        **_ALWAYS,
    },
    Conn.INFILE: {
        Event.INFILE_ENDED: Conn.COMMAND,
        Event.INFILE_REQUESTED: Conn.INFILE,  # a pipelined query's answer asks for another file
        **_ALWAYS,
    },
    # a gap after the decoder gave up (an ERR instead of a greeting) resynchronises like a mid-stream
    # join; TLS and the other give-ups also stop the session's decoding (StopDecoding), so they stay dead
    Conn.DEAD: {Event.GAVE_UP: Conn.DEAD, Event.SYNC_LOST: Conn.COMMAND},
}


def step(state: Conn, event: Event) -> Conn:
    """The state after `event`; DecodeError for a pair the table does not have."""
    return transition(TRANSITIONS, state, event)


__all__ = ["SIDES", "TRANSITIONS", "Conn", "Event", "Phase", "step"]
