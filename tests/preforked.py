"""CLI processes forked from a parent that has already imported the heavy libraries.

Every `python -m ml_project ...` a test runs pays ~3 s of imports (pandas, scikit-learn, MLflow,
great-expectations, pyspark) before its first line of work: over the suite, minutes of CPU. A
test worker keeps one parent process (the "preloaded server") that imported them once; each CLI
call is a fork of it that then becomes `python -m ml_project ARGS` exactly as a fresh process
would: its own pid, cwd, environment, sys.path (cwd, then PYTHONPATH), file descriptors 0/1/2,
signal dispositions, atexit handlers and exit code (death by signal N: -N, as subprocess). The
project's own code (ml_project/, problems/) is imported fresh in every child, from the copy the
test runs (PYTHONPATH): the server drops it from sys.modules before forking. The `make` targets
the tests run get the same through a tools folder whose `ml-project` is a shim (bin_dir).

A start-up hook (a folder on PYTHONPATH holding sitecustomize.py alone, how tests inject a
fault) is imported by the child before the command, as the interpreter's site.py would. What a
fork cannot reproduce falls back to a real subprocess (`needs_fresh_process`): another folder
first on PYTHONPATH (it may shadow what the server imported), an environment variable read when
a library is imported (MLflow's logging level, OpenMP's thread count, Python's own PYTHON*
settings) that differs from the server's, or ML_PROJECT_TEST_FRESH_PROCESSES=1 (every call
fresh: how to check that a failure is not the fork's).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FRESH = "ML_PROJECT_TEST_FRESH_PROCESSES"
# Read by a library when it is imported (or by the interpreter at start-up), not when a command
# runs: a call whose value differs from the server's gets a fresh process.
IMPORT_TIME_PREFIXES = ("PYTHON", "LD_", "OMP_", "OPENBLAS_", "MKL_", "GX_", "GIT_PYTHON_", "MPL")
# Imported by the server too (tests/preforked.py's SERVER), beyond every ml_project module.
WARM_MODULES = (
    "alembic.command", "alembic.runtime.environment", "alembic.runtime.migration", "mako.template",
    "mlflow.store.db.utils", "mlflow.store.tracking.sqlalchemy_store",
    "mlflow.store.tracking.sqlalchemy_workspace_store",
    "mlflow.store.model_registry.sqlalchemy_store",
    "mlflow.store.model_registry.sqlalchemy_workspace_store",
    "mlflow.tracing.otel", "mlflow.tracing.processor.otel", "mlflow.genai.scorers.online",
    "mlflow.metrics.genai", "mlflow.gateway.providers.openai", "mlflow.bedrock",
    "mlflow.models.evaluation.default_evaluator", "mlflow.models.evaluation.evaluators.classifier",
    "mlflow.models.evaluation.evaluators.regressor", "mlflow.models.evaluation.evaluators.shap",
    "mlflow.pyfunc.utils.environment", "mlflow.utils.search_logged_model_utils", "mlflow.xgboost",
    "mlflow.spark", "matplotlib.pyplot", "matplotlib.backends.backend_agg", "PIL.Image", "git",
    "pyarrow.pandas_compat", "pandas.io.formats.csvs", "cryptography.fernet", "tomllib",
)  # fmt: skip
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

# What a training or a scoring imports later, inside MLflow (its store and migrations, the
# evaluator and its plots, the model's flavours) and git: ~400 modules, ~1 CPU-s a call.
for name in json.loads(sys.argv[2]):
    with contextlib.suppress(ImportError):
        importlib.import_module(name)
# The installed distributions' module map MLflow builds to write a model's requirements (a scan
# of every package's files, ~0.5 CPU-s): the same in every process of this environment.
with contextlib.suppress(ImportError, AttributeError):
    from mlflow.utils import requirements_utils

    requirements_utils._init_packages_to_modules_map()
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


def become(request, fds):
    listener.close()
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    if fds:  # the caller's own stdin, stdout and stderr
        for fd, received in enumerate(fds):
            os.dup2(received, fd)
        for received in fds:
            if received > 2:
                os.close(received)
    else:
        for fd, path, flags in (
            (0, os.devnull, os.O_RDONLY),
            (1, request["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
            (2, request["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
        ):
            opened = os.open(path, flags, 0o600)
            os.dup2(opened, fd)
            os.close(opened)
    extra = [p for p in request["env"].get("PYTHONPATH", "").split(os.pathsep) if p]
    script = request.get("script")  # an entry-point script (ml-project), else -m ml_project
    first = os.path.dirname(os.path.realpath(script)) if script else os.getcwd()
    sys.path[:] = [first, *[os.path.abspath(p) for p in extra], *base_path]
    tempfile.tempdir = None  # $TMPDIR is read again
    warnings.filters[:] = start_filters
    warnings._filters_mutated()
    if any(os.path.isfile(os.path.join(p, "sitecustomize.py")) for p in extra):
        sys.modules.pop("sitecustomize", None)  # the start-up hook, run as site.py runs it
        try:
            importlib.import_module("sitecustomize")
        except Exception as err:
            sys.stderr.write(
                "Error in sitecustomize; set PYTHONVERBOSE for traceback:\n"
                f"{err.__class__.__name__}: {err}\n"
            )
    if script:
        sys.argv = [script, *request["args"]]
        runpy.run_path(script, run_name="__main__")
    else:
        sys.argv = ["-m", *request["args"]]
        runpy.run_module("ml_project", run_name="__main__", alter_sys=True)
    sys.exit(0)


def receive(connection):  # a JSON line, with the caller's fds 0-2 attached (a shim) or none
    data, fds, _, _ = socket.recv_fds(connection, 1 << 20, 3)
    while not data.endswith(b"\n"):
        more = connection.recv(1 << 20)
        if not more:
            break
        data += more
    return json.loads(data), fds


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
        request, fds = receive(connection)
        if os.fork() == 0:  # a watcher: starts the CLI process, reports its pid, then its end
            listener.close()
            pid = os.fork()
            if pid == 0:
                connection.close()
                become(request, fds)  # never returns: exits as `python -m ml_project` would
            for fd in fds:
                os.close(fd)
            connection.sendall(f"{pid}\n".encode())
            _, status = os.waitpid(pid, 0)
            connection.sendall(f"{os.waitstatus_to_exitcode(status)}\n".encode())
            os._exit(0)
        for fd in fds:
            os.close(fd)
"""


SHIM = """#!{python} -IS
# `ml-project` for the tests' make targets: a fork of the test worker's preloaded server with
# this process's stdin, stdout, stderr, cwd and environment (tests/preforked.py); the real entry
# point where a fork would differ or the server is gone.
import json, os, signal, socket, sys

REAL, FOLDER = {real!r}, {folder!r}
sys.path.insert(0, {root!r})
from tests.preforked import needs_fresh_process  # noqa: E402 (the standard library only)

try:
    with open(os.path.join(FOLDER, "import-time.json")) as file:
        values = json.load(file)
    environ = dict(os.environ)
    if needs_fresh_process(environ, os.getcwd(), values):
        raise OSError("a fresh process")
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    connection.connect(os.path.join(FOLDER, "socket"))
except OSError:
    os.execv(REAL, [REAL, *sys.argv[1:]])
request = {{"args": sys.argv[1:], "cwd": os.getcwd(), "env": environ, "script": REAL}}
socket.send_fds(connection, [(json.dumps(request) + "\\n").encode()], [0, 1, 2])
reader = connection.makefile()
reader.readline()  # the pid
code = int(reader.readline())
if code < 0:  # killed by a signal: so is this process
    signal.signal(-code, signal.SIG_DFL)
    os.kill(os.getpid(), -code)
sys.exit(code)
"""


class PreloadedServer:
    """One preloaded parent per test process, started on first use, stopped at exit; it serves
    calls from several threads at once (each call is its own process)."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="ml-project-preloaded-"))
        self.address = str(self.folder / "socket")
        self.environ = server_environment()
        self.process = subprocess.Popen(
            [sys.executable, "-c", SERVER, self.address, json.dumps(WARM_MODULES)],
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
        self.values = import_time_values(self.environ)
        (self.folder / "import-time.json").write_text(json.dumps(self.values))
        self.lock = threading.Lock()
        self.calls = 0
        self._bin: Path | None = None

    def bin_dir(self) -> Path:
        """The venv's tools, with `ml-project` a shim that asks this server for its process
        (what the tests' `make` targets run): tools/python, tools/ruff... the venv's own."""
        with self.lock:
            if self._bin is None:
                folder = self.folder / "bin"
                folder.mkdir()
                venv = Path(sys.executable).parent
                for tool in venv.iterdir():
                    if tool.name.startswith("python"):  # sys.executable stays the venv's
                        (folder / tool.name).write_text(f'#!/bin/sh\nexec "{tool}" "$@"\n')
                        (folder / tool.name).chmod(0o755)
                    elif tool.name != "ml-project":
                        (folder / tool.name).symlink_to(tool)
                shim = SHIM.format(
                    python=sys.executable, root=str(ROOT), folder=str(self.folder),
                    real=str(venv / "ml-project"),
                )  # fmt: skip
                (folder / "ml-project").write_text(shim)
                (folder / "ml-project").chmod(0o755)
                self._bin = folder
            return self._bin

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
        shutil.rmtree(self.folder, ignore_errors=True)


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


def needs_fresh_process(environ: dict[str, str], cwd: Path, server_values: dict[str, str]) -> bool:
    """True where a fork of the preloaded server would not be the process the test asks for
    (`server_values`: the server's import_time_values)."""
    if environ.get(FRESH) or os.environ.get(FRESH):
        return True
    paths = [p for p in environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if any(Path(p).resolve() != Path(cwd).resolve() and not start_up_hook(Path(p)) for p in paths):
        return True  # another package first on the path: it may shadow the server's imports
    return import_time_values(environ) != server_values


def start_up_hook(folder: Path) -> bool:
    """A folder holding sitecustomize.py alone: the child imports it (SERVER's `become`)."""
    try:
        names = {path.name for path in folder.iterdir()} - {"__pycache__"}
    except OSError:
        return False
    return names == {"sitecustomize.py"}


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
