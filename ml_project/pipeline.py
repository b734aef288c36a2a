"""The training pipeline: the only place that knows the order of the steps.

lineage check -> read tables -> validate each table -> records + label (the problem) -> sample
-> split -> validate model input -> fit -> score -> log -> register -> MLflow evaluation -> gate
-> aliases (promotion.py). Invalid data ends in a FAILED run and no model.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ml_project import data, drift, errors, lineage, loading, metrics, registry, validation
from ml_project.errors import (
    DataError,
    DirtyTreeError,
    GateFailedError,
    ProjectError,
    StoreError,
    TrainingFailedError,
)
from ml_project.lineage import REBUILD_PROTOCOL as REBUILD_PROTOCOL
from ml_project.metrics import Predictions, StagedLoss
from ml_project.problem import Problem, load_problem
from ml_project.records import PreparedData, with_iso_times
from ml_project.records import file_digests as file_digests
from ml_project.records import model_input as model_input
from ml_project.records import prepare_data as prepare_data
from ml_project.records import read_tables as read_tables
from ml_project.records import table_paths as table_paths
from ml_project.settings import PROBLEMS_FOLDER, Settings

if TYPE_CHECKING:
    from types import ModuleType

    from mlflow.models import ModelSignature
    from mlflow.models.model import ModelInfo

MODEL_ARTIFACT = "model"


@dataclass(frozen=True)
class TrainedModel:
    model: object
    predictions: Predictions  # on the held-out rows
    metrics: dict[str, float]
    baseline: Predictions  # a model that ignores the features, same rows
    baseline_metrics: dict[str, float]
    features_digest: str
    staged: StagedLoss | None  # held-out loss per boosting iteration (None: no stages)


@dataclass
class StageTimer:
    """Wall seconds per pipeline stage, logged as metrics `time_<stage>_s`."""

    seconds: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start


def fit_and_score(settings: Settings, problem: Problem, prepared: PreparedData) -> TrainedModel:
    """Fit the problem's model on the train rows, score it and a baseline on the held-out rows
    (the task's metrics and the problem's own), and stage its held-out loss per iteration."""
    train, test = prepared.split.train, prepared.split.test
    model = problem.build_model(settings)
    train_rows = model_input(settings, train)
    model.fit(train_rows, train[prepared.label])
    test_rows = model_input(settings, test)
    predictions = metrics.predict(model, test_rows, settings.task)
    labels = test[prepared.label].to_numpy()
    baseline = metrics.baseline_predictions(settings.task, train[prepared.label], len(test))
    own = problem.metrics
    return TrainedModel(
        model=model,
        predictions=predictions,
        metrics=metrics.compute(settings.task, labels, predictions, own),
        baseline=baseline,
        baseline_metrics=metrics.compute(settings.task, labels, baseline, own),
        features_digest=data.frame_digest(pd.DataFrame(transformed(model, train_rows))),
        staged=metrics.staged_loss(model, test_rows, labels, settings.task),
    )


def transformed(model: Any, rows: pd.DataFrame) -> Any:
    """What the model's last step receives: every step but the last (the rows, without one)."""
    return model[:-1].transform(rows) if hasattr(model, "steps") and len(model) > 1 else rows


# Reproducibility records: what `ml-project reproduce` recomputes and compares step by step.
FEATURE_SAMPLE_ROWS = 100


def predictions_digest(predictions: metrics.Predictions) -> str:
    """sha256 of every number the model gave on the held-out rows (float64, in row order):
    P(each class) for a classifier, the value for a regressor. Tag `predictions.digest`."""
    matrix = predictions.matrix()
    frame = pd.DataFrame(matrix, columns=[f"p{i}" for i in range(matrix.shape[1])])
    return data.frame_digest(frame)


def fingerprint_tags(trained: TrainedModel) -> dict[str, str]:
    """Digests of the transformed train matrix and the held-out predictions (run and version)."""
    return {
        "features.digest": trained.features_digest,
        "predictions.digest": predictions_digest(trained.predictions),
    }


def feature_sample(settings: Settings, model: Any, frame: pd.DataFrame) -> pd.DataFrame:
    """The first rows of `frame` as the model's last step receives them."""
    rows = model_input(settings, frame.head(FEATURE_SAMPLE_ROWS))
    values = transformed(model, rows)
    if isinstance(values, pd.DataFrame):
        return values.reset_index(drop=True)
    try:
        names = [str(name) for name in model[:-1].get_feature_names_out()]
    except (AttributeError, ValueError, TypeError):
        names = [str(index) for index in range(np.shape(values)[1])]
    return pd.DataFrame(np.asarray(values), columns=names)


def _log_fingerprints(
    mlflow: ModuleType,
    settings: Settings,
    prepared: PreparedData,
    trained: TrainedModel,
    tables: dict[str, pd.DataFrame],
) -> None:
    """A sample of the transformed features, and the schema of each raw table, as artifacts."""
    sample = feature_sample(settings, trained.model, prepared.split.train)
    mlflow.log_text(sample.to_csv(index=False), "features/sample.csv")
    schema = {name: {str(c): str(t) for c, t in f.dtypes.items()} for name, f in tables.items()}
    mlflow.log_dict(schema, "data/schema.json")


def reference_profile(
    settings: Settings, prepared: PreparedData, trained: TrainedModel
) -> dict[str, Any]:
    """What the model saw, for `ml-project monitor`: training features, held-out scores (pure).
    Time features (the timestamps, and what a feature step derives from them) get a range."""
    from ml_project.time_features import derived_names

    train = model_input(settings, prepared.split.train)
    times = settings.features.datetime
    return drift.reference_profile(
        drift.model_features(trained.model, train),
        trained.predictions.score,
        categorical=settings.features.categorical,
        settings=settings.monitor,
        times=[*times, *derived_names(times)],
    )


def check_tree(settings: Settings, git: lineage.GitInfo, *, allow_dirty: bool) -> None:
    """Refuse a dirty (or unknown) tree where the env requires a clean one."""
    if not git.dirty or not settings.lineage.require_clean_tree or allow_dirty:
        return
    what = (
        "is not a git checkout (and GITHUB_SHA is not set), so the code cannot be traced"
        if git.source == "none"
        else f"has uncommitted changes at commit {git.commit[:12]}"
        + (f" ({', '.join(git.changed[:5])}" if git.changed else "")
        + (f" and {len(git.changed) - 5} more" if len(git.changed) > 5 else "")
        + (")" if git.changed else "")
    )
    raise DirtyTreeError(
        f"The work tree {what}. The {settings.env} env trains only from committed code so that "
        "every model leads back to one commit: commit or stash your changes, or pass "
        "--allow-dirty (it is recorded on the run and the model version)."
    )


def validate_tables(
    settings: Settings,
    tables: dict[str, pd.DataFrame],
    paths: dict[str, Path],
    root: Path,
    *,
    reuse: validation.VerdictLookup | None = None,
) -> list[validation.ValidationReport]:
    """Each table's suite (problems/<problem>/expectations/<table>.yaml) on the raw table."""
    return validation.validate_frames(
        tables,
        settings=settings,
        root=root,
        sources={name: str(path) for name, path in paths.items()},
        reuse=reuse,
    )


def validate_prepared(
    settings: Settings,
    prepared: PreparedData,
    root: Path,
    *,
    reuse: validation.VerdictLookup | None = None,
) -> validation.ValidationReport:
    """The model-input suite on every row about to be fitted or evaluated, in model columns."""
    split = prepared.split
    rows = pd.concat(
        [split.train[prepared.columns], split.test[prepared.columns]], ignore_index=True
    )
    rows = with_iso_times(rows, settings.features.datetime)  # timestamps as the model reads them
    source = f"records of problem {settings.problem}, rows used"
    return validation.validate_model_input(rows, settings, root, source=source, reuse=reuse)


def run_validation(settings: Settings, *, root: Path) -> list[validation.ValidationReport]:
    """Read the inputs and run every suite, as training would; DataError if any fails."""
    problem = load_problem(settings, root)
    paths = table_paths(settings, root)
    tables = read_tables(paths)
    reports = validate_tables(settings, tables, paths, root)
    if all(report.success for report in reports):
        prepared = prepare_data(settings, problem, tables)
        reports.append(validate_prepared(settings, prepared, root))
    if not all(report.success for report in reports):
        raise DataError(validation.failure_message(reports, context=f" (env {settings.env})"))
    return reports


def _log_validation(mlflow: ModuleType, reports: list[validation.ValidationReport]) -> None:
    """The full validation result as validation/results.json, and a few metrics."""
    mlflow.log_dict(validation.results_document(reports), "validation/results.json")
    values = {}
    for report in reports:
        values[f"validation_{report.table}_evaluated"] = report.evaluated
        values[f"validation_{report.table}_failed"] = len(report.failures)
    mlflow.log_metrics(values)


def source_tags(
    paths: dict[str, Path], digests: dict[str, str], tables: dict[str, pd.DataFrame]
) -> dict[str, str]:
    """Where each table came from: `data.tables` (names), `data.table.<name>.path/sha256/rows`."""
    tags = {"data.tables": ",".join(paths)}
    for name, path in paths.items():
        tags[f"data.table.{name}.path"] = str(path)
        tags[f"data.table.{name}.sha256"] = digests[name]
        tags[f"data.table.{name}.rows"] = str(len(tables[name]))
    return tags


def stop_on_invalid_data(
    settings: Settings,
    reports: list[validation.ValidationReport],
    *,
    root: Path,
    git: lineage.GitInfo,
    paths: dict[str, Path],
    source_digests: dict[str, str],
    tables: dict[str, pd.DataFrame],
    allow_dirty: bool,
) -> None:
    """If a suite failed: record a FAILED run holding the full result, then raise DataError."""
    if all(report.success for report in reports):
        return
    import mlflow

    from ml_project import tracking

    client = tracking.connect(root)
    experiment_id = tracking.ensure_experiment(client, settings.experiment_name)
    tags = {
        "ml_project.env": settings.env,
        "ml_project.problem": settings.problem,
        "ml_project.allow_dirty": str(allow_dirty).lower(),
        **git.as_tags(),
        "config.hash": settings.config_hash(),
        "seed": str(settings.seed),
        **source_tags(paths, source_digests, tables),
        **validation.run_tags(reports, settings, root),
    }
    run_name = tracking.run_name("train", settings.env, git.commit[:7] or "nogit", "invalid-data")
    run = mlflow.start_run(experiment_id=experiment_id, run_name=run_name, tags=tags)
    try:
        mlflow.log_text(settings.to_yaml(), "config/settings.yaml")
        _log_validation(mlflow, reports)
    finally:
        mlflow.end_run(status="FAILED")
    raise DataError(
        validation.failure_message(reports, context=f" (env {settings.env})")
        + f"\nThe full result is validation/results.json of run {run.info.run_id} (status "
        f"FAILED) in experiment {settings.experiment_name}; no model was registered."
    )


@dataclass(frozen=True)
class TrainResult:
    """What a training run produced, for the CLI summary and `--json`."""

    env: str
    problem: str
    task: str
    tracking_uri: str
    experiment_id: str
    run_id: str
    model_name: str
    model_version: str
    model_uri: str
    metrics: dict[str, float]
    baseline_metrics: dict[str, float]
    rows: dict[str, int]
    lineage: dict[str, str]
    timings: dict[str, float]
    gate: dict[str, Any] = field(default_factory=dict)
    settled: list[str] = field(default_factory=list)  # versions an interrupted run left
    validation: list[str] = field(default_factory=list)  # one line per suite: checked or reused

    def as_dict(self) -> dict[str, Any]:
        return {
            "env": self.env,
            "problem": self.problem,
            "task": self.task,
            "tracking_uri": self.tracking_uri,
            "experiment_id": self.experiment_id,
            "run_id": self.run_id,
            "model_name": self.model_name,
            "model_version": self.model_version,
            "model_uri": self.model_uri,
            "metrics": self.metrics,
            "baseline_metrics": self.baseline_metrics,
            "rows": self.rows,
            "lineage": self.lineage,
            "timings": self.timings,
            "gate": self.gate,
            "settled_versions": self.settled,
            "validation": self.validation,
        }


def lineage_tags(
    settings: Settings,
    git: lineage.GitInfo,
    prepared: PreparedData,
    paths: dict[str, Path],
    source_digests: dict[str, str],
    tables: dict[str, pd.DataFrame],
    *,
    allow_dirty: bool,
) -> dict[str, str]:
    """Every tag that ties a run and its model version to code, config, seed, data, software."""
    tags = {
        "ml_project.env": settings.env,
        "ml_project.problem": settings.problem,
        "ml_project.task": settings.task,
        "ml_project.rebuild_protocol": REBUILD_PROTOCOL,
        "ml_project.allow_dirty": str(allow_dirty).lower(),
        **git.as_tags(),
        "config.hash": settings.config_hash(),
        "seed": str(settings.seed),
        **source_tags(paths, source_digests, tables),
        **{f"data.{key}": value for key, value in prepared.digests.items()},
        **{f"data.rows_{key}": str(value) for key, value in prepared.rows.items()},
        "data.sample_fraction": str(settings.data.sample_fraction),
        **prepared.split_tags(),
        **{f"env.{key}": value for key, value in lineage.environment_info().items()},
        **{f"pkg.{key}": value for key, value in lineage.package_versions().items()},
    }
    if git.commit:
        tags["mlflow.source.git.commit"] = git.commit
    if git.branch:
        tags["mlflow.source.git.branch"] = git.branch
    if git.remote_url:
        tags["mlflow.source.git.repoURL"] = git.remote_url
    return tags


def _left_behind(settings: Settings, version: str | None, *, recorded: bool) -> str:
    """What a training stopped after its run started left in the store (`recorded`: whether
    `promotion.abandon` could write its cleanup)."""
    if recorded:
        return (
            "The run ended FAILED (its traceback is the run's artifact failure/traceback.txt if "
            "the artifact store took it); "
        ) + (
            f"version {version} of {settings.model_name} is tagged validation_status=failed and "
            "holds no alias."
            if version
            else "nothing was registered."
        )
    left = f"version {version} of {settings.model_name} (no verdict)" if version else "no version"
    return (
        f"The store could not record the failure either, so the run may still read RUNNING, with "
        f"{left}: `ml-project show --env {settings.env}` names it, and the next training of the "
        "env ends the run and tags the version failed (a version without a verdict never serves)."
    )


def _nothing_reused(table: str, key: str) -> None:
    return None


def run_training(settings: Settings, *, root: Path, allow_dirty: bool = False) -> TrainResult:
    """Train, evaluate and register one model version of `settings.env`."""
    timer = StageTimer()
    with timer.stage("imports"):
        import mlflow

        from ml_project import promotion, tracking
    git = lineage.git_info(root)
    check_tree(settings, git, allow_dirty=allow_dirty)
    problem = load_problem(settings, root)
    paths = table_paths(settings, root)
    with timer.stage("store"):  # fail fast: before any data is read
        client = tracking.connect(root)
        settled = promotion.settle_orphans(
            client, settings.model_name, experiment=settings.experiment_name
        )
        reuse: validation.VerdictLookup = (
            tracking.verdict_lookup(client, settings.experiment_name)
            if settings.validation.reuse_verdicts
            else _nothing_reused  # every suite runs; its passed verdicts are still keyed
        )
    with timer.stage("reading"):
        tables = read_tables(paths)
        source_digests = file_digests(paths)
    invalid: dict[str, Any] = {
        "root": root,
        "git": git,
        "paths": paths,
        "source_digests": source_digests,
        "tables": tables,
    }
    with timer.stage("validation"):
        reports = validate_tables(settings, tables, paths, root, reuse=reuse)
    stop_on_invalid_data(settings, reports, allow_dirty=allow_dirty, **invalid)
    with timer.stage("features"):
        prepared = prepare_data(settings, problem, tables)
    with timer.stage("validation"):
        reports.append(validate_prepared(settings, prepared, root, reuse=reuse))
    stop_on_invalid_data(settings, reports, allow_dirty=allow_dirty, **invalid)
    with timer.stage("fit"):
        trained = fit_and_score(settings, problem, prepared)
    tags = lineage_tags(
        settings, git, prepared, paths, source_digests, tables, allow_dirty=allow_dirty
    )
    tags.update(validation.run_tags(reports, settings, root))
    tags.update(fingerprint_tags(trained))

    experiment_id = tracking.ensure_experiment(client, settings.experiment_name)
    run_name = tracking.run_name("train", settings.env, git.commit[:7] or "nogit")
    run = mlflow.start_run(
        experiment_id=experiment_id, run_name=run_name, tags={**tags, **tracking.process_tags()}
    )
    version = None
    try:
        with timer.stage("logging"):
            mlflow.log_params(tracking.flatten(settings.model_dump(mode="json")))
            mlflow.log_text(settings.to_yaml(), "config/settings.yaml")
            lock = root / "requirements.lock"
            if lock.is_file():
                mlflow.log_artifact(str(lock), "environment")
            _log_datasets(mlflow, settings, prepared, paths)
            _log_validation(mlflow, reports)
            _log_fingerprints(mlflow, settings, prepared, trained, tables)
            mlflow.log_metrics({f"test_{k}": v for k, v in trained.metrics.items()})
            mlflow.log_metrics({f"baseline_{k}": v for k, v in trained.baseline_metrics.items()})
            mlflow.log_metrics({f"rows_{key}": value for key, value in prepared.rows.items()})
            mlflow.log_dict(reference_profile(settings, prepared, trained), drift.PROFILE_ARTIFACT)
            with loading.own_files():
                info = _log_model(mlflow, settings, problem, prepared, trained, root)
        held_out = promotion.HeldOut(
            settings=settings,
            problem=problem,
            test=prepared.split.test,
            digest=prepared.digests["test_digest"],
            tables=tables,
            file_digests=source_digests,
            source=str(next(iter(paths.values()))),
            baseline=trained.baseline,
        )
        with timer.stage("evaluation"):  # on the logged model, before anything is registered
            promotion.log_evaluation(
                mlflow,
                info.model_uri,
                held_out,
                fitted=trained.model,
                predictions=trained.predictions,
            )
        with timer.stage("registration"):  # the version is created with its lineage tags
            version = promotion.register(
                f"runs:/{run.info.run_id}/{MODEL_ARTIFACT}",
                settings.model_name,
                tags=registry.version_lineage(tags, run.info.run_id),
            )
        with timer.stage("gate"):
            outcome = promotion.gate_version(
                client,
                held_out,
                version=version,
                predictions=trained.predictions,
                staged=trained.staged,
                commit=git.commit,
                run_id=run.info.run_id,
            )
            mlflow.set_tags({"validation_status": outcome.verdict.status, "model_version": version})
        mlflow.log_metrics({f"time_{key}_s": value for key, value in timer.seconds.items()})
    except BaseException as raised:
        stop = errors.received_stop()
        exc = stop if stop is not None and not isinstance(raised, KeyboardInterrupt) else raised
        recorded = promotion.abandon(
            client, settings, version, run.info.run_id, exc, commit=git.commit
        )
        if exc is not raised:
            raise exc from raised
        left = _left_behind(settings, version, recorded=recorded)
        if isinstance(exc, StoreError):  # what the failed store left, said by the training
            raise StoreError(f"{exc} The run {run.info.run_id} had started: {left}") from exc
        if isinstance(exc, ProjectError | KeyboardInterrupt):
            raise
        raise TrainingFailedError(
            f"Training stopped after its run {run.info.run_id} started: "
            f"{promotion.failure_reason(exc)}. {left}"
        ) from exc
    mlflow.end_run()
    result = TrainResult(
        env=settings.env,
        problem=settings.problem,
        task=settings.task,
        tracking_uri=tracking.redact(client.tracking_uri),
        experiment_id=experiment_id,
        run_id=run.info.run_id,
        model_name=settings.model_name,
        model_version=version,
        model_uri=f"models:/{settings.model_name}/{version}",
        metrics=trained.metrics,
        baseline_metrics=trained.baseline_metrics,
        rows=prepared.rows,
        lineage={
            key: value
            for key, value in tags.items()
            if key.startswith(("git.", "data.d", "split."))
        }
        | {"config.hash": tags["config.hash"], "seed": tags["seed"]},
        timings=dict(timer.seconds),
        gate=outcome.as_dict(),
        settled=settled,
        validation=[validation.verdict_line(report) for report in reports],
    )
    if not outcome.passed:  # after the run is logged and the version tagged: fail closed
        raise GateFailedError(outcome.failure_message(settings.env), result=result)
    return result


def _log_datasets(
    mlflow: ModuleType, settings: Settings, prepared: PreparedData, paths: dict[str, Path]
) -> None:
    """Register the train and test rows as MLflow datasets, with our full-content digests."""
    from ml_project import tracking

    source = ", ".join(str(path) for path in paths.values())
    for context, frame, digest in (
        ("training", prepared.split.train, prepared.digests["train_digest"]),
        ("evaluation", prepared.split.test, prepared.digests["test_digest"]),
    ):
        dataset = tracking.pandas_dataset(
            frame,
            source=source,
            targets=prepared.label,
            name=f"{settings.name}_{context}",
            digest=digest[:36],
        )
        tracking.log_input(mlflow, dataset, context=context)


def output_type(labels: pd.Series, task: str) -> str:
    """The MLflow type of the model's `prediction` column."""
    if task == "regression":
        return "double"
    kind = labels.dtype.kind
    return {"b": "boolean", "i": "long", "u": "long", "f": "double"}.get(kind, "string")


def model_signature(settings: Settings, labels: pd.Series) -> ModelSignature:
    """Raw input columns in model order: categoricals and timestamps (ISO 8601) as strings,
    numbers as doubles (may be NaN); the output is the prediction."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    numeric = set(settings.features.numeric)
    inputs = Schema(
        [
            ColSpec("double" if name in numeric else "string", name)
            for name in settings.features.columns
        ]
    )
    outputs = Schema([ColSpec(output_type(labels, settings.task), "prediction")])
    return ModelSignature(inputs=inputs, outputs=outputs)


def trusted_types(problem: Problem) -> list[str]:
    """What skops trusts when it loads the model: the problem's and the platform's types."""
    return loading.trusted_types(problem)


def _log_model(
    mlflow: ModuleType,
    settings: Settings,
    problem: Problem,
    prepared: PreparedData,
    trained: TrainedModel,
    root: Path,
) -> ModelInfo:
    """Log the fitted Pipeline (skops) with signature, example, pinned requirements and the
    code it imports (ml_project and problems/)."""
    import mlflow.sklearn

    import ml_project

    example = model_input(settings, prepared.split.test.head(5))
    info: ModelInfo = mlflow.sklearn.log_model(
        trained.model,
        name=MODEL_ARTIFACT,
        signature=model_signature(settings, prepared.split.train[prepared.label]),
        input_example=example,
        pip_requirements=lineage.model_requirements(root / "requirements.lock"),
        skops_trusted_types=trusted_types(problem),
        code_paths=[str(Path(ml_project.__file__).parent), str(Path(root) / PROBLEMS_FOLDER)],
    )
    return info
