"""A real PostgreSQL for the tests: initdb in a temp dir, a free loopback port, stopped by PID.

Debian's `postgresql` package puts its programs in /usr/lib/postgresql/<major>/bin (not on PATH);
`.ci/run` installs the package where it is missing. PostgreSQL refuses to run as root, so as
root the server runs as the `postgres` system user (created by the package) and its directory
lives under the system temp dir, outside pytest's root-only one. Local (socket) connections are
trusted; TCP connections need a password (scram-sha-256), as on a real server.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.integration.tracking_server import free_port

STARTUP_SECONDS = 60
STOP_SECONDS = 30
SYSTEM_USER = "postgres"


def postgres_bin() -> Path:
    """The folder of initdb/postgres/psql: on PATH, else the newest Debian install."""
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    installed = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda path: int(path.parent.parent.name) if path.parent.parent.name.isdigit() else 0,
    )
    if not installed:
        raise RuntimeError(
            "PostgreSQL is not installed (no initdb on PATH or in /usr/lib/postgresql/*/bin): "
            "apt-get install postgresql (.ci/run does it when missing)."
        )
    return installed[-1].parent


@dataclass
class PostgresServer:
    process: subprocess.Popen
    port: int
    base: Path
    bin_dir: Path
    user: str | None  # the system user it runs as (None: the current user)

    @property
    def socket_dir(self) -> Path:
        return self.base / "socket"

    @property
    def log_path(self) -> Path:
        return self.base / "postgres.log"

    @property
    def pid(self) -> int:
        return self.process.pid

    def uri(self, database: str, user: str, password: str) -> str:
        return f"postgresql://{user}:{password}@127.0.0.1:{self.port}/{database}"

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run SQL as the superuser over the local socket; its output (tuples only)."""
        done = subprocess.run(
            [
                str(self.bin_dir / "psql"),
                "-X",
                "-q",
                "-t",
                "-A",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                str(self.socket_dir),
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-d",
                database,
                "-c",
                sql,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"psql failed: {done.stderr.strip()}")
        return done.stdout.strip()

    def create_database(self, name: str, *, owner: str, password: str) -> str:
        """A login role (if new) owning a new database; the database's URI for that role."""
        exists = self.psql(f"SELECT 1 FROM pg_roles WHERE rolname = '{owner}'")
        if not exists:
            self.psql(f"CREATE ROLE {owner} LOGIN PASSWORD '{password}'")
        self.psql(f"CREATE DATABASE {name} OWNER {owner}")
        return self.uri(name, owner, password)

    def accepts_connections(self) -> bool:
        done = subprocess.run(
            [
                str(self.bin_dir / "pg_isready"),
                "-q",
                "-h",
                str(self.socket_dir),
                "-p",
                str(self.port),
            ],
            capture_output=True,
            check=False,
        )
        return done.returncode == 0

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        """Fast shutdown (SIGINT to the postmaster's PID), SIGKILL if it hangs; remove the dir."""
        try:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGINT)
                try:
                    self.process.wait(timeout=STOP_SECONDS)
                except subprocess.TimeoutExpired:
                    os.killpg(self.pid, signal.SIGKILL)
                    self.process.wait(timeout=STOP_SECONDS)
        finally:
            shutil.rmtree(self.base, ignore_errors=True)


def _run_as(user: str | None) -> dict:
    """Popen arguments that drop root for `user` (PostgreSQL refuses to run as root)."""
    if user is None:
        return {}
    entry = pwd.getpwnam(user)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def start_postgres(*, attempts: int = 3) -> PostgresServer:
    """initdb into a new temp dir, start postgres on a free loopback port, wait until it is up."""
    bin_dir = postgres_bin()
    user = None
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(SYSTEM_USER)
        except KeyError as exc:
            raise RuntimeError(
                f"Running as root, PostgreSQL needs the system user {SYSTEM_USER!r} "
                "(Debian's postgresql package creates it)."
            ) from exc
        user = SYSTEM_USER
    base = Path(tempfile.mkdtemp(prefix="ml-project-postgres-"))
    (base / "socket").mkdir()
    password_file = base / "superuser-password"
    password_file.write_text(secrets.token_urlsafe(16) + "\n")
    if user:
        for path in (base, base / "socket", password_file):
            shutil.chown(path, user=user, group=pwd.getpwnam(user).pw_gid)
    initdb = subprocess.run(
        [
            str(bin_dir / "initdb"),
            "-D",
            str(base / "data"),
            "-U",
            "postgres",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            f"--pwfile={password_file}",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-instructions",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        **_run_as(user),
    )
    if initdb.returncode != 0:
        shutil.rmtree(base, ignore_errors=True)
        raise RuntimeError(f"initdb failed: {initdb.stderr.strip()}")
    for attempt in range(1, attempts + 1):
        port = free_port()  # another process may take it before postgres binds: retry
        with (base / "postgres.log").open("ab") as log:
            process = subprocess.Popen(
                [
                    str(bin_dir / "postgres"),
                    "-D",
                    str(base / "data"),
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-p",
                    str(port),
                    "-k",
                    str(base / "socket"),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                **_run_as(user),
            )
        server = PostgresServer(process, port, base, bin_dir, user)
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline and process.poll() is None:
            if server.accepts_connections():
                return server
            time.sleep(0.2)
        tail = server.log_tail()
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=STOP_SECONDS)
        if attempt == attempts:
            shutil.rmtree(base, ignore_errors=True)
            raise RuntimeError(f"PostgreSQL did not start on port {port}:\n{tail}")
    raise AssertionError("unreachable")
