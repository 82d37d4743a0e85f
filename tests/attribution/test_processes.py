"""The process resolver on real sockets of real processes, against `ss -tnp` (iproute2: an independent
reader of the same kernel tables) and `os.fstat` inodes.

No capture here: the connections are made by the test and noted by hand, as the engine's hook notes them.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from packetd.attribution import sockets
from packetd.attribution.processes import RETRY_NS, ProcessResolver
from tests.helpers.dbservers import RedisServer, redis_available
from tests.helpers.live import Nginx, nginx_available
from tests.helpers.procs import can_make_cgroups, child, in_cgroup, ss_owners, veth_netns

TCP, UDP = 6, 17
CID = "3f2b9c0e8d7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c"
UID = "8c0f2b5e-6d4a-4b3c-9e1f-2a7b8c9d0e1f"
is_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
_made: list[ProcessResolver] = []
_netlink = [True]


def _resolver(**kw: Any) -> ProcessResolver:
    r = ProcessResolver(use_netlink=_netlink[0], **kw)
    _made.append(r)
    return r


@pytest.fixture(autouse=True, params=["netlink", "tables"])
def _both_ways(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every resolver test runs with netlink sock_diag lookups and with the /proc text tables (what a
    namespace packetd cannot enter falls back to)."""
    _netlink[0] = request.param == "netlink"
    yield
    while _made:
        _made.pop().close()


def _pair(
    family: int = socket.AF_INET, host: str = "127.0.0.1"
) -> tuple[socket.socket, socket.socket, socket.socket]:
    lst = socket.socket(family)
    lst.bind((host, 0))
    lst.listen()
    cli = socket.create_connection(lst.getsockname()[:2])
    srv, _ = lst.accept()
    return lst, cli, srv


def _ep(addr: tuple[str, int] | tuple[str, int, int, int]) -> tuple[str, int]:
    host = addr[0][7:] if addr[0].startswith("::ffff:") else addr[0]
    return host, addr[1]


def _table(name: str) -> bytes:
    with open(f"/proc/self/net/{name}", "rb") as f:
        return f.read()


@pytest.mark.parametrize(
    ("family", "host"), [(socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1"), (socket.AF_INET6, "::")]
)
def test_encoded_keys_find_the_kernel_lines_of_real_sockets(family: int, host: str) -> None:
    lst, cli, srv = _pair(family, host)
    if host == "::":  # a dual-stack listener reached over IPv4: the kernel prints ::ffff:127.0.0.1
        cli.close()
        srv.close()
        cli = socket.create_connection(("127.0.0.1", lst.getsockname()[1]))
        srv, _ = lst.accept()
    try:
        for s in (cli, srv):
            local, remote = _ep(s.getsockname()), _ep(s.getpeername())
            keys = set(sockets.socket_keys(local, remote))
            found = [hit for t in ("tcp", "tcp6") for hit in sockets.scan(_table(t), keys)]
            assert [(state, inode) for _, state, inode in found] == [
                (sockets.TCP_ESTABLISHED, os.fstat(s.fileno()).st_ino)
            ]
    finally:
        for s in (lst, cli, srv):
            s.close()


def test_a_line_the_kernel_printed_twice_is_found_once() -> None:
    # a busy table read in pages can print one socket's line more than once: the real line of a real socket,
    # repeated as the kernel repeats it, is one hit with that socket's inode
    lst, cli, srv = _pair()
    try:
        local, remote = _ep(cli.getsockname()), _ep(cli.getpeername())
        keys = set(sockets.socket_keys(local, remote))
        lines = _table("tcp").split(b"\n")
        mine = [ln for ln in lines[1:] if len(ln.split()) >= 10 and (ln.split()[1], ln.split()[2]) in keys]
        assert len(mine) == 1
        table = b"\n".join([lines[0], mine[0], *lines[1:], mine[0], mine[0]])
        found = list(sockets.scan(table, keys))
        assert [(state, inode) for _, state, inode in found] == [
            (sockets.TCP_ESTABLISHED, os.fstat(cli.fileno()).st_ino)
        ]
    finally:
        for s in (lst, cli, srv):
            s.close()


def test_udp_fallback_keys_find_an_unconnected_socket() -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", 0))
    try:
        port = s.getsockname()[1]
        found = list(sockets.scan(_table("udp"), set(sockets.udp_fallback_keys(("127.0.0.1", port)))))
        assert [inode for _, _, inode in found] == [os.fstat(s.fileno()).st_ino]
    finally:
        s.close()


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    if not redis_available():
        pytest.skip("redis-server is not installed")
    server = RedisServer()
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.server
def test_both_ends_of_real_connections_match_ss(redis_server: RedisServer) -> None:
    """Two clients (this process, and a redis-cli child) of a redis-server started here: pid and comm of
    every end as `ss -tnp` reports them."""
    r = redis.Redis(port=redis_server.port)
    r.ping()
    with child(
        [sys.executable, "-c", f"import redis,sys; r=redis.Redis(port={redis_server.port}); r.ping(); print('up', flush=True); sys.stdin.read()"],
    ) as cli_proc:  # fmt: skip
        truth = ss_owners()
        conns = [k for k in truth if k[1] == ("127.0.0.1", redis_server.port)]
        assert len(conns) == 2
        resolver = _resolver()
        for client, server in conns:
            resolver.note(client, server, TCP)
        for client, server in conns:
            cp, sp = resolver.processes(client, server)
            assert cp is not None and sp is not None
            assert [(cp.comm, cp.pid)] == truth[(client, server)]
            assert [(sp.comm, sp.pid)] == truth[(server, client)]
            assert sp.comm == "redis-server" and sp.pid == redis_server.proc.pid
            assert sp.exe is not None and os.path.samefile(sp.exe, "/usr/bin/redis-server")
        assert {resolver.processes(*c)[0].pid for c in conns} == {os.getpid(), cli_proc.pid}  # type: ignore[union-attr]
        assert resolver.stats.passes == 1  # one batch answered all four ends
        assert any(d is not None for d in resolver._diags.values()) == _netlink[0]
        assert resolver.stats.found == 4
    r.close()


def _unaccepted() -> tuple[socket.socket, socket.socket, list[int], ProcessResolver]:
    """A connection waiting in its listener's accept queue, noted by a resolver on a hand-turned clock."""
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen()
    cli = socket.create_connection(lst.getsockname())
    now = [0]
    resolver = _resolver(clock=lambda: now[0])
    resolver.note(_ep(cli.getsockname()), _ep(lst.getsockname()), TCP)
    return lst, cli, now, resolver


def test_a_server_end_not_yet_accepted_is_asked_again() -> None:
    lst, cli, _, resolver = _unaccepted()
    client, server = _ep(cli.getsockname()), _ep(lst.getsockname())
    try:
        cp, sp = resolver.processes(client, server)
        assert cp is not None and cp.pid == os.getpid()
        assert sp is None  # in the accept queue: no process holds it yet
        srv, _ = lst.accept()
        cp, sp = resolver.processes(client, server)
        assert sp is not None and sp.pid == os.getpid()
        assert resolver.stats.found == 2 and resolver.stats.unowned == 0
        srv.close()
    finally:
        cli.close()
        lst.close()


def test_never_accepted_gives_up_after_the_retry_window() -> None:
    lst, cli, now, resolver = _unaccepted()
    client, server = _ep(cli.getsockname()), _ep(lst.getsockname())
    try:
        resolver.resolve()
        now[0] = RETRY_NS + 1
        resolver.resolve()
        assert resolver.processes(client, server)[1] is None
        assert resolver.stats.unowned == 1
        assert resolver.stats.passes == 2  # answered: no more passes for it
    finally:
        cli.close()
        lst.close()


def test_short_connection_closed_before_lookup_is_counted_closed() -> None:
    lst, cli, srv = _pair()
    client, server = _ep(cli.getsockname()), _ep(srv.getsockname())
    cli.close()  # the client closes first: its end lingers in TIME_WAIT with no owner
    srv.close()
    lst.close()
    time.sleep(0.05)
    resolver = _resolver()
    resolver.note(client, server, TCP)
    assert resolver.processes(client, server) == (None, None)
    assert resolver.stats.closed >= 1
    assert resolver.stats.found == 0


def test_a_closed_server_end_is_not_its_listener() -> None:
    """The listener still listens after its connection closed: a lookup of the connection's server end
    must not answer with the listener (sock_diag's exact lookup falls back to it, as a packet would)."""
    lst, cli, srv = _pair()
    client, server = _ep(cli.getsockname()), _ep(srv.getsockname())
    cli.close()  # the client closes first: its end lingers in TIME_WAIT, the server's goes
    time.sleep(0.05)
    srv.close()
    time.sleep(0.05)
    try:
        resolver = _resolver()
        resolver.note(client, server, TCP)
        assert resolver.processes(client, server) == (None, None)
        assert resolver.stats.found == 0
    finally:
        lst.close()


def test_an_end_that_is_no_local_socket() -> None:
    lst, cli, srv = _pair()
    try:
        resolver = _resolver()
        # 192.0.2.0/24 is TEST-NET-1: no socket here has it; nothing is sent anywhere
        resolver.note(("192.0.2.7", 40000), ("192.0.2.8", 80), TCP)
        assert resolver.processes(("192.0.2.7", 40000), ("192.0.2.8", 80)) == (None, None)
        assert resolver.stats.not_local == 2
    finally:
        for s in (lst, cli, srv):
            s.close()


def test_a_socket_held_by_two_processes_is_not_guessed() -> None:
    lst, cli, srv = _pair()
    holder = [sys.executable, "-c", "import sys; print('up', flush=True); sys.stdin.read()"]
    with child(holder, pass_fds=(srv.fileno(),)):
        client, server = _ep(cli.getsockname()), _ep(srv.getsockname())
        resolver = _resolver()
        resolver.note(client, server, TCP)
        cp, sp = resolver.processes(client, server)
        assert cp is not None and cp.pid == os.getpid()
        assert sp is None and resolver.stats.ambiguous == 1
    for s in (lst, cli, srv):
        s.close()


def test_cache_hits_ttl_bounds_and_reuse() -> None:
    pairs = [_pair() for _ in range(3)]
    now = [0]
    try:
        conns = [(_ep(c.getsockname()), _ep(s.getsockname())) for _, c, s in pairs]
        resolver = _resolver(clock=lambda: now[0], ttl_ns=1000, max_ends=4, max_pending=2)
        resolver.note(*conns[0], TCP)
        resolver.note(*conns[1], TCP)
        resolver.note(*conns[2], TCP)  # a third while two wait: not noted, counted
        assert resolver.stats.pending_full == 1
        assert resolver.processes(*conns[0])[0] is not None
        assert resolver.processes(*conns[1])[0] is not None
        assert resolver.stats.passes == 1
        assert resolver.processes(*conns[0])[0] is not None
        assert resolver.stats.hits == 2  # the second call on conns[1], and conns[0] again: no pass
        assert resolver.stats.passes == 1
        resolver.note(*conns[2], TCP)
        assert resolver.processes(*conns[2])[1] is not None
        assert resolver.stats.cache_full == 2  # four ends fit: conns[0]'s two went
        assert resolver.processes(*conns[0]) == (None, None)
        now[0] = 2000  # past the TTL: a connection still open is asked again, and keeps its names
        passes = resolver.stats.passes
        cp, sp = resolver.processes(*conns[2])
        assert cp is not None and sp is not None and cp.pid == sp.pid == os.getpid()
        assert resolver.stats.passes == passes + 1
        resolver.processes(*conns[2])
        assert resolver.stats.passes == passes + 1  # fresh again: from the cache
        assert resolver.processes(*conns[0]) == (None, None)  # evicted (counted): not asked again
    finally:
        for trio in pairs:
            for s in trio:
                s.close()


@pytest.mark.server
@pytest.mark.root
@is_root
def test_a_client_in_another_network_namespace() -> None:
    """nginx on this namespace's end of a veth pair, curl in a second namespace: the server end is found in
    this namespace's table, the client end in the other namespace's, each as ss (run in each) says."""
    if not nginx_available():
        pytest.skip("nginx is not installed")
    with veth_netns("10.83.0") as net:
        nginx = Nginx(host=net["host_ip"])
        cmd = ["ip", "netns", "exec", net["ns"], sys.executable, "-c",
               "import http.client, sys\n"
               f"c = http.client.HTTPConnection('{net['host_ip']}', {nginx.port}); c.request('GET', '/index.txt')\n"
               "c.getresponse().read(); print('up', flush=True); sys.stdin.read()"]  # fmt: skip
        try:
            with child(cmd) as client:
                host_truth = ss_owners()
                ns_truth = ss_owners(net["ns"])
                (conn,) = [k for k in ns_truth if k[1] == (net["host_ip"], nginx.port)]
                resolver = _resolver()
                resolver.note(conn[0], conn[1], TCP)
                cp, sp = resolver.processes(conn[0], conn[1])
                assert cp is not None and sp is not None
                assert [(cp.comm, cp.pid)] == ns_truth[conn]
                assert cp.pid == client.pid  # `ip netns exec` execs: the same pid
                assert [(sp.comm, sp.pid)] == host_truth[(conn[1], conn[0])]
                assert sp.comm == "nginx"
        finally:
            nginx.stop()


@pytest.mark.server
@pytest.mark.root
@pytest.mark.skipif(not can_make_cgroups(), reason="needs root and a cgroup v2 hierarchy")
@pytest.mark.parametrize(
    ("relative", "runtime", "pod_uid"),
    [
        (f"system.slice/docker-{CID}.scope", "docker", None),
        (f"kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{UID.replace('-', '_')}.slice/cri-containerd-{CID}.scope", "containerd", UID),
        (f"kubepods/burstable/pod{UID}/{CID}", None, UID),
    ],
)  # fmt: skip
def test_a_server_in_its_own_cgroup_is_named_a_container(
    redis_server: RedisServer, relative: str, runtime: str | None, pod_uid: str | None
) -> None:
    """redis-server moved into a cgroup the test makes, shaped like a runtime's: the record's container
    fields come from the process's real /proc/<pid>/cgroup."""
    with in_cgroup(redis_server.proc.pid, relative):
        with open(f"/proc/{redis_server.proc.pid}/cgroup") as f:
            assert relative in f.read()  # the kernel put it there
        r = redis.Redis(port=redis_server.port)
        r.ping()
        try:
            (conn,) = [k for k in ss_owners() if k[1] == ("127.0.0.1", redis_server.port)]
            resolver = _resolver()
            resolver.note(*conn, TCP)
            cp, sp = resolver.processes(*conn)
            assert sp is not None and sp.pid == redis_server.proc.pid
            assert (sp.container_id, sp.container_runtime, sp.pod_uid) == (CID, runtime, pod_uid)
            assert cp is not None and cp.container_id is None  # this test process is in no container
        finally:
            r.close()


@pytest.mark.parametrize(
    ("family", "listen", "connect"),
    [(socket.AF_INET6, "::1", "::1"), (socket.AF_INET6, "::", "127.0.0.1")],
    ids=["ipv6", "ipv4-to-dual-stack"],
)
def test_ipv6_and_dual_stack_ends(family: int, listen: str, connect: str) -> None:
    lst = socket.socket(family)
    lst.bind((listen, 0))
    lst.listen()
    cli = socket.create_connection((connect, lst.getsockname()[1]))
    srv, _ = lst.accept()
    try:
        client, server = _ep(cli.getsockname()), _ep(cli.getpeername())  # as the capture prints them
        resolver = _resolver()
        resolver.note(client, server, TCP)
        cp, sp = resolver.processes(client, server)
        assert cp is not None and sp is not None and cp.pid == sp.pid == os.getpid()
        assert resolver.stats.found == 2
    finally:
        for s in (lst, cli, srv):
            s.close()


def test_udp_unconnected_server_and_connected_client() -> None:
    """A DNS-like exchange: the server's socket is bound to the any-address and unconnected, the
    client's connected; both ends are found, each the socket fstat names."""
    srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    srv.bind(("0.0.0.0", 0))
    holder = [sys.executable, "-c", "import socket, sys; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
              f"s.connect(('127.0.0.1', {srv.getsockname()[1]})); print(s.getsockname()[1]); print('up', flush=True); "
              "sys.stdin.read()"]  # fmt: skip
    proc = subprocess.Popen(holder, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        assert proc.stdout.readline() == b"up\n"
        client, server = ("127.0.0.1", port), ("127.0.0.1", srv.getsockname()[1])
        resolver = _resolver()
        resolver.note(client, server, UDP)
        cp, sp = resolver.processes(client, server)
        assert cp is not None and cp.pid == proc.pid
        assert sp is not None and sp.pid == os.getpid()
    finally:
        srv.close()
        if proc.stdin is not None:
            proc.stdin.close()
        proc.stdout.close()  # type: ignore[union-attr]
        proc.wait(timeout=10)
