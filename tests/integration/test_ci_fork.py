"""A fork's pull request has no secrets: `make ci-staging` then trains into an embedded store
inside the job (outputs/ci-store, uploaded as an artifact), and the tree stays clean."""

from __future__ import annotations

import pytest
from mlflow import MlflowClient

from ml_project.summary import read_result
from tests.ci.workflows import run_make
from tests.conftest import git, make_project_copy

pytestmark = pytest.mark.integration


def test_without_a_tracking_server_ci_staging_uses_an_embedded_store(tmp_path):
    project = make_project_copy(tmp_path / "fork")
    trained = run_make("ci-staging", cwd=project, env={"MLFLOW_TRACKING_URI": None, "CI": "true"})
    assert trained.returncode == 0, trained.stdout[-3000:] + trained.stderr[-3000:]
    store = project / "outputs" / "ci-store"
    result = read_result(project / "outputs" / "staging.out")
    assert result["tracking_uri"] == f"sqlite:///{store / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=result["tracking_uri"])
    version = client.get_model_version("flights_delay_staging", result["model_version"])
    assert version.tags["git.commit"] == git(project, "rev-parse", "HEAD")
    assert list((store / "mlartifacts").rglob("MLmodel"))  # the model is inside the upload
    assert not (project / "mlflow.db").exists()  # never the project's own store
    assert git(project, "status", "--porcelain") == ""  # outputs/ is ignored: still clean

    summarised = run_make("ci-summary", "ENV=staging", cwd=project)
    assert summarised.returncode == 0, summarised.stderr
    assert "| tracking store | embedded sqlite store |" in summarised.stdout


def test_release_prod_in_ci_refuses_to_train_without_a_tracking_server(tmp_path):
    project = make_project_copy(tmp_path / "fork")
    done = run_make("release-prod", cwd=project, env={"MLFLOW_TRACKING_URI": None, "CI": "true"})
    assert done.returncode != 0
    assert "MLFLOW_TRACKING_URI is not set" in done.stderr
    assert not (project / "outputs").exists()
