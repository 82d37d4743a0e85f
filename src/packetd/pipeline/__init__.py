"""Processors over roundtrip records: display filters, the endpoint summary (pure, no I/O)."""
