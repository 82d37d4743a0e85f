#!/bin/sh
# `make run`: watch live on loopback when this process may capture (root / CAP_NET_RAW), every registered
# protocol on its default ports; otherwise analyse the bundled sample capture.
#
# A fresh machine has nothing talking on those ports, and a blank screen teaches nothing: when nothing
# listens on 127.0.0.1:8080 (one of HTTP's default ports), a small demo server is started there and asked
# for a page every second, so records show up within seconds. Both are this script's own processes, and
# they are stopped by their PIDs when watch ends. PACKETD_RUN_DEMO=0 turns the demo off.
set -eu
BIN=.venv/bin
if ! $BIN/python -c 'import socket; socket.socket(socket.AF_PACKET, socket.SOCK_RAW).close()' 2>/dev/null; then
    echo "make run: no capture privilege here (sudo make run, or see README 'Install'); analysing samples/http-sample.pcapng" >&2
    # recorded by scripts/record_sample.py; its servers listened on the ports named in the .ports file
    exec $BIN/packetd watch --pcap-file samples/http-sample.pcapng --proto "http;$(cat samples/http-sample.pcapng.ports)" --format text
fi

pids=""
cleanup() {
    for pid in $pids; do kill "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT TERM

if [ "${PACKETD_RUN_DEMO:-1}" != 0 ] && ! $BIN/python -c 'import socket; socket.create_connection(("127.0.0.1", 8080), 0.5).close()' 2>/dev/null; then
    $BIN/python -m http.server 8080 --bind 127.0.0.1 --directory samples >/dev/null 2>&1 &
    pids="$pids $!"
    $BIN/python -c '
import time, urllib.error, urllib.request
time.sleep(1.5)  # let watch open its capture socket first
for n in range(600):  # ten minutes at most
    path = "/" if n % 5 else "/missing"  # a 404 now and then: an error record to look at
    try:
        urllib.request.urlopen("http://127.0.0.1:8080" + path, timeout=2).read()
    except (urllib.error.URLError, OSError):
        pass
    time.sleep(1)
' &
    pids="$pids $!"
    echo "make run: live capture on loopback, with a demo HTTP server on 127.0.0.1:8080 asked once a second (Ctrl-C to stop and see the summary)" >&2
else
    echo "make run: live capture on loopback (Ctrl-C to stop and see the summary)" >&2
fi
$BIN/packetd watch --ifaces '^lo$' --format text
