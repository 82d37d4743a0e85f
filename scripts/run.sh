#!/bin/sh
# `make run`: watch live on loopback when this process may capture (root / CAP_NET_RAW), for every
# registered protocol on its default ports; otherwise analyse the bundled sample capture.
set -eu
BIN=.venv/bin
if $BIN/python -c 'import socket; socket.socket(socket.AF_PACKET, socket.SOCK_RAW).close()' 2>/dev/null; then
    echo "make run: live capture on loopback (Ctrl-C to stop and see the summary)" >&2
    exec $BIN/packetd watch --ifaces '^lo$' --format text
fi
echo "make run: no capture privilege here; analysing samples/http-sample.pcapng" >&2
# recorded by scripts/record_sample.py; its servers listened on the ports named in the .ports file
exec $BIN/packetd watch --pcap-file samples/http-sample.pcapng --proto "http;$(cat samples/http-sample.pcapng.ports)" --format text
