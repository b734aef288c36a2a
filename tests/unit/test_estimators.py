"""The default model's settings: early stopping (reproducible) and a log target (loadable)."""

import shutil
import sys
from pathlib import Path

import mlflow.sklearn
import numpy as np
import pytest

from ml_project import estimators, lineage, loading, metrics, pipeline
from ml_project.errors import ConfigError, DataError
from ml_project.problem import load_problem
from ml_project.settings import FeatureSettings, load_settings
from tests.synthetic import make_table, write_problem

ROOT = Path(__file__).resolve().parents[2]
FEATURES = FeatureSettings(categorical=("colour",), numeric=("x1", "x2", "x3", "x4"))


def rows(table):
    return table[list(FEATURES.columns)].astype({"colour": object})


def fitted(task, params, *, seed=3, table=None):
    table = make_table(task, 1200) if table is None else table
    model = estimators.tabular_model(features=FEATURES, task=task, params=params, seed=seed)
    return model.fit(rows(table), table["target"]), table


def state(model, table, task):
    """A digest of every number the fitted model gives on the rows, and where it stopped."""
    answers = metrics.predict(model, rows(table), task)
    return pipeline.predictions_digest(answers), model[-1].n_iter_


@pytest.mark.parametrize("task", ["binary", "regression"])
def test_early_stopping_stops_early_and_is_reproducible_bit_for_bit(task):
    """Its validation rows are drawn with the seed from rows in a fixed order: two fits agree."""
    params = {"max_iter": 300, "learning_rate": 0.3, "early_stopping": True,
              "validation_fraction": 0.2, "n_iter_no_change": 5, "tol": 1e-7}  # fmt: skip
    first, table = fitted(task, params)
    second, _ = fitted(task, params)
    assert first[-1].n_iter_ < 300  # it stopped
    assert state(first, table, task) == state(second, table, task)
    other_seed, _ = fitted(task, params, seed=4)  # another draw of validation rows
    assert state(other_seed, table, task) != state(first, table, task)


def test_early_stopping_is_off_unless_the_settings_turn_it_on():
    model, _ = fitted("binary", {"max_iter": 30})
    assert model[-1].early_stopping is False and model[-1].n_iter_ == 30
    assert estimators.DefaultParams(early_stopping=True, n_iter_no_change=3).early_stopping


def test_a_log_target_fits_log1p_and_answers_in_the_labels_units():
    table = make_table("regression", 1200)
    table["target"] = np.exp(table["target"] / 4)  # skewed, > 0
    model, _ = fitted("regression", {"max_iter": 40, "log_target": True}, table=table)
    assert type(model[-1]).__name__ == "TransformedTargetRegressor"
    guess = model.predict(rows(table))
    assert (guess > 0).all() and np.corrcoef(guess, table["target"])[0, 1] > 0.9
    staged = metrics.staged_loss(model, rows(table), table["target"].to_numpy(), "regression")
    assert staged is not None and len(staged.values) == 40  # staged through the transform
    assert staged.values[-1] == pytest.approx(
        metrics.compute("regression", table["target"], metrics.Predictions(guess))["rmse"]
    )


def test_a_log_target_refuses_negative_labels_with_the_rule_named():
    table = make_table("regression", 300)
    table["target"] = table["target"].abs()
    table.loc[5, "target"] = -2.0
    with pytest.raises(DataError, match=r"params.log_target .* 1 train label\(s\) are negative"):
        fitted("regression", {"max_iter": 5, "log_target": True}, table=table)


@pytest.fixture
def project(tmp_path):
    shutil.copytree(ROOT / "environments", tmp_path / "environments")
    (tmp_path / "problems").mkdir()
    (tmp_path / "problems" / "__init__.py").write_text("")
    write_problem(tmp_path, "regression", rows=600)
    write_problem(tmp_path, "binary", rows=300)
    yield tmp_path
    for name in [n for n in sys.modules if n.split(".")[0] == "problems"]:
        del sys.modules[name]


def test_a_fitted_log_target_model_loads_through_the_platforms_loader(project, tmp_path):
    """skops with the project's allow-list only: the log-target model's types are on it."""
    settings = load_settings(
        "dev", problem="synthetic_regression", root=project,
        overrides=("params.log_target=true", "params.max_iter=20"),
    )  # fmt: skip
    problem = load_problem(settings, project)
    table = make_table("regression", 600)
    table["target"] = table["target"].abs()
    prepared = pipeline.prepare_data(settings, problem, {"synthetic_regression": table})
    trained = pipeline.fit_and_score(settings, problem, prepared)
    assert trained.staged is not None and trained.staged.metric == "rmse"
    folder = tmp_path / "logged"
    mlflow.sklearn.save_model(
        trained.model, str(folder), serialization_format="skops",
        skops_trusted_types=loading.trusted_types(problem),
        # the requirements the platform logs (no inference: MLflow loads the model in a process)
        pip_requirements=lineage.model_requirements(ROOT / "requirements.lock"),
    )  # fmt: skip
    loaded = loading.load_sklearn(str(folder), loading.trusted_types(problem), local=folder)
    test_rows = pipeline.model_input(settings, prepared.split.test)
    again = metrics.predict(loaded, test_rows, "regression")
    assert pipeline.predictions_digest(again) == pipeline.predictions_digest(trained.predictions)


def test_a_log_target_is_refused_for_a_classifier(project):
    settings = load_settings(
        "dev", problem="synthetic_binary", root=project, overrides=("params.log_target=true",)
    )
    with pytest.raises(ConfigError, match=r"params.log_target .* is a binary task"):
        load_problem(settings, project)
