"""Outputs at the edge: JSON lines (stdout or a rotating file), aligned text lines (I/O layer)."""
