"""The real CLI in a subprocess, on synthetic problems of each task kind, against temp stores.

The problems (tests/synthetic.py) are one CSV table with an integer `id` key, written under
problems/ of a clean committed project copy as a user would write them: no platform code is
edited, and nothing here reads a bundled example.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from mlflow import MlflowClient

from ml_project import data, metrics
from tests.conftest import (
    commit_all,
    copy_store,
    empty_store,
    last_json,
    make_project_copy,
    run_cli,
)
from tests.synthetic import KINDS, write_problem

pytestmark = pytest.mark.integration

BINARY = "synthetic_binary"


def synthetic_copy(destination: Path, kind: str = "binary") -> Path:
    """A clean committed project copy holding one synthetic problem (for tests that change it)."""
    root = make_project_copy(destination)
    write_problem(root, kind)
    commit_all(root, f"a synthetic {kind} problem")
    return root


def registry_predictions(store: str, cwd: Path, *, problem: str, env: str, versions) -> dict:
    """In a fresh process: rebuild `env`'s held-out rows from the settings and the data, load
    each version by models:/ URI and return its predictions and its metrics on those rows."""
    script = f"""
import json, mlflow, numpy as np
from ml_project import metrics, pipeline
from ml_project.problem import load_problem
from ml_project.settings import load_settings, project_root
mlflow.set_tracking_uri({store!r})
root = project_root()
settings = load_settings({env!r}, problem={problem!r}, root=root)
problem = load_problem(settings, root)
tables = pipeline.read_tables(pipeline.table_paths(settings, root))
test = pipeline.prepare_data(settings, problem, tables).split.test
rows = pipeline.model_input(settings, test)
labels = test[settings.data.label].to_numpy()
out = {{}}
for version in {list(versions)!r}:
    uri = f"models:/{{settings.model_name}}/{{version}}"
    model = mlflow.sklearn.load_model(uri)
    predictions = metrics.predict(model, rows, settings.task)
    pyfunc = mlflow.pyfunc.load_model(uri).predict(rows.head(50))
    out[version] = {{
        "matrix": predictions.matrix().tobytes().hex(),
        "metrics": metrics.compute(settings.task, labels, predictions),
        "pyfunc": np.asarray(pyfunc["prediction"] if hasattr(pyfunc, "columns") else pyfunc)
        .tolist(),
        "sklearn": np.asarray(model.predict(rows.head(50))).tolist(),
        "classes": [str(c) for c in getattr(model, "classes_", [])],
    }}
print(json.dumps(out))
"""
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(cwd), "MLFLOW_TRACKING_URI": store},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- dev: two identical trainings of the binary problem -------------------------------------


@pytest.fixture(scope="module")
def dev_store(synthetic_models, tmp_path_factory):
    """A copy of the shared store (tests/conftest.py), whose binary dev version 1 is the first
    of the two trainings."""
    return copy_store(synthetic_models["binary"]["uri"], tmp_path_factory.mktemp("dev-store"))


@pytest.fixture(scope="module")
def dev_runs(synthetic_models, synthetic_project, dev_store):
    """Two dev trainings from the same commit, config, seed and data: the shared one, and one
    more into a copy of its store, in a fresh interpreter (its own hash seed and global random
    state, not a fork sharing the first's: tests/preforked.py)."""
    done = run_cli(
        "train", "--env", "dev", "--problem", BINARY, "--json",
        cwd=synthetic_project, tracking_uri=dev_store,
        env={"ML_PROJECT_TEST_FRESH_PROCESSES": "1"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return [synthetic_models["binary"]["result"], last_json(done.stdout)]


def test_train_prints_a_summary_and_registers_a_version(dev_runs):
    first, second = dev_runs
    assert first["model_name"] == "synthetic_binary_dev"
    assert (first["problem"], first["task"]) == (BINARY, "binary")
    assert (first["model_version"], second["model_version"]) == ("1", "2")
    rows = first["rows"]
    assert rows["records"] == rows["labelled"] == rows["used"] == 3000
    assert rows["unlabelled_dropped"] == 0 and rows["train"] + rows["test"] == 3000
    assert set(first["metrics"]) == set(metrics.metrics_of("binary"))
    assert 0.75 < first["metrics"]["roc_auc"] < 0.95
    assert first["baseline_metrics"]["roc_auc"] == 0.5  # a model that ignores the features


def test_run_records_params_metrics_lineage_and_artifacts(dev_runs, dev_store, synthetic_project):
    client = MlflowClient(tracking_uri=dev_store)
    run = client.get_run(dev_runs[0]["run_id"])
    tags, params, logged = run.data.tags, run.data.params, run.data.metrics
    commit = subprocess.run(
        ["git", "-C", str(synthetic_project), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    assert tags["git.commit"] == commit == tags["mlflow.source.git.commit"]
    assert tags["git.dirty"] == "false" and tags["git.branch"] == "main"
    assert tags["seed"] == "42" and params["seed"] == "42"
    assert params["params.max_iter"] == "60"  # from problems/synthetic_binary/environments
    assert (tags["ml_project.problem"], tags["ml_project.task"]) == (BINARY, "binary")
    assert tags["ml_project.rebuild_protocol"] and tags["ml_project.env"] == "dev"
    assert tags["data.tables"] == BINARY
    path = synthetic_project / "data" / f"{BINARY}.csv"
    assert tags[f"data.table.{BINARY}.path"] == str(path)
    assert tags[f"data.table.{BINARY}.sha256"] == data.file_digest(path)
    assert len(tags["data.digest"]) == 64 and len(tags["config.hash"]) == 64
    assert tags["pkg.scikit-learn"] and tags["env.python"]
    assert int(tags["data.rows_records"]) == 3000
    assert int(tags["data.rows_train"]) == dev_runs[0]["rows"]["train"]
    assert logged["test_roc_auc"] == pytest.approx(dev_runs[0]["metrics"]["roc_auc"])
    assert logged["baseline_roc_auc"] == pytest.approx(0.5)
    artifacts = {item.path for item in client.list_artifacts(run.info.run_id, "config")}
    assert "config/settings.yaml" in artifacts
    contexts = {dataset_input.tags[0].value for dataset_input in run.inputs.dataset_inputs}
    assert contexts == {"training", "evaluation"}
    assert client.get_experiment(run.info.experiment_id).name == "synthetic_binary_dev"
    version = client.get_model_version("synthetic_binary_dev", "1")
    for key in ("git.commit", "git.dirty", "data.digest", "config.hash", "seed"):
        assert version.tags[key] == tags[key]
    assert version.tags["run_id"] == run.info.run_id


def test_retrain_is_bitwise_identical_and_loads_from_the_registry(
    dev_runs, dev_store, synthetic_project
):
    """Load both versions by models:/ URI in a fresh process and compare their predictions."""
    out = registry_predictions(
        dev_store, synthetic_project, problem=BINARY, env="dev", versions=("1", "2")
    )
    assert out["1"]["matrix"] == out["2"]["matrix"]
    assert out["1"]["pyfunc"] == out["1"]["sklearn"]
    assert set(out["1"]["sklearn"]) <= {"yes", "no"}
    assert dev_runs[0]["lineage"]["data.digest"] == dev_runs[1]["lineage"]["data.digest"]
    assert dev_runs[0]["metrics"] == dev_runs[1]["metrics"]
    assert out["1"]["metrics"] == pytest.approx(dev_runs[0]["metrics"], abs=1e-12)


# --- dev, each kind: the shared models of tests/conftest.py (read only) ----------------------


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_trains_in_dev_and_its_registered_model_scores_as_logged(
    synthetic_models, synthetic_project, kind
):
    trained = synthetic_models[kind]
    result = trained["result"]
    assert result["model_name"] == f"synthetic_{kind}_dev" and result["task"] == kind
    assert set(result["metrics"]) == set(metrics.metrics_of(kind))
    assert result["gate"]["status"] == "passed"
    out = registry_predictions(
        trained["uri"], synthetic_project, problem=trained["problem"], env="dev",
        versions=(result["model_version"],),
    )[result["model_version"]]  # fmt: skip
    # nan_ok: rmsle is NaN on the synthetic regression, whose labels go below 0
    assert out["metrics"] == pytest.approx(result["metrics"], abs=1e-12, nan_ok=True)
    assert out["pyfunc"] == out["sklearn"]
    if kind == "binary":
        assert out["classes"] == ["no", "yes"]
    elif kind == "multiclass":
        assert out["classes"] == ["a", "b", "c"]
    else:
        assert out["classes"] == [] and all(isinstance(v, float) for v in out["sklearn"])
    run = MlflowClient(tracking_uri=trained["uri"]).get_run(result["run_id"])
    assert run.data.tags["ml_project.task"] == kind
    for name, value in result["metrics"].items():
        assert run.data.metrics[f"test_{name}"] == pytest.approx(value, nan_ok=True)
        assert f"baseline_{name}" in run.data.metrics


# --- staging, each kind: the seeded subset of a clean committed tree -------------------------


@pytest.fixture(scope="module")
def staging_runs(synthetic_project, tmp_path_factory):
    uri = empty_store(tmp_path_factory.mktemp("staging-store"))
    out = {}
    for kind in KINDS:
        quiet = ["--quiet"] if kind == "regression" else []  # no progress lines
        done = run_cli(
            *quiet, "train", "--env", "staging", "--problem", f"synthetic_{kind}", "--json",
            cwd=synthetic_project, tracking_uri=uri, env={"ML_PROJECT_QUIET": ""},
        )  # fmt: skip
        out[kind] = (done, last_json(done.stdout) if done.returncode == 0 else None)
    return uri, out


def test_a_training_prints_each_stage_as_it_ends_unless_quiet(staging_runs):
    """One line a stage on stderr (name, seconds, rows), as the training goes; --quiet: none."""
    _, runs = staging_runs
    done, result = runs["binary"]
    stages = re.findall(
        r"^(\w+): [\d.]+ s(?:, ([\d,]+) rows)?(?:, \D.*)?$", done.stderr, re.MULTILINE
    )
    assert [name for name, _ in stages][:3] == ["imports", "store", "reading"], done.stderr
    assert ("fit", f"{result['rows']['train']:,}") in stages
    assert {name for name, _ in stages} == set(result["timings"])
    quiet, _ = runs["regression"]
    assert quiet.returncode == 0 and not re.search(r"^fit: ", quiet.stderr, re.MULTILINE)


def test_the_run_covers_the_whole_training(staging_runs):
    """Its MLflow run starts before the data is read: the duration the UI shows holds every
    stage from reading to the gate, not only what came after the fit."""
    uri, runs = staging_runs
    _, result = runs["binary"]
    run = MlflowClient(tracking_uri=uri).get_run(result["run_id"])
    seconds = (run.info.end_time - run.info.start_time) / 1000
    timed = {k: v for k, v in result["timings"].items() if k not in ("imports", "store")}
    assert {"reading", "validation", "fit", "evaluation", "gate"} <= set(timed)
    assert seconds >= sum(timed.values()) * 0.99, (seconds, timed)


@pytest.mark.parametrize("kind", KINDS)
def test_staging_from_a_clean_tree_uses_the_subset_and_an_even_split_of_integer_keys(
    staging_runs, kind
):
    uri, runs = staging_runs
    done, result = runs[kind]
    assert done.returncode == 0, done.stderr
    name = f"synthetic_{kind}_staging"
    assert result["model_name"] == name and f"Trained {name} version 1" in done.stdout
    rows = result["rows"]
    # staging.yaml samples half the rows; the split holds out about 20% of those. The key is
    # an integer id: the sample and the split are independent draws (issue 14's bug put every
    # sampled row in test).
    assert abs(rows["used"] / rows["labelled"] - 0.5) < 0.04
    assert abs(rows["test"] / rows["used"] - 0.2) < 0.04
    assert rows["train"] + rows["test"] == rows["used"]
    assert result["lineage"]["git.dirty"] == "false"
    assert result["gate"]["status"] == "passed" and result["gate"]["champion_after"] == "1"
    assert MlflowClient(tracking_uri=uri).get_registered_model(name).aliases == {"champion": 1}


@pytest.mark.parametrize(
    "kind, pairs",
    [
        ("binary", {"roc_auc": "roc_auc", "pr_auc": "precision_recall_auc",
                    "log_loss": "log_loss", "accuracy": "accuracy_score"}),
        ("multiclass", {"accuracy": "accuracy_score", "log_loss": "log_loss"}),
        ("regression", {"r2": "r2_score", "rmse": "root_mean_squared_error",
                        "mae": "mean_absolute_error"}),
    ],
)  # fmt: skip
def test_mlflow_evaluates_each_kind_on_the_same_held_out_rows(staging_runs, kind, pairs):
    """MLflow's evaluator for the task (classifier / regressor) agrees with our metrics."""
    uri, runs = staging_runs
    done, result = runs[kind]
    assert done.returncode == 0, done.stderr
    logged = MlflowClient(tracking_uri=uri).get_run(result["run_id"]).data.metrics
    assert logged["eval_example_count"] == result["rows"]["test"]
    for ours, theirs in pairs.items():
        assert logged[f"eval_{theirs}"] == pytest.approx(logged[f"test_{ours}"], abs=1e-9)
    # scikit-learn's own `score`, from the held-out predictions (not a fourth pass over them)
    default = "r2" if kind == "regression" else "accuracy"
    assert logged["eval_score"] == pytest.approx(logged[f"test_{default}"], abs=1e-12)


# --- the work tree ---------------------------------------------------------------------------


@pytest.fixture
def dirty_copy(tmp_path):
    repo = synthetic_copy(tmp_path / "dirty")
    (repo / "ml_project" / "scratch.py").write_text("# work in progress\n")
    return repo


@pytest.mark.parametrize("env", ["staging", "prod"])
def test_staging_and_prod_refuse_a_dirty_tree(dirty_copy, store_uri, env):
    done = run_cli(
        "train", "--env", env, "--problem", BINARY, cwd=dirty_copy, tracking_uri=store_uri
    )
    assert done.returncode == 4
    assert "uncommitted changes" in done.stderr and "--allow-dirty" in done.stderr
    assert "(ml_project/scratch.py)" in done.stderr  # what is uncommitted
    assert "Traceback" not in done.stderr
    assert MlflowClient(tracking_uri=store_uri).search_registered_models() == []


def test_allow_dirty_is_recorded(dirty_copy, store_uri):
    done = run_cli(
        "train", "--env", "staging", "--problem", BINARY, "--allow-dirty",
        "--set", "params.max_iter=20", "--json", cwd=dirty_copy, tracking_uri=store_uri,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    run = MlflowClient(tracking_uri=store_uri).get_run(last_json(done.stdout)["run_id"])
    assert run.data.tags["git.dirty"] == "true"
    assert run.data.tags["ml_project.allow_dirty"] == "true"
    assert run.data.params["params.max_iter"] == "20"


# --- prod: every labelled row, and a gate that refuses to decide on too few -----------------


@pytest.fixture(scope="module")
def prod_run(synthetic_project, tmp_path_factory):
    """Prod on the 3000-row problem, with a minimum of held-out rows it cannot reach."""
    uri = empty_store(tmp_path_factory.mktemp("prod-store"))
    done = run_cli(
        "train", "--env", "prod", "--problem", BINARY, "--set", "params.max_iter=30",
        "--set", "gate.min_test_rows=5000", "--json", cwd=synthetic_project, tracking_uri=uri,
    )  # fmt: skip
    return uri, done


def test_prod_trains_on_every_labelled_row(prod_run):
    _, done = prod_run
    rows = last_json(done.stdout)["rows"]
    assert rows["used"] == rows["labelled"] == 3000
    assert rows["train"] + rows["test"] == rows["used"]


def test_too_few_held_out_rows_fail_the_gate_with_that_reason(prod_run):
    uri, done = prod_run
    assert done.returncode == 5, done.stderr
    result = last_json(done.stdout)
    gate = result["gate"]
    failed = [c for c in gate["checks"] if not c["passed"]]
    assert [c["name"] for c in failed] == ["rows"]
    reason = f"only {result['rows']['test']} held-out rows, fewer than gate.min_test_rows 5000"
    assert reason in failed[0]["message"]
    version = MlflowClient(tracking_uri=uri).get_model_version("synthetic_binary_prod", "1")
    assert version.tags["validation_status"] == "failed" and version.aliases == []
    assert "gate.min_test_rows 5000" in version.tags["validation_reasons"]


# --- refusals before any fit -----------------------------------------------------------------


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["--env", "qa"], 2, "'qa' is not one of"),
        (["--env", "dev", "--table", f"{BINARY}=/nowhere/x.csv"], 3, "no such file"),
        (["--env", "dev", "--table", "nonsense"], 2, "--table expects NAME=PATH"),
        (["--env", "dev", "--table", "other=/nowhere/x.csv"], 2, "other"),
        (["--env", "dev", "--set", "data.depth=3"], 2, "no key 'depth'"),
        (["--env", "dev", "--set", "model.max_iter=3"], 2, "no section 'model'"),
        (["--env", "dev", "--set", "params.max_iter=zero"], 2, "params.max_iter"),
        (["--env", "dev", "--problem", "nosuch"], 2, "There is no problem 'nosuch'"),
    ],
)
def test_bad_usage_gets_one_paragraph_and_its_exit_code(
    synthetic_project, store_uri, args, code, message
):
    args = [*args, "--problem", BINARY] if "--problem" not in args else args
    done = run_cli("train", *args, cwd=synthetic_project, tracking_uri=store_uri)
    assert done.returncode == code, done.stderr
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    assert MlflowClient(tracking_uri=store_uri).search_registered_models() == []


@pytest.mark.parametrize(
    "problem, fraction, test_fraction, side",
    [
        (BINARY, 0.0005, 0.2, "train"),  # one sampled row, held out
        ("synthetic_regression", 0.005, 0.02, "test"),  # 16 rows, none held out
    ],
)
def test_a_sample_that_empties_a_side_is_refused_before_fitting(
    synthetic_project, store_uri, problem, fraction, test_fraction, side
):
    done = run_cli(
        "train", "--env", "dev", "--problem", problem,
        "--set", f"data.sample_fraction={fraction}",
        "--set", f"split.test_fraction={test_fraction}",
        cwd=synthetic_project, tracking_uri=store_uri,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert f"data.sample_fraction={fraction}" in done.stderr
    assert f"leave the {side} side empty" in done.stderr and "Traceback" not in done.stderr
    client = MlflowClient(tracking_uri=store_uri)
    assert client.search_registered_models() == []
    experiment = client.get_experiment_by_name(f"{problem}_dev")
    (run,) = client.search_runs([experiment.experiment_id])  # the attempt, and why it stopped
    assert run.info.status == "FAILED"
    assert f"data.sample_fraction={fraction}" in run.data.tags["ml_project.failure"]


def test_a_binary_label_with_one_class_is_refused_with_nothing_registered(
    synthetic_project, store_uri, tmp_path
):
    table = pd.read_csv(synthetic_project / "data" / f"{BINARY}.csv")
    one_class = tmp_path / "one_class.csv"
    table.assign(target="yes").to_csv(one_class, index=False)
    done = run_cli(
        "train", "--env", "dev", "--problem", BINARY, "--table", f"{BINARY}={one_class}",
        cwd=synthetic_project, tracking_uri=store_uri,
    )  # fmt: skip
    assert done.returncode == 3, done.stderr
    assert "The label target has one class (yes) in all" in done.stderr
    assert "A classifier needs at least two" in done.stderr and "Traceback" not in done.stderr
    assert MlflowClient(tracking_uri=store_uri).search_registered_models() == []


@pytest.mark.parametrize(
    "relative", ["environments/dev.yaml", f"problems/{BINARY}/environments/dev.yaml"]
)
def test_malformed_yaml_is_a_config_error(tmp_path, store_uri, relative):
    repo = synthetic_copy(tmp_path / "broken")
    (repo / relative).write_text("gate: [unclosed\n")
    done = run_cli("train", "--env", "dev", "--problem", BINARY, cwd=repo, tracking_uri=store_uri)
    assert done.returncode == 2
    assert "dev.yaml is not valid YAML" in done.stderr and "Traceback" not in done.stderr


# --- data as configuration -------------------------------------------------------------------


def test_a_table_flag_reads_a_copy_of_the_data(synthetic_project, store_uri, tmp_path):
    table = pd.read_csv(synthetic_project / "data" / f"{BINARY}.csv").head(2000)
    copy = tmp_path / "elsewhere" / "part.parquet"
    copy.parent.mkdir()
    table.to_parquet(copy)
    done = run_cli(
        "train", "--env", "dev", "--problem", BINARY, "--table", f"{BINARY}={copy}",
        "--set", "params.max_iter=20", "--json", cwd=synthetic_project, tracking_uri=store_uri,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = last_json(done.stdout)
    assert result["rows"]["records"] == 2000
    run = MlflowClient(tracking_uri=store_uri).get_run(result["run_id"])
    assert run.data.tags["data.tables"] == BINARY
    assert run.data.tags[f"data.table.{BINARY}.path"] == str(copy)
    assert run.data.tags[f"data.table.{BINARY}.sha256"] == data.file_digest(copy)
    assert run.data.params[f"data.tables.{BINARY}"] == str(copy)


def test_help_shows_examples(synthetic_project, tracking_uri):
    done = run_cli("train", "--help", cwd=synthetic_project, tracking_uri=tracking_uri)
    assert done.returncode == 0
    assert "ml-project train --env dev" in done.stdout and "Exit codes" in done.stdout
    assert "--table NAME=PATH" in done.stdout and "--problem NAME" in done.stdout


def test_a_second_training_on_the_same_rows_reuses_the_validation_verdicts_and_says_so(
    synthetic_project, synthetic_models, tmp_path
):
    first = synthetic_models["binary"]
    store = copy_store(first["uri"], tmp_path)
    done = run_cli(
        "train", "--env", "dev", "--problem", BINARY, "--json",
        cwd=synthetic_project, tracking_uri=store,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    second = last_json(done.stdout)
    source = first["result"]["run_id"]
    assert "validated  synthetic_binary: " in done.stdout
    assert f"(the verdict of run {source}: same rows, suite and libraries)" in done.stdout
    client = MlflowClient(store)
    tags = client.get_run(second["run_id"]).data.tags
    for table in (BINARY, "model_input"):
        assert tags[f"validation.{table}.reused_from"] == source
        assert (
            tags[f"validation.{table}.key"]
            == (client.get_run(source).data.tags[f"validation.{table}.key"])
        )
    results = json.loads(
        Path(
            client.download_artifacts(second["run_id"], "validation/results.json", tmp_path)
        ).read_text()
    )
    assert [table["reused_from"] for table in results["tables"]] == [source, source]

    again = run_cli(
        "train", "--env", "dev", "--problem", BINARY, "--json",
        "--set", "validation.reuse_verdicts=false",
        cwd=synthetic_project, tracking_uri=store,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    checked = client.get_run(last_json(again.stdout)["run_id"]).data.tags
    assert not [key for key in checked if key.endswith(".reused_from")]
    assert checked[f"validation.{BINARY}.key"] == tags[f"validation.{BINARY}.key"]  # still keyed
    fingerprints = {
        client.get_run(run_id).data.tags["predictions.digest"]
        for run_id in (source, second["run_id"], last_json(again.stdout)["run_id"])
    }
    assert len(fingerprints) == 1  # the same model either way
