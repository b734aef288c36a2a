"""Reproduce's pure parts (target parsing, comparisons, verdict, digests, the report), its git
edge, and the rebuild driver run in-process on a tiny synthetic problem."""

import io
import math
import shutil
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import skops.io
from sklearn.ensemble import HistGradientBoostingClassifier

from ml_project import (
    comparisons,
    lineage,
    loading,
    metrics,
    model_digest,
    pipeline,
    rebuild,
    reproduce,
    views,
)
from ml_project.errors import ConfigError, DataError, NotReproducedError, RegistryError
from ml_project.problem import load_problem
from ml_project.settings import load_settings
from tests.conftest import ROOT, git
from tests.synthetic import write_problem

data = views.reproduction_data  # a step as its JSON


@pytest.mark.parametrize(
    "uri, expected",
    [
        ("models:/my_model_prod/3", reproduce.Wanted("my_model_prod", "3")),
        ("models:/my_model_prod@champion", reproduce.Wanted("my_model_prod", alias="champion")),
    ],
)
def test_parse_model_uri(uri, expected):
    assert reproduce.parse_model_uri(uri) == expected


@pytest.mark.parametrize("uri", ["models:/x", "runs:/abc/model", "models:/x/latest", "x/3"])
def test_parse_model_uri_rejects_other_forms(uri):
    with pytest.raises(ConfigError, match="models:/<name>/<version>"):
        reproduce.parse_model_uri(uri)


TAGS = {
    "pkg.scikit-learn": "1.9.1",
    "pkg.numpy": "2.4.6",
    "env.python": "3.11.9",
    "env.machine": "x86_64",
    "env.os": "Linux 6.1",
}
RUNNING = {"python": "3.11.9", "machine": "x86_64", "os": "Linux 6.1"}


def test_environment_identical_when_everything_matches():
    step = data(
        reproduce.compare_environment(
            TAGS,
            installed={"scikit-learn": "1.9.1", "numpy": "2.4.6"},
            running=RUNNING,
            lock={"joblib": "1.6.0"},
            installed_lock={"joblib": "1.6.0"},
        )
    )
    assert step["status"] == "identical" and step["key_packages"] == step["lock"] == []


def test_environment_lists_each_difference():
    step = data(
        reproduce.compare_environment(
            TAGS,
            installed={"scikit-learn": "1.8.0", "numpy": "2.4.6"},
            running={**RUNNING, "python": "3.12.1", "os": "Linux 6.9"},
            lock={"joblib": "1.6.0", "scipy": "1.17.1"},
            installed_lock={"joblib": "1.5.0"},
        )
    )
    assert step["status"] == "different"
    assert step["key_packages"] == [
        {"what": "scikit-learn", "recorded": "1.9.1", "now": "1.8.0"},
        {"what": "python", "recorded": "3.11.9", "now": "3.12.1"},
    ]
    assert step["lock"] == [
        {"what": "joblib", "recorded": "1.6.0", "now": "1.5.0"},
        {"what": "scipy", "recorded": "1.17.1", "now": "missing"},
    ]
    assert step["notes"] == ["trained on Linux 6.1, now Linux 6.9"]


def _steps(**statuses):
    return [
        SimpleNamespace(step=name, status=status, max_abs_diff=None)
        for name, status in statuses.items()
    ]


def test_verdict_identical_when_no_step_differs():
    steps = _steps(config="identical", data="identical", features="not_recorded", model="identical")
    assert reproduce.verdict(steps, tolerance=None) == ("identical", "")


def test_verdict_names_the_first_step_that_differs():
    steps = _steps(
        config="identical",
        data="identical",
        features="different",
        model="different",
        predictions="different",
    )
    assert reproduce.verdict(steps, tolerance=None) == (
        "different",
        "features differ: code or library changed",
    )
    steps = _steps(config="identical", data="identical", features="identical", model="different")
    assert reproduce.verdict(steps, tolerance=None)[1] == "model differs"


def test_verdict_data_changed_wins():
    steps = _steps(config="identical", data="different", features="different")
    assert reproduce.verdict(steps, tolerance=1.0) == ("data_changed", "data changed")


@pytest.mark.parametrize("tolerance, expected", [(1e-6, "within_tolerance"), (1e-9, "different")])
def test_tolerance_accepts_only_small_differences(tolerance, expected):
    steps = [
        SimpleNamespace(step="data", status="identical"),
        SimpleNamespace(step="model", status="different"),
        SimpleNamespace(step="predictions", status="different", max_abs_diff=2e-7),
        SimpleNamespace(step="metrics", status="different", max_abs_diff=5e-8),
    ]
    assert reproduce.verdict(steps, tolerance=tolerance) == (expected, "model differs")


def test_compare_data_flags_a_changed_digest_and_count():
    tags = {"data.digest": "a", "data.train_digest": "b", "data.rows_used": "10"}
    same = comparisons.compare_data(tags, {"digests": {"digest": "a", "train_digest": "b"},
                                         "rows": {"used": 10}})  # fmt: skip
    changed = data(comparisons.compare_data(tags, {"digests": {"digest": "a", "train_digest": "x"},
                                            "rows": {"used": 10}}))  # fmt: skip
    assert same.status == "identical" and changed["status"] == "different"
    assert changed["digests"]["train_digest"] == {"recorded": "b", "rebuilt": "x"}
    assert comparisons.compare_data({}, {"digests": {}, "rows": {}}).status == "not_recorded"


def test_schema_changes_and_sample_differences():
    then = {"a": "int64", "b": "str", "c": "float64"}
    today = {"a": "float64", "b": "str", "d": "int64"}
    assert data(comparisons.schema_changes(then, today)) == {
        "added": ["d"],
        "removed": ["c"],
        "retyped": {"a": ["int64", "float64"]},
    }
    assert comparisons.schema_changes(None, today) is None
    recorded = {"columns": ["x", "y"], "rows": [[1.0, None], [2.0, 3.0]]}
    rebuilt = {"columns": ["x", "y", "z"], "rows": [[1.0, None, 0.0], [2.0, 4.0, 0.0]]}
    assert comparisons.sample_differences(recorded, rebuilt) == ["z", "y"]


def test_metrics_and_predictions_comparisons():
    answer = {
        "metrics": {"roc_auc": 0.75, "f1": 0.3},
        "predictions": {"rows": 3, "digest": "p1", "max_abs_diff": 0.0},
        "registered": {"predictions_digest": "p1"},
    }
    metrics = data(comparisons.compare_metrics({"test_roc_auc": 0.75, "test_f1": 0.3}, answer))
    assert metrics["status"] == "identical" and metrics["max_abs_diff"] == 0
    moved = data(comparisons.compare_metrics({"test_roc_auc": 0.7501, "test_f1": 0.3}, answer))
    assert moved["status"] == "different" and moved["max_abs_diff"] == pytest.approx(1e-4)
    by_tag = data(comparisons.compare_predictions({"predictions.digest": "p0"}, answer))
    assert by_tag["status"] == "different" and by_tag["registered_model_matches_tag"] is False
    assert by_tag["max_abs_diff"] == 0.0
    by_model = data(comparisons.compare_predictions({}, answer))
    assert by_model["status"] == "identical" and by_model["recorded_from"] == "registered model"


def test_a_metric_undefined_both_times_is_equal_and_once_is_a_difference():
    answer = {"metrics": {"r2": math.nan, "rmse": 1.5}}
    both = data(comparisons.compare_metrics({"test_r2": math.nan, "test_rmse": 1.5}, answer))
    assert both["status"] == "identical" and both["max_abs_diff"] == 0
    once = data(
        comparisons.compare_metrics({"test_r2": 0.5, "test_rmse": 1.5}, answer, task="regression")
    )
    assert once["status"] == "different" and once["max_abs_diff"] == math.inf
    assert once["task"] == "regression"


def _metrics_step(task: str, status: str, values: dict) -> comparisons.MetricsStep:
    pairs = {name: comparisons.Pair(*pair) for name, pair in values.items()}
    order = tuple(metrics.metrics_of(task))
    return comparisons.MetricsStep(status, task, pairs, max_abs_diff=None, order=order)


def test_metrics_are_shown_in_the_order_of_the_task_registry():
    values = {name: (v, v) for name, v in
              (("rmse", 1.25), ("mae", 1.0), ("r2", 0.9), ("median_ae", 0.75))}  # fmt: skip
    assert views.describe_step(_metrics_step("regression", "identical", values)) == [
        "identical (r2 0.9000, rmse 1.2500, mae 1.0000, median_ae 0.7500)"
    ]
    values["rmse"] = (1.25, 1.5)
    assert views.describe_step(_metrics_step("regression", "different", values)) == [
        "DIFFERENT: rmse 1.250000 -> 1.500000"
    ]
    multiclass = {"log_loss": (0.5, 0.5), "accuracy": (0.8, 0.8)}
    assert views.describe_step(_metrics_step("multiclass", "identical", multiclass)) == [
        "identical (accuracy 0.8000, log_loss 0.5000)"
    ]


SOURCE_TAGS = {
    "data.tables": "orders,customers",
    "data.table.orders.path": "/d/orders.csv",
    "data.table.orders.sha256": "a" * 64,
    "data.table.customers.path": "/d/customers.parquet",
    "data.table.customers.sha256": "c" * 64,
}


def _recorded(tags: dict, schema: dict | None = None) -> reproduce.Recorded:
    return reproduce.Recorded(
        run_id="r1", experiment_id="1", tags=tags, metrics={}, settings_yaml="", schema=schema
    )


def test_compare_sources_loops_over_the_recorded_tables():
    schema = {"orders": {"id": "int64", "x": "float64"}, "customers": {"id": "int64"}}
    answer = {
        "sources": {
            "orders": {"path": "/e/orders.csv", "sha256": "a" * 64, "rows": 5,
                       "schema": {"id": "int64", "x": "float64"}},
            "customers": {"path": "/d/customers.parquet", "sha256": "d" * 64, "rows": 3,
                          "schema": {"id": "int64", "name": "str"}},
        }
    }  # fmt: skip
    step = data(comparisons.compare_sources(_recorded(SOURCE_TAGS, schema), answer))
    assert step["status"] == "different" and list(step["files"]) == ["orders", "customers"]
    orders, customers = step["files"]["orders"], step["files"]["customers"]
    assert orders["sha256_equal"] and orders["recorded"]["path"] == "/d/orders.csv"
    assert orders["today"]["path"] == "/e/orders.csv" and orders["recorded"]["rows"] is None
    assert not customers["sha256_equal"]
    assert customers["schema_changes"] == {"added": ["name"], "removed": [], "retyped": {}}
    counted = data(
        comparisons.compare_sources(
            _recorded({**SOURCE_TAGS, "data.table.orders.rows": "5"}), answer
        )
    )
    assert counted["files"]["orders"]["recorded"]["rows"] == 5
    assert reproduce.recorded_tables({}) == []


def _target() -> reproduce.Target:
    return reproduce.Target(
        run_id="r1", model_uri="models:/my_model_dev/4", model_name="my_model_dev", version="4"
    )


def test_a_version_trained_under_another_rebuild_protocol_is_refused():
    reproduce.require_protocol(_target(), {"ml_project.rebuild_protocol": "2"}, "2")
    tags = {"git.commit": "0123456789abcdef0123"}
    with pytest.raises(NotReproducedError) as older:
        reproduce.require_protocol(_target(), tags, "2")
    message = str(older.value)
    assert message.startswith("my_model_dev version 4 (run r1) was trained with an older rebuild")
    assert "no tag ml_project.rebuild_protocol" in message and "predates problems/" in message
    assert "check its commit 0123456789ab out" in message
    assert "run that commit's own `ml-project reproduce` there" in message
    assert "\n" not in message and NotReproducedError.exit_code == 6
    with pytest.raises(NotReproducedError, match="rebuild protocol '3'"):
        reproduce.require_protocol(_target(), {**tags, "ml_project.rebuild_protocol": "3"}, "2")


def test_table_overrides_name_recorded_tables_only(tmp_path):
    overrides = reproduce.table_overrides(
        _target(), SOURCE_TAGS, {"customers": tmp_path / "moved.parquet"}
    )
    assert overrides == {"orders": None, "customers": str(tmp_path / "moved.parquet")}
    with pytest.raises(ConfigError, match=r"--table other=\.\.\.: .* orders, customers"):
        reproduce.table_overrides(_target(), SOURCE_TAGS, {"other": tmp_path / "x.csv"})


def test_a_missing_table_file_names_the_table_option(tmp_path):
    answer = {
        "error": {"step": "sources", "type": "DataError", "message": "gone"},
        "sources": {"orders": {"path": str(tmp_path / "orders.csv")}},
    }
    with pytest.raises(DataError) as raised:
        reproduce._driver_failure(answer, _recorded(SOURCE_TAGS), _target(), "0123456789abcdef")
    message = str(raised.value)
    assert message.startswith(f"{tmp_path / 'orders.csv'}: no such file.")
    assert "pass --table orders=PATH to read a copy" in message and "a" * 64 in message
    (tmp_path / "orders.csv").write_text("id\n1\n")
    assert (
        reproduce._driver_failure(answer, _recorded(SOURCE_TAGS), _target(), "0123456789abcdef")[0]
        == "data_changed"
    )


@pytest.fixture(scope="module")
def tiny_data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3))
    return x, (x[:, 0] + rng.normal(scale=0.5, size=200) > 0).astype(int)


def test_state_digest_survives_a_skops_round_trip_and_sees_a_refit(tiny_data):
    x, y = tiny_data
    model = HistGradientBoostingClassifier(max_iter=5, random_state=0).fit(x, y)
    loaded = skops.io.loads(
        skops.io.dumps(model),
        trusted=["sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"],
    )
    assert rebuild.state_digest(loaded) == rebuild.state_digest(model)
    again = HistGradientBoostingClassifier(max_iter=5, random_state=0).fit(x, y)
    assert rebuild.state_digest(again) == rebuild.state_digest(model)
    other = HistGradientBoostingClassifier(max_iter=5, random_state=0).fit(x, 1 - y)
    assert rebuild.state_digest(other) != rebuild.state_digest(model)
    assert rebuild.model_params(model) == rebuild.model_params(loaded)
    assert rebuild.model_params(model)["max_iter"] == "5"


def test_max_abs_diff_of_prediction_matrices():
    ours = np.array([[0.2, 0.8], [np.nan, 1.0]])
    assert rebuild.max_abs_diff(ours, ours.copy()) == 0.0
    assert rebuild.max_abs_diff(ours, ours + 0.25) == pytest.approx(0.25)
    assert rebuild.max_abs_diff(ours, np.array([[0.2, 0.8], [0.5, 1.0]])) == math.inf
    assert rebuild.max_abs_diff(ours, ours[:, :1]) is None  # other classes: not comparable


def test_a_feature_sample_reads_back_as_it_was_logged():
    sample = pd.DataFrame({"colour": [0.0, 2.0, np.nan], "x1": [0.1, 1 / 3, -2.5],
                           "word": ["a", None, "c"]})  # fmt: skip
    rebuilt = rebuild.sample_values(sample)
    assert rebuilt == rebuild.read_sample(io.StringIO(sample.to_csv(index=False)))
    assert rebuilt["columns"] == ["colour", "x1", "word"]
    assert rebuilt["rows"][1] == [2.0, 1 / 3, None] and rebuilt["rows"][2] == [None, -2.5, "c"]


def test_table_schema_lists_columns_in_order():
    frame = pd.DataFrame({"b": [1], "a": ["x"], "c": [1.5]})
    assert list(rebuild.table_schema(frame).items())[0] == ("b", "int64")
    assert rebuild.table_schema(frame)["c"] == "float64"


@pytest.fixture
def repo(tmp_path):
    path = tmp_path / "repo"
    git(tmp_path, "init", "-q", "-b", "main", str(path))
    git(path, "config", "user.email", "tests@example.invalid")
    git(path, "config", "user.name", "tests")
    (path / "a.txt").write_text("one\n")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "first")
    return path


def test_an_amended_away_commit_is_reported_missing(repo):
    first = git(repo, "rev-parse", "HEAD")
    reproduce.require_commit(repo, first, what="model m version 1")
    git(repo, "commit", "-q", "--amend", "-m", "rewritten")
    git(repo, "reflog", "expire", "--expire=now", "--all")
    git(repo, "gc", "-q", "--prune=now")
    with pytest.raises(RegistryError, match=f"Commit {first} that trained model m version 1"):
        reproduce.require_commit(repo, first, what="model m version 1")
    with pytest.raises(RegistryError, match="records no git commit"):
        reproduce.require_commit(repo, "", what="model m version 1")


def test_checkout_is_temporary_and_leaves_the_work_tree_alone(repo):
    first = git(repo, "rev-parse", "HEAD")
    (repo / "a.txt").write_text("two\n")
    git(repo, "commit", "-q", "-am", "second")
    (repo / "a.txt").write_text("uncommitted\n")
    with reproduce.checkout(repo, first) as code:
        assert (code / "a.txt").read_text() == "one\n"
        assert len(git(repo, "worktree", "list").splitlines()) == 2
    assert not code.exists() and not code.parent.exists()
    assert len(git(repo, "worktree", "list").splitlines()) == 1
    assert (repo / "a.txt").read_text() == "uncommitted\n"
    assert git(repo, "rev-parse", "HEAD") != first


def test_repository_outside_git_is_a_registry_error(tmp_path):
    with pytest.raises(RegistryError, match="not inside a git repository"):
        reproduce.repository(tmp_path)


def test_repository_knows_a_project_in_a_subfolder(repo):
    (repo / "sub" / "project").mkdir(parents=True)
    top, prefix = reproduce.repository(repo / "sub" / "project")
    assert top.resolve() == repo.resolve() and prefix == "sub/project/"


def _result(verdict, steps, **extra):
    return comparisons.ReproductionResult(
        target=reproduce.Target(
            run_id="r1", model_uri="models:/my_model_staging/2",
            model_name="my_model_staging", version="2",
        ),
        commit="0123456789abcdef",
        tolerance=extra.get("tolerance"),
        strict=False,
        verdict=verdict,
        first_difference=extra.get("first_difference", ""),
        steps=tuple(steps),
        warnings=tuple(extra.get("warnings", ())),
        experiment_id="1",
        tracking_uri="",
        seconds=1.0,
        reproduction_run_id="r2",
    )  # fmt: skip


def test_data_changed_report_shows_digests_rows_and_schema():
    orders = comparisons.TableFile(
        recorded=comparisons.TableState("/d/f.csv", "a" * 64, 10, {"x": "i"}),
        today=comparisons.TableState("/d/f.csv", "b" * 64, 11, {"y": "i"}),
        sha256_equal=False,
        schema_changes=comparisons.SchemaChanges(added=("y",), removed=("x",), retyped={}),
    )
    data_step = comparisons.DataStep(
        "different",
        digests={"digest": comparisons.Pair("c" * 64, "d" * 64)},
        rows={"used": comparisons.Pair(10, 11)},
    )

    def result_of(orders: comparisons.TableFile) -> comparisons.ReproductionResult:
        sources = comparisons.SourcesStep("different", {"orders": orders})
        return _result("data_changed", [sources, data_step], first_difference="data changed")

    result = result_of(orders)
    text = views.format_reproduction(result)
    assert "DATA CHANGED" in text and "orders: CHANGED /d/f.csv" in text
    assert "aaaaaaaaaaaa at training, bbbbbbbbbbbb now" in text
    assert "rows    10 at training, 11 now" in text
    assert "schema  added y; removed x" in text
    assert "cccccccccccc at training, dddddddddddd now  <- differs" in text
    message = views.failure_message(result)
    assert message.startswith("data changed: my_model_staging version 2")
    assert "(orders sha256 aaaaaaaaaaaa at training, bbbbbbbbbbbb today)" in message
    assert "Nothing was retrained" in message and "\n" not in message
    unrecorded = replace(orders, recorded=replace(orders.recorded, rows=None))
    text = views.format_reproduction(result_of(unrecorded))
    assert "rows    not recorded at training, 11 now" in text


# ---------------------------------------------------------------- the driver, in-process


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A one-table binary problem (400 rows), trained once as training would: the model's
    skops file, the feature sample training logs, and a protocol-2 request for the driver."""
    root = tmp_path_factory.mktemp("tiny") / "project"
    shutil.copytree(ROOT / "environments", root / "environments")
    (root / "problems").mkdir()
    (root / "problems" / "__init__.py").write_text("")
    name = write_problem(root, "binary", name="tiny_binary", rows=400)
    settings = load_settings("dev", problem=name, root=root)
    problem = load_problem(settings, root)
    tables = pipeline.read_tables(pipeline.table_paths(settings, root))
    prepared = pipeline.prepare_data(settings, problem, tables)
    trained = pipeline.fit_and_score(settings, problem, prepared)
    model_file = root.parent / "model.skops"
    skops.io.dump(trained.model, model_file)
    sample_file = root.parent / "sample.csv"
    sample = pipeline.feature_sample(settings, trained.model, prepared.split.train)
    sample_file.write_text(sample.to_csv(index=False))
    request = {
        "protocol": pipeline.REBUILD_PROTOCOL,
        "settings_yaml": settings.to_yaml(),
        "data_root": str(root),
        "code_root": str(root),
        "tables": {name: None},
        "expect_data": dict(prepared.digests),
        "registered_model": {
            "path": str(model_file),
            "trusted_types": loading.trusted_types(problem),
        },
        "sample_rows": pipeline.FEATURE_SAMPLE_ROWS,
    }
    return {"root": root, "name": name, "settings": settings, "prepared": prepared,
            "trained": trained, "sample_file": sample_file, "request": request}  # fmt: skip


def _run(request: dict, tmp_path: Path) -> tuple[int, dict]:
    """rebuild.main as `python -m ml_project.rebuild` calls it: files in, file out."""
    import json

    paths = tmp_path / "request.json", tmp_path / "answer.json"
    paths[0].write_text(json.dumps(request))
    code = rebuild.main([str(paths[0]), str(paths[1])])
    return code, json.loads(paths[1].read_text())


def test_the_driver_rebuilds_every_step_as_training_recorded_it(tiny, tmp_path):
    code, answer = _run(tiny["request"], tmp_path)
    assert code == 0 and answer["error"] is None, answer["error"]
    assert answer["step"] == "done" and answer["stopped"] is None and answer["protocol"] == "2"
    settings, trained, root = tiny["settings"], tiny["trained"], tiny["root"]
    assert answer["config"] == {"hash": settings.config_hash(), "seed": 42, "task": "binary"}
    assert Path(answer["code"]["problem_file"]).is_relative_to(root.resolve())
    source = answer["sources"][tiny["name"]]
    table = root / "data" / f"{tiny['name']}.csv"
    assert source["path"] == str(table) and source["rows"] == 400
    assert source["sha256"] == pipeline.file_digests({"t": table})["t"]
    assert source["schema"]["id"] == "int64" and list(source["schema"])[-1] == "target"
    assert answer["data"]["digests"] == tiny["prepared"].digests
    assert answer["features"]["digest"] == trained.features_digest
    assert answer["features"]["sample"] == rebuild.read_sample(tiny["sample_file"])
    assert len(answer["features"]["sample"]["rows"]) == 100
    assert answer["model"]["digest"] == rebuild.state_digest(trained.model)
    registered_file = Path(tiny["request"]["registered_model"]["path"])  # saved at another time
    assert answer["model"]["content"] == model_digest.file_content_digest(registered_file)
    assert answer["registered"]["digest"] == answer["model"]["digest"]
    assert answer["registered"]["params"] == answer["model"]["params"]
    predictions = answer["predictions"]
    assert predictions["digest"] == pipeline.predictions_digest(trained.predictions)
    assert predictions["digest"] == answer["registered"]["predictions_digest"]
    assert (predictions["rows"], predictions["columns"]) == (len(tiny["prepared"].split.test), 2)
    assert predictions["max_abs_diff"] == 0.0
    assert answer["metrics"] == pytest.approx(trained.metrics)
    assert set(answer["timings"]) == {"read_s", "prepare_s", "fit_s"}


def test_the_driver_stops_before_fitting_when_the_rows_differ(tiny, tmp_path):
    request = {**tiny["request"], "expect_data": {"digest": "0" * 64}}
    code, answer = _run(request, tmp_path)
    assert code == 0 and answer["stopped"] == "data" and answer["step"] == "data"
    assert answer["data"]["digests"] == tiny["prepared"].digests
    assert "model" not in answer and "features" not in answer


def test_the_driver_reads_a_moved_table_and_reports_a_missing_one(tiny, tmp_path):
    name = tiny["name"]
    moved = tmp_path / "moved.csv"
    shutil.copy(tiny["root"] / "data" / f"{name}.csv", moved)
    request = {**tiny["request"], "tables": {name: str(moved)}, "registered_model": {}}
    code, answer = _run(request, tmp_path)
    assert code == 0 and answer["sources"][name]["path"] == str(moved)
    assert answer["data"]["digests"] == tiny["prepared"].digests
    assert "registered" not in answer and answer["predictions"]["max_abs_diff"] is None
    request["tables"] = {name: str(tmp_path / "gone.csv")}
    code, answer = _run(request, tmp_path)
    assert code == 1 and answer["error"]["step"] == "sources"
    assert answer["error"]["type"] == "DataError" and "no such file" in answer["error"]["message"]
    assert answer["sources"][name] == {"path": str(tmp_path / "gone.csv")}


def test_the_driver_refuses_a_request_of_another_protocol(tiny, tmp_path):
    code, answer = _run({**tiny["request"], "protocol": "1"}, tmp_path)
    assert code == 1 and answer["error"]["step"] == "protocol"
    assert "rebuild protocol '1'" in answer["error"]["message"] and "config" not in answer


def test_the_environment_step_counts_the_pins_the_project_needs_not_its_extras():
    """A venv without the [spark] or [dev] extra rebuilds a model faithfully: only the lock's
    pins of the project's own dependencies are compared."""
    installed = lineage.package_versions(["mlflow"])["mlflow"]
    running = lineage.environment_info()
    tags = {"pkg.mlflow": installed, **{f"env.{key}": value for key, value in running.items()}}
    extras = {"pyspark": "0.0.1", "pytest": "0.0.1"}  # not installed at these versions
    recorded = reproduce.Recorded(
        run_id="r1", experiment_id="1", tags=tags, metrics={}, settings_yaml="",
        lock={"mlflow": installed, **extras},
    )  # fmt: skip
    assert reproduce._environment_step(recorded).status == reproduce.IDENTICAL
    recorded.lock["mlflow"] = "0.0.1"
    step = reproduce._environment_step(recorded)
    assert step.status == reproduce.DIFFERENT
    assert [item.what for item in step.lock] == ["mlflow"]


def test_a_step_prints_only_the_comparisons_it_made_and_keeps_a_nan_metric():
    answer = {"model": {"digest": "m1", "class": "x.Model", "params": {}}}
    alone = data(comparisons.compare_model(answer))
    assert alone == {"step": "model", "status": "not_recorded", "rebuilt": "m1", "class": "x.Model"}
    compared = data(comparisons.compare_model({**answer, "registered": {"digest": "m1"}}))
    assert compared["registered"] == "m1" and compared["params_differ"] == {}
    undefined = data(
        comparisons.compare_metrics({"test_r2": math.nan}, {"metrics": {"r2": math.nan}})
    )
    assert math.isnan(undefined["values"]["r2"]["rebuilt"])


def test_registered_files_refused_make_the_model_differ_whatever_the_records_say():
    answer = {"model": {"digest": "m1", "class": "x.Model", "params": {}}}
    refused = comparisons.compare_model(
        answer, artifact="models:/m/1", refused="Model models:/m/1 is serialized as cloudpickle"
    )
    assert data(refused) == {
        "step": "model",
        "status": "different",
        "rebuilt": "m1",
        "class": "x.Model",
        "registered_artifact": "models:/m/1",
        "refused": "Model models:/m/1 is serialized as cloudpickle",
    }
    assert comparisons.verdict([refused], tolerance=1.0) == ("different", "model differs")
    text = views._describe_model(refused, "DIFFERENT")
    assert "models:/m/1" in text and "cloudpickle" in text
    checked = comparisons.compare_model(
        {**answer, "registered": {"digest": "m1"}}, artifact="models:/m/1"
    )
    assert checked.status == "identical" and checked.registered_artifact == "models:/m/1"
    assert "against models:/m/1" in views._describe_model(checked, "identical")


def test_the_model_step_compares_the_skops_content_recorded_at_training():
    rebuilt = {"digest": "m1", "class": "x.Model", "params": {}, "content": "c1"}
    answer = {"model": rebuilt, "registered": {"digest": "m1"}}
    tags = {"model.content_sha256": "c1"}
    same = comparisons.compare_model(answer, tags=tags)
    assert same.status == "identical" and data(same)["content"] == {
        "recorded": "c1",
        "rebuilt": "c1",
    }
    assert same.content_from == "tag" and "skops content c1 as recorded" in views._describe_model(
        same, "identical"
    )
    other = comparisons.compare_model(answer, tags={"model.content_sha256": "c0"})
    assert other.status == "different"
    assert comparisons.verdict([other], tolerance=None) == ("different", "model differs")
    text = views._describe_model(other, "DIFFERENT")
    assert text == "DIFFERENT: skops content c0 recorded (tag), c1 rebuilt; fitted state equal"
    # no tag (trained before it): the registered file's content, which reproduce digested
    by_file = comparisons.compare_model({**answer, "registered_content": "c1"}, tags={})
    assert by_file.status == "identical" and by_file.content_from == "registered file"
    # a commit whose driver does not answer it: the fitted state alone decides
    old = {
        "model": {k: v for k, v in rebuilt.items() if k != "content"},
        "registered": {"digest": "m1"},
    }
    unanswered = comparisons.compare_model(old, tags=tags)
    assert unanswered.status == "identical" and "content" not in data(unanswered)
