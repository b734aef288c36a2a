"""The flights example: a corpus of broken inputs, made from one month of the real data,
through the real CLI.

Each must stop with exit code 3 and a message naming the problem, and leave the registry (its
versions and their aliases) exactly as it was. Most go through `validate-data` (no training,
fast); a few go through `train` to show that a failed validation ends in a FAILED run holding
the full result, and that nothing is registered.
"""

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from ml_project import pipeline
from ml_project.settings import load_settings
from tests.conftest import ROOT, empty_store, last_json, run_cli

pytestmark = pytest.mark.integration
# Every command names the problem, so these tests do not depend on the project's default.
PROBLEM = ("--problem", "flights")


@pytest.fixture(scope="module")
def january():
    """January 2013: 27,004 flights and 2,159 weather rows, valid as they are."""
    settings = load_settings("dev", problem="flights", root=ROOT)
    tables = pipeline.read_tables(pipeline.table_paths(settings, ROOT))
    flights, weather = tables["flights"], tables["weather"]
    return (
        flights[flights["month"] == 1].reset_index(drop=True),
        weather[weather["month"] == 1].reset_index(drop=True),
    )


@pytest.fixture(scope="module")
def good_files(january, tmp_path_factory):
    folder = tmp_path_factory.mktemp("good")
    flights, weather = january
    flights.to_csv(folder / "flights.csv", index=False)
    weather.to_csv(folder / "weather.csv", index=False)
    return folder / "flights.csv", folder / "weather.csv"


def registry_state(uri: str) -> tuple[list, dict]:
    """Every model version (name, version, run, status) and every model's aliases."""
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    versions = sorted(
        (v.name, v.version, v.run_id, v.status) for v in client.search_model_versions()
    )
    aliases = {
        model.name: dict(client.get_registered_model(model.name).aliases)
        for model in client.search_registered_models()
    }
    return versions, aliases


def dev_runs(uri: str) -> list:
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("flights_delay_dev")
    return client.search_runs([experiment.experiment_id]) if experiment else []


@pytest.fixture(scope="module")
def store(project_copy, good_files, tmp_path_factory):
    """A store holding one dev model version trained on the good files, with an alias on it."""
    uri = empty_store(tmp_path_factory.mktemp("broken-store"))
    done = run_cli(
        "train",
        "--env",
        "dev",
        *PROBLEM,
        "--table",
        f"flights={good_files[0]}",
        "--table",
        f"weather={good_files[1]}",
        "--set",
        "params.max_iter=20",
        # the gate has its own tests; this store only needs a version that holds `champion`
        "--set",
        "gate.ceilings.brier=0.25",
        "--json",
        cwd=project_copy,
        tracking_uri=uri,
    )
    assert done.returncode == 0, done.stderr
    result = last_json(done.stdout)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    # stands in for a promoted model: whatever aliases exist must survive bad data untouched
    client.set_registered_model_alias(result["model_name"], "champion", result["model_version"])
    versions, aliases = registry_state(uri)
    assert len(versions) == 1 and aliases == {"flights_delay_dev": {"champion": 1}}
    return uri


def test_the_good_month_passes_validation(project_copy, good_files, store):
    done = run_cli(
        "validate-data",
        "--env",
        "dev",
        *PROBLEM,
        "--table",
        f"flights={good_files[0]}",
        "--table",
        f"weather={good_files[1]}",
        "--json",
        cwd=project_copy,
        tracking_uri=store,
    )
    assert done.returncode == 0, done.stderr
    assert "Data validation passed in env dev." in done.stdout
    tables = last_json(done.stdout)["tables"]
    assert [(t["table"], t["success"], t["failed"]) for t in tables] == [
        ("flights", True, 0),
        ("weather", True, 0),
        ("model_input", True, 0),
    ]
    assert tables[0]["rows"] == 27_004


def csv_bytes(frame: pd.DataFrame, **options) -> bytes:
    return frame.to_csv(index=False, **options).encode()


def truncated_zip(frame: pd.DataFrame, folder: Path) -> bytes:
    archive = folder / "whole.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as handle:
        handle.writestr("flights.csv", frame.to_csv(index=False))
    raw = archive.read_bytes()
    archive.unlink()
    return raw[: len(raw) // 2]


def every(n: int):
    """A row mask: every n-th row."""
    return lambda frame: frame.index % n == 0


def shifted(time_hour: pd.Series, *, hours: int) -> pd.Series:
    """UTC timestamps moved by `hours`, still written with their Z."""
    moved = pd.to_datetime(time_hour, utc=True) + pd.Timedelta(hours=hours)
    return moved.dt.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Broken:
    """One broken input: which table, how it is spoilt, what the message must say."""

    table: str
    spoil: object  # (frame, folder) -> DataFrame or bytes
    messages: tuple[str, ...]
    command: str = "validate-data"
    file_name: str | None = None
    failed_tables: tuple[str, ...] = field(default=())


CASES = {
    "dropped column": Broken(
        "flights",
        lambda f, _: f.drop(columns=["distance"]),
        ("flights (", "missing column(s) distance", "could not run: no column distance"),
    ),
    "renamed column": Broken(
        "weather",
        lambda w, _: w.rename(columns={"temp": "temperature"}),
        ("weather (", "missing column(s) temp"),
    ),
    "label nulls beyond tolerance": Broken(
        "flights",
        lambda f, _: f.assign(arr_delay=f["arr_delay"].mask(every(5)(f))),
        ("column arr_delay: expect_column_values_to_not_be_null(mostly=0.9)",),
        command="train",
        failed_tables=("flights",),
    ),
    "month out of range": Broken(
        "flights",
        lambda f, _: f.assign(month=f["month"].mask(every(100)(f), 13)),
        ("column month: expect_column_values_to_be_between(min_value=1, max_value=12)",
         "271 of 27004 rows (1.00%) failed, e.g. 13\n"),
    ),
    "humidity out of range": Broken(
        "weather",
        lambda w, _: w.assign(humid=w["humid"].mask(every(10)(w), 250.0)),
        ("column humid: expect_column_values_to_be_between", "e.g. 250"),
        command="train",
        failed_tables=("weather",),
    ),
    "unknown carrier": Broken(
        "flights",
        lambda f, _: f.assign(carrier=f["carrier"].mask(every(50)(f), "ZZ")),
        ("column carrier: expect_column_values_to_be_in_set", "e.g. 'ZZ'"),
    ),
    "text in a number column": Broken(
        "flights",
        lambda f, _: f.assign(distance=f["distance"].astype(object).mask(every(9)(f), "far")),
        ("column distance: expect_column_values_to_be_in_type_list",),
    ),
    "duplicated flights": Broken(
        "flights",
        lambda f, _: pd.concat([f, f.head(40)], ignore_index=True),
        ("expect_compound_columns_to_be_unique(column_list=['year', 'month', 'day'",
         "80 of 27044 rows"),
    ),
    "duplicated weather hours": Broken(
        "weather",
        lambda w, _: pd.concat([w, w.head(24)], ignore_index=True),
        ("weather (", "expect_compound_columns_to_be_unique(column_list=['origin', 'time_hour'])"),
    ),
    "too few rows": Broken(
        "flights",
        lambda f, _: f.head(500),
        ("expect_table_row_count_to_be_between(min_value=1000): observed 500",),
    ),
    "weather of another year": Broken(
        "weather",
        lambda w, _: w.assign(year=w["year"] + 1, time_hour=shifted(w["time_hour"], hours=8760)),
        ("model_input (", "column temp: expect_column_values_to_not_be_null(mostly=0.9)"),
        command="train",
        failed_tables=("model_input",),
    ),
    # Semantic rules (issue 16): each of these once passed validation and trained a champion.
    "clock minutes over 59": Broken(
        "flights",
        lambda f, _: f.assign(sched_dep_time=f["sched_dep_time"].mask(f.index == 3, 1275)),
        ("column sched_dep_time: expect_column_values_to_match_regex", "e.g. 1275"),
    ),
    "February 30": Broken(
        "flights",
        lambda f, _: f.assign(month=f["month"].mask(f.index == 5, 2),
                              day=f["day"].mask(f.index == 5, 30)),
        ("flights: 1 of 27004 row(s) have a year/month/day that is no calendar date "
         "(e.g. 2013-2-30)",),
    ),
    "one negative distance": Broken(
        "flights",
        lambda f, _: f.assign(distance=f["distance"].mask(f.index == 7, -200)),
        ("column distance: expect_column_values_to_be_between(min_value=1)", "e.g. -200"),
    ),
    "one humidity above 100%": Broken(
        "weather",
        lambda w, _: w.assign(humid=w["humid"].mask(w.index == 7, 104.0)),
        ("column humid: expect_column_values_to_be_between(min_value=0, max_value=100)",
         "e.g. 104"),
    ),
    "a column the model does not read": Broken(
        "flights",
        lambda f, _: f.assign(hour=f["hour"].mask(f.index == 9, 30)),
        ("column hour: expect_column_values_to_be_between(min_value=0, max_value=23)",
         "e.g. 30"),
    ),
    "weather in local time without a zone": Broken(
        "weather",
        lambda w, _: w.assign(time_hour=(pd.to_datetime(w["time_hour"])
                                         - pd.Timedelta(hours=5)).dt.strftime("%Y-%m-%d %H:%M:%S")),
        ("weather (", "column time_hour: expect_column_values_to_match_strftime_format"),
    ),
    "weather in local time written as UTC": Broken(
        "weather",
        lambda w, _: w.assign(time_hour=shifted(w["time_hour"], hours=-5)),
        ("weather: ", "row(s) have a time_hour that is not their year/month/day/hour in "
         "America/New_York (params.time_zone)",),
    ),
    "one flight's time_hour an hour off": Broken(
        "flights",
        lambda f, _: f.assign(time_hour=f["time_hour"].mask(
            f.index == 3, shifted(f["time_hour"], hours=1))),
        ("flights: 1 of 27004 row(s) have a time_hour that is not their year/month/day/hour",),
    ),
    "empty file": Broken("flights", lambda f, _: b"", ("flights.csv: the file is empty",)),
    "header only": Broken(
        "weather",
        lambda w, _: csv_bytes(w.head(0)),
        ("weather.csv: the file has a header but no rows",),
    ),
    "garbage bytes": Broken(
        "flights",
        lambda f, _: np.random.default_rng(0).bytes(50_000),
        ("flights.csv: the file is not UTF-8 text",),
    ),
    "UTF-16 text": Broken(
        "weather",
        lambda w, _: w.to_csv(index=False).encode("utf-16"),
        ("weather.csv: the file is not UTF-8 text",),
    ),
    "semicolon delimiter": Broken(
        "flights",
        lambda f, _: csv_bytes(f, sep=";"),
        ("flights.csv: the file reads as one column", "separated by semicolons"),
    ),
    "truncated archive": Broken(
        "flights",
        truncated_zip,
        ("flights.csv.zip: the archive is damaged or truncated",),
        command="train",
        file_name="flights.csv.zip",
    ),
}  # fmt: skip


def write_case(case: Broken, january, good_files, folder: Path) -> dict[str, Path]:
    paths = {"flights": good_files[0], "weather": good_files[1]}
    frame = january[0] if case.table == "flights" else january[1]
    spoilt = case.spoil(frame.copy(), folder)
    path = folder / (case.file_name or f"{case.table}.csv")
    if isinstance(spoilt, bytes):
        path.write_bytes(spoilt)
    else:
        spoilt.to_csv(path, index=False)
    paths[case.table] = path
    return paths


@pytest.mark.parametrize("name", list(CASES))
def test_broken_input_stops_with_exit_code_3(
    name, january, good_files, store, project_copy, tmp_path
):
    case = CASES[name]
    paths = write_case(case, january, good_files, tmp_path)
    before, runs_before = registry_state(store), {r.info.run_id for r in dev_runs(store)}
    extra = ("--set", "params.max_iter=20") if case.command == "train" else ()
    done = run_cli(
        case.command,
        "--env",
        "dev",
        *PROBLEM,
        "--table",
        f"flights={paths['flights']}",
        "--table",
        f"weather={paths['weather']}",
        *extra,
        cwd=project_copy,
        tracking_uri=store,
    )
    assert done.returncode == 3, done.stdout + done.stderr
    assert done.stderr.startswith("ml-project: data error: ")
    for message in case.messages:
        assert message in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    assert registry_state(store) == before
    new_runs = [r for r in dev_runs(store) if r.info.run_id not in runs_before]
    if case.failed_tables:  # a failed validation in train: one FAILED run with the full result
        (run,) = new_runs
        assert run.info.status == "FAILED"
        assert run.data.tags["validation.success"] == "false"
        assert run.data.tags["validation.failed_tables"] == ",".join(case.failed_tables)
        assert run.info.run_id in done.stderr and "no model was registered" in done.stderr
        path = MlflowClient(tracking_uri=store).download_artifacts(
            run.info.run_id, "validation/results.json", str(tmp_path)
        )
        document = json.loads(Path(path).read_text())
        assert document["success"] is False
        failed = [t["table"] for t in document["tables"] if not t["success"]]
        assert failed == list(case.failed_tables)
        table = next(t for t in document["tables"] if not t["success"])
        assert table["result"]["success"] is False and table["failures"]
        assert run.data.metrics[f"validation_{failed[0]}_failed"] == len(table["failures"])
    elif case.command == "train":  # a file that cannot be read: the run says why, FAILED
        (run,) = new_runs
        assert run.info.status == "FAILED" and run.data.tags["ml_project.failure"]
    else:  # validate-data records nothing
        assert new_runs == []


def test_a_successful_training_records_its_validation(store):
    (run,) = [r for r in dev_runs(store) if r.info.status == "FINISHED"]
    assert run.data.tags["validation.success"] == "true"
    assert len(run.data.tags["validation.suites_digest"]) == 64
    assert run.data.metrics["validation_model_input_failed"] == 0
    assert run.data.metrics["validation_flights_evaluated"] >= 30
    client = MlflowClient(tracking_uri=store)
    assert "validation/results.json" in {
        item.path for item in client.list_artifacts(run.info.run_id, "validation")
    }
    version = client.get_model_version("flights_delay_dev", "1")
    assert version.tags["run_id"] == run.info.run_id  # the version leads to this record
