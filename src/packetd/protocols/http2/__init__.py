"""HTTP/2 (RFC 9113) and gRPC over HTTP/2: one decoder, two record protocols (`http2`, `grpc`)."""
