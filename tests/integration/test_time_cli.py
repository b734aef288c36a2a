"""A timestamp column through the real CLI: read by the model (ISO text, numbers derived in the
model) and used as split.time_column. Training holds out the newest rows, `predict` scores a
batch of ISO text (and the same instants as native datetimes), the served pyfunc predicts the
same, and `monitor` reports the time column's range without calling it drift."""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from ml_project import data
from tests.conftest import (
    commit_all,
    empty_store,
    java_present,
    last_json,
    make_project_copy,
    require,
    run_cli,
)

pytestmark = pytest.mark.integration

PROBLEM = "timed"
ROWS = 1200
TEST_FRACTION = 0.2
ISO = "%Y-%m-%dT%H:%M:%SZ"


def records(rows: int, *, start: str, seed: int) -> pd.DataFrame:
    """Hourly-ish records (unique times, shuffled rows): the label follows the hour of day and
    x1, so the newest rows are learnable from the past."""
    rng = np.random.default_rng(seed)
    hours = np.sort(rng.choice(np.arange(rows * 3), rows, replace=False))
    when = pd.Timestamp(start, tz="UTC") + pd.to_timedelta(hours * 61, unit="min")
    frame = pd.DataFrame(
        {
            "id": np.arange(rows) * 13 + 5,
            "when": when.strftime(ISO),
            "colour": rng.choice(["red", "blue"], rows),
            "x1": rng.normal(0, 1, rows).round(4),
        }
    )
    daily = np.sin(2 * np.pi * when.hour.to_numpy() / 24) * 4
    frame["target"] = (daily + 2 * frame["x1"] + rng.normal(0, 0.3, rows)).round(4)
    return frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)


MODEL_INPUT_SUITE = """\
table: model_input
expectations:
  - type: expect_table_columns_to_match_ordered_list
    kwargs: {column_list: $model_columns}
  - type: expect_column_values_to_match_regex
    kwargs: {column: when, regex: '^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}'}
  - type: expect_column_values_to_not_match_regex
    kwargs: {column: when, regex: '[+-]\\d{2}:?\\d{2}$'}
  - type: expect_column_values_to_be_in_set
    kwargs: {column: colour, value_set: [red, blue]}
"""

TABLE_SUITE = """\
table: timed
expectations:
  - type: expect_column_values_to_be_unique
    kwargs: {column: id}
  - type: expect_column_values_to_not_be_null
    kwargs: {column: when}
"""


def write_problem(root: Path) -> None:
    folder = root / "problems" / PROBLEM
    (folder / "environments").mkdir(parents=True)
    (folder / "expectations").mkdir()
    (root / "data").mkdir(exist_ok=True)
    records(ROWS, start="2021-01-01", seed=0).to_csv(root / "data" / "timed.csv", index=False)
    (folder / "__init__.py").write_text("")
    (root / "problems" / "__init__.py").touch()
    (folder / "problem.py").write_text('"""One table with a timestamp: the default model."""\n')
    (folder / "environments" / "base.yaml").write_text(
        textwrap.dedent(
            f"""\
            name: {PROBLEM}
            task: regression
            data:
              tables: {{timed: data/timed.csv}}
              key_columns: [id]
              label: target
              sample_fraction: 1.0
            split:
              test_fraction: {TEST_FRACTION}
              time_column: when
            features:
              categorical: [colour]
              numeric: [x1]
              datetime: [when]
            params: {{max_iter: 80, learning_rate: 0.1}}
            monitor:
              max_quality_drop: 0.5
            gate:
              floors: {{r2: 0.5}}
              ceilings: {{}}
              primary_metric: rmse
            """
        )
    )
    (folder / "expectations" / "timed.yaml").write_text(TABLE_SUITE)
    (folder / "expectations" / "model_input.yaml").write_text(MODEL_INPUT_SUITE)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("timed")
    root = make_project_copy(folder / "project")
    write_problem(root)
    commit_all(root, "a problem with a timestamp")
    uri = empty_store(folder)
    done = run_cli(
        "train", "--env", "dev", "--problem", PROBLEM, "--json", cwd=root, tracking_uri=uri
    )
    assert done.returncode == 0, done.stderr + done.stdout
    return {"root": root, "uri": uri, "result": last_json(done.stdout), "out": done.stdout}


def python(script: str, *, root: Path, uri: str) -> dict:
    """Run `script` in a fresh interpreter of the project at `root`; its last line is JSON."""
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=root,
        env={"PYTHONPATH": str(root), "MLFLOW_TRACKING_URI": uri, "PATH": "/usr/bin:/bin",
             "MLFLOW_DISABLE_TELEMETRY": "true"},
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_training_holds_out_the_newest_rows(trained):
    result, root = trained["result"], trained["root"]
    table = pd.read_csv(root / "data" / "timed.csv")
    held = math.ceil(TEST_FRACTION * len(table))
    assert result["rows"]["test"] == held
    newest = pd.to_datetime(table["when"], utc=True).rank(ascending=False) <= held
    expected_keys = table.loc[newest, ["id"]].reset_index(drop=True)
    lineage = result["lineage"]
    assert lineage["split.kind"] == "time" and lineage["split.time_column"] == "when"
    assert lineage["split.cutoff"] == table.loc[newest, "when"].min()
    tags = MlflowClient(tracking_uri=trained["uri"]).get_run(result["run_id"]).data.tags
    assert tags["split.kind"] == "time" and tags["split.cutoff"] == lineage["split.cutoff"]
    assert tags["data.test_keys_digest"] == data.frame_digest(expected_keys)
    assert f"held out the newest by when, from {lineage['split.cutoff']}" in trained["out"]
    sample = python(
        f"""
import io, json, mlflow, pandas as pd
text = mlflow.artifacts.load_text("runs:/{result["run_id"]}/features/sample.csv")
print(json.dumps(list(pd.read_csv(io.StringIO(text)).columns)))
""",
        root=root,
        uri=trained["uri"],
    )
    assert sample[:2] == ["colour", "when_year"] and "when_epoch_days" in sample


def test_predict_scores_iso_text_and_native_datetimes_alike_and_serving_agrees(trained, tmp_path):
    root, uri = trained["root"], trained["uri"]
    batch = records(300, start="2021-06-01", seed=1).drop(columns="target")
    text_batch, native_batch = tmp_path / "batch.csv", tmp_path / "native.parquet"
    batch.to_csv(text_batch, index=False)
    paris = pd.to_datetime(batch["when"], utc=True).dt.tz_convert("Europe/Paris")
    batch.assign(when=paris).to_parquet(native_batch)
    scored = {}
    for path in (text_batch, native_batch):
        output = tmp_path / f"scored-{path.stem}.parquet"
        done = run_cli(
            "predict", "--env", "dev", "--problem", PROBLEM,
            "--input", str(path), "--output", str(output), cwd=root, tracking_uri=uri,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        scored[path.stem] = pd.read_parquet(output)["prediction"].to_numpy()
    assert len(scored["batch"]) == 300 and np.isfinite(scored["batch"]).all()
    assert np.array_equal(scored["batch"], scored["native"])
    served = python(
        f"""
import json, pandas as pd
from pathlib import Path
from ml_project import serving
from ml_project.settings import load_settings
from mlflow import MlflowClient
settings = load_settings("dev", problem={PROBLEM!r}, root=Path("."))
plan = serving.plan(settings, root=Path("."), model_uri=None, client=MlflowClient())
model = serving.load(plan)
rows = pd.read_csv({str(text_batch)!r})[["colour", "x1", "when"]]
print(json.dumps(model.predict(rows).tolist()))
""",
        root=root,
        uri=uri,
    )
    assert np.allclose(served, scored["batch"], rtol=0, atol=1e-12)


@pytest.mark.slow
def test_spark_scoring_reads_native_timestamps_as_the_pandas_path_does(trained, tmp_path):
    require(
        "pyspark and Java 17",
        importlib.util.find_spec("pyspark") is not None and java_present(),
        "make install-spark, and apt-get install openjdk-17-jre-headless",
    )
    batch = records(300, start="2021-06-01", seed=4).drop(columns="target")
    native = tmp_path / "native.parquet"
    paris = pd.to_datetime(batch["when"], utc=True).dt.tz_convert("Europe/Paris")
    batch.assign(when=paris).to_parquet(native)
    outputs = {}
    for engine in ("pandas", "spark"):
        outputs[engine] = tmp_path / f"{engine}.parquet"
        extra = ("--spark-master", "local[2]") if engine == "spark" else ()
        done = run_cli(
            "predict", "--env", "dev", "--problem", PROBLEM, "--engine", engine, *extra,
            "--input", str(native), "--output", str(outputs[engine]), cwd=trained["root"],
            tracking_uri=trained["uri"], env={"TMPDIR": str(tmp_path)},
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
    spark = pd.read_parquet(outputs["spark"]).sort_values("id", ignore_index=True)
    pandas = pd.read_parquet(outputs["pandas"]).sort_values("id", ignore_index=True)
    assert spark["prediction"].tolist() == pandas["prediction"].tolist()


def test_a_batch_with_an_offset_breaks_the_zone_rule(trained, tmp_path):
    batch = records(200, start="2021-06-01", seed=2).drop(columns="target")
    batch.loc[3, "when"] = "2021-06-01T10:00:00+02:00"
    path = tmp_path / "offset.csv"
    batch.to_csv(path, index=False)
    done = run_cli(
        "predict", "--env", "dev", "--problem", PROBLEM, "--input", str(path),
        "--output", str(tmp_path / "out.parquet"), cwd=trained["root"],
        tracking_uri=trained["uri"],
    )  # fmt: skip
    assert done.returncode == 3 and "when" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "out.parquet").exists()


def test_monitor_reports_the_time_range_and_no_drift_for_next_month(trained, tmp_path):
    batch = records(600, start="2022-06-01", seed=3)
    path = tmp_path / "next.csv"
    batch.to_csv(path, index=False)
    done = run_cli(
        "monitor", "--env", "dev", "--problem", PROBLEM, "--input", str(path), "--json",
        cwd=trained["root"], tracking_uri=trained["uri"],
    )  # fmt: skip
    assert done.returncode == 0, done.stderr + done.stdout
    report = last_json(done.stdout)
    (when,) = [row for row in report["features"] if row["feature"] == "when"]
    assert when["kind"] == "time" and when["status"] == "ok" and when["psi"] == 0.0
    first, last = when["reference_range"].split(" .. ")
    assert first.startswith("2021-01-01T") and last < "2022"
    assert when["batch_range"].startswith("2022-06-01T")
    assert "time when: training" in done.stdout


def test_the_champion_is_compared_only_on_newest_rows_it_never_trained_on(trained):
    """A wider time split holds out rows the champion (version 1) trained on: the gate leaves
    exactly those out of the comparison. (Last in the module: it adds a version.)"""
    done = run_cli(
        "train", "--env", "dev", "--problem", PROBLEM, "--set", "split.test_fraction=0.3",
        "--json", cwd=trained["root"], tracking_uri=trained["uri"],
    )  # fmt: skip
    result = last_json(done.stdout)  # passed or refused: compared either way
    assert done.returncode == (0 if result["gate"]["passed"] else 5), done.stderr
    comparison = result["gate"]["comparison"]
    assert result["gate"]["champion_version"] == "1"
    first_test = trained["result"]["rows"]["test"]
    assert result["rows"]["test"] == math.ceil(0.3 * ROWS)
    assert comparison["excluded_rows"] == result["rows"]["test"] - first_test
    assert comparison["rows"] == first_test
