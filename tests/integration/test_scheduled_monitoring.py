"""The scheduled workflow's scoring and drift steps, run as CI runs them: `make` targets."""

import json

import pytest

from tests.ci.workflows import run_make

pytestmark = pytest.mark.integration


def test_batch_score_and_ci_monitor_report_drift_without_failing(
    scoring_store, project_copy, tmp_path
):
    """A one-month batch against a profile of the whole year drifts: drift=true, exit 0."""
    env = {"MLFLOW_TRACKING_URI": scoring_store["uri"], "GITHUB_OUTPUT": str(tmp_path / "out")}
    out = f"OUT={tmp_path}"
    done = run_make("batch", "BATCH_MONTHS=7", out, cwd=project_copy, env=env)
    assert done.returncode == 0, done.stderr
    done = run_make("score", "ENV=dev", out, cwd=project_copy, env=env)
    assert done.returncode == 0, done.stderr
    scored = json.loads((tmp_path / "dev-score.out").read_text().strip().splitlines()[-1])
    assert scored["model_uri"] == "models:/flights_delay_dev@champion" and scored["rows"] > 20000
    done = run_make("ci-monitor", "ENV=dev", out, cwd=project_copy, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "drift=true" in (tmp_path / "out").read_text()
    report = json.loads((tmp_path / "dev-monitor.out").read_text().strip().splitlines()[-1])
    assert report["exit_code"] == 7 and report["status"] == "drift"
    assert (tmp_path / "dev-monitor.md").read_text().strip()


def test_ci_monitor_fails_on_errors_other_than_drift(project_copy, tracking_uri, tmp_path):
    """No champion (exit 8) is an error: the job fails instead of reporting drift=false."""
    env = {"MLFLOW_TRACKING_URI": tracking_uri, "GITHUB_OUTPUT": str(tmp_path / "out")}
    batch = tmp_path / "batch.parquet"
    done = run_make("batch", "BATCH_MONTHS=7", f"BATCH={batch}", cwd=project_copy, env=env)
    assert done.returncode == 0, done.stderr
    done = run_make(
        "ci-monitor", "ENV=staging", f"BATCH={batch}", f"OUT={tmp_path}", cwd=project_copy, env=env
    )
    assert done.returncode != 0
    assert "drift=false" in (tmp_path / "out").read_text()
