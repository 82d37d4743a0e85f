"""Nothing leaves the host that should not: secrets planted in real traffic of every protocol that carries
text, captured with tcpdump on loopback, appear in none of the outputs.

Each test makes real traffic with a real client against a real server, carrying secrets where users put
them (Authorization and custom token headers, query strings, gRPC metadata, SQL literals, Redis AUTH and
values, MongoDB documents, AMQP bodies and headers, Kafka values). The truth that the secret was on the
wire is the capture file itself (its bytes contain it). The capture is then decoded and every output is
built as the agent builds it: the JSON record (`watch`, the roundtrip file, /watch), the text line, spans
exported through the OpenTelemetry SDK's OTLP exporter to a receiver built on opentelemetry-proto (the
agent tests' receiver), and metric label values (every label each protocol offers). The secret must be in
none of them — while the outputs still say what happened (the records exist, spans carry the redacted
statement / path).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from packetd.engine import Rule
from packetd.export.text import TextFormatter
from packetd.pairing.roundtrip import Roundtrip, dumps
from packetd.pipeline.metrics import Aggregator, RoundtripsToMetrics
from packetd.pipeline.spans import RoundtripsToTraces
from packetd.pipeline.summary import Summary
from packetd.protocols.options import parse_assignments
from packetd.protocols.registry import REGISTRY
from tests.helpers.dbservers import (
    MariaDBServer,
    PostgresServer,
    RedisServer,
    mariadb_available,
    postgres_available,
    redis_available,
)
from tests.helpers.golden import run_file
from tests.helpers.live import Nginx, free_port, nginx_available
from tests.helpers.servers import (
    RabbitMQ,
    Secantus,
    Tansu,
    rabbitmq_available,
    secantus_available,
    tansu_available,
)
from tests.helpers.tapped import CAPTURE_MARKS, export, grpc_server, nghttpd, tcpdump

pytestmark = CAPTURE_MARKS


def outputs(records: list[Roundtrip], protocols: list[str]) -> tuple[dict[str, str], list[dict[str, Any]]]:
    """Every output of these records, as text: JSON lines, text lines, exported spans, metric labels."""
    json_lines = b"".join(dumps(r) for r in records).decode()
    fmt = TextFormatter(color=False)
    text = "\n".join(fmt.format(r) for r in records)
    proc = RoundtripsToTraces({"include": ["handshake", "oneway"]})  # every record a span
    spans = [s for s in (proc.process(r) for r in records) if s is not None]
    exported = export(spans)
    assert len(exported) == len(spans)
    # every label each protocol offers, not only the defaults
    config = {p: {"requireLabels": list(REGISTRY[p].semantics.labels)} for p in protocols}
    metrics = RoundtripsToMetrics(config, protocols)
    agg = Aggregator()
    for r in records:
        metrics.process(r, agg)
    taken = agg.take()
    labels = [v for kind in ("counters", "histograms") for (_n, lab) in taken[kind] for _k, v in lab]
    summary = Summary()  # watch's exit summary (stderr)
    for r in records:
        summary.add(r)
    return {
        "watch summary row": json.dumps([key for key, _ in summary.rows()]),
        "JSON record": json_lines,
        "text line": text,
        "OTLP span": json.dumps(exported),
        "metric label": json.dumps(labels),
    }, exported


def wire_of(pcap: str, rules: tuple[Rule, ...]) -> bytes:
    """What the wire carried: the capture's bytes, and for HTTP/2 (HPACK Huffman-codes header values)
    tshark's dissection of it as well."""
    with open(pcap, "rb") as f:
        wire = f.read()
    if rules[0].protocol in ("http2", "grpc"):
        assert shutil.which("tshark"), "tshark is needed to read HPACK-coded headers (make test-deps)"
        wire += subprocess.run(
            ["tshark", "-r", pcap, "-d", f"tcp.port=={rules[0].ports[0]},http2", "-V"],
            capture_output=True, check=True, timeout=60,
        ).stdout  # fmt: skip
    return wire


def check(
    pcap: str, rules: tuple[Rule, ...], secrets: list[str], options: dict[str, Any] | None = None
) -> tuple[list[Roundtrip], list[dict[str, Any]]]:
    wire = wire_of(pcap, rules)
    for secret in secrets:
        assert secret.encode() in wire, f"the traffic did not carry {secret!r}: the test proves nothing"
    records, _ = run_file(pcap, rules, options)
    assert records
    protocols = sorted({r.protocol for r in records})
    outs, spans = outputs(records, protocols)
    for secret in secrets:
        for name, out in outs.items():
            assert secret not in out, f"{secret!r} leaked into a {name}"
    return records, spans


# -- HTTP/1: curl against nginx --------------------------------------------------------------------------
@pytest.mark.skipif(not nginx_available() or not shutil.which("curl"), reason="nginx / curl not installed")
def test_http1_headers_and_query_strings() -> None:
    nginx = Nginx()
    s = {
        k: f"S3CRET-h1-{k}-{os.getpid()}"
        for k in ("bearer", "apikey", "custom", "cookie", "pw", "sig", "fold")
    }
    try:
        with tcpdump(nginx.port) as pcap:
            url = f"http://127.0.0.1:{nginx.port}/index.html?page=2&password={s['pw']}&X-Amz-Signature={s['sig']}"
            subprocess.run(
                ["curl", "-s", "-o", "/dev/null", url, "-H", f"authorization: bearer {s['bearer']}",
                 "-H", f"X-Api-Key: {s['apikey']}", "-H", f"X-My-Session-Token: {s['custom']}",
                 "-H", f"Cookie: sid={s['cookie']}", "-H", "User-Agent: redaction-test/1"],
                check=True, timeout=30,
            )  # fmt: skip
            # an Authorization value continued on an obs-fold line (RFC 9112 §5.2): nginx answers 400, the
            # request is on the wire all the same
            with socket.create_connection(("127.0.0.1", nginx.port), timeout=10) as c:
                c.sendall(
                    b"GET /fold HTTP/1.1\r\nHost: x\r\nAuthorization: Basic\r\n "
                    + s["fold"].encode()
                    + b"\r\nConnection: close\r\n\r\n"
                )
                while c.recv(65536):
                    pass
    finally:
        nginx.stop()
    records, spans = check(pcap, (Rule(protocol="http", ports=(nginx.port,)),), list(s.values()))
    first = records[0].to_json()
    assert first["request"]["query"] == "page=2&password=[REDACTED]&X-Amz-Signature=[REDACTED]"
    assert first["request"]["headers"]["authorization"] == ["bearer [REDACTED]"]  # scheme case kept as sent
    assert first["request"]["headers"]["x-my-session-token"] == ["[REDACTED]"]
    assert {r.to_json()["request"]["path"] for r in records} == {"/index.html", "/fold"}
    span = next(sp for sp in spans if sp["attributes"]["url.path"] == "/index.html")
    assert span["attributes"]["url.query"] == first["request"]["query"]
    assert span["attributes"]["user_agent.original"] == "redaction-test/1"


class _TokenServer(BaseHTTPRequestHandler):
    """An OAuth-like token endpoint: answers every POST with a JSON body carrying a token."""

    token = ""

    def log_message(self, *a: object) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = json.dumps({"access_token": self.token, "token_type": "Bearer", "expires_in": 3600}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def test_http1_captured_bodies_when_body_capture_is_on() -> None:
    s = {k: f"S3CRET-body-{k}-{os.getpid()}" for k in ("form", "json", "answer")}
    port = free_port()
    handler = type("Handler", (_TokenServer,), {"token": s["answer"]})
    httpd = ThreadingHTTPServer(("127.0.0.1", port), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        with tcpdump(port) as pcap:
            for ctype, data in (
                ("application/x-www-form-urlencoded", f"grant_type=password&username=a&password={s['form']}"),
                ("application/json", json.dumps({"user": "a", "credentials": {"secret": s["json"]}})),
            ):
                req = urllib.request.Request(
                    f"http://127.0.0.1:{port}/oauth/token",
                    data=data.encode(),
                    headers={"Content-Type": ctype},
                )
                with urllib.request.urlopen(req, timeout=10) as r:
                    assert json.loads(r.read())["access_token"] == s["answer"]
    finally:
        httpd.shutdown()
        httpd.server_close()
    options = parse_assignments(["http.capture_body=4096"])
    records, _ = check(pcap, (Rule(protocol="http", ports=(port,)),), list(s.values()), options)
    bodies = [(r.to_json()["request"]["body"], r.to_json()["response"]["body"]) for r in records]
    assert bodies[0][0] == "grant_type=password&username=a&password=[REDACTED]"
    assert json.loads(bodies[1][0]) == {"user": "a", "credentials": {"secret": "[REDACTED]"}}
    assert all(json.loads(b)["access_token"] == "[REDACTED]" for _, b in bodies)
    assert all(json.loads(b)["expires_in"] == 3600 for _, b in bodies)  # the rest is kept


# -- HTTP/2 and gRPC --------------------------------------------------------------------------------------
@pytest.mark.skipif(not shutil.which("nghttpd") or not shutil.which("nghttp"), reason="nghttp2 not installed")
def test_http2_headers_and_path_query() -> None:
    s = {k: f"S3CRET-h2-{k}-{os.getpid()}" for k in ("token", "auth", "apikey")}
    with nghttpd({"index.html": "hello\n"}) as port, tcpdump(port) as pcap:
        subprocess.run(
            ["nghttp", f"http://127.0.0.1:{port}/index.html?access_token={s['token']}&lang=en",
             "-H", f"authorization: Bearer {s['auth']}", "-H", f"x-api-key: {s['apikey']}"],
            check=True, timeout=30, capture_output=True,
        )  # fmt: skip
    records, spans = check(pcap, (Rule(protocol="http2", ports=(port,)),), list(s.values()))
    req = records[0].to_json()["request"]
    assert req["path"] == "/index.html?access_token=[REDACTED]&lang=en"
    assert spans[0]["attributes"]["url.path"] == "/index.html"
    assert spans[0]["attributes"]["url.query"] == "access_token=[REDACTED]&lang=en"


def test_grpc_metadata() -> None:
    grpc = pytest.importorskip("grpc")
    s = {k: f"S3CRET-grpc-{k}-{os.getpid()}" for k in ("auth", "token", "password")}
    with grpc_server() as port, tcpdump(port) as pcap, grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        ch.unary_unary("/demo.Echo/Unary")(
            b"hello",
            timeout=30,
            metadata=(
                ("authorization", f"Bearer {s['auth']}"),
                ("x-auth-token", s["token"]),
                ("db-password", s["password"]),
            ),
        )
    records, spans = check(pcap, (Rule(protocol="grpc", ports=(port,)),), list(s.values()))
    meta = records[0].to_json()["request"]["metadata"]
    assert meta["x-auth-token"] == ["[REDACTED]"] and meta["authorization"] == ["Bearer [REDACTED]"]
    assert spans[0]["attributes"]["rpc.grpc.status_code"] == 0


# -- databases --------------------------------------------------------------------------------------------
@pytest.mark.skipif(not postgres_available(), reason="postgresql is not installed (make test-deps)")
def test_postgresql_literals() -> None:
    import psycopg

    pg = PostgresServer()
    s = {k: f"S3CRET-pg-{k}-{os.getpid()}" for k in ("simple", "password", "param", "error")}
    try:
        with tcpdump(pg.port) as pcap, psycopg.connect(pg.dsn(), autocommit=True) as conn:
            conn.execute(f"SELECT count(*) FROM pg_user WHERE usename = 'app' AND 'x' <> '{s['simple']}'")
            conn.execute(f"CREATE USER redact_test PASSWORD '{s['password']}'")
            # a bound parameter travels in Bind, never in the statement text
            conn.execute("SELECT %s::text", (s["param"],))
            # the server's error message quotes the value back
            with contextlib.suppress(psycopg.errors.InvalidTextRepresentation):
                conn.execute(f"SELECT '{s['error']}'::integer")
    finally:
        pg.stop()
    records, spans = check(pcap, (Rule(protocol="postgresql", ports=(pg.port,)),), list(s.values()))
    texts = [sp["attributes"].get("db.query.text") for sp in spans]
    assert "CREATE USER redact_test PASSWORD ?" in texts  # the span carries the record's redacted text
    assert [t for t in texts if t] == [
        r.to_json()["request"]["statement"]
        for r in records
        if (r.to_json()["request"] or {}).get("statement")
    ]
    ops = {sp["attributes"].get("db.operation.name") for sp in spans}
    assert {"SELECT", "CREATE"} <= ops


@pytest.mark.skipif(not mariadb_available(), reason="mariadb is not installed (make test-deps)")
def test_mysql_literals() -> None:
    import pymysql

    db = MariaDBServer()
    s = {k: f"S3CRET-my-{k}-{os.getpid()}" for k in ("select", "password", "insert", "error")}
    try:
        with tcpdump(db.port) as pcap:
            conn = pymysql.connect(
                host="127.0.0.1", port=db.port, user=db.USER, password=db.PASSWORD, database=db.DATABASE
            )
            with conn.cursor() as cur:
                cur.execute(f"SELECT 1 FROM dual WHERE 'a' <> '{s['select']}'")
                cur.execute(f"CREATE USER 'redact'@'%' IDENTIFIED BY '{s['password']}'")
                cur.execute("CREATE TABLE t (v TEXT)")
                cur.execute("INSERT INTO t VALUES (%s)", (s["insert"],))  # PyMySQL quotes it into the text
                # a syntax error's message quotes the statement back ("... near '...'")
                with contextlib.suppress(pymysql.err.ProgrammingError):
                    cur.execute(f"SELEC '{s['error']}'")
            conn.commit()
            conn.close()
    finally:
        db.stop()
    records, spans = check(pcap, (Rule(protocol="mysql", ports=(db.port,)),), list(s.values()))
    texts = [sp["attributes"].get("db.query.text") for sp in spans]
    assert "INSERT INTO t VALUES (?)" in texts
    assert [t for t in texts if t] == [
        r.to_json()["request"]["statement"]
        for r in records
        if (r.to_json()["request"] or {}).get("statement")
    ]
    # {db.operation.name} {target}: no table is parsed out of the text, the target is the server (semconv)
    assert any(sp["name"] == f"INSERT 127.0.0.1:{db.port}" for sp in spans)


@pytest.mark.skipif(not redis_available(), reason="redis-server is not installed (make test-deps)")
def test_redis_auth_and_values() -> None:
    import redis

    server = RedisServer()
    s = {k: f"S3CRET-redis-{k}-{os.getpid()}" for k in ("auth", "value", "hset", "error")}
    try:
        with tcpdump(server.port) as pcap:
            client = redis.Redis(port=server.port)
            with contextlib.suppress(redis.exceptions.ResponseError, redis.exceptions.AuthenticationError):
                client.execute_command("AUTH", "default", s["auth"])  # no password set: an error reply
            client.set("k", s["value"])
            client.hset("h", "f", s["hset"])
            # an unknown command's error quotes its arguments back
            with contextlib.suppress(redis.exceptions.ResponseError):
                client.execute_command("NOSUCHCMD", s["error"])
            client.close()
    finally:
        server.stop()
    records, spans = check(pcap, (Rule(protocol="redis", ports=(server.port,)),), list(s.values()))
    assert {"AUTH", "SET", "HSET"} <= {r.operation for r in records}
    assert any(sp["name"].startswith("SET ") for sp in spans)


@pytest.mark.skipif(not secantus_available(), reason="secantus (a MongoDB wire server) is not installed")
def test_mongodb_documents() -> None:
    import pymongo

    server = Secantus()
    s = {k: f"S3CRET-mongo-{k}-{os.getpid()}" for k in ("insert", "find")}
    try:
        with tcpdump(server.port) as pcap:
            client: Any = pymongo.MongoClient("127.0.0.1", server.port, serverSelectionTimeoutMS=10000)
            client.shop.users.insert_one({"name": "a", "password": s["insert"]})
            list(client.shop.users.find({"password": s["find"]}))
            client.close()
    finally:
        server.stop()
    records, spans = check(pcap, (Rule(protocol="mongodb", ports=(server.port,)),), list(s.values()))
    assert {"insert", "find"} <= {r.operation for r in records}
    assert any(sp["name"] == "find users" for sp in spans)


@pytest.mark.slow
@pytest.mark.skipif(not rabbitmq_available(), reason="rabbitmq-server is not installed (make test-deps)")
def test_amqp_bodies_and_headers() -> None:
    import pika

    broker = RabbitMQ()
    s = {k: f"S3CRET-amqp-{k}-{os.getpid()}" for k in ("body", "header")}
    try:
        with tcpdump(broker.port) as pcap:
            conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", broker.port, heartbeat=0))
            ch = conn.channel()
            ch.queue_declare("orders")
            props = pika.BasicProperties(headers={"x-token": s["header"]})
            ch.basic_publish("", "orders", s["body"].encode(), props)
            ch.basic_get("orders", auto_ack=True)
            conn.close()
    finally:
        broker.stop()
    records, spans = check(pcap, (Rule(protocol="amqp", ports=(broker.port,)),), list(s.values()))
    assert "Basic.Publish" in {r.operation for r in records}
    with open(pcap, "rb") as f:
        assert b"\x00guest\x00guest" in f.read()  # the PLAIN credentials were on the wire ...
    assert not any("\x00guest" in json.dumps(r.to_json()) for r in records)  # ... and are in no record
    publish = next(sp for sp in spans if sp["name"] == "Basic.Publish")
    assert publish["attributes"]["messaging.operation.type"] == "send"


@pytest.mark.skipif(not tansu_available(), reason="tansu (a Kafka-compatible broker) is not installed")
def test_kafka_values() -> None:
    from kafka import KafkaAdminClient, KafkaProducer
    from kafka.admin import NewTopic

    broker = Tansu()
    s = {k: f"S3CRET-kafka-{k}-{os.getpid()}" for k in ("value", "key")}
    try:
        with tcpdump(broker.port) as pcap:
            bootstrap = f"127.0.0.1:{broker.port}"
            admin = KafkaAdminClient(bootstrap_servers=bootstrap)
            admin.create_topics([NewTopic("orders", 1, 1)])
            admin.close()
            producer = KafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=0)
            producer.send("orders", s["value"].encode(), key=s["key"].encode(), partition=0).get(timeout=10)
            producer.close()
    finally:
        broker.stop()
    records, spans = check(pcap, (Rule(protocol="kafka", ports=(broker.port,)),), list(s.values()))
    assert "Produce" in {r.operation for r in records}
    produce = next(sp for sp in spans if sp["name"] == "Produce")
    assert produce["attributes"]["messaging.operation.type"] == "send"
