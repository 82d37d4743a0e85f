"""A real gRPC server (grpcio, C-core HTTP/2) for live tests and the load bench: `python grpc_server.py PORT`.

Generic handlers on raw bytes (no protobuf code generation): service `demo.Echo` with
  Unary        unary-unary: echoes the request; b"missing" → NOT_FOUND before any message (Trailers-Only)
  Slow         unary-unary: sleeps 2 s (for deadlines)
  Count        unary-stream: int(request) messages, then OK; a negative count → 2 messages, then INTERNAL
  Sum          stream-unary: one message holding the number of messages received
  Chat         stream-stream: echoes every message
It prints "ready" on stdout once it listens.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from concurrent import futures

import grpc

NOT_FOUND_MESSAGE = "no such key: missing ✓ 100%"


def unary(request: bytes, context: grpc.ServicerContext) -> bytes:
    if request == b"missing":
        context.abort(grpc.StatusCode.NOT_FOUND, NOT_FOUND_MESSAGE)
    return request


def slow(request: bytes, context: grpc.ServicerContext) -> bytes:
    time.sleep(2)
    return request


def count(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
    n = int(request)
    for i in range(abs(n) if n >= 0 else 2):
        yield b"item-%d" % i
    if n < 0:
        context.abort(grpc.StatusCode.INTERNAL, "failed after two items")


def total(requests: Iterator[bytes], context: grpc.ServicerContext) -> bytes:
    return b"%d" % sum(1 for _ in requests)


def chat(requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
    for r in requests:
        yield b"re:" + r


def serve(port: int) -> None:
    handlers = {
        "Unary": grpc.unary_unary_rpc_method_handler(unary),
        "Slow": grpc.unary_unary_rpc_method_handler(slow),
        "Count": grpc.unary_stream_rpc_method_handler(count),
        "Sum": grpc.stream_unary_rpc_method_handler(total),
        "Chat": grpc.stream_stream_rpc_method_handler(chat),
    }
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=32), maximum_concurrent_rpcs=None)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("demo.Echo", handlers),))
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    print("ready", flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    serve(int(sys.argv[1]))
