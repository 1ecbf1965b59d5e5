"""Backing services the tests start themselves, on loopback ports, stopped by pid.

A missing service skips locally but fails in CI (CI=true): CI must never pass by skipping.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

PG_BIN = Path(os.environ.get("JQ_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))


def missing(what: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{what} is required in CI (scripts/test.sh installs it)")
    pytest.skip(f"{what} is not installed")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


def delete_later(path: Path) -> None:
    """Delete a stopped service's directory without waiting for it.

    The run's PostgreSQL holds hundreds of databases copied from the template by the end (tens
    of thousands of files): deleting them took seconds at the end of each xdist worker, in the
    run's wall time. `sh` starts `rm -rf` in the background and exits at once, so no child of the
    test process is left running (nor reported as one still running).
    """
    subprocess.run(
        ["sh", "-c", 'rm -rf -- "$1" &', "sh", str(path)],
        check=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _as_postgres(argv: list[str]) -> list[str]:
    """The command run as `postgres`: initdb, postgres and pgbouncer refuse to run as root.

    setpriv drops root and then execs, so the pid we hold is the server's own and a signal
    reaches it as sent (through runuser, which forks and waits, a SIGINT became a SIGTERM
    and a kill hit only runuser). Not Popen(user=...): that forces a fork that runs the
    parent's fork handlers, and a child forked from a process with live gRPC threads can
    crash before it execs.
    """
    if os.geteuid() != 0:
        return argv
    return ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--", *argv]


class PostgresServer:
    """A throwaway PostgreSQL cluster: initdb into a temp dir, postgres on a free port."""

    def __init__(self, root: Path, fsync: bool = True) -> None:
        self.root = root
        self.data = root / "data"
        self.port = free_port()
        self.fsync = fsync
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: Any = None

    @property
    def dsn(self) -> str:
        return self.url("postgres")

    def url(self, dbname: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def start(self) -> None:
        if not (PG_BIN / "postgres").exists():
            missing(f"PostgreSQL 15 ({PG_BIN})")
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        if not self.data.exists():
            subprocess.run(
                _as_postgres(
                    [
                        str(PG_BIN / "initdb"),
                        "-D",
                        str(self.data),
                        "-U",
                        "postgres",
                        "-A",
                        "trust",
                        "-E",
                        "UTF8",
                        "--no-instructions",
                    ]
                ),
                check=True,
                capture_output=True,
                cwd=self.root,
            )
        self.launch()

    def launch(self) -> None:
        if self._log is None:
            self._log = open(self.root / "postgres.log", "ab")  # noqa: SIM115 - closed in stop()
        log = self._log
        self.proc = subprocess.Popen(
            _as_postgres(
                [
                    str(PG_BIN / "postgres"),
                    "-D",
                    str(self.data),
                    "-p",
                    str(self.port),
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-c",
                    f"unix_socket_directories={self.root}",
                    "-c",
                    f"fsync={'on' if self.fsync else 'off'}",
                    "-c",
                    "max_connections=300",
                    "-c",
                    "synchronous_commit=on",
                    # As on RDS: the runbooks' pg_stat_statements query needs it loaded.
                    "-c",
                    "shared_preload_libraries=pg_stat_statements",
                ]
            ),
            stdout=log,
            stderr=log,
            cwd=self.root,
        )
        try:
            wait_for_port(self.port)
        except TimeoutError:
            tail = (self.root / "postgres.log").read_text(errors="replace")[-2000:]
            code = self.proc.poll()
            raise TimeoutError(
                f"PostgreSQL (exit {code}) did not start on port {self.port}:\n{tail}"
            ) from None
        self._wait_accepting()

    def _wait_accepting(self, timeout: float = 30.0) -> None:
        import psycopg

        deadline = time.monotonic() + timeout
        while True:
            try:
                with psycopg.connect(self.dsn, connect_timeout=2):
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the postmaster and wait for it: SIGQUIT is `pg_ctl stop -m immediate`,
        SIGINT a fast shutdown, SIGKILL a crash."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # fast shutdown
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self._log is not None:
            self._log.close()
            self._log = None

    def discard(self) -> None:
        """Stop a cluster whose data is about to be deleted: an immediate shutdown (SIGQUIT,
        `pg_ctl stop -m immediate`), so no shutdown checkpoint writes and fsyncs pages no one
        will read. The run's server holds hundreds of databases by then: its fast shutdown
        took ~30 s and the 30 s wait ran out (a SIGKILL at the end of every CI run)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.stop()  # closes the log

    def execute(self, sql: str, dbname: str = "postgres") -> None:
        import psycopg

        with psycopg.connect(self.url(dbname), autocommit=True) as conn:
            conn.execute(sql)  # type: ignore[arg-type]


@contextlib.contextmanager
def postgres_server(fsync: bool = True) -> Iterator[PostgresServer]:
    root = Path(tempfile.mkdtemp(prefix="jq-pg-"))
    server = PostgresServer(root, fsync=fsync)
    try:
        server.start()
        yield server
    finally:
        server.discard()
        delete_later(root)


PGBOUNCER = Path(os.environ.get("JQ_TEST_PGBOUNCER", "/usr/sbin/pgbouncer"))


class PgBouncer:
    """A PgBouncer in transaction pooling mode in front of a `PostgresServer`.

    `[databases] *` forwards every database name, so each test's fresh database is
    reachable through it without a config reload.
    """

    def __init__(self, root: Path, upstream: PostgresServer, pool_size: int = 20) -> None:
        self.root = root
        self.upstream = upstream
        self.port = free_port()
        self.pool_size = pool_size
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: Any = None

    def url(self, dbname: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def write_config(self) -> Path:
        # auth_type=trust matches the harness PostgreSQL (initdb -A trust); PgBouncer still
        # wants the user in auth_file. psycopg sends no startup parameters beyond those
        # PgBouncer tracks itself; extra_float_digits and options come from other clients
        # (JDBC, psql -c options) and would otherwise end the connection.
        # jobq_app: the application's login (migration 0010), as the deploy's pods log in.
        (self.root / "userlist.txt").write_text('"postgres" ""\n"jobq_app" ""\n')
        ini = self.root / "pgbouncer.ini"
        ini.write_text(
            "\n".join(
                [
                    "[databases]",
                    f"* = host=127.0.0.1 port={self.upstream.port}",
                    "",
                    "[pgbouncer]",
                    "listen_addr = 127.0.0.1",
                    f"listen_port = {self.port}",
                    "unix_socket_dir =",
                    "auth_type = trust",
                    f"auth_file = {self.root / 'userlist.txt'}",
                    "admin_users = postgres",
                    "pool_mode = transaction",
                    "max_client_conn = 1000",
                    f"default_pool_size = {self.pool_size}",
                    "ignore_startup_parameters = extra_float_digits,options",
                    f"logfile = {self.root / 'pgbouncer.log'}",
                    "",
                ]
            )
        )
        return ini

    def start(self) -> None:
        if not PGBOUNCER.exists():
            missing(f"PgBouncer ({PGBOUNCER})")
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        ini = self.write_config()
        if os.geteuid() == 0:
            for path in (ini, self.root / "userlist.txt"):
                shutil.chown(path, "postgres", "postgres")
        self._log = open(self.root / "stderr.log", "ab")  # noqa: SIM115 - closed in stop()
        # Not -d: in the foreground its pid is ours to stop.
        self.proc = subprocess.Popen(
            _as_postgres([str(PGBOUNCER), str(ini)]),
            stdout=self._log,
            stderr=self._log,
            cwd=self.root,
        )
        try:
            wait_for_port(self.port)
        except TimeoutError:
            self.stop()
            raise RuntimeError(f"pgbouncer did not start: {self.log()}") from None

    def log(self) -> str:
        parts = [self.root / "pgbouncer.log", self.root / "stderr.log"]
        return "\n".join(p.read_text(errors="replace") for p in parts if p.exists())

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # immediate shutdown: the tests are done with it
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self._log is not None:
            self._log.close()
            self._log = None


@contextlib.contextmanager
def pgbouncer(upstream: PostgresServer) -> Iterator[PgBouncer]:
    root = Path(tempfile.mkdtemp(prefix="jq-pgbouncer-"))
    bouncer = PgBouncer(root, upstream)
    try:
        bouncer.start()
        yield bouncer
    finally:
        bouncer.stop()
        shutil.rmtree(root, ignore_errors=True)
