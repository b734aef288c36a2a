"""`ml-project monitor` through the real CLI on the synthetic problems' dev champions.

A new batch drawn as the training records were (same generator, another seed) does not drift,
whatever the task; a shifted feature
is named and exits 7; with --labels the gate's primary metric of the task (ROC AUC, accuracy,
RMSE) is measured on the labelled rows against the training run's, in its bad direction.
"""

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from ml_project import drift
from ml_project.errors import RegistryError
from ml_project.monitor import load_reference_profile
from tests.conftest import empty_store, last_json, run_cli
from tests.synthetic import KINDS, NUMERIC, make_table

pytestmark = pytest.mark.integration

BATCH_ROWS = 2000
PRIMARY = {"binary": ("roc_auc", True), "multiclass": ("accuracy", True),
           "regression": ("rmse", False)}  # fmt: skip
# max_quality_drop (tests/synthetic.py): 0.05 of a score in [0, 1]; for an RMSE (a metric with
# units) 0.5 is a fraction: drift when the live RMSE exceeds 1.5 x the recorded one.


@pytest.fixture(scope="module")
def records() -> dict[str, pd.DataFrame]:
    """Per kind, new records from the distribution its model was trained on (the problem's
    table is `make_table(kind)`, seed 0): what production would send next."""
    return {kind: make_table(kind, 4 * BATCH_ROWS, seed=11) for kind in KINDS}


def write_batch(folder, name: str, frame: pd.DataFrame):
    path = folder / f"{name}.parquet"
    frame.to_parquet(path, index=False)
    return path


def monitor(store: dict, project, path, *args):
    done = run_cli(
        "monitor", "--env", "dev", "--problem", store["problem"], "--input", str(path), "--json",
        *args, cwd=project, tracking_uri=store["uri"],
    )  # fmt: skip
    return done, (last_json(done.stdout) if done.stdout.strip() else None)


def runs_of_batch(trained: dict, path) -> int:
    """The monitoring runs logged for the batch at `path` (other tests log theirs meanwhile)."""
    client = MlflowClient(tracking_uri=trained["uri"])
    experiment = client.get_experiment_by_name(f"{trained['result']['model_name']}_monitoring")
    if experiment is None:
        return 0
    found = client.search_runs(
        [experiment.experiment_id], filter_string=f"tags.`monitor.input` = '{path}'"
    )
    return len(found)


def sample(records, kind: str) -> pd.DataFrame:
    return records[kind].sample(BATCH_ROWS, random_state=7).reset_index(drop=True)


@pytest.fixture(scope="module")
def in_distribution(synthetic_models, synthetic_project, records, tmp_path_factory):
    """Every kind's champion watching a labelled batch from its training distribution."""
    out = {}
    for kind in KINDS:
        path = write_batch(tmp_path_factory.mktemp(kind), "sample", sample(records, kind))
        out[kind] = monitor(synthetic_models[kind], synthetic_project, path, "--labels")
    return out


@pytest.fixture(scope="module")
def shifted_run(synthetic_models, synthetic_project, records, tmp_path_factory):
    """The binary champion watching a batch whose x1 moved by three standard deviations."""
    folder = tmp_path_factory.mktemp("shifted")
    batch = sample(records, "binary").assign(x1=lambda f: f["x1"] + 3)
    summary = folder / "summary.md"
    path = write_batch(folder, "shifted", batch)
    done, report = monitor(
        synthetic_models["binary"], synthetic_project, path, "--summary", str(summary)
    )
    return done, report, summary


def drifting(report) -> list[str]:
    return [row["feature"] for row in report["features"] if row["status"] == "drift"]


@pytest.mark.parametrize("kind", KINDS)
def test_training_logs_the_reference_profile(synthetic_models, tmp_path, kind):
    trained = synthetic_models[kind]
    client = MlflowClient(tracking_uri=trained["uri"])
    path = client.download_artifacts(trained["result"]["run_id"], drift.PROFILE_ARTIFACT, tmp_path)
    profile = pd.read_json(path, typ="series")
    features = profile["features"]
    assert list(features) == ["colour", *NUMERIC]
    assert features["colour"]["kind"] == "categorical"
    assert sorted(features["colour"]["categories"]) == ["blue", "green", "grey", "red"]
    assert features["x1"]["kind"] == "numeric" and len(features["x1"]["edges"]) == 9
    assert features["x3"]["null_rate"] > 0  # the table's gaps
    assert features["colour"]["rows"] == trained["result"]["rows"]["train"]
    assert profile["prediction"]["rows"] == trained["result"]["rows"]["test"]


@pytest.mark.parametrize("kind", KINDS)
def test_a_batch_from_the_training_records_does_not_drift(in_distribution, kind):
    done, report = in_distribution[kind]
    assert done.returncode == 0, done.stderr
    assert report["status"] == "ok" and report["exit_code"] == 0 and report["reasons"] == []
    assert max(row["psi"] for row in report["features"]) < 0.1
    assert report["prediction"]["feature"] == "score" and report["prediction"]["psi"] < 0.1
    quality = report["quality"]
    metric, higher = PRIMARY[kind]
    assert quality["metric"] == metric and quality["higher_is_better"] is higher
    assert quality["max_drop"] == (0.5 if kind == "regression" else 0.05)
    assert quality["status"] == "ok" and quality["drop"] <= quality["max_drop"]
    assert quality["note"] == ""
    assert quality["rows"] == BATCH_ROWS and quality["unlabelled_dropped"] == 0
    expected = (
        quality["recorded"] - quality["live"] if higher else quality["live"] - quality["recorded"]
    )
    assert quality["drop"] == pytest.approx(expected)
    assert set(quality["live_metrics"]) >= {metric}
    assert quality["live_metrics"][metric] == quality["live"]
    assert "OK" in done.stdout.splitlines()[0]
    assert f"live {metric} " in done.stdout and "Traceback" not in done.stderr


def test_a_shifted_feature_drifts_and_is_named(shifted_run):
    done, report, summary = shifted_run
    assert done.returncode == 7, done.stderr
    assert report["status"] == "drift" and report["exit_code"] == 7
    assert drifting(report) == ["x1"] and report["features"][0]["feature"] == "x1"
    assert report["reasons"][0].startswith("PSI of x1 ")
    assert report["quality"] is None  # no --labels
    assert "ml-project: drift detected:" in done.stderr and "PSI of x1" in done.stderr
    assert "Traceback" not in done.stderr
    assert "| x1 | numeric |" in summary.read_text()


def test_a_changed_category_mix_drifts(synthetic_models, synthetic_project, records, tmp_path):
    batch = sample(records, "multiclass")
    batch["colour"] = batch["colour"].replace({"red": "green", "grey": "green"})
    path = write_batch(tmp_path, "no-red", batch)
    done, report = monitor(synthetic_models["multiclass"], synthetic_project, path)
    assert done.returncode == 7, done.stderr
    assert drifting(report)[0] == "colour" and report["reasons"][0].startswith("PSI of colour ")


@pytest.mark.parametrize("kind", ["binary", "regression"])
def test_shuffled_labels_are_a_quality_drop(
    synthetic_models, synthetic_project, records, tmp_path, kind
):
    batch = sample(records, kind)
    batch["target"] = np.random.default_rng(3).permutation(batch["target"].to_numpy())
    path = write_batch(tmp_path, "shuffled", batch)
    done, report = monitor(synthetic_models[kind], synthetic_project, path, "--labels")
    assert done.returncode == 7, done.stderr
    assert drifting(report) == [] and report["prediction"]["status"] != "drift"
    quality = report["quality"]
    metric, _ = PRIMARY[kind]
    assert quality["status"] == "drift" and quality["drop"] > quality["max_drop"]
    assert report["reasons"] == [reason for reason in report["reasons"] if metric in reason]
    assert report["reasons"][0].startswith(f"live {metric} ")
    if kind == "regression":  # lower is better: worse means above
        assert quality["live"] > quality["recorded"] and "above the recorded" in done.stderr


def test_one_class_in_the_labels_is_reported_not_a_crash(
    synthetic_models, synthetic_project, records, tmp_path
):
    """ROC AUC needs both classes: undefined, said so, the rest of the report as usual."""
    yes = records["binary"].query("target == 'yes'").head(BATCH_ROWS)
    with_gaps = yes.assign(target=yes["target"].where(np.arange(len(yes)) % 10 != 0))
    path = write_batch(tmp_path, "one-class", with_gaps)
    done, report = monitor(synthetic_models["binary"], synthetic_project, path, "--labels")
    assert done.returncode == (7 if report["status"] == "drift" else 0), done.stderr
    assert "Traceback" not in done.stderr
    quality = report["quality"]
    assert quality["status"] == "undefined" and quality["live"] is None and quality["drop"] is None
    assert quality["live_metrics"]["roc_auc"] is None
    assert 0 <= quality["live_metrics"]["accuracy"] <= 1
    assert "one class (yes)" in quality["note"]
    assert quality["unlabelled_dropped"] == int(with_gaps["target"].isna().sum())
    assert quality["rows"] == len(yes) - quality["unlabelled_dropped"]
    assert not any("roc_auc" in reason for reason in report["reasons"])
    assert "live roc_auc undefined on" in done.stdout
    assert report["status"] in ("drift", "warn")  # the score may drift: only yes rows


def test_the_monitoring_run_is_linked_to_the_model_version(synthetic_models, shifted_run):
    _, report, _ = shifted_run
    trained = synthetic_models["binary"]
    name = trained["result"]["model_name"]
    client = MlflowClient(tracking_uri=trained["uri"])
    run = client.get_run(report["run_id"])
    experiment = client.get_experiment(run.info.experiment_id)
    assert experiment.name == f"{name}_monitoring"
    version = trained["result"]["model_version"]
    tags = run.data.tags
    assert tags["model.name"] == name and tags["model.version"] == version
    assert tags["model.run_id"] == trained["result"]["run_id"]
    assert tags["model.uri"] == f"models:/{name}@champion"
    assert tags["monitor.status"] == "drift"
    registered = client.get_model_version(name, version)
    assert [f"models:/{model.model_id}" for model in run.inputs.model_inputs] == [registered.source]
    (latest,) = client.search_runs(
        [experiment.experiment_id], order_by=["attributes.start_time DESC"], max_results=1
    )
    assert registered.tags["monitor.last_run_id"] == latest.info.run_id
    assert registered.tags["monitor.last_status"] == latest.data.tags["monitor.status"]
    metrics = run.data.metrics
    x1 = next(row for row in report["features"] if row["feature"] == "x1")
    assert metrics["psi_x1"] == pytest.approx(x1["psi"])
    assert {f"psi_{row['feature']}" for row in report["features"]} <= set(metrics)
    assert metrics["psi_prediction"] == pytest.approx(report["prediction"]["psi"])
    artifacts = {item.path for item in client.list_artifacts(run.info.run_id, "monitoring")}
    assert artifacts == {
        "monitoring/drift_table.csv",
        "monitoring/drift_table.json",
        "monitoring/report.json",
        "monitoring/worst_features.png",
    }


def test_the_labelled_run_logs_the_live_metrics(synthetic_models, in_distribution):
    _, report = in_distribution["regression"]
    client = MlflowClient(tracking_uri=synthetic_models["regression"]["uri"])
    run = client.get_run(report["run_id"])
    assert run.data.tags["monitor.labels"] == "true"
    assert run.data.tags["monitor.quality_metric"] == "rmse"
    metrics = run.data.metrics
    assert metrics["live_rmse"] == pytest.approx(report["quality"]["live"])
    assert {"live_r2", "live_mae", "quality_drop", "rows_labelled"} <= set(metrics)


@pytest.mark.parametrize(
    "corrupt, args, message",
    [
        (lambda f: f.drop(columns=["colour"]), (), "missing column(s) colour"),
        (
            lambda f: f.assign(x4=f["x4"].astype(str).where(f.index != 9, "warm")),
            (),
            "Data validation failed",
        ),
        (lambda f: f.drop(columns=["target"]), ("--labels",), "no label column 'target'"),
        (lambda f: f.assign(target=None), ("--labels",), "none of its 2000 rows has a label"),
        (lambda f: f.head(100), (), "monitor.min_rows=500"),
    ],
)
def test_a_bad_batch_is_refused_and_logs_nothing(
    synthetic_models, synthetic_project, records, tmp_path, corrupt, args, message
):
    trained = synthetic_models["binary"]
    path = write_batch(tmp_path, "bad", corrupt(sample(records, "binary")))
    done, _ = monitor(trained, synthetic_project, path, *args)
    assert done.returncode == 3, done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr
    assert runs_of_batch(trained, path) == 0  # (other tests log runs in this store meanwhile)


def test_no_champion_is_a_registry_error(synthetic_project, records, tmp_path):
    path = write_batch(tmp_path, "batch", sample(records, "binary"))
    done = run_cli(
        "monitor", "--env", "dev", "--problem", "synthetic_binary", "--input", str(path),
        cwd=synthetic_project, tracking_uri=f"sqlite:///{tmp_path / 'empty.db'}",
    )  # fmt: skip
    assert done.returncode == 8, done.stderr


def test_a_model_trained_without_a_profile_is_a_registry_error(tmp_path):
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'old.db'}")
    experiment = client.create_experiment("old", artifact_location=(tmp_path / "art").as_uri())
    run = client.create_run(experiment)
    with pytest.raises(RegistryError, match="has no readable monitoring/reference_profile.json"):
        load_reference_profile(client, run.info.run_id, model_uri="models:/old/1")


# --- new batches: repeated keys, labels of unknown classes, a drifting feature ranked low ------


@pytest.fixture(scope="module")
def repeated(records, tmp_path_factory):
    """A regression batch from the training distribution with 40 of its rows again at the end,
    read in 500-row chunks: a key and its repeat in different chunks."""
    batch = sample(records, "regression")
    path = write_batch(tmp_path_factory.mktemp("repeated"), "repeated", pd.concat(
        [batch, batch.iloc[10:50]]
    ))  # fmt: skip
    return path, batch.iloc[10:50]


def test_repeated_keys_are_reported_and_drift_counts_every_row(
    synthetic_models, synthetic_project, repeated
):
    path, again = repeated
    trained = synthetic_models["regression"]
    done, report = monitor(trained, synthetic_project, path, "--chunk-rows", "500")
    assert done.returncode == 0, done.stderr
    assert report["rows"] == BATCH_ROWS + 40 and report["status"] == "ok"
    example = f"id={again['id'].iloc[0]}"
    assert report["duplicate_keys"] == {"columns": ["id"], "rows": 40, "example": example}
    assert f"40 rows repeat the key of an earlier row (id; e.g. {example})" in done.stdout
    run = MlflowClient(tracking_uri=trained["uri"]).get_run(report["run_id"])
    assert run.data.metrics["rows_duplicate_key"] == 40


def test_repeated_keys_refuse_live_quality_unless_allowed(
    synthetic_models, synthetic_project, repeated
):
    """Their labels would count twice: refused before anything is logged, or counted when
    the user says so."""
    path, _ = repeated
    trained = synthetic_models["regression"]
    before = runs_of_batch(trained, path)
    done, _ = monitor(trained, synthetic_project, path, "--labels", "--chunk-rows", "500")
    assert done.returncode == 3, done.stderr
    assert f"{path}: 40 row(s) repeat the key of an earlier row" in done.stderr
    assert "would count twice" in done.stderr and "Traceback" not in done.stderr
    assert runs_of_batch(trained, path) == before
    done, report = monitor(trained, synthetic_project, path, "--labels", "--allow-duplicate-keys")
    assert done.returncode == 0, done.stderr
    assert report["quality"]["rows"] == BATCH_ROWS + 40
    assert report["duplicate_keys"]["rows"] == 40
    assert runs_of_batch(trained, path) == before + 1  # the count sees this batch's runs


def test_labels_of_a_class_the_model_never_learnt_are_counted_apart(
    synthetic_models, synthetic_project, records, tmp_path
):
    """100 rows labelled "d" (the model knows a, b, c): left out of the live metrics, which
    equal those of the batch without them, and named in the report and the summary."""
    trained = synthetic_models["multiclass"]
    batch = sample(records, "multiclass")
    relabelled = batch.assign(target=batch["target"].where(batch.index % 20 != 3, "d"))
    relabelled.loc[7, "target"] = "e"
    path = write_batch(tmp_path, "new-class", relabelled)
    done, report = monitor(trained, synthetic_project, path, "--labels")
    assert done.returncode == 7, done.stderr  # 5.05% unknown: more than the 5% allowed
    assert "101 of 2000 labelled rows (5.1%) hold classes the model never learnt (d, e)" in (
        done.stderr
    )
    allowed = ("--set", "monitor.max_unknown_classes=0.1")
    done, report = monitor(trained, synthetic_project, path, "--labels", *allowed)
    assert done.returncode == 0, done.stderr
    quality = report["quality"]
    assert quality["unknown_class_rows"] == 101 and quality["unknown_classes"] == ["d", "e"]
    assert quality["rows"] == BATCH_ROWS - 101 and quality["unlabelled_dropped"] == 0
    assert "101 labelled rows hold classes the model never learnt (d, e): left out" in done.stdout
    known = relabelled[relabelled["target"].isin(["a", "b", "c"])]
    _, without = monitor(
        trained, synthetic_project, write_batch(tmp_path, "known", known), "--labels"
    )
    assert without["quality"]["rows"] == quality["rows"]
    assert without["quality"]["live_metrics"] == quality["live_metrics"]
    run = MlflowClient(tracking_uri=trained["uri"]).get_run(report["run_id"])
    assert run.data.metrics["rows_unknown_class"] == 101


WIDE = "synthetic_wide"
NOISE = [f"n{index:02d}" for index in range(1, 12)]  # eleven features with no signal


@pytest.fixture(scope="module")
def wide(tmp_path_factory):
    """A regression problem with 16 features (tests/synthetic.py's and eleven of noise),
    trained once in dev in its own store and project copy."""
    from tests.conftest import commit_all, make_project_copy
    from tests.synthetic import suite, write_problem

    folder = tmp_path_factory.mktemp("wide")
    root = make_project_copy(folder / "project")
    write_problem(root, "regression", name=WIDE)
    table = make_table("regression")
    noise = np.random.default_rng(5).normal(0, 1, (len(table), len(NOISE))).round(4)
    table[NOISE] = noise
    table.to_csv(root / "data" / f"{WIDE}.csv", index=False)
    settings = root / "problems" / WIDE / "environments" / "base.yaml"
    text = settings.read_text().replace(
        "numeric: [x1, x2, x3, x4]", f"numeric: [x1, x2, x3, x4, {', '.join(NOISE)}]"
    )
    settings.write_text(text)
    inputs = {"colour": "text", **{name: "number" for name in (*NUMERIC, *NOISE)}}
    (root / "problems" / WIDE / "expectations" / "model_input.yaml").write_text(
        suite("model_input", inputs, key=False)
    )
    (root / "problems" / WIDE / "expectations" / f"{WIDE}.yaml").write_text(
        suite(WIDE, {"id": "number", **inputs}, key=True)
    )
    commit_all(root, "a wide synthetic problem")
    uri = empty_store(folder)
    done = run_cli("train", "--env", "dev", "--problem", WIDE, "--json", cwd=root, tracking_uri=uri)
    assert done.returncode == 0, done.stderr
    return {"root": root, "store": {"uri": uri, "problem": WIDE}}


def test_a_feature_drifting_below_the_top_ten_by_psi_is_listed(wide, tmp_path):
    """The noise features move a little (PSI under psi_warn, above x3's); x3's null rate jumps
    from 2% to about 30% with its values' spread unchanged: its PSI ranks past the top ten
    the table showed, and it drifts. The summary lists it, with the top ten."""
    batch = make_table("regression", BATCH_ROWS, seed=11)
    rng = np.random.default_rng(12)
    for name in NOISE:
        batch[name] = rng.normal(0.2, 1, len(batch)).round(4)
    batch.loc[rng.random(len(batch)) < 0.3, "x3"] = np.nan
    summary = tmp_path / "summary.md"
    done, report = monitor(
        wide["store"], wide["root"], write_batch(tmp_path, "gaps", batch), "--summary", str(summary)
    )
    assert done.returncode == 7, done.stderr
    ranked = [row["feature"] for row in report["features"]]
    assert ranked.index("x3") >= 10 and drifting(report) == ["x3"]
    assert report["reasons"] == [reason for reason in report["reasons"] if "x3" in reason]
    table = [line.split()[0] for line in done.stdout.splitlines()[2:] if line.startswith("  ")]
    assert table[:10] == ranked[:10] and "x3" in table
    assert "| x3 | numeric |" in summary.read_text()
    assert f"{len(ranked) - 11} more features with a lower PSI" in done.stdout
