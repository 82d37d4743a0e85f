"""Decoder options from user text: `--decoder http.capture_body=4096` in watch, `decoder.<proto>.<key>` in
the agent's config. Each protocol declares a `value` options class in the registry (`options_type`); its
fields are the keys, typed by their annotations (bool, int, str, frozenset of lower-case strings).
"""

from __future__ import annotations

import dataclasses
import difflib
import typing
from collections.abc import Iterable, Mapping
from typing import Any

from packetd.protocols.registry import REGISTRY, Registry


class OptionError(ValueError):
    """A decoder option the user wrote is not valid; the message says what is allowed."""


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _convert(proto: str, key: str, annotation: Any, raw: object) -> object:
    origin = typing.get_origin(annotation) or annotation
    text = str(raw).strip()
    if annotation is bool or origin is bool:
        if isinstance(raw, bool):
            return raw
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise OptionError(f"decoder option {proto}.{key}: '{raw}' is not a boolean (true or false)")
    if annotation is int or origin is int:
        if isinstance(raw, int) and not isinstance(raw, bool):
            return raw
        try:
            return int(text)
        except ValueError:
            raise OptionError(f"decoder option {proto}.{key}: '{raw}' is not an integer") from None
    if origin in (frozenset, set, tuple, list):
        items = (
            raw
            if isinstance(raw, list | tuple | set | frozenset)
            else [s for s in text.split(",") if s.strip()]
        )
        return frozenset(str(s).strip().lower() for s in items)
    return text


def option_fields(options_type: type[Any]) -> dict[str, Any]:
    hints = typing.get_type_hints(options_type)
    return {f.name: hints[f.name] for f in dataclasses.fields(options_type)}


def build_options(
    settings: Mapping[str, Mapping[str, object]], registry: Registry = REGISTRY
) -> dict[str, Any]:
    """protocol → {key: raw value} → protocol → options object (defaults for unset keys)."""
    out: dict[str, Any] = {}
    for proto, values in settings.items():
        spec = registry.get(proto)
        if spec is None:
            raise OptionError(
                f"decoder options for unknown protocol '{proto}'; known protocols: {', '.join(registry.names())}"
            )
        if spec.options_type is None:
            raise OptionError(f"protocol '{proto}' has no decoder options")
        fields = option_fields(spec.options_type)
        kwargs = {}
        for key, raw in values.items():
            if key not in fields:
                close = difflib.get_close_matches(key, list(fields), n=1)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                raise OptionError(
                    f"unknown decoder option {proto}.{key}{hint}; {proto} options: {', '.join(sorted(fields))}"
                )
            kwargs[key] = _convert(proto, key, fields[key], raw)
        out[proto] = spec.options_type(**kwargs)
    return out


def parse_assignments(items: Iterable[str], registry: Registry = REGISTRY) -> dict[str, Any]:
    """`["http.capture_body=4096", ...]` → protocol → options object."""
    settings: dict[str, dict[str, object]] = {}
    for item in items:
        name, sep, raw = item.partition("=")
        proto, dot, key = name.strip().partition(".")
        if not sep or not dot or not key:
            raise OptionError(
                f"invalid --decoder '{item}', expected PROTOCOL.KEY=VALUE (e.g. http.capture_body=4096)"
            )
        settings.setdefault(proto, {})[key] = raw
    return build_options(settings, registry)
