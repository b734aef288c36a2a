"""Online serving: MLflow's scoring server on a model loaded with the project's allow-list.

`mlflow models serve` would trust the types the artifact's own MLmodel lists; `ml-project serve`
loads the model as `predict` does (loading.py) and hands it to MLflow's app
(`mlflow.pyfunc.scoring_server.init`): the same endpoints and formats, and a row breaking an
input rule answers 400 naming the rule. Served by an alias (`@champion` by default), it follows
the alias to each version the gate passed (follower.py); a pinned version is served as is.
"""

from __future__ import annotations

import copy
import errno
import gc
import json
import logging
import os
import signal
import socket
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, cast

import uvicorn
from mlflow.pyfunc import scoring_server
from uvicorn.supervisors import Multiprocess

from ml_project import gate, loading, tracking
from ml_project.errors import ConfigError, SetupError
from ml_project.follower import Follower, Live, SwitchingApp
from ml_project.problem import importable, load_problem
from ml_project.settings import load_settings
from ml_project.vocabulary import PROBLEM, status_of

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import FrameType

    from mlflow import MlflowClient
    from mlflow.pyfunc import PyFuncModel
    from starlette.types import ASGIApp

    from ml_project.settings import Settings

logger = logging.getLogger(__name__)

# What `--workers N > 1` hands each uvicorn worker process (they import `app` below): the
# Served, and how often to check its alias, as JSON.
SERVED_VARIABLE = "ML_PROJECT_SERVED"
BACKLOG = 2048  # uvicorn's default
WORKER_START_SECONDS = 3600.0  # a worker loading a large model from a slow store
OPTIONS: dict[str, Any] = {"log_level": "warning", "timeout_graceful_shutdown": 5}


@dataclass(frozen=True)
class Served:
    """What a server will load: the model URI, its problem, the allow-list, the project; for a
    registered version also its model name, version and verdict, and the alias it follows
    ('' when the URI pins a version)."""

    uri: str
    problem: str
    trusted: list[str]
    root: Path
    name: str = ""
    version: str = ""
    alias: str = ""
    status: str = ""

    @property
    def pinned(self) -> str:
        """The version the alias named when planned (the URI itself when not an alias)."""
        return f"models:/{self.name}/{self.version}" if self.alias and self.version else self.uri


def plan(settings: Settings, *, root: Path, model_uri: str | None, client: MlflowClient) -> Served:
    """Which model to serve and what may be loaded from it: the model's own problem (its
    version's or run's tag) decides the allow-list, read from that problem's code here; the
    env's problem otherwise."""
    target = loading.resolve_model_uri(
        client, model_uri, model_name=settings.model_name, registry_only=False
    )  # a model folder or file:// URI has no tags: the env's problem
    problem = target.tag(client, PROBLEM) or settings.problem
    if problem != settings.problem:
        settings = load_settings(settings.env, problem=problem, root=root)
    trusted = loading.trusted_types(load_problem(settings, root))
    alias = target.uri.partition("@")[2] if target.uri.startswith("models:/") else ""
    status = status_of(target.tags) if target.version else ""
    return Served(
        target.uri, problem, trusted, Path(root), target.name, target.version, alias, status
    )


def load(served: Served, uri: str | None = None) -> PyFuncModel:
    """The model (`served.uri`, or `uri`: one of its versions) as an MLflow PyFuncModel, loaded
    by skops with the project's allow-list."""
    importable(served.root)  # a problem's own classes inside the model load from here
    return loading.pyfunc_of(uri or served.uri, served.trusted)


def live(served: Served, model: PyFuncModel, version: str) -> Live:
    """MLflow's scoring app on `model` (version `version` of the served model)."""
    return Live(cast("ASGIApp", scoring_server.init(model)), served.name, version)


def following(served: Served, model: PyFuncModel, poll_seconds: float) -> SwitchingApp:
    """The app to run: `model` served, and, when `served` names an alias and `poll_seconds` is
    positive, a background thread that switches to each version the alias moves to and the
    gate passed."""
    switching = SwitchingApp(live(served, model, served.version))
    freeze_heap()  # what start-up allocated, out of the cyclic GC's reach
    if served.alias and poll_seconds > 0:
        client = tracking.connect(served.root, write=False)

        def load_version(version: str) -> Live:
            return live(served, load(served, f"models:/{served.name}/{version}"), version)

        follower = Follower(
            client,
            switching,
            load_version,
            alias=served.alias,
            problem=served.problem,
            interval=poll_seconds,
            swapped=freeze_heap,  # after the swap, so the model switched out is collected
        )
        follower.start()
    return switching


def app() -> SwitchingApp:
    """The scoring app of a uvicorn worker (`--workers N`): the model named by the parent's
    environment, loaded again in this process, following its alias as the parent would."""
    fields = json.loads(os.environ[SERVED_VARIABLE])
    poll_seconds = float(fields.pop("poll_seconds"))
    served = Served(**{**fields, "root": Path(fields["root"])})
    return following(served, load(served, served.pinned), poll_seconds)


def run(
    served: Served,
    *,
    host: str,
    port: int,
    workers: int,
    poll_seconds: float,
    ready: Callable[[], None] | None = None,
) -> None:
    """Load the model (a load error ends here, before the port opens), bind the port (taken:
    a SetupError), call `ready` once it answers (with `workers` > 1, once every worker has
    loaded the model), then serve until SIGINT/SIGTERM."""
    model = load(served, served.pinned)
    if served.alias and served.status != gate.PASSED:
        logger.warning(
            "ml-project serve: version %s of %s, which @%s names, has validation_status=%s: "
            "served as asked at start; while running, the server switches only to versions "
            "the gate passed.",
            served.version, served.name, served.alias, served.status,
        )  # fmt: skip
    sock = bind(host, port)
    # uvicorn shuts down gracefully on SIGINT/SIGTERM, then raises the signal again: a server
    # asked to stop has done its job (exit 0), it was not interrupted mid-task.
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, _stopped)
    if workers == 1:
        server = uvicorn.Server(uvicorn.Config(following(served, model, poll_seconds), **OPTIONS))
        if ready is not None:
            ready()
        server.run(sockets=[sock])
        return
    del model  # each worker loads its own
    fields = {**asdict(served), "root": str(served.root), "poll_seconds": poll_seconds}
    os.environ[SERVED_VARIABLE] = json.dumps(fields)
    config = uvicorn.Config(
        f"{__name__}:app", factory=True, workers=workers, log_config=worker_logging(), **OPTIONS
    )
    Workers(config, sockets=[sock], ready=ready).run()


class Workers(Multiprocess):
    """uvicorn's worker processes, `ready` called once every one of them has loaded the model
    and serves."""

    def __init__(
        self, config: uvicorn.Config, sockets: list[socket.socket], ready: Callable[[], None] | None
    ) -> None:
        super().__init__(config, sockets)
        self.ready = ready

    def init_processes(self) -> None:
        super().init_processes()
        for process in self.processes:  # False: it died or the server stops (uvicorn says why)
            if not process.wait_until_ready(WORKER_START_SECONDS, self.should_exit):
                return
        if self.ready is not None:
            self.ready()


def worker_logging() -> dict[str, Any]:
    """uvicorn's logging configuration, plus the package's lines on stderr at the level this
    process logs them: what each worker of `--workers N` sets up when it starts."""
    config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    config["formatters"]["bare"] = {"format": "%(message)s"}
    config["handlers"]["ml_project"] = {
        "class": "logging.StreamHandler",
        "formatter": "bare",
        "stream": "ext://sys.stderr",
    }
    config["loggers"]["ml_project"] = {
        "handlers": ["ml_project"],
        "level": logging.getLogger("ml_project").getEffectiveLevel(),
        "propagate": False,
    }
    return config


def banner(served: Served, *, host: str, port: int, workers: int, poll_seconds: float) -> str:
    """The line `serve` prints once the model is loaded and the port bound."""
    version = f"version {served.version}, " if served.version else ""
    follows = f", following @{served.alias} every {poll_seconds:g} s" if served.alias else ""
    address = f"[{host}]" if ":" in host else host
    return (
        f"Serving {served.uri} ({version}problem {served.problem}) on http://{address}:{port} "
        f"with {workers} worker(s){follows if poll_seconds > 0 else ''}; stop with Ctrl-C."
    )


def bind(host: str, port: int) -> socket.socket:
    """A socket bound to `host`:`port` and listening (connections wait in its backlog until
    the server accepts them); SetupError when the port is taken or not allowed, ConfigError
    when `host` is no address of this machine."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)  # as uvicorn
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a listener's port stays taken
    try:
        sock.bind((host, port))
        sock.listen(BACKLOG)
    except OSError as exc:
        sock.close()
        raise bind_error(host, port, exc) from exc
    sock.set_inheritable(True)  # the workers of `--workers N` serve on it
    return sock


def bind_error(host: str, port: int, exc: OSError) -> SetupError | ConfigError:
    """The one paragraph for a port that cannot be bound, by its errno."""
    if isinstance(exc, socket.gaierror) or exc.errno == errno.EADDRNOTAVAIL:
        return ConfigError(f"--host {host} is not an address of this machine: nothing was served.")
    if exc.errno == errno.EADDRINUSE:
        return SetupError(
            f"Port {port} on {host} is already in use by another process (`lsof -i :{port}` "
            "names it): nothing was served. Stop that process or choose another --port."
        )
    if exc.errno == errno.EACCES:
        return SetupError(
            f"Port {port} on {host} may not be bound by this user (ports below 1024 need "
            "privileges): nothing was served. Choose a --port of 1024 or more."
        )
    return SetupError(
        f"Port {port} on {host} cannot be bound ({exc.strerror}): nothing was served."
    )


def freeze_heap() -> None:
    """Move what start-up allocated (MLflow, scikit-learn, the model: millions of long-lived
    objects) out of the cyclic GC's reach, so that a collection during a request walks only what
    requests allocate: without it a full collection now and then stalls a request for tens of
    milliseconds (the p99). Called again after each switch, it first lets the GC see everything,
    so a model switched out is collected."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()


def _stopped(_number: int, _frame: FrameType | None) -> NoReturn:
    raise SystemExit(0)
