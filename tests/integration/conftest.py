"""Fixtures for the integration tests: a real MLflow tracking server, a PostgreSQL server,
batches to score."""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import require, run_cli
from tests.integration.postgres import postgres_bin, start_postgres
from tests.integration.tracking_server import TrackingServer, start_tracking_server

BATCH_ROWS = 1500


@pytest.fixture(scope="module")
def tracking_server(tmp_path_factory) -> TrackingServer:
    """A fresh `mlflow server` per test module (sqlite + proxied artifacts), stopped by PID."""
    server = start_tracking_server(tmp_path_factory.mktemp("tracking-server"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def postgres():
    """A PostgreSQL server of the test module's own (tests/integration/postgres.py), stopped."""
    try:
        postgres_bin()
    except RuntimeError:
        require("PostgreSQL's programs (initdb, postgres)", False, "apt-get install postgresql")
    server = start_postgres()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def scoring_batches(synthetic_project, synthetic_models, tmp_path_factory) -> dict:
    """Per task kind: raw records to score with `synthetic_models`' dev champion (the first
    BATCH_ROWS records, label included, as `extract-batch` writes them) and what to expect.

    {kind: {"batch", "uri", "model_uri", "model_name", "problem", "result", "folder"}}
    """
    out = {}
    for kind, trained in synthetic_models.items():
        folder = tmp_path_factory.mktemp(f"scoring-{kind}")
        batch = folder / "batch.parquet"
        done = run_cli(
            "extract-batch", "--env", "dev", "--problem", trained["problem"],
            "--rows", str(BATCH_ROWS), "--output", str(batch),
            cwd=synthetic_project, tracking_uri=trained["uri"],
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        name = trained["result"]["model_name"]
        out[kind] = {
            **trained,
            "batch": batch,
            "folder": folder,
            "model_name": name,
            "model_uri": f"models:/{name}@champion",
        }
    return out


@functools.cache
def in_process_predictions(tracking_uri: str, model_uri: str, batch: Path, cwd: Path) -> dict:
    """What the registered model says about `batch`, loaded in a separate process with the
    sklearn flavour: {"task", "prediction", "classes", "probabilities" (rows x classes)}.
    Asked once per model and batch in a worker (the tests read it, never change it)."""
    script = f"""
import json, mlflow, numpy as np, pandas as pd
from ml_project import metrics, predict
mlflow.set_tracking_uri({tracking_uri!r})
version = mlflow.MlflowClient().get_model_version_by_alias(*{model_uri!r}[8:].split("@"))
task = version.tags["ml_project.task"]
model = mlflow.sklearn.load_model({model_uri!r})
info = mlflow.models.get_model_info({model_uri!r})
types = {{s.name: s.type.name for s in info.signature.inputs.inputs}}
rows = predict.typed_input(pd.read_parquet({str(batch)!r}), types, source="test")
said = metrics.predict(model, rows, task)
print(json.dumps({{
    "task": task,
    "prediction": np.asarray(said.prediction).tolist(),
    "classes": None if said.classes is None else [str(c) for c in said.classes],
    "probabilities": None if said.probabilities is None else said.probabilities.tolist(),
}}))
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=cwd, check=False
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])
