"""MLflow's evaluation of a model on an env's held-out rows (metrics `eval_*`, curves, plots).

`HeldOut` is what training and the gate share of those rows: the rows, their digest, the tables
they came from (to tell which of them a champion trained on) and a feature-blind baseline.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd

from ml_project import data, loading, metrics, records, tracking
from ml_project.inputs import Inputs, read_inputs
from ml_project.problem import Problem
from ml_project.records import PreparedData
from ml_project.settings import Settings
from ml_project.vocabulary import EVALUATION_SKIPPED


@dataclass(frozen=True)
class HeldOut:
    """An env's held-out rows, and what is needed to tell which of them a model trained on."""

    settings: Settings
    problem: Problem
    test: pd.DataFrame  # key columns, raw model columns and the label
    digest: str
    tables: dict[str, pd.DataFrame]  # the raw tables they came from
    file_digests: dict[str, str]
    source: str  # where the rows came from (for the MLflow dataset)
    baseline: metrics.Predictions  # a model that ignores the features, on the same rows

    @classmethod
    def of(cls, inputs: Inputs, prepared: PreparedData, baseline: metrics.Predictions) -> HeldOut:
        return cls(
            settings=inputs.settings,
            problem=inputs.problem,
            test=prepared.split.test,
            digest=prepared.digests["test_digest"],
            tables=inputs.tables,
            file_digests=inputs.digests,
            source=inputs.source,
            baseline=baseline,
        )

    @property
    def baseline_metrics(self) -> dict[str, float]:
        return self.scores(self.baseline)

    def scores(self, predictions: metrics.Predictions) -> dict[str, float]:
        """The task's metrics and the problem's own of `predictions` on these rows."""
        return metrics.compute(self.settings.task, self.labels, predictions, self.problem.metrics)

    @property
    def labels(self) -> np.ndarray:
        return cast(np.ndarray, self.test[self.settings.data.label].to_numpy())

    def model_rows(self, keep: np.ndarray | None = None) -> pd.DataFrame:
        frame = self.test if keep is None else self.test.loc[keep]
        return records.model_input(self.settings, frame)

    def restrict(self, keep: np.ndarray) -> HeldOut:
        test = self.test.loc[keep].reset_index(drop=True)
        return replace(
            self, test=test, digest=data.frame_digest(test), baseline=subset(self.baseline, keep)
        )


def held_out_rows(settings: Settings, root: Path) -> HeldOut:
    """Read the env's data as training does and return its held-out split."""
    inputs = read_inputs(settings, root)
    prepared = inputs.prepare()
    baseline = metrics.baseline_predictions(
        settings.task, prepared.split.train[prepared.label], len(prepared.split.test)
    )
    return HeldOut.of(inputs, prepared, baseline)


def subset(predictions: metrics.Predictions, keep: np.ndarray) -> metrics.Predictions:
    """The predictions of the rows `keep` selects."""
    probabilities = predictions.probabilities
    return metrics.Predictions(
        prediction=predictions.prediction[keep],
        probabilities=None if probabilities is None else probabilities[keep],
        classes=predictions.classes,
    )


def absent_classes(held: HeldOut) -> list[Any]:
    """The model's classes (the train rows') that none of `held`'s rows hold."""
    classes = held.baseline.classes
    return [] if classes is None else sorted(set(classes.tolist()) - set(held.labels.tolist()))


def log_evaluation(
    model_uri: str,
    held: HeldOut,
    *,
    fitted: Any = None,
    predictions: metrics.Predictions | None = None,
) -> dict[str, float]:
    """MLflow's evaluator for the task on `held`'s rows, logged (as `eval_*`) to the active run.

    A classifier goes through its sklearn flavor (curves use `predict_proba`); the rows are the
    MLflow dataset the run logged as its evaluation input. `fitted` (the model `model_uri` was
    logged from) and its `predictions` on the rows spare loading and predicting again. Rows that
    lack one of the model's classes are not evaluated (MLflow's multiclass ROC AUC needs every
    class): the run is tagged `evaluation.skipped` with why.
    """
    import mlflow
    from sklearn.exceptions import UndefinedMetricWarning

    absent = absent_classes(held)
    if absent:
        mlflow.set_tag(
            EVALUATION_SKIPPED,
            f"the held-out rows hold no {', '.join(map(str, absent))} (a time split's newest "
            "period may lack a class); MLflow's evaluator needs every class, the test_* "
            "metrics are computed without it",
        )
        return {}
    settings, label = held.settings, held.settings.data.label
    dataset = tracking.pandas_dataset(
        held.model_rows().assign(**{label: held.labels}),
        source=held.source,
        targets=label,
        name=f"{settings.name}_evaluation",
        digest=held.digest[:36],
    )
    if fitted is None:
        model = loading.pyfunc_of(model_uri, loading.trusted_types(held.problem))
    else:
        assert predictions is not None  # given with `fitted`
        answers = metrics.KnownAnswers(fitted, held.model_rows(), predictions)
        model = loading.as_pyfunc(answers, mlflow.models.Model.load(model_uri))
    # The evaluator guesses a model type from integer labels and warns; the task says it.
    with (
        tracking.quiet_logger("mlflow.models.evaluation.evaluators.classifier"),
        warnings.catch_warnings(),
    ):
        warnings.filterwarnings("ignore", message="The specified dataset source")
        warnings.filterwarnings("ignore", category=UndefinedMetricWarning)  # class unpredicted
        tracking.log_input(dataset, context="evaluation")
        evaluate: Any = mlflow.models.evaluate  # untyped in MLflow
        result = evaluate(
            model=model,
            data=dataset,
            model_type="regressor" if settings.task == "regression" else "classifier",
            evaluators="default",
            evaluator_config={"log_model_explainability": False, "metric_prefix": "eval_"},
        )
    return {key: float(value) for key, value in result.metrics.items()}
