"""packetd: a passive network-observability agent.

Packets in (live or from a capture file), roundtrips out: every application-level request paired with its
response, as JSON records, Prometheus metrics and OpenTelemetry spans. See ARCHITECTURE.md for the layers.
"""

from __future__ import annotations

__version__ = "0.1.0"
