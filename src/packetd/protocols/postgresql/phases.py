"""The PostgreSQL connection's phases: everything that moves a connection from start-up to normal
operation (or to being given up) lives here, in one table, as h11's `_state.py` does.

A connection is in one `Conn` state; each state fixes what the client's and the server's next bytes are
read as (`SIDES`: the decoder's `Phase` per direction). An `Event` is something the decoder read that can
change the state; `TRANSITIONS` says where each (state, event) goes. A pair not in the table cannot be
produced by the decoder (it reads untyped start-up messages only in STARTUP, the one-byte SSL/GSS answer
only in ANSWER, ...); `step` turns it into a DecodeError all the same, so a bug shows as a counted reset,
never as a silent jump (tests/protocols/postgresql/test_phases.py walks every pair).

    STARTUP --StartupMessage--> AUTH --ReadyForQuery / fatal ErrorResponse--> READY
       |  \\--SSLRequest / GSSENCRequest--> ANSWER --'N'--> STARTUP
       |                                       |--'E' (a server too old for the request)--> AUTH
       |                                       \\--'S' / 'G' (encryption from here on)--> DEAD
       \\--CancelRequest--> DEAD
    any state but DEAD --framing lost (gap, reset)--> READY (what follows is decoded as normal operation)
"""

from __future__ import annotations

from enum import IntEnum

from packetd.protocols.base import transition


class Phase(IntEnum):
    """What one direction's next bytes are read as."""

    STARTUP = 0  # client: an untyped message comes next
    ANSWER = 1  # an SSLRequest / GSSENCRequest waits for its one-byte answer
    AUTH = 2  # start-up and authentication, typed messages
    READY = 3  # normal operation
    DEAD = 4  # encrypted or given up


class Conn(IntEnum):
    """The connection's state."""

    STARTUP = 0  # nothing yet, or a refused SSL/GSS request: the client's StartupMessage (untyped) next
    ANSWER = 1  # an SSLRequest / GSSENCRequest waits for the server's one-byte answer
    AUTH = 2  # after the StartupMessage: authentication until ReadyForQuery
    READY = 3  # normal operation (also where a connection joined mid-stream starts)
    DEAD = 4  # encrypted (TLS, GSSAPI) or cancelled: nothing more is decoded


class Event(IntEnum):
    """What the decoder read that can change the state."""

    CANCEL_REQUEST = 0  # an untyped CancelRequest: the connection only carries it
    ENCRYPTION_REQUEST = 1  # an untyped SSLRequest or GSSENCRequest
    STARTUP_MESSAGE = 2  # an untyped StartupMessage (protocol 3.x)
    IN_CLEAR = 3  # the answer 'N': go on in clear
    ENCRYPTED = 4  # the answer 'S' or 'G': TLS or GSSAPI from here on
    ANSWER_ERROR = 5  # the answer is an ErrorResponse (a server too old for the request)
    STARTUP_ENDED = 6  # ReadyForQuery, or the fatal ErrorResponse, that ends start-up
    SYNC_LOST = 7  # framing was lost (a gap, a reset): nothing pending can be paired any more


# Conn → (client phase, server phase)
SIDES: dict[Conn, tuple[Phase, Phase]] = {
    Conn.STARTUP: (Phase.STARTUP, Phase.AUTH),
    Conn.ANSWER: (Phase.ANSWER, Phase.ANSWER),
    Conn.AUTH: (Phase.AUTH, Phase.AUTH),
    Conn.READY: (Phase.READY, Phase.READY),
    Conn.DEAD: (Phase.DEAD, Phase.DEAD),
}

TRANSITIONS: dict[Conn, dict[Event, Conn]] = {
    Conn.STARTUP: {
        Event.CANCEL_REQUEST: Conn.DEAD,
        Event.ENCRYPTION_REQUEST: Conn.ANSWER,
        Event.STARTUP_MESSAGE: Conn.AUTH,
        # the server side is read as AUTH here: a ReadyForQuery before any StartupMessage was seen
        Event.STARTUP_ENDED: Conn.READY,
        Event.SYNC_LOST: Conn.READY,
    },
    Conn.ANSWER: {
        Event.IN_CLEAR: Conn.STARTUP,
        Event.ENCRYPTED: Conn.DEAD,
        Event.ANSWER_ERROR: Conn.AUTH,
        Event.SYNC_LOST: Conn.READY,
    },
    Conn.AUTH: {Event.STARTUP_ENDED: Conn.READY, Event.SYNC_LOST: Conn.READY},
    Conn.READY: {Event.SYNC_LOST: Conn.READY},
    Conn.DEAD: {Event.SYNC_LOST: Conn.DEAD},  # nothing is decoded any more: DEAD is final
}


def step(state: Conn, event: Event) -> Conn:
    """The state after `event`; DecodeError for a pair the table does not have."""
    return transition(TRANSITIONS, state, event)


__all__ = ["SIDES", "TRANSITIONS", "Conn", "Event", "Phase", "step"]
