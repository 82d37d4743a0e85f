"""Cgroup paths → container id, runtime, pod UID: the path shapes the runtimes really write.

The paths are the formats documented by and recorded from each runtime (docker's cgroupfs and systemd
drivers, the kubelet's cgroupfs and systemd drivers with containerd and cri-o, podman rootful, rootless
and cgroupfs); ids and UIDs are made up in those shapes."""

from __future__ import annotations

import pytest

from packetd.attribution.cgroup import NO_CONTAINER, Container, parse_cgroup_file, parse_path

CID = "3f2b9c0e8d7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c"
CID2 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
UID = "8c0f2b5e-6d4a-4b3c-9e1f-2a7b8c9d0e1f"
UID_ = UID.replace("-", "_")

CASES = [
    # docker
    (f"/docker/{CID}", Container(id=CID, runtime="docker")),
    (f"/system.slice/docker-{CID}.scope", Container(id=CID, runtime="docker")),
    (f"/docker/{CID}/docker/{CID2}", Container(id=CID2, runtime="docker")),  # docker in docker: innermost
    # Kubernetes, systemd cgroup driver
    (
        f"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice/cri-containerd-{CID}.scope",
        Container(id=CID, runtime="containerd", pod_uid=UID),
    ),
    (
        f"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{UID_}.slice/crio-{CID}.scope",
        Container(id=CID, runtime="cri-o", pod_uid=UID),
    ),
    (  # guaranteed QoS: no QoS slice
        f"/kubepods.slice/kubepods-pod{UID_}.slice/crio-{CID}.scope",
        Container(id=CID, runtime="cri-o", pod_uid=UID),
    ),
    (  # kind / nested kubelet
        f"/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod{UID_}.slice/cri-containerd-{CID}.scope",
        Container(id=CID, runtime="containerd", pod_uid=UID),
    ),
    # Kubernetes, cgroupfs driver: the runtime is not named
    (f"/kubepods/besteffort/pod{UID}/{CID}", Container(id=CID, runtime=None, pod_uid=UID)),
    (f"/kubepods/pod{UID}/{CID}", Container(id=CID, runtime=None, pod_uid=UID)),
    (f"/kubepods/burstable/pod{UID}", Container(id=None, runtime=None, pod_uid=UID)),  # the pod, no container
    # podman
    (f"/machine.slice/libpod-{CID}.scope", Container(id=CID, runtime="podman")),
    (f"/machine.slice/libpod-{CID}.scope/container", Container(id=CID, runtime="podman")),
    (
        f"/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{CID}.scope",
        Container(id=CID, runtime="podman"),
    ),
    (f"/libpod_parent/libpod-{CID}", Container(id=CID, runtime="podman")),
    # not containers
    ("/", NO_CONTAINER),
    ("/user.slice/user-1000.slice/session-3.scope", NO_CONTAINER),
    ("/system.slice/nginx.service", NO_CONTAINER),
    ("/process_api/90dbf84e80ca3ba33aaeaac9768125f2", NO_CONTAINER),  # 32 hex digits: not a container id
    (f"/machine.slice/libpod-conmon-{CID}.scope", NO_CONTAINER),  # podman's conmon, beside the container
    (f"/kubepods.slice/kubepods-pod{UID_}.slice/crio-conmon-{CID}.scope", Container(pod_uid=UID)),
    (f"/system.slice/docker-{CID[:-1]}.scope", NO_CONTAINER),  # 63 digits
    (f"/system.slice/docker-{CID.upper()}.scope", NO_CONTAINER),  # runtimes write lowercase
]


@pytest.mark.parametrize(("path", "expected"), CASES, ids=[c[0][:60] for c in CASES])
def test_cgroup_paths(path: str, expected: Container) -> None:
    assert parse_path(path) == expected


def test_cgroup_v2_file() -> None:
    assert parse_cgroup_file(f"0::/system.slice/docker-{CID}.scope\n") == Container(id=CID, runtime="docker")


def test_cgroup_v1_hybrid_file_any_hierarchy_names_the_container() -> None:
    # a hybrid host (this one's shape): the v2 line says nothing, the v1 hierarchies do
    text = f"12:pids:/docker/{CID}\n11:memory:/docker/{CID}\n1:name=systemd:/docker/{CID}\n0::/\n"
    assert parse_cgroup_file(text) == Container(id=CID, runtime="docker")


def test_cgroup_v2_line_is_read_first() -> None:
    text = f"1:name=systemd:/docker/{CID2}\n0::/kubepods/besteffort/pod{UID}/{CID}\n"
    assert parse_cgroup_file(text) == Container(id=CID, pod_uid=UID)


def test_cgroup_file_without_container_and_garbage() -> None:
    assert parse_cgroup_file("") is NO_CONTAINER
    assert (
        parse_cgroup_file("garbage\n0::/\n4:memory:/process_api/90dbf84e80ca3ba33aaeaac9768125f2\n")
        is NO_CONTAINER
    )
