"""The flights demo's champion scored, served and watched through the real CLI: what only the
demo has (its own feature step and fixed threshold inside the model, its label made from
`arr_delay` by problems/flights/problem.py, its months and weather).

The platform's scoring, serving and monitoring tests run on synthetic problems
(tests/integration); one dev training of the demo is shared with test_flights_cli.py (conftest.py).
"""

import json
import re

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from tests.conftest import ROOT, last_json, run_cli
from tests.integration.test_serving import post, serving

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PROBLEM = ("--problem", "flights")  # explicit: a fork changes the default problem
MODEL = "flights_delay_dev"
BATCH_ROWS = 3000


@pytest.fixture(scope="module")
def champion(flights_dev, project_copy, tmp_path_factory):
    """The shared dev model of the demo (conftest.py) as champion, and two raw batches: a
    sample of the year's flights and a sample of December's (weather joined, arr_delay
    included)."""
    folder = tmp_path_factory.mktemp("flights-scoring")
    uri, result = flights_dev["uri"], flights_dev["result"]
    client = MlflowClient(tracking_uri=uri)
    if "champion" not in client.get_registered_model(MODEL).aliases:
        client.set_registered_model_alias(MODEL, "champion", result["model_version"])
    every = folder / "records.parquet"
    done = run_cli(
        "extract-batch", "--env", "dev", *PROBLEM, "--output", str(every),
        cwd=project_copy, tracking_uri=uri,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    records = pd.read_parquet(every)
    batches = {}
    for name, rows in (("year", records), ("december", records.query("month == 12"))):
        batches[name] = folder / f"{name}.parquet"
        rows.sample(BATCH_ROWS, random_state=7).to_parquet(batches[name], index=False)
    return {"uri": uri, "folder": folder, "result": result, **batches}


@pytest.fixture(scope="module")
def scored(champion, project_copy) -> pd.DataFrame:
    output = champion["folder"] / "scored.parquet"
    done = run_cli(
        "predict", "--env", "dev", *PROBLEM, "--input", str(champion["year"]),
        "--output", str(output), "--chunk-rows", "700",
        cwd=project_copy, tracking_uri=champion["uri"],
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return pd.read_parquet(output)


def monitor(champion, project, batch, *args):
    done = run_cli(
        "monitor", "--env", "dev", *PROBLEM, "--input", str(batch), "--json", *args,
        cwd=project, tracking_uri=champion["uri"],
    )  # fmt: skip
    return done, (last_json(done.stdout) if done.stdout.strip() else None)


def test_predict_gives_p_late_and_the_models_own_threshold(scored, champion):
    added = list(scored.columns[-7:])
    assert added == ["prediction", "probability", "probability_0", "probability_1",
                     "model_name", "model_version", "model_run_id"]  # fmt: skip
    assert scored["probability"].tolist() == scored["probability_1"].tolist()  # P(late)
    assert np.allclose(scored["probability_0"] + scored["probability_1"], 1.0)
    # The demo's FixedThresholdClassifier (params.threshold 0.5) decides, inside the model.
    late = (scored["probability"] >= 0.5).astype("int64")
    assert scored["prediction"].tolist() == late.tolist()
    assert 0 < scored["prediction"].sum() < len(scored)
    assert set(scored["model_version"]) == {champion["result"]["model_version"]}


def test_the_champion_is_served_with_the_problems_own_code(
    champion, scored, project_copy, tmp_path_factory
):
    """The served model's feature step (problems.flights) and allow-list come from the
    project it is served from."""
    rows = pd.read_parquet(champion["year"]).head(200)
    # the raw record as joined for training, outcome columns included: the model ignores them
    body = {"dataframe_split": json.loads(rows.to_json(orient="split", index=False))}
    log = tmp_path_factory.mktemp("flights-serve") / "server.log"
    refused = {}
    with serving(champion["uri"], f"models:/{MODEL}@champion", log, project=project_copy) as url:
        status, reply = post(url, json.dumps(body).encode())
        for column, value in BROKEN_ROWS.items():  # issue 16's rows: batch predict refuses them
            bad = rows.head(3).astype({column: object})
            bad.loc[bad.index[1], column] = value
            one = {"dataframe_split": json.loads(bad.to_json(orient="split", index=False))}
            refused[column] = post(url, json.dumps(one).encode())
    assert status == 200, reply
    assert reply["predictions"] == scored["prediction"].head(200).tolist()
    for column, (status, reply) in refused.items():
        assert status == 400, (column, reply)
        assert f"column '{column}' must" in reply["message"], reply
        assert "Traceback" not in reply["message"]
    assert "Traceback" not in log.read_text()


BROKEN_ROWS = {"month": 13, "distance": -200.0, "carrier": None}
SERVING_DOC = ROOT / "docs" / "serving.md"


def test_the_served_answers_are_the_ones_docs_serving_shows(champion, project_copy, tmp_path):
    """docs/serving.md's hand-written flights request gets the answer the page shows from the
    dev model `make train` builds (this fixture's training); with month 13, the page's message."""
    page = SERVING_DOC.read_text(encoding="utf-8")
    body = json.loads(re.search(r"For the flights example.*?```\n(\{.*?\})\n```", page, re.S)[1])
    shown = json.loads(re.search(r"answered `(\{\"predictions\": .*?\})`", page)[1])
    refusal = re.search(r"`(column 'month' must[^`]*)`", " ".join(page.split())).group(1)
    month = body["dataframe_split"]["columns"].index("month")
    bad = json.loads(json.dumps(body))
    bad["dataframe_split"]["data"][0][month] = 13
    log = tmp_path / "server.log"
    with serving(champion["uri"], f"models:/{MODEL}@champion", log, project=project_copy) as url:
        answered = post(url, json.dumps(body).encode())
        refused = post(url, json.dumps(bad).encode())
    assert answered == (200, shown)
    assert refused[0] == 400 and refusal in refused[1]["message"], refused


def test_live_quality_labels_the_batch_with_the_demos_label(champion, project_copy):
    """--labels: `arr_delay > 15` via problem.label(); flights that never arrived are dropped."""
    done, report = monitor(champion, project_copy, champion["year"], "--labels")
    assert done.returncode == 0, done.stderr
    assert report["status"] in ("ok", "warn") and report["reasons"] == []
    quality = report["quality"]
    assert quality["metric"] == "roc_auc" and quality["status"] == "ok"
    assert quality["live"] > 0.65 and quality["recorded"] > 0.65
    batch = pd.read_parquet(champion["year"])
    assert quality["unlabelled_dropped"] == int(batch["arr_delay"].isna().sum()) > 0
    assert quality["rows"] == BATCH_ROWS - quality["unlabelled_dropped"]


def test_a_december_batch_drifts_on_the_month_and_the_cold(champion, project_copy):
    done, report = monitor(champion, project_copy, champion["december"])
    assert done.returncode == 7, done.stderr
    drifting = {row["feature"] for row in report["features"] if row["status"] == "drift"}
    assert {"month", "temp"} <= drifting, drifting  # one month of twelve, and winter
    for steady in ("carrier", "origin", "distance"):
        row = next(row for row in report["features"] if row["feature"] == steady)
        assert row["status"] != "drift", row
    assert "PSI of month" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("command", ["predict", "monitor"])
def test_a_batch_holding_february_30_is_refused_in_one_paragraph(
    champion, project_copy, command, tmp_path
):
    """The date rule lives in the demo's feature step (inside the model): every command that
    scores refuses the batch with it, exit 3, nothing written or logged."""
    batch = pd.read_parquet(champion["year"]).head(500)
    batch.loc[batch.index[4], ["month", "day"]] = [2, 30]
    path = tmp_path / "batch.parquet"
    batch.to_parquet(path, index=False)
    runs_before = len(MlflowClient(champion["uri"]).search_runs(["0", "1", "2", "3"]))
    extra = ["--output", str(tmp_path / "scored.parquet")] if command == "predict" else []
    done = run_cli(
        command, "--env", "dev", *PROBLEM, "--input", str(path), *extra,
        cwd=project_copy, tracking_uri=champion["uri"],
    )  # fmt: skip
    assert done.returncode == 3, done.stderr
    assert f"ml-project: data error: {path}: The model's input rules refuse" in done.stderr
    assert "no calendar date (e.g. 2013-2-30)" in done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["batch.parquet"]
    assert len(MlflowClient(champion["uri"]).search_runs(["0", "1", "2", "3"])) == runs_before
