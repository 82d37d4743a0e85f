"""A small HTTP/1.x server for the cases nginx will not produce on demand.

It speaks from hand-written bytes, so each response is exactly the wire format a case needs:
`100 Continue` before reading a body, an HTTP/1.0 response delimited by closing the connection, chunked
bodies with extensions and trailers, 204 and 304 that carry a Content-Length, HEAD answered with a length
and no body. Keep-alive unless the response closes.
"""

from __future__ import annotations

import socket
import socketserver
import threading


def _read_head(f: socket.SocketIO | object) -> tuple[bytes, dict[bytes, bytes]] | None:
    lines = []
    while True:
        line = f.readline(65536)  # type: ignore[attr-defined]
        if not line:
            return None
        if line in (b"\r\n", b"\n"):
            break
        lines.append(line.rstrip(b"\r\n"))
    if not lines:
        return None
    headers = {}
    for h in lines[1:]:
        k, _, v = h.partition(b":")
        headers[k.strip().lower()] = v.strip()
    return lines[0], headers


class _Handler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        while True:
            got = _read_head(self.rfile)
            if got is None:
                return
            line, headers = got
            method, target, _version = line.split(b" ", 2)
            path = target.split(b"?")[0]
            if method == b"POST" and headers.get(b"expect", b"").lower() == b"100-continue":
                self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                self.wfile.flush()
            length = int(headers.get(b"content-length", b"0"))
            remaining = length
            while remaining:
                chunk = self.rfile.read(min(remaining, 65536))
                if not chunk:
                    return
                remaining -= len(chunk)
            if path == b"/close10":
                self.wfile.write(
                    b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n" + b"until the close " * 500
                )
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_WR)
                return
            if path == b"/chunked":
                self.wfile.write(
                    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n\r\n"
                    b"5;name=value\r\nhello\r\n1a\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-Checksum: 42\r\n\r\n"
                )
            elif path == b"/nocontent":
                self.wfile.write(b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n")
            elif path == b"/notmodified":
                self.wfile.write(b'HTTP/1.1 304 Not Modified\r\nContent-Length: 1234\r\nETag: "x"\r\n\r\n')
            elif method == b"HEAD":
                self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
            elif path == b"/upload":
                self.wfile.write(
                    b"HTTP/1.1 201 Created\r\nContent-Length: %d\r\n\r\n%d" % (len(str(length)), length)
                )
            else:
                body = b"special " + path
                self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            self.wfile.flush()


class SpecialServer:
    def __init__(self, port: int) -> None:
        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", port), _Handler)
        self.server.daemon_threads = True
        self.port = port
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
