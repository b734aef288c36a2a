"""A fork's pull request has no secrets: `make ci-staging` then trains into an embedded store
inside the job (outputs/ci-store, uploaded as an artifact), and the tree stays clean. The staging
job's steps run here as CI runs them, for a problem named by PROBLEM (a synthetic one)."""

from __future__ import annotations

import pytest
from mlflow import MlflowClient

from ml_project.summary import read_result
from tests.ci.workflows import run_make
from tests.conftest import commit_all, git, make_project_copy
from tests.synthetic import write_problem

pytestmark = pytest.mark.integration


def test_without_a_tracking_server_the_staging_job_runs_in_an_embedded_store(tmp_path):
    project = make_project_copy(tmp_path / "fork")
    problem = write_problem(project, "regression", name="fork_regression")
    commit_all(project, "a fork's own problem")
    job = {"PROBLEM": problem, "MLFLOW_TRACKING_URI": None, "CI": "true"}  # the job's env

    trained = run_make("ci-staging", cwd=project, env=job)
    assert trained.returncode == 0, trained.stdout[-3000:] + trained.stderr[-3000:]
    store = project / "outputs" / "ci-store"
    result = read_result(project / "outputs" / f"{problem}-staging.out")
    assert (result["problem"], result["task"]) == (problem, "regression")
    assert result["tracking_uri"] == f"sqlite:///{store / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=result["tracking_uri"])
    version = client.get_model_version(f"{problem}_staging", result["model_version"])
    assert version.tags["git.commit"] == git(project, "rev-parse", "HEAD")
    assert list((store / "mlartifacts").rglob("MLmodel"))  # the model is inside the upload
    assert not (project / "mlflow.db").exists()  # never the project's own store

    summarised = run_make("ci-summary", "ENV=staging", cwd=project, env=job)
    assert summarised.returncode == 0, summarised.stderr
    assert "| tracking store | embedded sqlite store |" in summarised.stdout
    assert "| **rmse** ↓ |" in summarised.stdout  # the task's metrics, the gate's in bold
    assert (project / "outputs" / f"{problem}-staging-summary.md").is_file()

    shown = run_make("ci-show", "ENV=staging", cwd=project, env=job)
    assert shown.returncode == 0, shown.stderr
    assert f"{problem}_staging" in shown.stdout
    assert (project / "outputs" / f"{problem}-staging-show.json").is_file()

    reproduced = run_make("ci-reproduce", "ENV=staging", cwd=project, env=job)
    assert reproduced.returncode == 0, reproduced.stdout[-3000:] + reproduced.stderr[-3000:]
    assert git(project, "status", "--porcelain") == ""  # outputs/ is ignored: still clean


def test_release_prod_in_ci_refuses_to_train_without_a_tracking_server(tmp_path):
    project = make_project_copy(tmp_path / "fork")
    done = run_make("release-prod", cwd=project, env={"MLFLOW_TRACKING_URI": None, "CI": "true"})
    assert done.returncode == 2  # make's own code
    assert "MLFLOW_TRACKING_URI is not set" in done.stderr
    assert not (project / "outputs").exists()
