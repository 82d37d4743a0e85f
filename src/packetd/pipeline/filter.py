"""`roundtripsfilter`: include/exclude rules and tail-style sampling, with counters.

    config:
      include: {protocols: [http], servers: ["10.0.0.0/8", ":443", "10.1.2.3:8080"], kinds: [roundtrip]}
      exclude: {statuses: ["404"], servers: [...], protocols: [...]}
      minDuration: 5ms          # drop faster roundtrips (records without a duration pass)
      errorsOnly: false
      sampling:                 # tail-style: decided once the response is known
        keepErrors: true        # every error is kept
        slowerThan: 500ms       # every roundtrip at least this slow is kept
        ratio: 0.1              # of the rest, this fraction, decided from the trace id

The sampling decision is a hash of the trace id, so every span of one trace is kept or dropped together
(and a replay decides the same way). Counters: `kept` and `dropped` by reason.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from packetd.pairing.roundtrip import Roundtrip
from packetd.pipeline.servermatch import ServerMatch
from packetd.pipeline.spans import span_ids
from packetd.protocols.base import Kind
from packetd.units import parse_duration

_ALLOWED = {"include", "exclude", "minDuration", "errorsOnly", "sampling"}
_RULE_KEYS = {"protocols", "servers", "statuses", "kinds"}
_SAMPLING_KEYS = {"keepErrors", "slowerThan", "ratio"}


class FilterConfigError(ValueError):
    pass


def _check_keys(cfg: Any, allowed: set[str], where: str) -> None:
    unknown = set(cfg) - allowed
    if unknown:
        raise FilterConfigError(
            f"{where}: unknown key(s) {', '.join(sorted(unknown))}; allowed: {', '.join(sorted(allowed))}"
        )


def _duration(cfg: Mapping[str, Any], key: str, where: str) -> int:
    """`cfg[key]` as a duration in ns; 0 when not given."""
    try:
        return parse_duration(str(cfg[key])) if key in cfg else 0
    except ValueError as exc:
        raise FilterConfigError(f"{where}.{key}: {exc}") from None


class _Rule:
    def __init__(self, cfg: Mapping[str, Any], where: str) -> None:
        _check_keys(cfg, _RULE_KEYS, f"roundtripsfilter.{where}")
        self.protocols = {str(p) for p in cfg.get("protocols", []) or []}
        self.statuses = {str(s) for s in cfg.get("statuses", []) or []}
        self.kinds = {str(k) for k in cfg.get("kinds", []) or []}
        bad = self.kinds - set(Kind.ALL)
        if bad:
            raise FilterConfigError(
                f"roundtripsfilter.{where}.kinds: unknown kind(s) {', '.join(sorted(bad))}; allowed: {', '.join(Kind.ALL)}"
            )
        try:
            self.servers = [ServerMatch(str(s)) for s in cfg.get("servers", []) or []]
        except ValueError as exc:
            raise FilterConfigError(f"roundtripsfilter.{where}.servers: {exc}") from None
        self.empty = not (self.protocols or self.statuses or self.kinds or self.servers)

    def matches(self, rt: Roundtrip) -> bool:
        """Every condition given must hold (an empty rule matches everything)."""
        if self.protocols and rt.protocol not in self.protocols:
            return False
        if self.kinds and rt.kind not in self.kinds:
            return False
        if self.statuses and str(rt.status) not in self.statuses:
            return False
        return not self.servers or any(m(rt.server[0], rt.server[1]) for m in self.servers)


class RoundtripsFilter:
    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        cfg = dict(config or {})
        _check_keys(cfg, _ALLOWED, "roundtripsfilter")
        self.include = _Rule(cfg.get("include") or {}, "include")
        self.exclude = _Rule(cfg.get("exclude") or {}, "exclude")
        self.min_duration = _duration(cfg, "minDuration", "roundtripsfilter")
        self.errors_only = bool(cfg.get("errorsOnly", False))
        sampling = cfg.get("sampling") or {}
        _check_keys(sampling, _SAMPLING_KEYS, "roundtripsfilter.sampling")
        self.sampling = bool(sampling)
        self.keep_errors = bool(sampling.get("keepErrors", True))
        self.slower_than = _duration(sampling, "slowerThan", "roundtripsfilter.sampling")
        ratio = float(sampling.get("ratio", 1.0))
        if not 0.0 <= ratio <= 1.0:
            raise FilterConfigError(f"roundtripsfilter.sampling.ratio: {ratio} is not between 0 and 1")
        self._threshold = int(ratio * (1 << 64))
        self.kept = 0
        self.dropped: dict[str, int] = {}

    def _drop(self, reason: str) -> bool:
        self.dropped[reason] = self.dropped.get(reason, 0) + 1
        return False

    def accept(self, rt: Roundtrip) -> bool:
        if not self.include.empty and not self.include.matches(rt):
            return self._drop("not_included")
        if not self.exclude.empty and self.exclude.matches(rt):
            return self._drop("excluded")
        if self.errors_only and not rt.error:
            return self._drop("not_error")
        d = rt.duration_ns
        if self.min_duration and d is not None and d < self.min_duration:
            return self._drop("too_fast")
        if self.sampling and not self._sampled(rt, d):
            return self._drop("sampled_out")
        self.kept += 1
        return True

    def _sampled(self, rt: Roundtrip, d: int | None) -> bool:
        if self.keep_errors and (rt.error or rt.kind == Kind.UNANSWERED):
            return True
        if self.slower_than and d is not None and d >= self.slower_than:
            return True
        ctx = rt.trace
        trace_id = int(ctx.trace_id, 16) if ctx is not None else span_ids(rt)[0]
        h = int.from_bytes(hashlib.blake2b(trace_id.to_bytes(16, "big"), digest_size=8).digest(), "big")
        return h < self._threshold
