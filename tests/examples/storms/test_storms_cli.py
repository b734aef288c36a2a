"""The storms example through the real CLI, as CI runs it: dev, staging and prod trainings from
a clean committed copy, each gated; the staging version reproduced bit for bit; a batch scored."""

import pandas as pd
import pytest

from tests.conftest import empty_store, last_json, run_cli

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PROBLEM = ["--problem", "storms"]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return empty_store(tmp_path_factory.mktemp("storms"))


@pytest.fixture(scope="module")
def trained(project_copy, store):
    out = {}
    for env in ("dev", "staging", "prod"):
        done = run_cli(
            "train", "--env", env, *PROBLEM, "--json", cwd=project_copy, tracking_uri=store
        )
        assert done.returncode == 0, done.stderr
        out[env] = last_json(done.stdout)
    return out


def test_storms_trains_and_passes_its_gate_in_every_env(trained):
    rows = {env: result["rows"] for env, result in trained.items()}
    assert rows["prod"]["labelled"] == 11859 and rows["prod"]["used"] == 11859
    assert (
        rows["dev"]["used"] < rows["prod"]["used"] and rows["staging"]["used"] < rows["dev"]["used"]
    )
    for env, result in trained.items():
        assert result["model_name"] == f"storms_pressure_{env}" and result["task"] == "regression"
        assert result["gate"]["status"] == "passed" and result["gate"]["promoted"]
        assert result["metrics"]["rmse"] < result["baseline_metrics"]["rmse"] / 3
        assert result["lineage"]["git.dirty"] == "false"


def test_the_staging_version_reproduces_identically(trained, project_copy, store):
    version = trained["staging"]["model_version"]
    done = run_cli(
        "reproduce", "--env", "staging", *PROBLEM, "--version", version, "--json",
        cwd=project_copy, tracking_uri=store,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert last_json(done.stdout)["verdict"] == "identical"


def test_a_batch_is_scored_with_the_prod_champion(trained, project_copy, store, tmp_path):
    batch, scored = tmp_path / "batch.parquet", tmp_path / "scored.parquet"
    done = run_cli(
        "extract-batch", "--env", "prod", *PROBLEM, "--query", "year == 2020", "--output",
        str(batch), cwd=project_copy, tracking_uri=store,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    done = run_cli(
        "predict", "--env", "prod", *PROBLEM, "--input", str(batch), "--output", str(scored),
        cwd=project_copy, tracking_uri=store,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    frame = pd.read_parquet(scored)
    assert (frame["year"] == 2020).all() and frame["prediction"].between(850, 1050).all()
    assert not any(column.startswith("probability") for column in frame.columns)
    assert (frame["prediction"] - frame["pressure"]).abs().median() < 5
