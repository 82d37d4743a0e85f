"""Display filters of `watch`: which records are shown.

`--errors`, `--slower-than`, `--kind`; by process: `--pid`, `--comm`, `--container` (an id prefix); and by
what the record says, in the words of tcpdump, tshark and Kyanos users: `--method`, `--path`,
`--path-prefix`, `--path-regex`, `--status` (a code, a class like `5xx`, a name), `--command`, `--host`,
`--client`, `--server` (an address, a CIDR, `:port`, `addr:port`).

Every condition given must hold (they are ANDed); within one flag, any of its values may match (ORed). A
process filter passes a record when either end's process matches; a record without processes (attribution
off, or neither end found) never passes one. Conditions on request fields read the record's JSON request
(the redacted view the user sees, protocols/redact.py), only when such a condition is given.

    --method    HTTP and HTTP/2 method (`request.method`); gRPC calls are POST (`request.http_method`)
    --path      request path without the query (HTTP, HTTP/2, gRPC `/pkg.Service/Method`)
    --status    the record's status: `404`, `5xx` (HTTP codes of that class), `NXDOMAIN`, `42P01`, `ERR`;
                an HTTP code also answers to its name (`NOT_FOUND`, `not-found`); case-insensitive
    --command   the operation (`GET` of Redis, `find` of MongoDB, `COM_QUERY`, `Basic.Publish`), its first
                word (`CONFIG` of `CONFIG GET`), or the first keyword of a SQL statement (`SELECT`)
    --host      HTTP `Host` / HTTP/2 `:authority` (the port ignored), case-insensitive
"""

from __future__ import annotations

import http
import re
from collections.abc import Iterable
from typing import Any

from packetd._values import value
from packetd.pairing.roundtrip import Process, Roundtrip
from packetd.pipeline.servermatch import ServerMatch
from packetd.protocols.base import Kind

_STATUS_CLASS = re.compile(r"^[1-5]xx$", re.IGNORECASE)
_HTTP_LIKE = frozenset({"http", "http2", "grpc"})


class FilterError(ValueError):
    """A display-filter value that cannot be used; the message names the flag and what is allowed."""


def _status_names(code: str) -> set[str]:
    """`404` → {"not_found", "not found"}: what a user may call an HTTP status."""
    try:
        st = http.HTTPStatus(int(code))
    except ValueError:
        return set()
    return {st.name.lower(), st.phrase.lower(), st.phrase.lower().replace(" ", "-")}


def _norm(text: str) -> str:
    return text.strip().lower()


class FieldFilter:
    """The conditions on what a record says (see the module docstring); built once, asked per record."""

    __slots__ = (
        "clients",
        "commands",
        "hosts",
        "methods",
        "path_prefixes",
        "path_regexes",
        "paths",
        "servers",
        "status_classes",
        "statuses",
    )

    def __init__(
        self,
        methods: Iterable[str] = (),
        paths: Iterable[str] = (),
        path_prefixes: Iterable[str] = (),
        path_regexes: Iterable[str] = (),
        statuses: Iterable[str] = (),
        commands: Iterable[str] = (),
        hosts: Iterable[str] = (),
        clients: Iterable[str] = (),
        servers: Iterable[str] = (),
    ) -> None:
        self.methods = frozenset(m.strip().upper() for m in methods)
        self.paths = frozenset(paths)
        self.path_prefixes = tuple(path_prefixes)
        self.path_regexes = tuple(_regex(r) for r in path_regexes)
        self.status_classes = frozenset(s.strip()[0] for s in statuses if _STATUS_CLASS.match(s.strip()))
        self.statuses = frozenset(_norm(s) for s in statuses if not _STATUS_CLASS.match(s.strip()))
        self.commands = frozenset(_norm(c) for c in commands)
        self.hosts = frozenset(_norm(h) for h in hosts)
        self.clients = tuple(_address(a, "--client") for a in clients)
        self.servers = tuple(_address(a, "--server") for a in servers)

    @property
    def empty(self) -> bool:
        return not any(getattr(self, name) for name in self.__slots__)

    @property
    def _needs_request(self) -> bool:
        return bool(
            self.methods
            or self.paths
            or self.path_prefixes
            or self.path_regexes
            or self.hosts
            or self.commands
        )

    def accept(self, rt: Roundtrip) -> bool:
        if self.clients and not any(m(rt.client[0], rt.client[1]) for m in self.clients):
            return False
        if self.servers and not any(m(rt.server[0], rt.server[1]) for m in self.servers):
            return False
        if (self.statuses or self.status_classes) and not self._status(rt):
            return False
        if not self._needs_request:
            return True
        req: dict[str, Any] = rt.request.to_json() if rt.request is not None else {}
        if self.methods and not self._method(rt, req):
            return False
        if (self.paths or self.path_prefixes or self.path_regexes) and not self._path(rt, req):
            return False
        if self.hosts and not self._host(rt, req):
            return False
        return not self.commands or self._command(rt, req)

    def _status(self, rt: Roundtrip) -> bool:
        status = rt.status
        if status is None:
            return False
        low = status.lower()
        if low in self.statuses:
            return True
        http_code = rt.protocol in ("http", "http2") and status.isdigit()
        if http_code and self.status_classes and status[0] in self.status_classes and len(status) == 3:
            return True
        return http_code and not self.statuses.isdisjoint(_status_names(status))

    def _method(self, rt: Roundtrip, req: dict[str, Any]) -> bool:
        if rt.protocol not in _HTTP_LIKE:
            return False
        method = req.get("http_method") or req.get("method")
        return isinstance(method, str) and method.upper() in self.methods

    def _path(self, rt: Roundtrip, req: dict[str, Any]) -> bool:
        path = req.get("path") if rt.protocol in _HTTP_LIKE else None
        if not isinstance(path, str):
            return False
        path = path.split("?", 1)[0]
        if self.paths and path not in self.paths:
            return False
        if self.path_prefixes and not path.startswith(self.path_prefixes):
            return False
        return not self.path_regexes or any(r.search(path) for r in self.path_regexes)

    def _host(self, rt: Roundtrip, req: dict[str, Any]) -> bool:
        host = req.get("host") or req.get("authority")
        if not isinstance(host, str):
            return False
        host = host.lower()
        if host.startswith("["):
            host = host[1:].split("]", 1)[0]
        elif host.count(":") == 1:
            host = host.split(":", 1)[0]
        return host in self.hosts

    def _command(self, rt: Roundtrip, req: dict[str, Any]) -> bool:
        op = rt.operation.lower()
        if op in self.commands or op.split(" ", 1)[0] in self.commands:
            return True
        statement = req.get("statement")
        if isinstance(statement, str) and statement.strip():
            return statement.split(None, 1)[0].lower() in self.commands
        return False


def _regex(text: str) -> re.Pattern[str]:
    try:
        return re.compile(text)
    except re.error as exc:
        raise FilterError(
            f"--path-regex '{text}': {exc} (a Python regular expression, e.g. '^/api/v[0-9]+/')"
        ) from None


def _address(text: str, flag: str) -> ServerMatch:
    try:
        return ServerMatch(text)
    except ValueError:
        raise FilterError(
            f"{flag} '{text}': not an address; write an address (10.0.0.5, ::1), a CIDR (10.0.0.0/8), "
            f"a port (:5432) or both (10.0.0.5:80, [::1]:80)"
        ) from None


@value
class DisplayFilter:
    errors_only: bool = False
    slower_than_ns: int = 0
    kinds: frozenset[str] = frozenset(Kind.ALL)
    pids: frozenset[int] = frozenset()
    comms: frozenset[str] = frozenset()
    containers: tuple[str, ...] = ()  # container id prefixes
    fields: FieldFilter | None = None  # None: no condition on what the record says

    @property
    def by_process(self) -> bool:
        return bool(self.pids or self.comms or self.containers)

    @property
    def accepts_all(self) -> bool:
        """No condition at all: every record passes (the sink then skips `accept`)."""
        return (
            not self.errors_only
            and not self.slower_than_ns
            and self.kinds >= frozenset(Kind.ALL)
            and self.fields is None
            and not self.by_process
        )

    def _process_matches(self, proc: Process | None) -> bool:
        if proc is None:
            return False
        if self.pids and proc.pid not in self.pids:
            return False
        if self.comms and proc.comm not in self.comms:
            return False
        if self.containers:
            cid = proc.container_id
            if cid is None or not cid.startswith(self.containers):
                return False
        return True

    def accept_content(self, rt: Roundtrip) -> bool:
        """Every condition but the process ones (known only once attribution has looked the ends up)."""
        if rt.kind not in self.kinds:
            return False
        if self.errors_only and not rt.error:
            return False
        if self.slower_than_ns:
            d = rt.duration_ns
            if d is None or d < self.slower_than_ns:
                return False
        return self.fields is None or self.fields.accept(rt)

    def accept(self, rt: Roundtrip) -> bool:
        if not self.accept_content(rt):
            return False
        if self.by_process:
            procs = rt.processes
            if procs is None or not (self._process_matches(procs[0]) or self._process_matches(procs[1])):
                return False
        return True
