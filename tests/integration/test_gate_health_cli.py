"""A gate that is never fail-open, through the real CLI: a problem without floors whose model
diverges (a multiclass boosting at a learning rate that blows its held-out loss up) is refused
in dev, staging and prod with the rule named and no alias moved; a model that ignores its input
(constant predictions) is refused too."""

import pytest
from mlflow import MlflowClient

from tests.conftest import commit_all, empty_store, last_json, make_project_copy, run_cli
from tests.synthetic import write_problem

pytestmark = pytest.mark.integration

ENVS = ("dev", "staging", "prod")
CONSTANT = '''"""A model that ignores its input: it always answers the class shares."""
from sklearn.dummy import DummyClassifier
from sklearn.pipeline import Pipeline

from ml_project import estimators


def build_model(*, features, task, params, seed):
    return Pipeline([("encode", estimators.encoder(list(features.categorical))),
                     ("model", DummyClassifier(strategy="prior"))])
'''


def without_floors(root, name: str, params: str) -> None:
    """No hand-set floors (what `init` writes): only the rules every gate applies guard it."""
    folder = root / "problems" / name / "environments"
    base = folder / "base.yaml"
    text = base.read_text().replace("floors: {'accuracy': 0.55}", "floors: {}")
    base.write_text(text.replace("params: {max_iter: 60, learning_rate: 0.1}", params))
    (folder / "prod.yaml").write_text("gate:\n  min_test_rows: 100\n")  # 3000 rows here


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = make_project_copy(tmp_path_factory.mktemp("health") / "project")
    write_problem(root, "multiclass", name="diverging")
    without_floors(root, "diverging", "params: {max_iter: 60, learning_rate: 3.0}")
    write_problem(root, "multiclass", name="constant", rows=1000)
    without_floors(root, "constant", "params: {}")
    (root / "problems" / "constant" / "problem.py").write_text(CONSTANT)
    commit_all(root, "a diverging and a constant multiclass problem")
    return root


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return empty_store(tmp_path_factory.mktemp("health-store"))


@pytest.fixture(scope="module")
def diverged(project, store):
    return {
        env: run_cli(
            "train",
            "--env",
            env,
            "--problem",
            "diverging",
            "--json",
            cwd=project,
            tracking_uri=store,
        )  # fmt: skip
        for env in ENVS
    }


@pytest.mark.parametrize("env", ENVS)
def test_a_diverged_model_is_refused_in_every_env_with_the_rule_named(diverged, store, env):
    done = diverged[env]
    assert done.returncode == 5, done.stderr
    assert "Traceback" not in done.stderr
    assert f"version 1 failed the {env} quality gate" in done.stderr
    assert "held-out log_loss rose from" in done.stderr and "gate.max_loss_rise 0.5" in done.stderr
    gate = last_json(done.stdout)["gate"]
    failed = {(c["name"], c["metric"]) for c in gate["checks"] if not c["passed"]}
    assert {("health", "log_loss"), ("loss", "log_loss")} <= failed
    (health,) = [c for c in gate["checks"] if c["name"] == "health"]
    assert health["value"] > health["limit"]  # the last loss is above 1.25 x the best
    assert gate["promoted"] is False and gate["champion_after"] is None
    client = MlflowClient(tracking_uri=store)
    name = f"diverging_{env}"
    assert client.get_registered_model(name).aliases == {}
    version = client.get_model_version(name, "1")
    assert version.tags["validation_status"] == "failed"
    assert "gate.max_loss_rise" in version.tags["validation_reasons"]


def test_a_model_with_constant_predictions_is_refused(project, store):
    done = run_cli(
        "train", "--env", "dev", "--problem", "constant", "--json",
        cwd=project, tracking_uri=store,
    )  # fmt: skip
    assert done.returncode == 5, done.stderr
    assert "Traceback" not in done.stderr
    gate = last_json(done.stdout)["gate"]
    failed = {(c["name"], c["metric"]) for c in gate["checks"] if not c["passed"]}
    assert {("constant", "score"), ("lead", "accuracy")} <= failed
    assert "the predictions are constant" in done.stderr
    assert "gate.min_lead 0.05" in done.stderr
    (health,) = [c for c in gate["checks"] if c["name"] == "health"]
    assert health["passed"] and "not applicable" in health["message"]
    assert MlflowClient(tracking_uri=store).get_registered_model("constant_dev").aliases == {}
