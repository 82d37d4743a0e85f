"""L2-L4 decoding: frames in, TCP segments and UDP datagrams out (pure, no I/O)."""
