"""`ProtocolSpec`: what a protocol package tells the rest of packetd about itself (its `SPEC`).

A protocol package (`protocols/<name>/`) builds one `ProtocolSpec` in its `__init__.py`; registry.py lists
them. A spec says how to build the protocol's decoder (`factory`), which options type configures it, how
its messages pair (`pairing`), which ports it is watched on by default, over which transports, which
upgrade tokens hand a connection to it, and what its messages mean to metrics and traces (`semantics`).
Protocols sharing a `family` share one decoder (HTTP/2 and gRPC): a port may be claimed by several
protocols of one family, never by two families.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import field
from typing import Any, Literal

from packetd._values import value
from packetd.protocols.base import Decoder, DecoderContext
from packetd.protocols.detection import Detect
from packetd.protocols.display import DEFAULT as DEFAULT_DISPLAY
from packetd.protocols.display import Display
from packetd.protocols.semantics import GENERIC, Semantics

Pairing = Literal["fifo", "keyed", "oneway"]
# config keys of the Go implementation under `decoder.<protocol>` → (the keys left, defaults for ours)
ReferenceKeys = Callable[[Mapping[str, object]], tuple[dict[str, object], dict[str, object]]]


def no_reference_keys(values: Mapping[str, object]) -> tuple[dict[str, object], dict[str, object]]:
    """A protocol without Go-implementation option keys: every key is its own."""
    return dict(values), {}


def imported_on_first_use(module: str, name: str) -> Callable[[DecoderContext], Decoder]:
    """The decoder factory `module.name`, its module imported on the first decoder made: start-up imports
    no decoder a run does not use (the nine decoder modules, hpack and bson with them, were ~40 ms of
    CPU in every process's start; `python -X importtime`). What the registry lists of a protocol
    besides (options, semantics, detection, display) is light and imported as before."""
    factory: Callable[[DecoderContext], Decoder] | None = None

    def new_decoder(ctx: DecoderContext) -> Decoder:
        nonlocal factory
        if factory is None:
            factory = getattr(importlib.import_module(module), name)
            assert factory is not None
        return factory(ctx)

    # named as the function it stands for (a traceback, a repr, tests/protocols/test_checklist.py's package)
    new_decoder.__module__, new_decoder.__name__, new_decoder.__qualname__ = module, name, name
    return new_decoder


@value
class ProtocolSpec:
    """One row of the registry."""

    name: str  # the record's and the config's protocol name (the record contract: ARCHITECTURE.md)
    family: str
    factory: Callable[[DecoderContext], Decoder]
    options_type: type[Any] | None
    pairing: Pairing
    default_ports: tuple[int, ...]
    transports: frozenset[str]  # "tcp", "udp"
    # every registered package has its own (tests/protocols/test_checklist.py)
    semantics: Semantics = field(default_factory=lambda: GENERIC)
    upgrade_tokens: frozenset[str] = frozenset()  # HTTP/1.1 upgrade tokens this protocol takes over
    description: str = ""
    # the Go implementation's `decoder.<protocol>` keys (reference §2.2), mapped onto ours
    reference_keys: ReferenceKeys = no_reference_keys
    detect: Detect | None = None  # detection by content (protocols/<name>/detect.py); None: by port only
    display: Display = DEFAULT_DISPLAY  # how its records read in `watch`'s text line (<package>/display.py)


__all__ = ["Pairing", "ProtocolSpec", "ReferenceKeys", "imported_on_first_use", "no_reference_keys"]
