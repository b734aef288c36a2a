"""Batch scoring through the real CLI, for each task kind: the champion's prediction exactly,
a classifier's class probabilities, and the model version on every row."""

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from ml_project.errors import RegistryError
from ml_project.loading import resolve_model_uri
from ml_project.predict import model_task_of
from ml_project.vocabulary import TASK as TASK_TAG
from tests.conftest import last_json, run_cli
from tests.integration.conftest import BATCH_ROWS, in_process_predictions
from tests.synthetic import KINDS

pytestmark = pytest.mark.integration


def predict(store: dict, project, *args: str):
    return run_cli(
        "predict", "--env", "dev", "--problem", store["problem"], *args,
        cwd=project, tracking_uri=store["uri"],
    )  # fmt: skip


@pytest.mark.parametrize(
    "kind, suffix", [*((kind, ".parquet") for kind in KINDS), ("binary", ".csv")]
)
def test_batch_scoring_matches_in_process_predictions(
    scoring_batches, synthetic_project, kind, suffix
):
    store = scoring_batches[kind]
    output = store["folder"] / f"scored{suffix}"
    done = predict(
        store, synthetic_project, "--input", str(store["batch"]), "--output", str(output),
        "--chunk-rows", "700", "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = last_json(done.stdout)
    assert summary["rows"] == BATCH_ROWS and summary["model_uri"] == store["model_uri"]
    assert summary["rows_per_second"] > 0
    assert summary["key_columns"] == ["id"] and summary["duplicate_key_rows"] == 0
    scored = pd.read_parquet(output) if suffix == ".parquet" else pd.read_csv(output)
    expected = in_process_predictions(
        store["uri"], store["model_uri"], store["batch"], synthetic_project
    )
    assert expected["task"] == kind
    assert scored["prediction"].tolist() == expected["prediction"]
    batch = pd.read_parquet(store["batch"])
    added = [column for column in scored.columns if column not in batch.columns]
    if kind == "regression":
        assert added == ["prediction", "model_name", "model_version", "model_run_id"]
    else:
        classes = expected["classes"]
        columns = [f"probability_{value}" for value in classes]
        binary = ["probability"] if kind == "binary" else []
        assert added == ["prediction", *binary, *columns, "model_name", "model_version",
                         "model_run_id"]  # fmt: skip
        probabilities = scored[columns].to_numpy()
        assert probabilities.tolist() == expected["probabilities"]
        assert np.allclose(probabilities.sum(axis=1), 1.0)
        if kind == "binary":
            assert classes == ["no", "yes"]
            assert scored["probability"].tolist() == scored["probability_yes"].tolist()
        else:
            assert classes == ["a", "b", "c"]
        assert set(scored["prediction"]) == set(classes)  # every class is predicted somewhere
    assert list(scored.columns[: batch.shape[1]]) == list(batch.columns)  # input columns first
    assert scored["id"].tolist() == batch["id"].tolist()  # the input's rows, in order
    assert set(scored["model_name"]) == {store["model_name"]}
    assert set(scored["model_version"].astype(str)) == {store["result"]["model_version"]}
    assert set(scored["model_run_id"]) == {store["result"]["run_id"]}


def test_an_explicit_model_uri_is_used(scoring_batches, synthetic_project):
    store = scoring_batches["binary"]
    output = store["folder"] / "by-version.parquet"
    done = predict(
        store, synthetic_project, "--input", str(store["batch"]), "--output", str(output),
        "--model-uri", f"models:/{store['model_name']}/1",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert set(pd.read_parquet(output)["model_version"]) == {"1"}


@pytest.mark.parametrize("kind", ["multiclass", "regression"])
def test_a_run_uri_scores_with_the_task_of_its_run(scoring_batches, synthetic_project, kind):
    store = scoring_batches[kind]
    output = store["folder"] / "by-run.parquet"
    run_uri = f"runs:/{store['result']['run_id']}/model"
    done = predict(
        store, synthetic_project, "--input", str(store["batch"]), "--output", str(output),
        "--model-uri", run_uri, "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    scored = pd.read_parquet(output)
    expected = in_process_predictions(
        store["uri"], store["model_uri"], store["batch"], synthetic_project
    )  # the champion is this run's model
    assert scored["prediction"].tolist() == expected["prediction"]
    probabilities = [column for column in scored.columns if column.startswith("probability")]
    assert probabilities == ([] if kind == "regression" else ["probability_a", "probability_b",
                                                               "probability_c"])  # fmt: skip
    assert set(scored["model_version"]) == {""} and last_json(done.stdout)["model_uri"] == run_uri


@pytest.mark.parametrize(
    "corrupt, message",
    [
        (lambda f: f.drop(columns=["colour"]), "missing column(s) colour"),
        (lambda f: f.assign(x1=f["x1"].astype(str).where(f.index != 1200, "far")), "x1"),
    ],
)
def test_bad_input_fails_cleanly_with_no_output(
    scoring_batches, synthetic_project, tmp_path, corrupt, message
):
    store = scoring_batches["binary"]
    bad = tmp_path / "bad.csv"
    corrupt(pd.read_parquet(store["batch"])).to_csv(bad, index=False)
    output = tmp_path / "out" / "scored.parquet"
    output.parent.mkdir()
    done = predict(
        store, synthetic_project, "--input", str(bad), "--output", str(output),
        "--chunk-rows", "1000",
    )  # fmt: skip
    assert done.returncode == 3, done.stderr
    assert message in done.stderr and str(bad) in done.stderr
    assert "Traceback" not in done.stderr
    assert list(output.parent.iterdir()) == []  # no output, no partial file


def repeated_keys(store: dict, folder: Path) -> tuple[Path, pd.DataFrame]:
    """The batch as CSV with 30 of its rows again at the end (700-row chunks: a key's first row
    and its repeat are read in different chunks), and the rows repeated."""
    batch = pd.read_parquet(store["batch"])
    again = batch.iloc[100:130]
    path = folder / "repeated.csv"
    pd.concat([batch, again]).to_csv(path, index=False)
    return path, again


def test_a_batch_repeating_keys_is_refused_with_no_output(
    scoring_batches, synthetic_project, tmp_path
):
    store = scoring_batches["binary"]
    path, again = repeated_keys(store, tmp_path)
    output = tmp_path / "out" / "scored.parquet"
    output.parent.mkdir()
    done = predict(
        store, synthetic_project, "--input", str(path), "--output", str(output),
        "--chunk-rows", "700",
    )  # fmt: skip
    assert done.returncode == 3, done.stderr
    assert f"{path}: 30 row(s) repeat the key of an earlier row (key columns id" in done.stderr
    assert f"e.g. id={again['id'].iloc[0]})" in done.stderr
    assert "--allow-duplicate-keys" in done.stderr and "Traceback" not in done.stderr
    assert list(output.parent.iterdir()) == []  # no output, no partial file


def test_repeated_keys_are_scored_when_allowed_and_counted(
    scoring_batches, synthetic_project, tmp_path
):
    store = scoring_batches["binary"]
    path, again = repeated_keys(store, tmp_path)
    output = tmp_path / "scored.parquet"
    done = predict(
        store, synthetic_project, "--input", str(path), "--output", str(output),
        "--chunk-rows", "700", "--allow-duplicate-keys", "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = last_json(done.stdout)
    assert summary["rows"] == BATCH_ROWS + 30 and summary["duplicate_key_rows"] == 30
    assert "30 rows repeat the key of an earlier row (id), scored all the same" in done.stdout
    scored = pd.read_parquet(output)
    assert len(scored) == BATCH_ROWS + 30
    first = scored.iloc[100:130].reset_index(drop=True)
    assert first["prediction"].tolist() == scored.iloc[-30:]["prediction"].tolist()


def test_a_batch_without_the_key_columns_is_not_checked_for_repeats(
    scoring_batches, synthetic_project, tmp_path
):
    store = scoring_batches["regression"]
    batch = pd.read_parquet(store["batch"]).drop(columns=["id"])
    path = tmp_path / "no-key.parquet"
    pd.concat([batch, batch.head(10)]).to_parquet(path, index=False)
    done = predict(
        store, synthetic_project, "--input", str(path), "--output", str(tmp_path / "s.parquet"),
        "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = last_json(done.stdout)
    assert summary["key_columns"] == [] and summary["duplicate_key_rows"] is None


def test_no_champion_is_a_registry_error(synthetic_project, tracking_uri, tmp_path):
    from mlflow import MlflowClient

    args = ("predict", "--env", "staging", "--problem", "synthetic_binary",
            "--input", str(tmp_path / "x.csv"), "--output", str(tmp_path / "y.csv"))  # fmt: skip
    # scoring only reads the store: one that does not exist is not created, and says so
    done = run_cli(*args, cwd=synthetic_project, tracking_uri=tracking_uri)
    assert done.returncode == 9, done.stderr
    assert "does not exist: nothing was trained with it yet" in done.stderr
    assert not Path(tracking_uri.removeprefix("sqlite:///")).exists()
    MlflowClient(tracking_uri).search_experiments()  # an empty store
    done = run_cli(*args, cwd=synthetic_project, tracking_uri=tracking_uri)
    assert done.returncode == 8, done.stderr
    assert "models:/synthetic_binary_staging@champion" in done.stderr


class FakeRegistry:
    """A client whose version and run carry `version_tags` and `run_tags`."""

    def __init__(self, version_tags: dict, run_tags: dict):
        self.version = SimpleNamespace(name="m", version=3, run_id="r1", tags=version_tags)
        self.run = SimpleNamespace(data=SimpleNamespace(tags=run_tags))

    def get_model_version_by_alias(self, name, alias):
        return self.version

    def get_run(self, run_id):
        return self.run


@pytest.mark.parametrize(
    "uri, version_tags, run_tags, fallback, task",
    [
        ("models:/m@champion", {TASK_TAG: "multiclass"}, {TASK_TAG: "binary"}, None, "multiclass"),
        ("models:/m@champion", {}, {TASK_TAG: "regression"}, None, "regression"),
        ("runs:/r1/model", {}, {TASK_TAG: "binary"}, "regression", "binary"),
        ("runs:/r1/model", {}, {}, "regression", "regression"),  # settings.task, for a run only
    ],
)
def test_the_task_comes_from_the_version_then_its_run(uri, version_tags, run_tags, fallback, task):
    client = FakeRegistry(version_tags, run_tags)
    target = resolve_model_uri(client, uri, model_name="m")
    assert model_task_of(target, client, fallback=fallback) == task


def registry_task(uri, client, *, fallback):
    return model_task_of(resolve_model_uri(client, uri, model_name="m"), client, fallback=fallback)


def test_a_version_without_a_task_is_refused_with_the_reason():
    with pytest.raises(RegistryError, match="neither the version nor its training run has a"):
        registry_task("models:/m@champion", FakeRegistry({}, {}), fallback="binary")
    with pytest.raises(RegistryError, match="tagged ml_project.task='ranking'"):
        registry_task("models:/m@champion", FakeRegistry({TASK_TAG: "ranking"}, {}), fallback=None)
