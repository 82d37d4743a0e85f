"""Real database servers for live tests: Debian's redis-server, PostgreSQL 15 and MariaDB, each started by
the test on its own port with its own data directory, and stopped by PID (never by name).

PostgreSQL and MariaDB refuse to run as root: PostgreSQL runs as the `postgres` user (Popen user=),
MariaDB drops to `mysql` itself (--user); each in a temporary directory owned by that user.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time

from tests.helpers.live import free_port, stop_process, wait_port


def _owned_dir(prefix: str, user: str) -> str:
    path = tempfile.mkdtemp(prefix=prefix)
    entry = pwd.getpwnam(user)
    os.chown(path, entry.pw_uid, entry.pw_gid)
    os.chmod(path, 0o700)
    return path


def redis_available() -> bool:
    return shutil.which("redis-server") is not None


class RedisServer:
    """redis-server without persistence on 127.0.0.1:port."""

    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="packetd-redis-")
        self.port = free_port()
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", self.dir, "--protected-mode", "no", "--loglevel", "warning"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_port(self.port)

    def stop(self) -> None:
        stop_process(self.proc, timeout=30)
        shutil.rmtree(self.dir, ignore_errors=True)


def _pg_bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


def postgres_available() -> bool:
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return False
    return _pg_bin("initdb") is not None and _pg_bin("postgres") is not None


class PostgresServer:
    """A fresh cluster (initdb), SCRAM password authentication over TCP, no TLS (ssl=off)."""

    USER = "app"
    PASSWORD = "s3cret-pw"
    DATABASE = "shop"

    def __init__(self) -> None:
        self.dir = _owned_dir("packetd-pg-", "postgres")
        self.port = free_port()
        data = os.path.join(self.dir, "data")
        pwfile = os.path.join(self.dir, "pw")
        with open(pwfile, "w") as f:
            f.write(self.PASSWORD)
        entry = pwd.getpwnam("postgres")
        os.chown(pwfile, entry.pw_uid, entry.pw_gid)
        subprocess.run(
            [_pg_bin("initdb") or "initdb", "-D", data, "-U", self.USER, "--pwfile", pwfile, "-A", "scram-sha-256",
             "--no-sync", "-E", "UTF8"],
            check=True, capture_output=True, timeout=120, user="postgres", group="postgres", cwd=self.dir,
        )  # fmt: skip
        self.proc = subprocess.Popen(
            [_pg_bin("postgres") or "postgres", "-D", data, "-p", str(self.port), "-h", "127.0.0.1", "-k", self.dir,
             "-c", "fsync=off", "-c", "ssl=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, user="postgres", group="postgres", cwd=self.dir,
        )  # fmt: skip
        try:
            wait_port(self.port, timeout=60)
            for attempt in range(50):  # "the database system is starting up" until recovery is done
                try:
                    self.psql(f"CREATE DATABASE {self.DATABASE}")
                    break
                except subprocess.CalledProcessError:
                    if attempt == 49:
                        raise
                    time.sleep(0.2)
        except BaseException:
            self.stop()
            raise

    def psql(self, sql: str, db: str = "postgres") -> None:
        subprocess.run(
            [_pg_bin("psql") or "psql", "-h", self.dir, "-p", str(self.port), "-U", self.USER, "-d", db,
             "-v", "ON_ERROR_STOP=1", "-c", sql],
            check=True, capture_output=True, timeout=60, env={**os.environ, "PGPASSWORD": self.PASSWORD},
        )  # fmt: skip

    def dsn(self, **extra: str) -> str:
        parts = {"host": "127.0.0.1", "port": str(self.port), "user": self.USER, "password": self.PASSWORD,
                 "dbname": self.DATABASE, **extra}  # fmt: skip
        return " ".join(f"{k}={v}" for k, v in parts.items())

    def stop(self) -> None:
        # SIGINT is the postmaster's "fast shutdown"
        stop_process(self.proc, signal.SIGINT, timeout=30)
        shutil.rmtree(self.dir, ignore_errors=True)


def mariadb_available() -> bool:
    try:
        pwd.getpwnam("mysql")
    except KeyError:
        return False
    return shutil.which("mariadbd") is not None or os.path.exists("/usr/sbin/mariadbd")


class MariaDBServer:
    """A fresh MariaDB data directory; a password user `app` with a `shop` database; LOCAL INFILE allowed."""

    USER = "app"
    PASSWORD = "s3cret-pw"
    DATABASE = "shop"

    def __init__(self) -> None:
        self.dir = _owned_dir("packetd-mariadb-", "mysql")
        self.port = free_port()
        data = os.path.join(self.dir, "data")
        self.socket = os.path.join(self.dir, "mysqld.sock")
        subprocess.run(
            ["mariadb-install-db", "--no-defaults", f"--datadir={data}", "--user=mysql", "--skip-test-db",
             "--auth-root-authentication-method=socket"],
            check=True, capture_output=True, timeout=180,
        )  # fmt: skip
        mariadbd = shutil.which("mariadbd") or "/usr/sbin/mariadbd"
        self.proc = subprocess.Popen(
            [mariadbd, "--no-defaults", f"--datadir={data}", f"--port={self.port}", "--bind-address=127.0.0.1",
             f"--socket={self.socket}", "--user=mysql", f"--pid-file={self.dir}/mysqld.pid", "--skip-log-bin",
             "--local-infile=1", "--innodb-flush-log-at-trx-commit=0", "--innodb-buffer-pool-size=64M",
             "--skip-name-resolve"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            wait_port(self.port, timeout=60)
        except BaseException:
            self.stop()
            raise
        self.sql(
            f"CREATE DATABASE {self.DATABASE}; CREATE USER '{self.USER}'@'%' IDENTIFIED BY '{self.PASSWORD}'; "
            f"GRANT ALL ON *.* TO '{self.USER}'@'%'; FLUSH PRIVILEGES;"
        )

    def sql(self, statements: str) -> None:
        subprocess.run(
            ["mariadb", "--no-defaults", "-S", self.socket, "-u", "root", "-e", statements],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip

    def stop(self) -> None:
        stop_process(self.proc, timeout=30)
        shutil.rmtree(self.dir, ignore_errors=True)
