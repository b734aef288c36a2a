"""CI's staging training over HTTP against a real `mlflow server`, run through the Makefile.

`make ci-staging` and `make ci-summary` are the commands the pull-request job runs; here they
run, with `PROBLEM=synthetic_binary` as CI's matrix sets it, on a clean git copy of the project
holding that synthetic problem (tests/synthetic.py), against a server started by the test.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow import MlflowClient

from ml_project.summary import number, read_result
from tests.ci.workflows import run_make
from tests.conftest import commit_all, git, make_project_copy
from tests.integration.tracking_server import start_tracking_server
from tests.synthetic import write_problem

pytestmark = pytest.mark.integration

PROBLEM = "synthetic_binary"
MODEL = "synthetic_binary_staging"
CRIPPLED = "--set params.max_iter=1 --set params.max_leaf_nodes=2"


@pytest.fixture(scope="module")
def ci_project(tmp_path_factory) -> Path:
    root = make_project_copy(tmp_path_factory.mktemp("ci") / "project")
    write_problem(root, "binary")
    commit_all(root, "a synthetic problem")
    return root


def outputs(project: Path, name: str) -> Path:
    """outputs/<problem>-<name>: the Makefile prefixes CI's files with PROBLEM when it is set."""
    return project / "outputs" / f"{PROBLEM}-{name}"


@pytest.fixture(scope="module")
def ci_staging(ci_project, tracking_server, tmp_path_factory):
    """`make ci-staging` then `make ci-summary ENV=staging`, as the pull-request job runs them."""
    store = {"MLFLOW_TRACKING_URI": tracking_server.url, "PROBLEM": PROBLEM}
    trained = run_make("ci-staging", cwd=ci_project, env=store)
    step_summary = tmp_path_factory.mktemp("github") / "step_summary.md"
    summarised = run_make(
        "ci-summary", "ENV=staging", cwd=ci_project,
        env={"GITHUB_STEP_SUMMARY": str(step_summary), "PROBLEM": PROBLEM},
    )  # fmt: skip
    return {
        "trained": trained,
        "summarised": summarised,
        "step_summary": step_summary,
        "output": outputs(ci_project, "staging.out"),
    }


@pytest.fixture(scope="module")
def result(ci_staging) -> dict:
    trained = ci_staging["trained"]
    assert trained.returncode == 0, trained.stdout[-3000:] + trained.stderr[-3000:]
    return read_result(ci_staging["output"])


def test_ci_staging_trains_over_http(result, tracking_server, ci_project):
    assert result["tracking_uri"] == tracking_server.url
    assert result["env"] == "staging" and result["model_name"] == MODEL
    assert result["problem"] == PROBLEM and result["task"] == "binary"
    assert abs(result["rows"]["used"] / result["rows"]["labelled"] - 0.5) < 0.04
    # Nothing went to a local store: runs, models and artifacts are all on the server.
    assert not (ci_project / "mlflow.db").exists()
    assert not (ci_project / "mlartifacts").exists()
    assert not any((ci_project / "outputs" / "ci-store").iterdir())
    assert git(ci_project, "status", "--porcelain") == ""


def test_run_version_lineage_and_model_are_on_the_server(result, tracking_server, ci_project):
    client = MlflowClient(tracking_uri=tracking_server.url)
    run = client.get_run(result["run_id"])
    assert run.info.status == "FINISHED"
    assert run.info.artifact_uri.startswith("mlflow-artifacts:/")  # proxied by the server
    commit = git(ci_project, "rev-parse", "HEAD")
    tags = run.data.tags
    assert tags["git.commit"] == commit and tags["git.dirty"] == "false"
    assert tags["data.digest"] == result["lineage"]["data.digest"]
    assert run.data.metrics["test_roc_auc"] == pytest.approx(result["metrics"]["roc_auc"])
    artifacts = {item.path for item in client.list_artifacts(run.info.run_id)}
    assert {"config", "environment"} <= artifacts

    version = client.get_model_version(MODEL, result["model_version"])
    assert version.run_id == run.info.run_id
    for key in ("git.commit", "git.dirty", "data.digest", "config.hash", "seed"):
        assert version.tags[key] == tags[key], key
    assert version.tags["run_id"] == run.info.run_id

    model_id = version.source.removeprefix("models:/")  # REST leaves version.model_id empty
    logged = client.get_logged_model(model_id)
    assert logged.source_run_id == run.info.run_id
    assert logged.artifact_location.startswith("mlflow-artifacts:/")
    on_disk = list(tracking_server.artifacts_dir.rglob("MLmodel"))
    assert len(on_disk) == 1 and model_id in str(on_disk[0])
    assert (on_disk[0].parent / "requirements.txt").is_file()


def test_registered_model_loads_back_over_http(result, tracking_server, ci_project, tmp_path):
    """A fresh process loads the version by models:/ URI and recomputes the logged metrics."""
    script = f"""
import json, mlflow, numpy as np
from pathlib import Path
from ml_project import metrics, pipeline
from ml_project.problem import load_problem
from ml_project.settings import load_settings
root = Path({str(ci_project)!r})
settings = load_settings("staging", problem={PROBLEM!r}, root=root)
problem = load_problem(settings, root)
tables = pipeline.read_tables(pipeline.table_paths(settings, root))
test = pipeline.prepare_data(settings, problem, tables).split.test
rows = pipeline.model_input(settings, test)
uri = "models:/{MODEL}/{result["model_version"]}"
model = mlflow.sklearn.load_model(uri)
predictions = metrics.predict(model, rows, settings.task)
scores = metrics.compute(settings.task, test[settings.data.label].to_numpy(), predictions)
pyfunc = mlflow.pyfunc.load_model(uri).predict(rows.head(200))
pyfunc = np.asarray(pyfunc["prediction"] if hasattr(pyfunc, "columns") else pyfunc).tolist()
print(json.dumps({{"metrics": scores, "pyfunc": pyfunc,
                  "sklearn": model.predict(rows.head(200)).tolist()}}))
"""
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env={
            **os.environ,
            "PYTHONPATH": str(ci_project),
            "MLFLOW_TRACKING_URI": tracking_server.url,
        },
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert loaded["metrics"]["roc_auc"] == pytest.approx(result["metrics"]["roc_auc"], abs=1e-12)
    assert loaded["metrics"]["log_loss"] == pytest.approx(result["metrics"]["log_loss"], abs=1e-12)
    assert loaded["pyfunc"] == loaded["sklearn"]


def test_ci_summary_renders_the_real_training(ci_staging, result, tracking_server):
    summarised = ci_staging["summarised"]
    assert summarised.returncode == 0, summarised.stderr
    markdown = ci_staging["step_summary"].read_text()
    written = (ci_staging["output"].parent / f"{PROBLEM}-staging-summary.md").read_text()
    assert markdown == written and written in summarised.stdout
    version = result["model_version"]
    assert f"## Training in staging: `{MODEL}` version {version}" in markdown
    metric, baseline = result["metrics"]["roc_auc"], result["baseline_metrics"]["roc_auc"]
    assert f"| **roc_auc** ↑ | {number(metric)} | {number(baseline)} |" in markdown
    assert f"| commit | `{result['lineage']['git.commit']}` |" in markdown
    assert "| tracking store | tracking server (http) |" in markdown
    assert str(tracking_server.port) not in markdown  # the server's address stays private
    assert "**Quality gate: passed**" in markdown


def test_server_stays_small(result, tracking_server):
    """--workers 1 and no job execution: the launcher and one uvicorn worker, under 1.5 GB."""
    processes = tracking_server.processes()
    rss_mb = tracking_server.rss_bytes() / 2**20
    print(f"mlflow server after a staging training: {len(processes)} processes, {rss_mb:.0f} MB")
    assert 1 <= len(processes) <= 2
    assert rss_mb < 1536


def test_server_is_stopped_by_pid(tmp_path):
    server = start_tracking_server(tmp_path / "server")
    members = server.processes()
    assert server.pid in members and server.is_healthy()
    server.stop()
    assert server.process.returncode is not None
    assert server.processes() == []
    assert not any(Path(f"/proc/{pid}").exists() for pid in members if pid != server.pid)
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", server.port), timeout=2):
        pass


def test_gate_promotes_the_staging_model_over_http(result, tracking_server):
    assert result["gate"]["status"] == "passed"
    client = MlflowClient(tracking_uri=tracking_server.url)
    model = client.get_registered_model(MODEL)
    assert model.aliases == {"champion": result["model_version"]}
    version = client.get_model_version(MODEL, result["model_version"])
    assert version.tags["validation_status"] == "passed"
    assert any(check["name"] == "lead" for check in result["gate"]["checks"])


def test_ci_reproduce_rebuilds_the_version_over_http(result, ci_project, tracking_server):
    """`make ci-reproduce ENV=staging`: the pull-request job's proof, against the server."""
    done = run_make(
        "ci-reproduce",
        "ENV=staging",
        cwd=ci_project,
        env={"MLFLOW_TRACKING_URI": tracking_server.url, "PROBLEM": PROBLEM},
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "identical" in done.stdout.lower()
    client = MlflowClient(tracking_uri=tracking_server.url)
    experiments = [experiment.experiment_id for experiment in client.search_experiments()]
    (reproduction,) = client.search_runs(
        experiments, filter_string=f"tags.`reproduction.of_run_id` = '{result['run_id']}'"
    )
    assert reproduction.data.tags["reproduction.verdict"] == "identical"


def test_ci_show_lists_the_champion_over_http(result, ci_project, tracking_server):
    done = run_make(
        "ci-show", "ENV=staging", cwd=ci_project,
        env={"MLFLOW_TRACKING_URI": tracking_server.url, "PROBLEM": PROBLEM},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    shown = json.loads(outputs(ci_project, "staging-show.json").read_text())
    assert shown["aliases"]["champion"] == result["model_version"]


def test_a_crippled_model_is_refused_over_http(result, ci_project, tracking_server, tmp_path):
    """The gate fails closed: exit 5, the version is registered and tagged failed, no alias."""
    done = run_make(
        "ci-staging",
        f"OUT={tmp_path}",
        f"TRAIN_ARGS={CRIPPLED}",
        cwd=ci_project,
        env={"MLFLOW_TRACKING_URI": tracking_server.url, "PROBLEM": PROBLEM},
    )
    assert done.returncode != 0 and "Error 5" in done.stderr  # the gate's exit code
    refused = read_result(tmp_path / f"{PROBLEM}-staging.out")
    assert refused["gate"]["status"] == "failed"
    client = MlflowClient(tracking_uri=tracking_server.url)
    version = client.get_model_version(MODEL, refused["model_version"])
    assert version.tags["validation_status"] == "failed" and not version.aliases
    model = client.get_registered_model(MODEL)
    assert model.aliases == {"champion": result["model_version"]}
