"""The flights model on the real data: quality floor, bitwise determinism, behaviour."""

from pathlib import Path

import numpy as np
import pytest

from ml_project import pipeline
from ml_project.problem import load_problem
from ml_project.settings import load_settings

ROOT = Path(__file__).resolve().parents[3]


def flights_settings(env, **options):
    return load_settings(env, problem="flights", root=ROOT, **options)


def prepare(settings, tables):
    return pipeline.prepare_data(settings, load_problem(settings, ROOT), tables)


@pytest.fixture(scope="module")
def raw_tables():
    return pipeline.read_tables(pipeline.table_paths(flights_settings("prod"), ROOT))


@pytest.fixture(scope="module")
def staging(raw_tables):
    settings = flights_settings("staging")
    prepared = prepare(settings, raw_tables)
    trained = pipeline.fit_and_score(settings, load_problem(settings, ROOT), prepared)
    return settings, prepared, trained


def test_quality_floor_on_held_out_rows(staging):
    _, prepared, trained = staging
    assert prepared.rows["test"] > 5000
    assert trained.metrics["roc_auc"] >= 0.72
    assert trained.metrics["pr_auc"] >= 0.45
    assert trained.metrics["brier"] <= 0.16
    assert trained.metrics["roc_auc"] > trained.baseline_metrics["roc_auc"] + 0.2
    assert trained.metrics["brier"] < trained.baseline_metrics["brier"] - 0.02


def test_same_inputs_give_bitwise_identical_model(staging, raw_tables):
    settings, prepared, trained = staging
    problem = load_problem(settings, ROOT)
    again = pipeline.fit_and_score(settings, problem, prepare(settings, raw_tables))
    assert again.predictions.matrix().tobytes() == trained.predictions.matrix().tobytes()
    assert again.predictions.score.tobytes() == trained.predictions.score.tobytes()
    assert pipeline.predictions_digest(again.predictions) == pipeline.predictions_digest(
        trained.predictions
    )
    assert again.features_digest == trained.features_digest


def test_a_different_seed_changes_the_rows(raw_tables):
    base = flights_settings("staging")
    other = flights_settings("staging", seed=base.seed + 1)
    a = prepare(base, raw_tables)
    b = prepare(other, raw_tables)
    assert a.digests["digest"] != b.digests["digest"]


def test_staging_uses_the_configured_subset_and_prod_everything(raw_tables):
    staging = prepare(flights_settings("staging"), raw_tables)
    prod = prepare(flights_settings("prod"), raw_tables)
    labelled = prod.rows["labelled"]
    assert prod.rows["records"] == len(raw_tables["flights"]) == 336_776
    assert prod.rows["used"] == labelled == 327_346
    assert prod.rows["unlabelled_dropped"] == 9_430
    assert abs(staging.rows["used"] / labelled - 0.1) < 0.005


def test_bad_weather_raises_the_delay_probability(staging):
    """Directional: heavy rain and fog at departure make a late arrival more likely."""
    _, prepared, trained = staging
    rows = prepared.split.test[prepared.columns].head(500)
    stormy = rows.assign(precip=0.5, visib=0.5, wind_gust=45.0)
    calm = rows.assign(precip=0.0, visib=10.0, wind_gust=np.nan)
    model = trained.model
    assert model.predict_proba(stormy)[:, 1].mean() > model.predict_proba(calm)[:, 1].mean()


def test_evening_departures_are_later_than_early_morning(staging):
    """Minimum functionality: delays build up through the day (a known effect in this data)."""
    _, prepared, trained = staging
    rows = prepared.split.test[prepared.columns].head(500)
    morning = rows.assign(sched_dep_time=600)
    evening = rows.assign(sched_dep_time=1900)
    model = trained.model
    assert model.predict_proba(evening)[:, 1].mean() > model.predict_proba(morning)[:, 1].mean()


def test_unused_columns_do_not_change_predictions(staging):
    """Invariance: extra columns (flight number, tail number, even the outcome) are ignored."""
    _, prepared, trained = staging
    rows = prepared.split.test[prepared.columns].head(200)
    noisy = rows.assign(flight=1, tailnum="N0000", arr_delay=999.0)
    np.testing.assert_array_equal(
        trained.model.predict_proba(rows), trained.model.predict_proba(noisy)
    )
