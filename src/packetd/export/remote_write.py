"""Prometheus remote write 1.0: protobuf `WriteRequest`, snappy block compression, standard headers.

The message classes are built at import from a descriptor written here (prometheus/prompb types.proto and
remote.proto, the fields remote write 1.0 uses), so no generated code or protoc is needed; `protobuf`
encodes, `cramjam` compresses (snappy block format, as the spec requires).

    WriteRequest { repeated TimeSeries timeseries = 1; }
    TimeSeries   { repeated Label labels = 1; repeated Sample samples = 2; }
    Label        { string name = 1; string value = 2; }
    Sample       { double value = 1; int64 timestamp = 2; }   // milliseconds
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from typing import Any

import cramjam
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

HEADERS = {
    "Content-Encoding": "snappy",
    "Content-Type": "application/x-protobuf",
    "X-Prometheus-Remote-Write-Version": "0.1.0",
    "User-Agent": "packetd",
}


def _build() -> tuple[type[Any], type[Any], type[Any], type[Any]]:
    fd = descriptor_pb2.FileDescriptorProto(
        name="packetd_prompb.proto", package="prometheus", syntax="proto3"
    )
    F = descriptor_pb2.FieldDescriptorProto

    def msg(name: str, fields: list[tuple[str, int, int, int, str]]) -> None:
        m = fd.message_type.add(name=name)
        for fname, number, ftype, label, type_name in fields:
            f = m.field.add(name=fname, number=number, type=ftype, label=label)
            if type_name:
                f.type_name = type_name

    opt, rep = F.LABEL_OPTIONAL, F.LABEL_REPEATED
    msg("Label", [("name", 1, F.TYPE_STRING, opt, ""), ("value", 2, F.TYPE_STRING, opt, "")])
    msg("Sample", [("value", 1, F.TYPE_DOUBLE, opt, ""), ("timestamp", 2, F.TYPE_INT64, opt, "")])
    msg(
        "TimeSeries",
        [
            ("labels", 1, F.TYPE_MESSAGE, rep, ".prometheus.Label"),
            ("samples", 2, F.TYPE_MESSAGE, rep, ".prometheus.Sample"),
        ],
    )
    msg("WriteRequest", [("timeseries", 1, F.TYPE_MESSAGE, rep, ".prometheus.TimeSeries")])
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fd)
    get = message_factory.GetMessageClass
    return (
        get(pool.FindMessageTypeByName("prometheus.WriteRequest")),
        get(pool.FindMessageTypeByName("prometheus.TimeSeries")),
        get(pool.FindMessageTypeByName("prometheus.Label")),
        get(pool.FindMessageTypeByName("prometheus.Sample")),
    )


WriteRequest, TimeSeries, Label, Sample = _build()


def identity_labels(external: Mapping[str, str]) -> dict[str, str]:
    """What every remote-written series carries so that agents are told apart (a scrape gets these from
    Prometheus' target instead): `job="packetd"`, `instance` = the node (`$NODE_NAME`, set from the
    Kubernetes downward API by the chart) or the host name, then `exporter.metrics.externalLabels`, which
    may override both."""
    return {"job": "packetd", "instance": os.environ.get("NODE_NAME") or socket.gethostname(), **external}


def encode(
    samples: list[tuple[list[tuple[str, str]], float]], ts_ms: int, extra: Mapping[str, str] | None = None
) -> bytes:
    """Samples (labels with __name__ first, value) at one timestamp → compressed request body.

    `extra` labels are added to every series that does not have them already (as Prometheus applies its
    external labels); labels are sent sorted by name, as the remote write spec requires."""
    req = WriteRequest()
    for own, value in samples:
        series = req.timeseries.add()
        labels = own
        if extra:
            have = {name for name, _ in own}
            labels = sorted([*own, *((k, v) for k, v in extra.items() if k not in have)])
        for name, val in labels:
            series.labels.add(name=name, value=val)
        series.samples.add(value=value, timestamp=ts_ms)
    return bytes(cramjam.snappy.compress_raw(req.SerializeToString()))


def decode(body: bytes) -> Any:
    """The inverse (tests, debugging)."""
    req = WriteRequest()
    req.ParseFromString(bytes(cramjam.snappy.decompress_raw(body)))
    return req
