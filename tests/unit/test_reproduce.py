"""Reproduce's pure parts (target parsing, comparisons, verdict, digests) and its git edge."""

import numpy as np
import pandas as pd
import pytest
import skops.io
from sklearn.ensemble import HistGradientBoostingClassifier

from ml_project import pipeline, rebuild, reproduce
from ml_project.errors import ConfigError, RegistryError
from tests.conftest import git


@pytest.mark.parametrize(
    "uri, expected",
    [
        ("models:/flights_delay_prod/3", ("flights_delay_prod", "3", "")),
        ("models:/flights_delay_prod@champion", ("flights_delay_prod", "", "champion")),
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
    step = reproduce.compare_environment(
        TAGS,
        installed={"scikit-learn": "1.9.1", "numpy": "2.4.6"},
        running=RUNNING,
        lock={"joblib": "1.6.0"},
        installed_lock={"joblib": "1.6.0"},
    )
    assert step["status"] == "identical" and step["key_packages"] == step["lock"] == []


def test_environment_lists_each_difference():
    step = reproduce.compare_environment(
        TAGS,
        installed={"scikit-learn": "1.8.0", "numpy": "2.4.6"},
        running={**RUNNING, "python": "3.12.1", "os": "Linux 6.9"},
        lock={"joblib": "1.6.0", "scipy": "1.17.1"},
        installed_lock={"joblib": "1.5.0"},
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
    steps = [{"step": name, "status": status} for name, status in statuses.items()]
    for step in steps:
        step.setdefault("max_abs_diff", None)
    return steps


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
        {"step": "data", "status": "identical"},
        {"step": "model", "status": "different"},
        {"step": "predictions", "status": "different", "max_abs_diff": 2e-7},
        {"step": "metrics", "status": "different", "max_abs_diff": 5e-8},
    ]
    assert reproduce.verdict(steps, tolerance=tolerance) == (expected, "model differs")


def test_compare_data_flags_a_changed_digest_and_count():
    tags = {"data.digest": "a", "data.train_digest": "b", "data.rows_used": "10"}
    same = reproduce.compare_data(tags, {"digests": {"digest": "a", "train_digest": "b"},
                                         "rows": {"used": 10}})  # fmt: skip
    changed = reproduce.compare_data(tags, {"digests": {"digest": "a", "train_digest": "x"},
                                            "rows": {"used": 10}})  # fmt: skip
    assert same["status"] == "identical" and changed["status"] == "different"
    assert changed["digests"]["train_digest"] == {"recorded": "b", "rebuilt": "x"}
    assert reproduce.compare_data({}, {"digests": {}, "rows": {}})["status"] == "not_recorded"


def test_schema_changes_and_sample_differences():
    then = {"a": "int64", "b": "str", "c": "float64"}
    today = {"a": "float64", "b": "str", "d": "int64"}
    assert reproduce.schema_changes(then, today) == {
        "added": ["d"],
        "removed": ["c"],
        "retyped": {"a": ["int64", "float64"]},
    }
    assert reproduce.schema_changes(None, today) is None
    recorded = {"columns": ["x", "y"], "rows": [[1.0, None], [2.0, 3.0]]}
    rebuilt = {"columns": ["x", "y", "z"], "rows": [[1.0, None, 0.0], [2.0, 4.0, 0.0]]}
    assert reproduce.sample_differences(recorded, rebuilt) == ["z", "y"]


def test_metrics_and_predictions_comparisons():
    answer = {
        "metrics": {"roc_auc": 0.75, "f1": 0.3},
        "predictions": {"rows": 3, "digest": "p1"},
        "registered": {"predictions_digest": "p1", "max_abs_diff": 0.0},
    }
    metrics = reproduce.compare_metrics({"test_roc_auc": 0.75, "test_f1": 0.3}, answer)
    assert metrics["status"] == "identical" and metrics["max_abs_diff"] == 0
    moved = reproduce.compare_metrics({"test_roc_auc": 0.7501, "test_f1": 0.3}, answer)
    assert moved["status"] == "different" and moved["max_abs_diff"] == pytest.approx(1e-4)
    by_tag = reproduce.compare_predictions({"predictions.digest": "p0"}, answer)
    assert by_tag["status"] == "different" and by_tag["registered_model_matches_tag"] is False
    by_model = reproduce.compare_predictions({}, answer)
    assert by_model["status"] == "identical" and by_model["recorded_from"] == "registered model"


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


def test_rebuild_and_training_hash_predictions_the_same_way():
    """The driver's fallback formula is the one training tags (`predictions.digest`)."""
    probability = np.array([0.1, 0.25, np.nan, 1 / 3])
    assert rebuild.predictions_digest(probability) == pipeline.predictions_digest(probability)
    assert rebuild.predictions_digest(probability[:3]) != pipeline.predictions_digest(probability)


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
    return {
        "verdict": verdict,
        "first_difference": extra.get("first_difference", ""),
        "model_name": "flights_delay_staging",
        "model_version": "2",
        "run_id": "r1",
        "commit": "0123456789abcdef",
        "tolerance": extra.get("tolerance"),
        "warnings": extra.get("warnings", []),
        "error": "",
        "steps": steps,
        "reproduction_run_id": "r2",
        "seconds": 1.0,
    }


def test_data_changed_report_shows_digests_rows_and_schema():
    files = {
        "flights": {
            "recorded": {"path": "/d/f.csv", "sha256": "a" * 64, "rows": 10, "schema": {"x": "i"}},
            "today": {"path": "/d/f.csv", "sha256": "b" * 64, "rows": 11, "schema": {"y": "i"}},
            "sha256_equal": False,
            "schema_changes": {"added": ["y"], "removed": ["x"], "retyped": {}},
        }
    }
    data = {
        "step": "data",
        "status": "different",
        "digests": {"digest": {"recorded": "c" * 64, "rebuilt": "d" * 64}},
        "rows": {"used": {"recorded": 10, "rebuilt": 11}},
    }
    result = _result(
        "data_changed",
        [{"step": "sources", "status": "different", "files": files}, data],
        first_difference="data changed",
    )
    text = reproduce.format_summary(result)
    assert "DATA CHANGED" in text and "flights: CHANGED /d/f.csv" in text
    assert "aaaaaaaaaaaa at training, bbbbbbbbbbbb now" in text
    assert "rows    10 at training, 11 now" in text
    assert "schema  added y; removed x" in text
    assert "cccccccccccc at training, dddddddddddd now  <- differs" in text
    message = reproduce.failure_message(result)
    assert message.startswith("data changed: flights_delay_staging version 2")
    assert "Nothing was retrained" in message and "\n" not in message
