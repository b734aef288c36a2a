"""Fixtures for the integration tests: a real MLflow tracking server, and a scoring store."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from mlflow import MlflowClient

from tests.conftest import last_json, run_cli
from tests.integration.tracking_server import TrackingServer, start_tracking_server


@pytest.fixture(scope="module")
def tracking_server(tmp_path_factory) -> TrackingServer:
    """A fresh `mlflow server` per test module (sqlite + proxied artifacts), stopped by PID."""
    server = start_tracking_server(tmp_path_factory.mktemp("tracking-server"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def scoring_store(tmp_path_factory, project_copy):
    """A dev model trained in a temp store, its version 1 made champion, and a batch file."""
    folder = tmp_path_factory.mktemp("scoring")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    done = run_cli(
        "train",
        "--env",
        "dev",
        "--set",
        "params.max_iter=30",
        "--json",
        cwd=project_copy,
        tracking_uri=uri,
    )
    assert done.returncode == 0, done.stderr
    result = last_json(done.stdout)
    client = MlflowClient(tracking_uri=uri)
    if "champion" not in client.get_registered_model("flights_delay_dev").aliases:
        client.set_registered_model_alias("flights_delay_dev", "champion", result["model_version"])
    batch = folder / "december.parquet"
    done = run_cli(
        "extract-batch",
        "--months",
        "12",
        "--rows",
        "3000",
        "--output",
        str(batch),
        cwd=project_copy,
        tracking_uri=uri,
    )
    assert done.returncode == 0, done.stderr
    return {"uri": uri, "folder": folder, "batch": batch, "result": result}


def in_process_predictions(tracking_uri, model_uri, batch, cwd):
    """Probabilities and labels from the registered model, loaded in a separate process."""
    script = f"""
import json, mlflow, pandas as pd
from ml_project import predict
mlflow.set_tracking_uri({tracking_uri!r})
model = mlflow.sklearn.load_model({model_uri!r})
info = mlflow.models.get_model_info({model_uri!r})
types = {{s.name: s.type.name for s in info.signature.inputs.inputs}}
rows = predict.typed_input(pd.read_parquet({str(batch)!r}), types, source="test")
print(json.dumps({{"probability": model.predict_proba(rows)[:, 1].tolist(),
                  "prediction": model.predict(rows).tolist()}}))
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=cwd, check=False
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])
