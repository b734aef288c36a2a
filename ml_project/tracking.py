"""The MLflow edge: where runs go, and how models and their lineage enter the registry.

Default store: `sqlite:///<project root>/mlflow.db` with artifacts in `<project root>/mlartifacts`.
`MLFLOW_TRACKING_URI` overrides it (a tracking server, or another sqlite file whose artifacts
then go next to it).
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import unquote, urlparse

QUIET_ENVIRONMENT = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    "MLFLOW_LOGGING_LEVEL": "WARNING",
    "GIT_PYTHON_REFRESH": "quiet",
    "GX_ANALYTICS_ENABLED": "false",
}
PYSPARK_PANDAS_WARNING = "PySpark does not yet fully support pandas"


def quiet_environment() -> None:
    """No telemetry, no progress bars, no INFO chatter (users may still override each)."""
    for key, value in QUIET_ENVIRONMENT.items():
        os.environ.setdefault(key, value)
    for name in ("mlflow", "alembic", "great_expectations"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # great-expectations imports pyspark when the [spark] extra is installed; pyspark then
    # warns about pandas 3 on every command, though the pandas path never touches Spark.
    warnings.filterwarnings("ignore", message=PYSPARK_PANDAS_WARNING, category=FutureWarning)


def tracking_uri(root: Path) -> str:
    """$MLFLOW_TRACKING_URI, else the project's embedded sqlite store."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{(root / 'mlflow.db').resolve()}"


def local_artifact_root(uri: str) -> str | None:
    """For a sqlite store, the `mlartifacts` folder beside the database; None for a server."""
    parsed = urlparse(uri)
    if parsed.scheme != "sqlite":
        return None
    database = Path(unquote(parsed.path))
    return (database.parent / "mlartifacts").resolve().as_uri()


def connect(root: Path):
    """Point MLflow at the store and return an MlflowClient for it."""
    import mlflow
    from mlflow import MlflowClient

    uri = tracking_uri(root)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(os.environ.get("MLFLOW_REGISTRY_URI") or uri)
    registry_uri = os.environ.get("MLFLOW_REGISTRY_URI") or uri
    # MLflow 3.17 creates and migrates a new sqlite store without a lock: two processes opening
    # the same fresh file at once crash ("duplicate column name"). Let one create it first.
    with sqlite_lock(uri, "init"):
        client = MlflowClient(tracking_uri=uri, registry_uri=registry_uri)
        client.search_registered_models(max_results=1)
    return client


@contextmanager
def sqlite_lock(uri: str, purpose: str) -> Iterator[None]:
    """Exclusive across processes for a local sqlite store (a file lock beside it); else a no-op."""
    parsed = urlparse(uri)
    try:
        import fcntl
    except ImportError:  # not POSIX
        fcntl = None
    if parsed.scheme != "sqlite" or not parsed.path or fcntl is None:
        yield
        return
    path = Path(unquote(parsed.path) + f".{purpose}.lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_experiment(client, name: str) -> str:
    """The id of experiment `name`, created (artifacts beside a sqlite store) if missing."""
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    location = local_artifact_root(client.tracking_uri)
    try:
        return client.create_experiment(name, artifact_location=location)
    except Exception:  # created meanwhile by a concurrent run
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise
        return experiment.experiment_id


def flatten(mapping, prefix: str = "") -> dict[str, str]:
    """{'a': {'b': 1}} -> {'a.b': '1'}; lists become comma-separated text."""
    flat: dict[str, str] = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        elif isinstance(value, list | tuple):
            flat[name] = ",".join(str(item) for item in value)
        else:
            flat[name] = "" if value is None else str(value)
    return flat


def set_version_tags(client, model_name: str, version: str, tags: dict[str, str]) -> None:
    for key, value in tags.items():
        client.set_model_version_tag(model_name, version, key, value)


def pandas_dataset(frame, *, source: str, name: str, digest: str, targets: str):
    """An MLflow dataset of `frame` with our digest and a schema read from its dtypes.

    MLflow would infer the schema by visiting every value of each text column in Python
    (~3 s for the prod frames, growing with the data); `dataset_schema` gives the same schema
    from the dtypes and one vectorised null check a column.
    """
    import warnings

    import mlflow.data

    with warnings.catch_warnings():  # the model's signature, not this, says which are doubles
        warnings.filterwarnings("ignore", message="The specified dataset source")
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer")
        dataset = mlflow.data.from_pandas(
            frame, source=source, targets=targets, name=name, digest=digest
        )
        dataset.schema = dataset_schema(frame)  # a cached_property: this value is used instead
    return dataset


def dataset_schema(frame):
    """The schema MLflow infers for `frame`, computed without a pass over every text value:
    types are inferred on one row per column holding a value, `required` on the whole frame."""
    import warnings

    import pandas as pd
    from mlflow.models import infer_signature
    from mlflow.types import ColSpec, Schema

    present = [column.notna().to_numpy() for _, column in frame.items()]
    first_values = {int(mask.argmax()) for mask in present if mask.any()}  # positions, any index
    sample = frame.iloc[sorted(first_values)] if first_values else frame.head(1)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer")
        inferred = infer_signature(pd.DataFrame(sample)).inputs
    return Schema(
        [
            ColSpec(spec.type, spec.name, required=not frame[spec.name].hasnans)
            for spec in inferred.inputs
        ]
    )
