"""Which build of packetd is running: pure Python, or the optional compiled hot path (issue 15).

The pure-Python modules are the reference. `PACKETD_COMPILE=1 pip install .` (or `make wheel`) runs
setup.py, which compiles the modules listed in COMPILED_MODULES with mypyc from the same typed sources;
the wheel ships each extension beside its .py. Python's import system ranks an extension module's suffix
before `.py` in the same directory, so an installed compiled build imports the extensions, and a tree
without them (the editable install, or a wheel whose .so files were removed) imports the .py files with no
code of ours deciding: there is no second import path to keep in step.

This module only reports where those modules were found (`packetd version`, the tests that prove which
build they run against); it changes nothing. setup.py runs this file on its own (it imports only the standard library, not packetd) to read
COMPILED_MODULES, so the list exists once.

Modules left out on purpose, and why:
  * `protocols/base.py` and every `protocols/*/messages.py`: their `@value` record classes declare
    `ClassVar`s (ROLE, PROTOCOL, ...). mypyc builds a class with a decorator it does not know (value is
    a `dataclass_transform`) as a plain Python class whose `__annotations__` hold the evaluated, erased
    types (`int`, not "ClassVar[int]"), so `dataclasses` takes each ClassVar for a field with a default
    and refuses the class at import ("non-default argument 'start_ns' follows default argument").
  * `_values.py`: `typing.dataclass_transform` sets an attribute on the function it decorates, which a
    compiled function does not have.
  * `cli.py`, `agent/`, `export/`, `capture/` other than pcapfile: I/O and start-up code, not per packet.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util

# capture/pcapfile is left pure: its test of page release wraps a method of one CaptureFile instance, which a
# native class does not allow. Fixed in the sources, patterns to avoid in every module listed here (mypyc
# checks the declared types at run time, so a value that does not match its annotation raises):
#  * kafka's decoder passed `fields.get("Topics", ())` (a tuple when absent) to a parameter declared
#    `list[...]`: TypeError "list object expected; got tuple". Declare what is really passed (Iterable).
#  * http1's decoder sliced bytes with a start past the end, which mypyc's native slice turns into
#    SystemError "Negative size passed to PyBytes_FromStringAndSize" where Python gives b"".
#  * http2's decoder assigned one variable bytes and then an int.
#  * kafka's schema sliced a gzip batch `buf[p:end]` with p past end (a batch_len under 49): same SystemError.
#  * a tuple kept in a module dict and returned twice is reboxed by compiled code: equal, not identical.
# A class that subclasses one of these modules' classes must be compiled too (an interpreted class cannot
# inherit from a compiled one): framing.LengthPrefixed is subclassed by kafka's and mongodb's decoders, both
# listed.

# the per-packet and per-message path of `watch -r FILE`: L2-L4 decode, the flow table, pairing, the
# record's JSON, the file reader, and each protocol's decoder and semantics (metric labels, span names)
COMPILED_MODULES: tuple[str, ...] = (
    "packetd.net.packet",
    "packetd.net.reassembly",
    "packetd.flow.table",
    "packetd.flow.detect",
    "packetd.flow.ports",
    "packetd.pairing.session",
    "packetd.pairing.matchers",
    "packetd.pairing.roundtrip",
    "packetd.pairing.dns_udp",
    "packetd.protocols.framing",
    # the pending queues of in-order pairing (moved out of protocols/base.py, which cannot be compiled)
    "packetd.protocols.pending",
    "packetd.protocols.redact",
    "packetd.protocols.traceparent",
    "packetd.pipeline.summary",
    # `--workers N`: Steer decodes every frame; its classes subclass Summary and Reassembler, which an
    # interpreted class cannot do once those are compiled ("interpreted classes cannot inherit from compiled")
    "packetd.pipeline.fanout",
    "packetd.engine",
    # per-record work apart from the messages modules that hold it (those cannot be compiled, see above):
    # the HTTP/1 header block's fields, HTTP/2's and gRPC's, AMQP's method and property arguments
    "packetd.protocols.http1.headers",
    "packetd.protocols.http2.fields",
    "packetd.protocols.amqp.spec",
    # Kafka's schema plans and their generated walkers' helpers (varints, record-batch headers)
    "packetd.protocols.kafka.schema",
    *(
        f"packetd.protocols.{p}.{m}"
        for p in ("amqp", "dns", "http1", "http2", "kafka", "mongodb", "mysql", "postgresql", "redis")
        for m in ("decoder", "semantics")
    ),
)

_EXTENSION_SUFFIXES = tuple(importlib.machinery.EXTENSION_SUFFIXES)

# the hand-written C accelerator of L2-L4 decoding (net/_packet.c), built beside the mypyc modules by the
# same flag (setup.py) but not one of them: net/packet.py imports it if present (and not PACKETD_PURE=1)
ACCELERATOR = "packetd.net._packet"
# (and one more hand-written C file the same way: protocols/mongodb/_extent.c, the C twin of the MongoDB
# decoder's check of BSON array extents; decoder.FAST_STRUCTURE says whether it is in use; and
# protocols/redis/_resp.c, the C twin of the Redis decoder's scan of a whole command array, decoder.C_FAST_COMMAND)


def accelerator() -> str:
    """'on' when net/packet.py decodes through the C accelerator, 'off' when it is installed but
    PACKETD_PURE=1 turned it off, 'absent' when it is not built."""
    from packetd.net.packet import FAST_DECODE

    if FAST_DECODE is not None:
        return "on"
    return "off" if importlib.util.find_spec(ACCELERATOR) is not None else "absent"


def module_origin(name: str) -> str:
    """The file `import name` loads (or already loaded): an extension module's .so or the .py."""
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        raise ImportError(f"packetd module {name} not found")
    return spec.origin


def compiled_modules() -> list[str]:
    """The modules of COMPILED_MODULES that import as extension modules in this installation."""
    return [name for name in COMPILED_MODULES if module_origin(name).endswith(_EXTENSION_SUFFIXES)]


def build() -> str:
    """'compiled' when every module of COMPILED_MODULES is an extension, 'pure' when none is, and
    'mixed (N of M compiled)' otherwise (a broken install: extensions built from other sources)."""
    n = len(compiled_modules())
    if n == 0:
        return "pure"
    if n == len(COMPILED_MODULES):
        return "compiled"
    return f"mixed ({n} of {len(COMPILED_MODULES)} compiled)"


def slot_names(cls: type) -> tuple[str, ...]:
    """The instance attributes a slotted class declares, in either build: its `__slots__`, or, for a class
    mypyc compiled (a native class keeps no `__slots__`), its `__mypyc_attrs__`, sorted as the sources'
    `__slots__` are."""
    names = getattr(cls, "__slots__", None)
    if names is None:
        names = sorted(getattr(cls, "__mypyc_attrs__", ()))
    return tuple(names)
