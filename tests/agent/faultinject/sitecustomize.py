"""Fault injection for tests/agent/test_supervise.py: this directory goes first on the agent's PYTHONPATH,
so Python imports this module at start-up in the agent and in every capture worker it spawns.

PACKETD_FAULT="module:Class.method:times:role" makes that method raise RuntimeError("injected fault") on
its first `times` calls, counted across processes (a file in PACKETD_FAULT_DIR), in processes of `role`:
"main" (the agent), "worker" (a spawned capture worker) or "any". Each firing appends a line to
PACKETD_FAULT_DIR/fired, the test's own record of how many faults there were. With
PACKETD_FAULT_ACTION=hang the method never returns instead (a loop that is stuck, not failing).
"""

from __future__ import annotations

import os


def _install(spec: str, where: str) -> None:
    import fcntl
    import functools
    import importlib
    import multiprocessing

    module_name, qualname, times_text, role = spec.split(":")
    times = int(times_text)
    owner_name, attr = qualname.rsplit(".", 1)
    owner = importlib.import_module(module_name)
    for part in owner_name.split("."):
        owner = getattr(owner, part)
    original = getattr(owner, attr)

    def fire() -> bool:
        in_worker = multiprocessing.parent_process() is not None
        if role != "any" and (role == "worker") != in_worker:
            return False
        with open(os.path.join(where, "fired"), "a+") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            f.seek(0)
            if len(f.read().splitlines()) >= times:
                return False
            f.write(f"{os.getpid()}\n")
        return True

    @functools.wraps(original)
    def faulty(*args: object, **kwargs: object) -> object:
        if fire():
            if os.environ.get("PACKETD_FAULT_ACTION") == "hang":
                import time

                time.sleep(3600)
            raise RuntimeError("injected fault")
        return original(*args, **kwargs)

    setattr(owner, attr, faulty)


_spec = os.environ.get("PACKETD_FAULT")
if _spec:
    _install(_spec, os.environ["PACKETD_FAULT_DIR"])
