"""Who is talking: local sockets mapped to the processes (and containers) that own them.

Layer: I/O, beside `capture/` (ARCHITECTURE.md): `processes` reads `/proc`, so it may only be called from
`cli.py` / `agent/`. Its pure parts — `cgroup` (a cgroup path → container id, runtime, pod UID) and
`sockets` (the kernel's socket-table lines → matching entries) — take text in and give values out, and are
tested without a `/proc`.
"""
