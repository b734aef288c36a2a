"""The scheduled workflow's batch, scoring and drift steps, run as CI runs them: `make` targets
with PROBLEM set, on the synthetic binary problem's dev champion."""

import json

import pytest

from tests.ci.workflows import run_make
from tests.conftest import copy_store

pytestmark = pytest.mark.integration

PROBLEM = "synthetic_binary"


def last_line(path) -> dict:
    return json.loads(path.read_text().strip().splitlines()[-1])


@pytest.fixture(scope="module")
def store(synthetic_models, tmp_path_factory):
    """The binary dev champion in a copy of the shared store: these runs log monitoring runs,
    and test_monitor_cli.py counts the shared store's."""
    folder = tmp_path_factory.mktemp("scheduled-store")
    trained = synthetic_models["binary"]
    return {**trained, "uri": copy_store(trained["uri"], folder)}


def test_every_record_is_scored_and_watched_without_drift(store, synthetic_project, tmp_path):
    """The scheduled default: the whole table, from the training period, with its labels."""
    env = {"MLFLOW_TRACKING_URI": store["uri"], "GITHUB_OUTPUT": str(tmp_path / "out")}
    args = ("ENV=dev", f"PROBLEM={PROBLEM}", f"OUT={tmp_path}")
    for target in ("batch", "score", "ci-monitor"):
        done = run_make(target, *args, cwd=synthetic_project, env=env)
        assert done.returncode == 0, f"{target}: {done.stdout[-2000:]}{done.stderr[-3000:]}"
    rows = store["result"]["rows"]["records"]
    scored = last_line(tmp_path / f"{PROBLEM}-dev-score.out")
    assert scored["model_uri"] == f"models:/{PROBLEM}_dev@champion" and scored["rows"] == rows
    assert (tmp_path / f"{PROBLEM}-dev-scored.parquet").is_file()
    assert "drift=false" in (tmp_path / "out").read_text()
    report = last_line(tmp_path / f"{PROBLEM}-dev-monitor.out")
    assert report["exit_code"] == 0 and report["status"] in ("ok", "warn")
    assert report["quality"]["metric"] == "roc_auc" and report["quality"]["status"] == "ok"
    assert report["quality"]["rows"] == rows  # MONITOR_ARGS defaults to --labels
    assert "live roc_auc" in (tmp_path / f"{PROBLEM}-dev-monitor.md").read_text()


def test_a_batch_unlike_the_training_data_reports_drift_without_failing(
    store, synthetic_project, tmp_path
):
    """A manual run's BATCH_QUERY picks records unlike the training data: drift=true, exit 0."""
    env = {
        "MLFLOW_TRACKING_URI": store["uri"],
        "GITHUB_OUTPUT": str(tmp_path / "out"),
        "BATCH_QUERY": "x1 > 0.5",
    }
    args = ("ENV=dev", f"PROBLEM={PROBLEM}", f"OUT={tmp_path}")
    for target in ("batch", "score"):
        done = run_make(target, *args, cwd=synthetic_project, env=env)
        assert done.returncode == 0, f"{target}: {done.stderr[-3000:]}"
    done = run_make("ci-monitor", *args, cwd=synthetic_project, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "drift=true" in (tmp_path / "out").read_text()
    report = last_line(tmp_path / f"{PROBLEM}-dev-monitor.out")
    assert report["exit_code"] == 7 and report["status"] == "drift"
    assert report["features"][0]["feature"] == "x1" and "PSI of x1" in report["reasons"][0]
    assert (tmp_path / f"{PROBLEM}-dev-monitor.md").read_text().strip()


def test_ci_monitor_fails_on_errors_other_than_drift(synthetic_project, store_uri, tmp_path):
    """No champion (exit 8) is an error: the job fails instead of reporting drift=false."""
    env = {"MLFLOW_TRACKING_URI": store_uri, "GITHUB_OUTPUT": str(tmp_path / "out")}
    args = ("ENV=staging", f"PROBLEM={PROBLEM}", f"OUT={tmp_path}")
    done = run_make("batch", *args, cwd=synthetic_project, env=env)
    assert done.returncode == 0, done.stderr
    done = run_make("ci-monitor", *args, cwd=synthetic_project, env=env)
    assert done.returncode == 2 and "monitor exit code 8" in done.stdout  # 2: make's own code
    assert "drift=false" in (tmp_path / "out").read_text()
    assert f"models:/{PROBLEM}_staging@champion" in done.stderr
