"""Online serving: MLflow's scoring server on a model loaded with the project's allow-list.

`mlflow models serve` would trust the types the artifact's own MLmodel lists; `ml-project serve`
loads the model as `predict` does (loading.py) and hands it to MLflow's app
(`mlflow.pyfunc.scoring_server.init`): the same endpoints and formats, and a row breaking an
input rule answers 400 naming the rule.
"""

from __future__ import annotations

import gc
import json
import os
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, cast

import uvicorn
from mlflow.pyfunc import scoring_server

from ml_project import loading
from ml_project.problem import importable, load_problem
from ml_project.settings import load_settings
from ml_project.vocabulary import PROBLEM

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import FrameType

    from fastapi import FastAPI
    from mlflow import MlflowClient
    from mlflow.pyfunc import PyFuncModel

    from ml_project.settings import Settings

# What `--workers N > 1` hands each uvicorn worker process (they import `app` below).
URI_VARIABLE = "ML_PROJECT_SERVE_MODEL_URI"
TRUSTED_VARIABLE = "ML_PROJECT_SERVE_TRUSTED_TYPES"
ROOT_VARIABLE = "ML_PROJECT_SERVE_ROOT"


@dataclass(frozen=True)
class Served:
    """What a server will load: the model URI, its problem, the allow-list, the project."""

    uri: str
    problem: str
    trusted: list[str]
    root: Path


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
    return Served(target.uri, problem, trusted, Path(root))


def load(served: Served) -> PyFuncModel:
    """The model as an MLflow PyFuncModel, loaded by skops with the project's allow-list."""
    importable(served.root)  # a problem's own classes inside the model load from here
    return loading.pyfunc_of(served.uri, served.trusted)


def app() -> FastAPI:
    """The scoring app of a uvicorn worker (`--workers N`): the model named by the parent's
    environment, loaded again in this process."""
    served = Served(
        uri=os.environ[URI_VARIABLE],
        problem="",
        trusted=json.loads(os.environ[TRUSTED_VARIABLE]),
        root=Path(os.environ[ROOT_VARIABLE]),
    )
    model = load(served)
    freeze_heap()
    return cast("FastAPI", scoring_server.init(model))


def run(
    served: Served, *, host: str, port: int, workers: int, ready: Callable[[], None] | None = None
) -> None:
    """Load the model (a load error ends here, before the port opens and before `ready` is
    called: nothing says "serving" for a model that was refused), then serve until
    SIGINT/SIGTERM."""
    model = load(served)
    freeze_heap()
    if ready is not None:
        ready()
    # uvicorn shuts down gracefully on SIGINT/SIGTERM, then raises the signal again: a server
    # asked to stop has done its job (exit 0), it was not interrupted mid-task.
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, _stopped)
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "log_level": "warning",
        "timeout_graceful_shutdown": 5,
    }
    if workers == 1:
        uvicorn.run(scoring_server.init(model), **options)
        return
    os.environ[URI_VARIABLE] = served.uri
    os.environ[TRUSTED_VARIABLE] = json.dumps(served.trusted)
    os.environ[ROOT_VARIABLE] = str(served.root)
    uvicorn.run(f"{__name__}:app", factory=True, workers=workers, **options)


def freeze_heap() -> None:
    """Move what start-up allocated (MLflow, scikit-learn, the model: millions of long-lived
    objects) out of the cyclic GC's reach, so that a collection during a request walks only what
    requests allocate: without it a full collection now and then stalls a request for tens of
    milliseconds (the p99)."""
    gc.collect()
    gc.freeze()


def _stopped(_number: int, _frame: FrameType | None) -> NoReturn:
    raise SystemExit(0)
