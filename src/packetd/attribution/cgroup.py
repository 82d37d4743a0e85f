"""A process's cgroup path → its container id, container runtime and Kubernetes pod UID (pure).

Container runtimes name the cgroup of each container after the container's id, in a few fixed shapes
(`/proc/<pid>/cgroup`, the `0::` line on cgroup v2, one line per hierarchy on v1):

    docker, cgroupfs driver         /docker/<id>
    docker, systemd driver          /system.slice/docker-<id>.scope
    containerd (k8s), systemd       /kubepods.slice/kubepods-burstable.slice/
                                      kubepods-burstable-pod<uid with _>.slice/cri-containerd-<id>.scope
    containerd / docker (k8s),      /kubepods/besteffort/pod<uid>/<id>        (the runtime is not named)
      cgroupfs driver
    cri-o                           /kubepods.slice/kubepods-pod<uid with _>.slice/crio-<id>.scope
    podman                          /machine.slice/libpod-<id>.scope[/container]
                                    /user.slice/user-1000.slice/user@1000.service/user.slice/libpod-<id>.scope
                                    /libpod_parent/libpod-<id>                 (cgroupfs manager)

`<id>` is 64 lowercase hex digits. The innermost container segment wins (docker-in-docker nests
`/docker/<outer>/docker/<inner>`). Nothing is guessed: a runtime is reported only when the path names it,
a container id only when a segment has one of these shapes (a 32-digit id such as `/process_api/<hex>` is
not a container), and the conmon helpers of cri-o and podman (`crio-conmon-<id>.scope`,
`libpod-conmon-<id>.scope`) are not the container.
"""

from __future__ import annotations

import re

from packetd._values import value

_ID = r"([0-9a-f]{64})"
# (segment pattern, runtime); one regex per shape, tried in order on each path segment
_SHAPES: tuple[tuple[re.Pattern[str], str | None], ...] = (
    (re.compile(rf"^docker-{_ID}\.scope$"), "docker"),
    (re.compile(rf"^cri-containerd-{_ID}\.scope$"), "containerd"),
    (re.compile(rf"^crio-{_ID}\.scope$"), "cri-o"),
    (re.compile(rf"^libpod-{_ID}(?:\.scope)?$"), "podman"),
    (re.compile(rf"^{_ID}$"), None),  # bare id: the parent segment may name the runtime
)
# `pod<uid>` (cgroupfs) or `kubepods[-<qos>]-pod<uid with _>.slice` (systemd; `kubelet-kubepods-…` nested)
_POD = re.compile(
    r"^(?:[a-z]+-)*pod([0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12})(?:\.slice)?$"
)
_BARE_PARENT = {"docker": "docker"}  # parent segment of a bare id → the runtime it names


@value
class Container:
    """What a cgroup path says about the process's container (each field None when it does not say)."""

    id: str | None = None
    runtime: str | None = None
    pod_uid: str | None = None


NO_CONTAINER = Container()


def parse_path(path: str) -> Container:
    """One cgroup path (e.g. `/system.slice/docker-<id>.scope`) → what it says; NO_CONTAINER if nothing."""
    segments = [s for s in path.split("/") if s]
    cid: str | None = None
    runtime: str | None = None
    for i in range(len(segments) - 1, -1, -1):
        seg = segments[i]
        for pattern, rt in _SHAPES:
            m = pattern.match(seg)
            if m is not None:
                cid = m.group(1)
                runtime = rt if rt is not None else _BARE_PARENT.get(segments[i - 1]) if i else None
                break
        if cid is not None:
            break
    pod_uid = None
    for seg in segments:
        m = _POD.match(seg)
        if m is not None:
            pod_uid = m.group(1).replace("_", "-")
    if cid is None and pod_uid is None:
        return NO_CONTAINER
    return Container(id=cid, runtime=runtime, pod_uid=pod_uid)


def parse_cgroup_file(text: str) -> Container:
    """The contents of `/proc/<pid>/cgroup` → what its paths say.

    The cgroup v2 line (`0::/path`) is read first; on a v1 or hybrid host every hierarchy's line is tried
    and the first that names a container wins (runtimes put the container in every hierarchy alike).
    """
    paths: list[str] = []
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        if parts[0] == "0" and parts[1] == "":
            paths.insert(0, parts[2])
        else:
            paths.append(parts[2])
    for path in paths:
        found = parse_path(path)
        if found is not NO_CONTAINER:
            return found
    return NO_CONTAINER
