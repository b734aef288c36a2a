"""`ml-project monitor` through the real CLI: a summer model watched on real and shifted batches.

One dev model is trained on June-August flights; batches are drawn from the same months (no
drift), from December-February (the weather drifts), or from summer with an injected shift.
"""

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from ml_project import drift
from ml_project.errors import RegistryError
from ml_project.monitor import load_reference_profile
from tests.conftest import last_json, run_cli

pytestmark = pytest.mark.integration

BATCH_ROWS = 2500


@pytest.fixture(scope="module")
def summer(tmp_path_factory, project_copy):
    """A dev model trained on summer flights, made champion; raw summer and winter records."""
    folder = tmp_path_factory.mktemp("monitor")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    records = {}
    for season, months in (("summer", "6,7,8"), ("winter", "12,1,2")):
        records[season] = folder / f"{season}.parquet"
        done = run_cli(
            "extract-batch",
            "--months",
            months,
            "--output",
            str(records[season]),
            cwd=project_copy,
            tracking_uri=uri,
        )
        assert done.returncode == 0, done.stderr
    done = run_cli(
        "train",
        "--env",
        "dev",
        "--flights",
        str(records["summer"]),
        "--set",
        "params.max_iter=30",
        "--json",
        cwd=project_copy,
        tracking_uri=uri,
    )
    assert done.returncode == 0, done.stderr
    result = last_json(done.stdout)
    client = MlflowClient(tracking_uri=uri)
    client.set_registered_model_alias("flights_delay_dev", "champion", result["model_version"])
    return {
        "uri": uri,
        "folder": folder,
        "result": result,
        "summer": pd.read_parquet(records["summer"]),
        "winter": pd.read_parquet(records["winter"]),
    }


def write_batch(summer, name: str, frame: pd.DataFrame):
    path = summer["folder"] / f"{name}.parquet"
    frame.to_parquet(path, index=False)
    return path


def monitor(summer, project_copy, path, *args):
    done = run_cli(
        "monitor",
        "--env",
        "dev",
        "--input",
        str(path),
        "--json",
        *args,
        cwd=project_copy,
        tracking_uri=summer["uri"],
    )
    return done, (last_json(done.stdout) if done.stdout.strip() else None)


@pytest.fixture(scope="module")
def summer_batch(summer):
    return summer["summer"].sample(BATCH_ROWS, random_state=7).reset_index(drop=True)


@pytest.fixture(scope="module")
def in_distribution(summer, summer_batch, project_copy):
    path = write_batch(summer, "in-distribution", summer_batch)
    return monitor(summer, project_copy, path, "--labels")


@pytest.fixture(scope="module")
def winter_run(summer, project_copy, tmp_path_factory):
    batch = summer["winter"].sample(BATCH_ROWS, random_state=7)
    summary = tmp_path_factory.mktemp("summary") / "summary.md"
    path = write_batch(summer, "winter-batch", batch)
    return (*monitor(summer, project_copy, path, "--summary", str(summary)), summary)


def drifting(report) -> list[str]:
    return [row["feature"] for row in report["features"] if row["status"] == "drift"]


def test_training_logs_the_reference_profile(summer):
    client = MlflowClient(tracking_uri=summer["uri"])
    folder = summer["folder"] / "profile"
    folder.mkdir()
    path = client.download_artifacts(summer["result"]["run_id"], drift.PROFILE_ARTIFACT, folder)
    profile = pd.read_json(path, typ="series")
    features = profile["features"]
    assert list(features)[:3] == ["carrier", "origin", "dest"]
    assert {"temp", "dep_minutes", "day_of_week", "distance"} <= set(features)
    assert features["month"]["edges"][0] >= 6 and features["month"]["edges"][-1] <= 8
    assert features["carrier"]["rows"] == summer["result"]["rows"]["train"]
    assert profile["prediction"]["rows"] == summer["result"]["rows"]["test"]


def test_a_batch_from_the_training_distribution_does_not_drift(in_distribution, summer_batch):
    done, report = in_distribution
    assert done.returncode == 0, done.stderr
    assert report["status"] == "ok" and report["exit_code"] == 0 and report["reasons"] == []
    assert max(row["psi"] for row in report["features"]) < 0.1
    assert report["prediction"]["psi"] < 0.1
    quality = report["quality"]
    assert quality["status"] == "ok" and quality["roc_auc_drop"] <= 0.05
    assert quality["live_roc_auc"] > 0.7 and quality["recorded_roc_auc"] > 0.7
    assert quality["unlabelled_dropped"] == int(summer_batch["arr_delay"].isna().sum())
    assert quality["rows"] == BATCH_ROWS - quality["unlabelled_dropped"]
    assert "OK" in done.stdout.splitlines()[0]


def test_a_winter_batch_drifts_on_the_weather(winter_run):
    done, report, summary = winter_run
    assert done.returncode == 7, done.stderr
    assert report["status"] == "drift" and report["exit_code"] == 7
    top = [row["feature"] for row in report["features"][:3]]
    assert set(top) == {"month", "temp", "dewp"}, top  # never-seen months and the cold
    for steady in ("carrier", "origin", "distance", "dep_minutes"):
        row = next(row for row in report["features"] if row["feature"] == steady)
        assert row["status"] == "ok", row
    assert "ml-project: drift detected:" in done.stderr and "PSI of temp" in done.stderr
    assert "Traceback" not in done.stderr
    assert "| temp | numeric |" in summary.read_text()


@pytest.mark.parametrize(
    "name, shift, feature",
    [
        (
            "distance-x2",
            lambda f: f.assign(distance=(f["distance"] * 2).clip(upper=4983)),
            "distance",
        ),
        ("no-united", lambda f: f.assign(carrier=f["carrier"].replace("UA", "DL")), "carrier"),
    ],
)
def test_an_injected_shift_names_the_feature(
    summer, summer_batch, project_copy, name, shift, feature
):
    done, report = monitor(summer, project_copy, write_batch(summer, name, shift(summer_batch)))
    assert done.returncode == 7, done.stderr
    assert drifting(report) == [feature]
    assert report["features"][0]["feature"] == feature
    assert f"PSI of {feature}" in report["reasons"][0]


def test_shuffled_outcomes_are_a_quality_drop(summer, summer_batch, project_copy):
    shuffled = summer_batch.assign(
        arr_delay=np.random.default_rng(3).permutation(summer_batch["arr_delay"].to_numpy())
    )
    path = write_batch(summer, "shuffled", shuffled)
    done, report = monitor(summer, project_copy, path, "--labels")
    assert done.returncode == 7, done.stderr
    assert drifting(report) == [] and report["prediction"]["status"] != "drift"
    assert report["quality"]["status"] == "drift" and report["quality"]["live_roc_auc"] < 0.6
    assert report["reasons"] == [reason for reason in report["reasons"] if "ROC AUC" in reason]


def test_the_monitoring_run_is_linked_to_the_model_version(summer, winter_run):
    _, report, _ = winter_run
    client = MlflowClient(tracking_uri=summer["uri"])
    run = client.get_run(report["run_id"])
    experiment = client.get_experiment(run.info.experiment_id)
    assert experiment.name == "flights_delay_dev_monitoring"
    version = summer["result"]["model_version"]
    tags = run.data.tags
    assert tags["model.name"] == "flights_delay_dev" and tags["model.version"] == version
    assert tags["model.run_id"] == summer["result"]["run_id"]
    assert tags["model.uri"] == "models:/flights_delay_dev@champion"
    assert tags["monitor.status"] == "drift"
    registered = client.get_model_version("flights_delay_dev", version)
    assert [f"models:/{model.model_id}" for model in run.inputs.model_inputs] == [registered.source]
    (latest,) = client.search_runs(
        [experiment.experiment_id], order_by=["attributes.start_time DESC"], max_results=1
    )
    assert registered.tags["monitor.last_run_id"] == latest.info.run_id
    assert registered.tags["monitor.last_status"] == latest.data.tags["monitor.status"]
    metrics = run.data.metrics
    temp = next(row for row in report["features"] if row["feature"] == "temp")
    assert metrics["psi_temp"] == pytest.approx(temp["psi"])
    assert {f"psi_{row['feature']}" for row in report["features"]} <= set(metrics)
    assert metrics["psi_prediction"] == pytest.approx(report["prediction"]["psi"])
    artifacts = {item.path for item in client.list_artifacts(run.info.run_id, "monitoring")}
    assert artifacts == {
        "monitoring/drift_table.csv",
        "monitoring/drift_table.json",
        "monitoring/report.json",
        "monitoring/worst_features.png",
    }


@pytest.mark.parametrize(
    "corrupt, args, message",
    [
        (lambda f: f.drop(columns=["dest"]), (), "missing column(s) dest"),
        (
            lambda f: f.assign(temp=f["temp"].astype(str).where(f.index != 9, "warm")),
            (),
            "Data validation failed",
        ),
        (lambda f: f.drop(columns=["arr_delay"]), ("--labels",), "missing column(s) arr_delay"),
        (lambda f: f.head(100), (), "monitor.min_rows=500"),
    ],
)
def test_a_bad_batch_is_refused_and_logs_nothing(
    summer, summer_batch, project_copy, corrupt, args, message
):
    client = MlflowClient(tracking_uri=summer["uri"])

    def monitoring_runs():
        experiment = client.get_experiment_by_name("flights_delay_dev_monitoring")
        if experiment is None:
            return 0
        return len(client.search_runs([experiment.experiment_id]))

    before = monitoring_runs()
    path = write_batch(summer, "bad", corrupt(summer_batch))
    done = run_cli(
        "monitor", "--env", "dev", "--input", str(path), *args,
        cwd=project_copy, tracking_uri=summer["uri"],
    )  # fmt: skip
    assert done.returncode == 3, done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr
    assert monitoring_runs() == before


def test_no_champion_is_a_registry_error(project_copy, tmp_path, summer):
    done = run_cli(
        "monitor", "--env", "dev", "--input", str(summer["folder"] / "winter.parquet"),
        cwd=project_copy, tracking_uri=f"sqlite:///{tmp_path / 'empty.db'}",
    )  # fmt: skip
    assert done.returncode == 8, done.stderr


def test_a_model_trained_without_a_profile_is_a_registry_error(tmp_path):
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'old.db'}")
    experiment = client.create_experiment("old", artifact_location=(tmp_path / "art").as_uri())
    run = client.create_run(experiment)
    with pytest.raises(RegistryError, match="has no readable monitoring/reference_profile.json"):
        load_reference_profile(client, run.info.run_id, model_uri="models:/old/1")
