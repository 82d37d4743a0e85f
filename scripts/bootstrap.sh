#!/bin/sh
# What `make` needs before it can create the virtualenv: Python with venv, and libpcap (filter compiler,
# interface list). Installed with apt when missing and we are root on Debian/Ubuntu; otherwise we say what
# is missing and go on (file analysis works without libpcap).
set -eu
need=""
command -v python3 >/dev/null 2>&1 || need="$need python3"
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need="$need python3-venv"
ldconfig -p 2>/dev/null | grep -q 'libpcap\.so' || need="$need libpcap0.8"
[ -z "$need" ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "bootstrap: installing$need"
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q $need >/dev/null
else
    echo "bootstrap: please install:$need" >&2
fi
