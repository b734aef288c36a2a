"""A real `mlflow server` for the tests: a subprocess on a free loopback port, stopped by PID.

Sqlite backend by default (or any `backend_store_uri`, e.g. PostgreSQL), proxied artifact store
(`--artifacts-destination`): clients upload and download artifacts over HTTP only, as a CI
runner does with the team's server. `--workers 1` and `MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false`
keep it to two processes (the `mlflow` launcher and one uvicorn worker) instead of the
default's many. Starting it again on the same directory and backend reuses both.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import empty_store

STARTUP_SECONDS = 120
STOP_SECONDS = 15


@dataclass
class TrackingServer:
    process: subprocess.Popen
    port: int
    backend_store_uri: str
    artifacts_dir: Path
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def is_healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=2) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def processes(self) -> list[int]:
        """PIDs of the server's process group (it is started as the leader of its own group)."""
        return process_group_members(self.pid)

    def rss_bytes(self) -> int:
        """Resident memory of every process in the server's group, summed."""
        return sum(resident_bytes(pid) for pid in self.processes())

    def stop(self) -> None:
        """SIGTERM to the whole process group, then SIGKILL if it is still there."""
        if self.process.poll() is None:
            _signal_group(self.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                _signal_group(self.pid, signal.SIGKILL)
                self.process.wait(timeout=STOP_SECONDS)
        deadline = time.monotonic() + STOP_SECONDS
        while self.processes() and time.monotonic() < deadline:  # uvicorn worker exiting
            time.sleep(0.1)
        if self.processes():
            _signal_group(self.pid, signal.SIGKILL)


def free_port() -> int:
    """A loopback port nothing listens on now (another process may take it before you bind)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_tracking_server(
    directory: Path,
    *,
    backend_store_uri: str | None = None,
    extra_args: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
    launcher: Path | None = None,
    attempts: int = 3,
) -> TrackingServer:
    """Start `mlflow server` and wait until /health answers.

    Artifacts go to `directory`/artifacts; the backend store is `backend_store_uri`, by default
    a sqlite file in `directory`. `extra_args` are more `mlflow server` options (e.g.
    `--app-name basic-auth`) and `env` more environment variables for the server. `launcher`
    is a script to run instead of `mlflow server` (deploy/tracking-server/serve.sh): it gets
    the store and artifact locations as MLFLOW_BACKEND_STORE_URI and
    MLFLOW_ARTIFACTS_DESTINATION, `mlflow` as $MLFLOW, and the network options as arguments.
    """
    directory.mkdir(parents=True, exist_ok=True)
    artifacts = directory / "artifacts"
    artifacts.mkdir(exist_ok=True)
    backend = backend_store_uri or f"sqlite:///{directory / 'mlflow.db'}"
    if not backend_store_uri and not (directory / "mlflow.db").exists():
        backend = empty_store(directory)  # migrated once per test process (tests/conftest.py)
    mlflow_cli = Path(sys.executable).with_name("mlflow")
    environ = {
        key: value for key, value in os.environ.items() if not key.startswith("MLFLOW_TRACKING_")
    }
    environ |= {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "MLFLOW_DISABLE_TELEMETRY": "true"}
    environ |= env or {}
    if launcher:
        command = [str(launcher)]
        environ |= {
            "MLFLOW_BACKEND_STORE_URI": backend,
            "MLFLOW_ARTIFACTS_DESTINATION": str(artifacts),
            "MLFLOW": str(mlflow_cli),
        }
    else:
        command = [str(mlflow_cli), "server", "--backend-store-uri", backend]
        command += ["--artifacts-destination", str(artifacts)]
    earlier_logs = len(list(directory.glob("server-*.log")))  # a restart keeps the old logs
    for attempt in range(1, attempts + 1):
        port = free_port()  # another process may take it before the server binds: retry
        log_path = directory / f"server-{earlier_logs + attempt}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [
                    *command,
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--workers",
                    "1",
                    *extra_args,
                ],
                cwd=directory,
                env=environ,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        server = TrackingServer(process, port, backend, artifacts, log_path)
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline and process.poll() is None:
            if server.is_healthy():
                return server
            time.sleep(0.25)
        server.stop()
        if attempt == attempts:
            raise RuntimeError(
                f"mlflow server did not answer {server.url}/health "
                f"(exit code {process.returncode}):\n{server.log_tail()}"
            )
    raise AssertionError("unreachable")


def process_group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes whose process group is `pgid`, from /proc."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid pgrp ...: comm may hold spaces, so split after its ')'
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry.name))
    return sorted(members)


def resident_bytes(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)
