"""CLI processes forked from a parent that has already imported the heavy libraries.

Every `python -m ml_project ...` a test runs pays ~3 s of imports (pandas, scikit-learn, MLflow,
great-expectations, pyspark) before its first line of work: over the suite, minutes of CPU. A
test worker keeps one parent process (the "preloaded server") that imported them once; each CLI
call is a fork of it that then becomes `python -m ml_project ARGS` exactly as a fresh process
would: its own pid, cwd, environment, sys.path (cwd, then PYTHONPATH), file descriptors 0/1/2,
signal dispositions, atexit handlers and exit code (128+N shows as -N, as subprocess does). The
project's own code (ml_project/, problems/) is imported fresh in every child, from the copy the
test runs (PYTHONPATH): the server drops it from sys.modules before forking.

What a fork cannot reproduce falls back to a real subprocess (`needs_fresh_process`): a
start-up hook (sitecustomize on PYTHONPATH), an environment variable read when a library is
imported (MLflow's logging level, OpenMP's thread count, Python's own PYTHON* settings) that
differs from the server's, or ML_PROJECT_TEST_FRESH_PROCESSES=1 (every call fresh: how to check
that a failure is not the fork's).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

FRESH = "ML_PROJECT_TEST_FRESH_PROCESSES"
# Read by a library when it is imported (or by the interpreter at start-up), not when a command
# runs: a call whose value differs from the server's gets a fresh process.
IMPORT_TIME_PREFIXES = ("PYTHON", "LD_", "OMP_", "OPENBLAS_", "MKL_", "GX_", "GIT_PYTHON_")
IMPORT_TIME_KEYS = ("MLFLOW_LOGGING_LEVEL", "MLFLOW_CONFIGURE_LOGGING", "DO_NOT_TRACK", "HOME")

SERVER = r"""
import warnings

start_filters = warnings.filters[:]  # as a fresh interpreter has them, -W options included
import contextlib, importlib, json, os, pkgutil, runpy, socket, sys, tempfile

import __main__

__main__.__file__ = "<preloaded server>"  # pyspark.sql.connect exits under a bare __main__
address, parent = sys.argv[1], os.getppid()
# What a command imports, imported once: every module of the package (the heavy imports a
# command defers are reached through them), after the environment the CLI sets before them.
# Then the package itself is dropped: each child imports the code of the copy it runs.
import ml_project.tracking

ml_project.tracking.quiet_environment()
for info in pkgutil.iter_modules(sys.modules["ml_project"].__path__):
    importlib.import_module(f"ml_project.{info.name}")
import pandas, sklearn, mlflow, mlflow.sklearn, mlflow.pyfunc, great_expectations  # noqa
for name in [n for n in sys.modules if n.split(".")[0] in ("ml_project", "problems")]:
    del sys.modules[name]
base_path = sys.path[1:]  # sys.path[0] is '' (python -c)
listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
listener.bind(address)
listener.listen(16)
listener.settimeout(5)
sys.stdout.write("ready\n")
sys.stdout.flush()
sys.stderr.flush()


def become(request):
    listener.close()
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    for fd, path, flags in (
        (0, os.devnull, os.O_RDONLY),
        (1, request["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
        (2, request["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
    ):
        opened = os.open(path, flags, 0o600)
        os.dup2(opened, fd)
        os.close(opened)
    extra = [p for p in request["env"].get("PYTHONPATH", "").split(os.pathsep) if p]
    sys.path[:] = [os.getcwd(), *[os.path.abspath(p) for p in extra], *base_path]
    tempfile.tempdir = None  # $TMPDIR is read again
    warnings.filters[:] = start_filters
    warnings._filters_mutated()
    sys.argv = ["-m", *request["args"]]
    runpy.run_module("ml_project", run_name="__main__", alter_sys=True)
    sys.exit(0)


def reap():
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass


while True:
    try:
        connection, _ = listener.accept()
    except TimeoutError:
        if os.getppid() != parent:  # the test process is gone
            sys.exit(0)
        continue
    finally:
        reap()
    with connection:
        connection.settimeout(None)
        request = json.loads(connection.makefile().readline())
        if os.fork() == 0:  # a watcher: starts the CLI process, reports its pid, then its end
            listener.close()
            pid = os.fork()
            if pid == 0:
                connection.close()
                become(request)  # never returns: the child exits as `python -m ml_project` would
            connection.sendall(f"{pid}\n".encode())
            _, status = os.waitpid(pid, 0)
            connection.sendall(f"{os.waitstatus_to_exitcode(status)}\n".encode())
            os._exit(0)
"""


class PreloadedServer:
    """One preloaded parent per test process, started on first use, stopped at exit; it serves
    calls from several threads at once (each call is its own process)."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="ml-project-preloaded-"))
        self.address = str(self.folder / "socket")
        self.environ = server_environment()
        self.process = subprocess.Popen(
            [sys.executable, "-c", SERVER, self.address],
            env=self.environ,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=(self.folder / "server.err").open("w"),
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if line.strip() != "ready":
            self.process.kill()
            failure = (self.folder / "server.err").read_text()
            raise RuntimeError(f"preloaded server failed: {failure}")
        self.lock = threading.Lock()
        self.calls = 0

    def run(
        self, args: list[str], *, cwd: Path, env: dict[str, str], timeout: float
    ) -> subprocess.CompletedProcess:
        with self.lock:
            self.calls += 1
            number = self.calls
        out, err = self.folder / f"{number}.out", self.folder / f"{number}.err"
        request = {
            "args": list(args), "cwd": str(cwd), "env": env, "stdout": str(out), "stderr": str(err),
        }  # fmt: skip
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
            connection.connect(self.address)
            connection.sendall((json.dumps(request) + "\n").encode())
            reader = connection.makefile()
            pid = int(reader.readline())
            connection.settimeout(timeout)
            try:
                code = int(reader.readline())
            except TimeoutError:
                os.kill(pid, 9)
                raise subprocess.TimeoutExpired(
                    [sys.executable, "-m", "ml_project", *args], timeout
                ) from None
        stdout, stderr = out.read_text(), err.read_text()
        out.unlink()
        err.unlink()
        return subprocess.CompletedProcess(
            [sys.executable, "-m", "ml_project", *args], code, stdout, stderr
        )

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()
        for path in self.folder.iterdir():
            path.unlink()
        self.folder.rmdir()


def server_environment() -> dict[str, str]:
    """The server's environment: this process's, without PYTHONPATH (each child sets its own)."""
    environ = dict(os.environ)
    environ.pop("PYTHONPATH", None)
    return environ


def import_time_values(environ: dict[str, str]) -> dict[str, str]:
    return {
        key: value
        for key, value in environ.items()
        if (key.startswith(IMPORT_TIME_PREFIXES) or key in IMPORT_TIME_KEYS) and key != "PYTHONPATH"
    }


def needs_fresh_process(environ: dict[str, str], cwd: Path, server_env: dict[str, str]) -> bool:
    """True where a fork of the preloaded server would not be the process the test asks for."""
    if os.environ.get(FRESH):
        return True
    paths = [p for p in environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if any(Path(p).resolve() != Path(cwd).resolve() for p in paths):
        return True  # a start-up hook (sitecustomize) or another package first on the path
    return import_time_values(environ) != import_time_values(server_env)


_SERVER: PreloadedServer | None = None
_STARTING = threading.Lock()


def preloaded_server() -> PreloadedServer:
    global _SERVER
    with _STARTING:
        if _SERVER is None or _SERVER.process.poll() is not None:
            _SERVER = PreloadedServer()
        return _SERVER


def stop_server() -> None:
    global _SERVER
    if _SERVER is not None:
        _SERVER.stop()
        _SERVER = None
