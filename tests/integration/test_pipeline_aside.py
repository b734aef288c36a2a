"""A training's checks beside its work (pipeline.read_check_and_fit, aside.py), through the real
CLI: a refusal that comes in while the fit runs is today's refusal (exit 3, the same paragraph,
a FAILED run holding why, nothing registered) and does not wait for the fit; a refused table wins
over the features' crash; ML_PROJECT_CHECK_ASIDE=0 checks inline and says the same. The fit is
replaced by one that would take minutes (a sitecustomize module), so no test fits a model."""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import pandas as pd
import pytest
from mlflow import MlflowClient

from tests.conftest import empty_store, last_json, run_cli

pytestmark = pytest.mark.integration

BINARY = "synthetic_binary"
SLOW_FIT = """
import time
from ml_project import pipeline

def fit_and_score(*args, **kwargs):  # a fit of minutes: a refusal must not wait for it
    time.sleep(240)
    raise AssertionError("the fit ended: the refusal waited for it")

pipeline.fit_and_score = fit_and_score
"""
BROKEN_FEATURES = """
from ml_project import inputs

def prepare(self):
    raise RuntimeError("the features broke on the bad rows")

inputs.Inputs.prepare = prepare
"""


def train(
    project: Path, uri: str, tmp_path: Path, code: str, *, table: Path, aside: bool, **extra: str
):
    folder = tmp_path / ("inject-aside" if aside else "inject-inline")
    folder.mkdir(exist_ok=True)
    (folder / "sitecustomize.py").write_text(code)
    env = {"PYTHONPATH": f"{folder}:{project}", "ML_PROJECT_CHECK_ASIDE": "1" if aside else "0"}
    env |= extra
    started = time.monotonic()
    done = run_cli(
        "train", "--env", "dev", "--problem", BINARY, "--table", f"{BINARY}={table}",
        cwd=project, tracking_uri=uri, env=env,
    )  # fmt: skip
    return done, time.monotonic() - started


def refused(done, uri: str) -> str:
    """Exit 3, one data-error paragraph naming the FAILED run, which holds the result; nothing
    registered. The paragraph, its run id masked."""
    assert done.returncode == 3, done.stderr[-3000:]
    assert done.stderr.startswith("ml-project: data error: Data validation failed")
    assert "Traceback" not in done.stdout + done.stderr
    client = MlflowClient(uri)
    run = client.search_runs(
        [client.get_experiment_by_name(f"{BINARY}_dev").experiment_id],
        order_by=["attributes.start_time DESC"],
    )[0]
    assert run.info.status == "FAILED" and run.data.tags["validation.success"] == "false"
    assert run.info.run_id in done.stderr and "no model was registered" in done.stderr
    assert client.search_registered_models() == []
    assert "validation/results.json" in {
        a.path for a in client.list_artifacts(run.info.run_id, "validation")
    }
    return re.sub(run.info.run_id, "<run>", done.stderr[done.stderr.index("ml-project: ") :])


@pytest.fixture(scope="module")
def bad_table(synthetic_project, tmp_path_factory) -> Path:
    """The binary problem's table with x1 out of its range on a few rows."""
    table = pd.read_csv(synthetic_project / "data" / f"{BINARY}.csv")
    table.loc[[3, 50, 700], "x1"] = 50.0
    path = tmp_path_factory.mktemp("bad") / f"{BINARY}.csv"
    table.to_csv(path, index=False)
    return path


def test_a_table_refused_beside_the_fit_says_what_inline_says(
    synthetic_project, bad_table, tmp_path
):
    uri_aside, uri_inline = empty_store(tmp_path / "a"), empty_store(tmp_path / "b")
    done, seconds = train(
        synthetic_project, uri_aside, tmp_path, SLOW_FIT, table=bad_table, aside=True
    )
    said = refused(done, uri_aside)
    assert seconds < 200  # not the fit's 240 s
    inline, _ = train(
        synthetic_project, uri_inline, tmp_path, SLOW_FIT, table=bad_table, aside=False
    )
    assert refused(inline, uri_inline) == said
    assert f"{BINARY} (" in said and "expect_column_values_to_be_between" in said
    tags = (
        MlflowClient(uri_aside)
        .search_runs(
            [MlflowClient(uri_aside).get_experiment_by_name(f"{BINARY}_dev").experiment_id]
        )[0]
        .data.tags
    )
    assert tags["validation.failed_tables"] == BINARY


def test_a_refused_model_input_does_not_wait_for_the_fit(synthetic_project, tmp_path):
    """The tables pass; the model input's own suite (stricter here) refuses while the fit runs."""
    project = tmp_path / "project"
    shutil.copytree(synthetic_project, project, symlinks=True)
    suite = project / "problems" / BINARY / "expectations" / "model_input.yaml"
    suite.write_text(
        suite.read_text().replace(
            "{column: x1, min_value: -10, max_value: 10}",
            "{column: x1, min_value: -1, max_value: 1}",
        )
    )
    table = project / "data" / f"{BINARY}.csv"
    uri = empty_store(tmp_path / "store")
    done, seconds = train(project, uri, tmp_path, SLOW_FIT, table=table, aside=True)
    said = refused(done, uri)
    assert seconds < 200
    assert "model_input (" in said and f"{BINARY} (" not in said


def test_a_refused_table_wins_over_the_features_crash(synthetic_project, bad_table, tmp_path):
    uri = empty_store(tmp_path / "store")
    done, _ = train(synthetic_project, uri, tmp_path, BROKEN_FEATURES, table=bad_table, aside=True)
    assert "the features broke" not in refused(done, uri)


def test_checked_inline_tables_a_features_crash_does_not_check_them_again(
    synthetic_project, tmp_path
):
    """Inline, the tables are checked before the features; when the features then fail, the
    crash is what the training says, and the tables' check is not run a second time."""
    uri = empty_store(tmp_path / "store")
    table = synthetic_project / "data" / f"{BINARY}.csv"
    done, _ = train(
        synthetic_project, uri, tmp_path, BROKEN_FEATURES, table=table, aside=False,
        ML_PROJECT_QUIET="",
    )  # fmt: skip
    assert done.returncode != 0 and "the features broke" in done.stderr, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    assert len(re.findall(rf"^validate {BINARY}: ", done.stderr, re.MULTILINE)) == 1, done.stderr


def test_checked_inline_a_training_records_what_it_records_with_its_checks_aside(
    synthetic_models, synthetic_project, tmp_path
):
    """ML_PROJECT_CHECK_ASIDE=0 (or no fork): the same run content and the same model as the
    shared training, whose checks ran in forked children."""
    shared = synthetic_models["binary"]
    uri = empty_store(tmp_path / "store")
    done = run_cli(
        "train", "--env", "dev", "--problem", BINARY, "--json", cwd=synthetic_project,
        tracking_uri=uri, env={"ML_PROJECT_CHECK_ASIDE": "0"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    inline = MlflowClient(uri).get_run(last_json(done.stdout)["run_id"]).data
    aside = MlflowClient(shared["uri"]).get_run(shared["result"]["run_id"]).data
    assert "overlap" not in last_json(done.stdout)["timings"]  # nothing ran at once
    kept = ("features.digest", "predictions.digest", "data.", "validation.")
    for key in [k for k in aside.tags if k.startswith(kept)]:
        assert inline.tags[key] == aside.tags[key], key
    assert inline.params == aside.params
    untimed = {k: v for k, v in aside.metrics.items() if not k.startswith("time_")}
    assert {k: v for k, v in inline.metrics.items() if not k.startswith("time_")} == untimed
