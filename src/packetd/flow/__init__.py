"""Flows: the flow table, TCP stream tracking, idle expiry (pure, no I/O)."""
