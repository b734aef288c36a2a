"""Model tests on the synthetic problems: determinism, the baseline, a quality floor, seeds."""

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ml_project import pipeline
from ml_project.problem import load_problem
from tests.synthetic import KINDS, make_table, synthetic_settings, write_problem

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("models")
    shutil.copytree(ROOT / "environments", root / "environments")
    for kind in KINDS:
        write_problem(root, kind, rows=100)
    return root


def test_models_are_bitwise_deterministic_and_beat_the_baseline(project):
    for kind in KINDS:
        settings = synthetic_settings(project, kind, overrides=("params.max_iter=20",))
        problem = load_problem(settings, project)
        table = make_table(kind, 800)
        runs = [
            pipeline.fit_and_score(
                settings, problem, pipeline.prepare_data(settings, problem, {"t": table})
            )
            for _ in range(2)
        ]
        assert runs[0].predictions.matrix().tobytes() == runs[1].predictions.matrix().tobytes()
        assert runs[0].features_digest == runs[1].features_digest
        primary = settings.gate.primary_metric
        better = np.greater if settings.task != "regression" else np.less
        assert better(runs[0].metrics[primary], runs[0].baseline_metrics[primary]), kind
        assert isinstance(pipeline.feature_sample(settings, runs[0].model, table), pd.DataFrame)


@pytest.mark.parametrize("kind", KINDS)
def test_the_default_model_clears_the_problems_floors(project, kind):
    settings = synthetic_settings(project, kind)
    problem = load_problem(settings, project)
    prepared = pipeline.prepare_data(settings, problem, {"t": make_table(kind, 3000)})
    trained = pipeline.fit_and_score(settings, problem, prepared)
    for metric, floor in settings.gate.floors.items():
        assert trained.metrics[metric] >= floor, (kind, metric)
    for metric, ceiling in settings.gate.ceilings.items():
        assert trained.metrics[metric] <= ceiling, (kind, metric)


def test_the_seed_changes_the_rows_and_the_model(project):
    table = {"t": make_table("binary", 1000)}
    a = synthetic_settings(project, "binary", overrides=("params.max_iter=10",))
    b = synthetic_settings(project, "binary", overrides=("params.max_iter=10",), seed=a.seed + 1)
    problem = load_problem(a, project)
    first, second = (pipeline.prepare_data(s, problem, table) for s in (a, b))
    assert first.digests["test_digest"] != second.digests["test_digest"]
    assert set(first.split.test["id"]) != set(second.split.test["id"])
