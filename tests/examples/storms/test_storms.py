"""The storms example (problems/storms/): its suites on the real data, a quality floor for the
staging model and bitwise determinism, in-process (no MLflow)."""

from pathlib import Path

import pytest

from ml_project import pipeline, validation
from ml_project.problem import load_problem
from ml_project.settings import ENVS, load_settings

ROOT = Path(__file__).resolve().parents[3]
TABLES = ["storms", "model_input"]


def storms_settings(env, **options):
    return load_settings(env, problem="storms", root=ROOT, **options)


@pytest.fixture(scope="module")
def raw_tables():
    """{"storms": ...} as configured (the datar package's file)."""
    return pipeline.read_tables(pipeline.table_paths(storms_settings("prod"), ROOT))


@pytest.fixture(scope="module")
def staging(raw_tables):
    settings = storms_settings("staging")
    problem = load_problem(settings, ROOT)
    prepared = pipeline.prepare_data(settings, problem, raw_tables)
    return settings, problem, prepared, pipeline.fit_and_score(settings, problem, prepared)


def test_the_table_ships_in_a_package_with_an_integer_key(raw_tables):
    settings = storms_settings("dev")
    path = pipeline.table_paths(settings, ROOT)["storms"]
    assert path.name == "storms.csv.gz" and "datar" in path.parts
    records = load_problem(settings, ROOT).records(raw_tables)
    assert records["id"].dtype.kind == "i" and records["id"].is_unique
    assert len(records) == len(raw_tables["storms"]) > 10_000


@pytest.mark.parametrize("env", ENVS)
def test_the_suites_pass_on_the_real_data(env, raw_tables):
    settings = storms_settings(env)
    assert list(validation.suite_tables(settings)) == TABLES
    paths = pipeline.table_paths(settings, ROOT)
    reports = pipeline.validate_tables(settings, raw_tables, paths, ROOT)
    prepared = pipeline.prepare_data(settings, load_problem(settings, ROOT), raw_tables)
    reports.append(pipeline.validate_prepared(settings, prepared, ROOT))
    assert [report.table for report in reports] == TABLES
    parameters = validation.suite_parameters(settings)
    for report in reports:
        assert report.success, report.describe()
        path = validation.suite_path(ROOT, report.table, settings)
        assert path == ROOT / "problems" / "storms" / "expectations" / f"{report.table}.yaml"
        assert report.evaluated == len(validation.read_suite(path, parameters).expectations)
    assert reports[0].rows == len(raw_tables["storms"])
    assert reports[1].rows == prepared.rows["used"]


def test_the_suites_catch_a_broken_table(raw_tables):
    settings = storms_settings("dev")
    broken = raw_tables["storms"].assign(status=None)
    (report,) = validation.validate_frames({"storms": broken}, settings=settings, root=ROOT)
    assert not report.success
    assert any(failure.column == "status" for failure in report.failures), report.describe()


def test_staging_quality_floor_on_held_out_rows(staging):
    settings, _, prepared, trained = staging
    assert settings.task == "regression"
    assert prepared.rows["test"] >= settings.gate.min_test_rows
    assert trained.metrics["r2"] >= 0.9
    assert trained.metrics["rmse"] < trained.baseline_metrics["rmse"]
    assert trained.metrics["rmse"] <= settings.gate.ceilings["rmse"]
    assert trained.baseline_metrics["r2"] <= 0.0


def test_same_inputs_give_bitwise_identical_predictions(staging, raw_tables):
    settings, problem, prepared, trained = staging
    again = pipeline.fit_and_score(
        settings, problem, pipeline.prepare_data(settings, problem, raw_tables)
    )
    assert again.predictions.matrix().tobytes() == trained.predictions.matrix().tobytes()
    assert again.features_digest == trained.features_digest
    assert pipeline.predictions_digest(again.predictions) == pipeline.predictions_digest(
        trained.predictions
    )


def test_staging_uses_its_subset_and_prod_everything(raw_tables):
    staging = storms_settings("staging")
    prod = storms_settings("prod")
    used = {
        settings.env: pipeline.prepare_data(settings, load_problem(settings, ROOT), raw_tables)
        for settings in (staging, prod)
    }
    assert used["prod"].rows["used"] == used["prod"].rows["labelled"] == len(raw_tables["storms"])
    share = used["staging"].rows["used"] / used["prod"].rows["used"]
    assert abs(share - staging.data.sample_fraction) < 0.02
