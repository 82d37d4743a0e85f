"""A tiny ASGI app for hypercorn (a real HTTP/2 server that also speaks `Upgrade: h2c`) in live tests.

/missing → 404, /empty → 204, /big → 1 MB, /stall → 200 after blocking the server's event loop for 0.5 s
(it reads nothing meanwhile: a client's RST_STREAM waits in the socket while the answer goes out), anything
else → 200 "echo:" + the request body.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

BIG = 1_000_000
STALL = 0.5


async def app(
    scope: dict[str, Any],
    receive: Callable[[], Awaitable[dict[str, Any]]],
    send: Callable[[dict[str, Any]], Awaitable[None]],
) -> None:
    if scope["type"] != "http":
        return
    body = b""
    while True:
        msg = await receive()
        body += msg.get("body", b"")
        if not msg.get("more_body"):
            break
    path = scope["path"]
    if path == "/stall":
        time.sleep(STALL)  # deliberately blocking: the response is written before the loop reads on
    if path == "/missing":
        status, out = 404, b"not found\n"
    elif path == "/big":
        status, out = 200, b"x" * BIG
    elif path == "/empty":
        status, out = 204, b""
    else:
        status, out = 200, b"echo:" + body
    await send(
        {"type": "http.response.start", "status": status, "headers": [(b"content-type", b"text/plain")]}
    )
    await send({"type": "http.response.body", "body": out})
