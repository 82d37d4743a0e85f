#!/bin/sh
# System packages the test suite talks to: tmux (a real terminal: the text line's and `packetd top`'s
# screens are read with capture-pane), tshark (the independent oracle for golden tests), tcpdump (the
# replay comparison), nginx and curl (live HTTP tests), nghttpd/nghttp/h2load (live HTTP/2 tests and the gRPC
# bench), prometheus (the agent's end-to-end tests), openssl (test certificates), redis-server, postgresql
# and mariadb-server (live database tests; redis-tools, postgresql-client and mariadb-client bring
# redis-benchmark, pgbench and the mariadb CLI the tests and bench/ use), rabbitmq-server and unbound (live
# AMQP and DNS tests), tinyproxy (a real CONNECT proxy for the live HTTP tunnel test), libpcap; openssh-server/-client, swaks,
# memcached and socat make the other traffic detection must not claim (tests/protocols/detect); gcc and
# python3-dev (the C compiler and Python headers) build the compiled wheel that `make test` also runs the
# suite against (issue 15; without them the pure build only). Installed once; CI runs on a clean machine.
set -eu
pkgs="tmux tshark tcpdump nginx-light curl nghttp2-server nghttp2-client libpcap0.8 iproute2 procps openssl prometheus redis-server redis-tools postgresql postgresql-client mariadb-server mariadb-client rabbitmq-server unbound tinyproxy openssh-server openssh-client swaks memcached socat gcc python3-dev"
missing=""
for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "test-deps: missing$missing (install them as root); tests that need them will be skipped" >&2
    exit 0
fi
echo "test-deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
apt-get update -q >/dev/null
apt-get install -y -q --no-install-recommends $missing >/dev/null
# Debian starts nginx (80), prometheus (9090), redis-server (6379), PostgreSQL (5432), MariaDB (3306),
# rabbitmq-server (5672), unbound (53), tinyproxy (8888), ssh (22) and memcached (11211) when they are installed where an init system runs: the tests run
# their own instances on their own ports and data directories, so the packaged services are stopped here.
# (nghttp2-server ships nghttpd without a service: nothing to stop.)
if command -v service >/dev/null 2>&1; then
    for svc in nginx prometheus redis-server postgresql mariadb rabbitmq-server unbound tinyproxy ssh memcached; do
        service "$svc" stop >/dev/null 2>&1 || true
    done
fi
