"""The real CLI in a subprocess, on a clean git copy of the project, against a temp store."""

import json
import subprocess
import sys

import pytest
from mlflow import MlflowClient

from tests.conftest import last_json, make_project_copy, run_cli

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def dev_store(tmp_path_factory):
    return f"sqlite:///{tmp_path_factory.mktemp('dev-store') / 'mlflow.db'}"


@pytest.fixture(scope="module")
def dev_runs(project_copy, dev_store):
    """Two dev trainings from the same commit, config, seed and data."""
    results = []
    for _ in range(2):
        done = run_cli("train", "--env", "dev", "--json", cwd=project_copy, tracking_uri=dev_store)
        assert done.returncode == 0, done.stderr
        results.append(last_json(done.stdout))
    return results


def test_train_prints_a_summary_and_registers_a_version(dev_runs):
    first, second = dev_runs
    assert first["model_name"] == "flights_delay_dev"
    assert (first["model_version"], second["model_version"]) == ("1", "2")
    assert first["rows"]["unlabelled_dropped"] == 9430
    assert 0.70 < first["metrics"]["roc_auc"] < 0.85


def test_run_records_params_metrics_lineage_and_artifacts(dev_runs, dev_store, project_copy):
    client = MlflowClient(tracking_uri=dev_store)
    run = client.get_run(dev_runs[0]["run_id"])
    tags, params, metrics = run.data.tags, run.data.params, run.data.metrics
    commit = subprocess.run(
        ["git", "-C", str(project_copy), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    assert tags["git.commit"] == commit == tags["mlflow.source.git.commit"]
    assert tags["git.dirty"] == "false" and tags["git.branch"] == "main"
    assert tags["seed"] == "42" and params["seed"] == "42"
    assert params["params.max_iter"] == "100"
    assert len(tags["data.digest"]) == 64 and len(tags["config.hash"]) == 64
    assert tags["pkg.scikit-learn"] and tags["env.python"]
    assert int(tags["data.rows_train"]) == dev_runs[0]["rows"]["train"]
    assert metrics["test_roc_auc"] == pytest.approx(dev_runs[0]["metrics"]["roc_auc"])
    artifacts = {item.path for item in client.list_artifacts(run.info.run_id, "config")}
    assert "config/settings.yaml" in artifacts
    contexts = {dataset_input.tags[0].value for dataset_input in run.inputs.dataset_inputs}
    assert contexts == {"training", "evaluation"}
    version = client.get_model_version("flights_delay_dev", "1")
    for key in ("git.commit", "git.dirty", "data.digest", "config.hash", "seed"):
        assert version.tags[key] == tags[key]
    assert version.tags["run_id"] == run.info.run_id


def test_retrain_is_bitwise_identical_and_loads_from_the_registry(dev_runs, dev_store, tmp_path):
    """Load both versions by models:/ URI in a fresh process and compare their predictions."""
    script = f"""
import json, mlflow, numpy as np
from ml_project import data, pipeline
from ml_project.settings import load_settings
mlflow.set_tracking_uri({dev_store!r})
settings = load_settings("dev")
flights, weather = (data.read_table(p) for p in data.demo_data_paths())
test = pipeline.prepare_data(settings, flights, weather).split.test
rows = pipeline.model_input(settings, test, pipeline.features.raw_columns(settings.features))
out = {{}}
for version in ("1", "2"):
    model = mlflow.sklearn.load_model(f"models:/flights_delay_dev/{{version}}")
    out[version] = model.predict_proba(rows)[:, 1].tobytes().hex()
pyfunc = mlflow.pyfunc.load_model("models:/flights_delay_dev/1")
out["pyfunc"] = np.asarray(pyfunc.predict(rows)).tolist()[:50]
out["sk"] = model.predict(rows).tolist()[:50]
print(json.dumps(out))
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, check=False
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["1"] == out["2"]
    assert out["pyfunc"] == out["sk"]
    assert dev_runs[0]["lineage"]["data.digest"] == dev_runs[1]["lineage"]["data.digest"]
    assert dev_runs[0]["metrics"] == dev_runs[1]["metrics"]


def test_staging_from_a_clean_tree_uses_the_subset(project_copy, tracking_uri):
    done = run_cli(
        "train", "--env", "staging", "--json", cwd=project_copy, tracking_uri=tracking_uri
    )
    assert done.returncode == 0, done.stderr
    result = last_json(done.stdout)
    assert result["model_name"] == "flights_delay_staging"
    assert abs(result["rows"]["used"] / result["rows"]["labelled"] - 0.1) < 0.005
    assert "Trained flights_delay_staging version 1" in done.stdout


@pytest.fixture
def dirty_copy(tmp_path):
    repo = make_project_copy(tmp_path / "dirty")
    (repo / "ml_project" / "scratch.py").write_text("# work in progress\n")
    return repo


@pytest.mark.parametrize("env", ["staging", "prod"])
def test_staging_and_prod_refuse_a_dirty_tree(dirty_copy, tracking_uri, env):
    done = run_cli("train", "--env", env, cwd=dirty_copy, tracking_uri=tracking_uri)
    assert done.returncode == 4
    assert "uncommitted changes" in done.stderr and "--allow-dirty" in done.stderr
    assert "Traceback" not in done.stderr
    assert MlflowClient(tracking_uri=tracking_uri).search_registered_models() == []


def test_allow_dirty_is_recorded(dirty_copy, tracking_uri):
    done = run_cli(
        "train",
        "--env",
        "staging",
        "--allow-dirty",
        "--set",
        "params.max_iter=20",
        "--json",
        cwd=dirty_copy,
        tracking_uri=tracking_uri,
    )
    assert done.returncode == 0, done.stderr
    run = MlflowClient(tracking_uri=tracking_uri).get_run(last_json(done.stdout)["run_id"])
    assert run.data.tags["git.dirty"] == "true"
    assert run.data.tags["ml_project.allow_dirty"] == "true"
    assert run.data.params["params.max_iter"] == "20"


def test_prod_trains_on_every_labelled_flight(project_copy, tracking_uri):
    done = run_cli(
        "train",
        "--env",
        "prod",
        "--set",
        "params.max_iter=30",
        "--json",
        cwd=project_copy,
        tracking_uri=tracking_uri,
    )
    assert done.returncode == 0, done.stderr
    rows = last_json(done.stdout)["rows"]
    assert rows["used"] == rows["labelled"] == 327_346
    assert rows["train"] + rows["test"] == rows["used"]


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["train", "--env", "qa"], 2, "'qa' is not one of"),
        (["train", "--env", "dev", "--flights", "/nowhere/flights.csv"], 3, "no such file"),
        (["train", "--env", "dev", "--set", "model.depth=3"], 2, "no key 'depth'"),
        (["train", "--env", "dev", "--set", "params.max_iter=zero"], 2, "params.max_iter"),
    ],
)
def test_bad_usage_gets_one_paragraph_and_its_exit_code(
    project_copy, tracking_uri, args, code, message
):
    done = run_cli(*args, cwd=project_copy, tracking_uri=tracking_uri)
    assert done.returncode == code, done.stderr
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def test_malformed_yaml_is_a_config_error(tmp_path, tracking_uri):
    repo = make_project_copy(tmp_path / "broken")
    (repo / "environments" / "dev.yaml").write_text("model: [unclosed\n")
    done = run_cli("train", "--env", "dev", cwd=repo, tracking_uri=tracking_uri)
    assert done.returncode == 2
    assert "dev.yaml is not valid YAML" in done.stderr and "Traceback" not in done.stderr


def test_user_files_override_the_demo_data(project_copy, tracking_uri, tmp_path):
    import pandas as pd

    from ml_project import data

    flights_path, weather_path = data.demo_data_paths()
    flights = pd.read_csv(flights_path)
    flights = flights[flights["month"].isin([1, 2])]
    flights.to_parquet(tmp_path / "flights.parquet")
    done = run_cli(
        "train",
        "--env",
        "dev",
        "--flights",
        str(tmp_path / "flights.parquet"),
        "--weather",
        str(weather_path),
        "--set",
        "data.sample_fraction=1.0",
        "--json",
        cwd=project_copy,
        tracking_uri=tracking_uri,
    )
    assert done.returncode == 0, done.stderr
    result = last_json(done.stdout)
    assert result["rows"]["flights"] == len(flights)
    run = MlflowClient(tracking_uri=tracking_uri).get_run(result["run_id"])
    assert run.data.tags["data.source"] == "files"
    assert run.data.params["data.flights"].endswith("flights.parquet")


def test_help_shows_examples(project_copy, tracking_uri):
    done = run_cli("train", "--help", cwd=project_copy, tracking_uri=tracking_uri)
    assert done.returncode == 0
    assert "ml-project train --env dev" in done.stdout and "Exit codes" in done.stdout
