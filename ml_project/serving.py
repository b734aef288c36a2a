"""Online serving: MLflow's scoring server on a model loaded with the project's allow-list.

`mlflow models serve` would load the model's skops file trusting the types its own MLmodel
lists, i.e. whatever the artifact says. `ml-project serve` loads it as `predict` does
(loading.py: the allow-list comes from the problem's code in this checkout) and hands the model
to MLflow's own app (`mlflow.pyfunc.scoring_server.init`): the same /invocations, /ping,
/health and /version, the same request and response formats, and the input rules inside the
model answer 400 with the rule that failed.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, cast

from ml_project.errors import RegistryError

if TYPE_CHECKING:
    from types import FrameType

    from fastapi import FastAPI
    from mlflow import MlflowClient
    from mlflow.pyfunc import PyFuncModel

    from ml_project.settings import Settings

# What `--workers N > 1` hands each uvicorn worker process (they import `app` below).
URI_VARIABLE = "ML_PROJECT_SERVE_MODEL_URI"
TRUSTED_VARIABLE = "ML_PROJECT_SERVE_TRUSTED_TYPES"
ROOT_VARIABLE = "ML_PROJECT_SERVE_ROOT"
PROBLEM_TAG = "ml_project.problem"


@dataclass(frozen=True)
class Served:
    """What a server will load: the model URI, its problem, the allow-list, the project."""

    uri: str
    problem: str
    trusted: list[str]
    root: Path


def model_problem(uri: str, client: MlflowClient) -> str:
    """The problem a registered version (or a run's model) was trained for: its
    `ml_project.problem` tag ('' when the URI names neither a version nor a run)."""
    from mlflow.exceptions import MlflowException

    try:
        if uri.startswith("runs:/"):
            run_id = uri.removeprefix("runs:/").split("/", 1)[0]
            return client.get_run(run_id).data.tags.get(PROBLEM_TAG, "")
        if not uri.startswith("models:/"):
            return ""
        reference = uri.removeprefix("models:/")
        if "@" in reference:
            version = client.get_model_version_by_alias(*reference.split("@", 1))
        else:
            version = client.get_model_version(*reference.rsplit("/", 1))
    except (MlflowException, ValueError) as exc:
        raise RegistryError(
            f"The registry has no model at {uri} (has the env trained and promoted a champion "
            "yet? `ml-project show --env ENV` lists versions and aliases)."
        ) from exc
    tags = version.tags or {}
    if tags.get(PROBLEM_TAG):
        return tags[PROBLEM_TAG]
    if version.run_id:
        return client.get_run(version.run_id).data.tags.get(PROBLEM_TAG, "")
    return ""


def plan(settings: Settings, *, root: Path, model_uri: str | None, client: MlflowClient) -> Served:
    """Which model to serve and what may be loaded from it: the model's own problem (its tag)
    decides the allow-list, read from that problem's code here; the env's problem otherwise."""
    from ml_project.predict import default_model_uri, project_trusted_types
    from ml_project.settings import load_settings

    uri = model_uri or default_model_uri(settings.model_name)
    problem = model_problem(uri, client) or settings.problem
    if problem != settings.problem:
        settings = load_settings(settings.env, problem=problem, root=root)
    return Served(uri, problem, project_trusted_types(settings, root), Path(root))


def load(served: Served) -> PyFuncModel:
    """The model as an MLflow PyFuncModel, loaded by skops with the project's allow-list."""
    from ml_project import loading
    from ml_project.problem import importable

    importable(served.root)  # a problem's own classes inside the model load from here
    return loading.pyfunc_of(served.uri, served.trusted)


def app() -> FastAPI:
    """The scoring app of a uvicorn worker (`--workers N`): the model named by the parent's
    environment, loaded again in this process."""
    from mlflow.pyfunc import scoring_server

    served = Served(
        uri=os.environ[URI_VARIABLE],
        problem="",
        trusted=json.loads(os.environ[TRUSTED_VARIABLE]),
        root=Path(os.environ[ROOT_VARIABLE]),
    )
    return cast("FastAPI", scoring_server.init(load(served)))


def run(served: Served, *, host: str, port: int, workers: int) -> None:
    """Load the model (a load error ends here, before the port opens), then serve until
    SIGINT/SIGTERM."""
    import signal

    import uvicorn
    from mlflow.pyfunc import scoring_server

    model = load(served)
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


def _stopped(_number: int, _frame: FrameType | None) -> NoReturn:
    raise SystemExit(0)
