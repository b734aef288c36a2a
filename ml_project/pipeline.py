"""The training pipeline: the only place that knows the order of the steps.

lineage check -> read tables -> validate each table -> records + label (the problem) -> sample
-> split -> validate model input -> fit -> score -> log -> register -> MLflow evaluation -> gate
-> aliases (promotion.py). Invalid data ends in a FAILED run and no model; the run's life
(started, ended, or abandoned on any failure) is run_life.training_run's. Each stage logs one
line as it ends (name, seconds, rows) and its seconds as the metric `time_<stage>_s`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

import ml_project
from ml_project import (
    aside,
    data,
    drift,
    lineage,
    loading,
    metrics,
    progress,
    promotion,
    recovery,
    registry,
    run_life,
    snapshots,
    tracking,
    validation,
)
from ml_project.errors import DataError, DirtyTreeError, GateFailedError, received_stop
from ml_project.evaluation import HeldOut, log_evaluation
from ml_project.inputs import Inputs, dataset_source, locate, read_inputs
from ml_project.lineage import REBUILD_PROTOCOL as REBUILD_PROTOCOL
from ml_project.metrics import Predictions, StagedLoss
from ml_project.problem import Problem
from ml_project.records import PreparedData
from ml_project.records import file_digests as file_digests
from ml_project.records import model_input as model_input
from ml_project.records import prepare_data as prepare_data
from ml_project.records import read_tables as read_tables
from ml_project.records import table_paths as table_paths
from ml_project.results import EXACT
from ml_project.settings import PROBLEMS_FOLDER, Settings
from ml_project.sources import Location
from ml_project.time_features import derived_names
from ml_project.vocabulary import (
    ALLOW_DIRTY,
    CONFIG_HASH,
    DATA_TABLES,
    ENV,
    FEATURES_DIGEST,
    MODEL_CONTENT,
    MODEL_FILES,
    PREDICTIONS_DIGEST,
    PROBLEM,
    SEED,
    TASK,
    Task,
)
from ml_project.vocabulary import (
    REBUILD_PROTOCOL as REBUILD_PROTOCOL_TAG,
)

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.models import ModelSignature
    from mlflow.models.model import ModelInfo

NAN_KEPT = {"json": EXACT}
MODEL_ARTIFACT = "model"
OVERLAP = "overlap"  # the stage of seconds counted twice (StageTimer.side_by_side)
OVERLAP_SHOWN_S = 0.005
OVERLAP_SAID = "of the data checks ran beside the fit (counted in both stages above)"


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
    """Wall seconds per pipeline stage, logged as metrics `time_<stage>_s`; each stage's
    progress line as it ends (progress.stage). A stage does not start once the process was sent
    a stop signal: the signal's own raise can be lost (one landing in a finalizer or a garbage
    collection callback is printed and dropped by Python), its record is not."""

    seconds: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def stage(self, name: str, rows: int | None = None) -> Iterator[progress.Stage]:
        if (stop := received_stop()) is not None:
            raise stop
        current = progress.Stage(name)
        try:
            with progress.stage(name, rows) as current:
                yield current
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + current.seconds

    def add(self, name: str, seconds: float, *, detail: str = "") -> None:
        """Seconds of a stage timed elsewhere (a check in a forked child), and its line."""
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds
        progress.line(name, seconds, detail=detail)

    @contextmanager
    def side_by_side(self) -> Iterator[None]:
        """Stages timed in the block may run at once (a check aside, beside the features and the
        fit): the seconds they count beyond the block's wall time are the stage `overlap`,
        negative, so that the stages still add up to the training's wall time (its line says how
        many seconds overlapped)."""
        counted, started = sum(self.seconds.values()), time.perf_counter()
        try:
            yield
        finally:
            twice = sum(self.seconds.values()) - counted - (time.perf_counter() - started)
            if twice > OVERLAP_SHOWN_S:
                self.seconds[OVERLAP] = self.seconds.get(OVERLAP, 0.0) - twice
                progress.line(OVERLAP, twice, detail=OVERLAP_SAID)


def fit_and_score(settings: Settings, problem: Problem, prepared: PreparedData) -> TrainedModel:
    """Fit the problem's model on the train rows, score it and a baseline on the held-out rows
    (the task's metrics and the problem's own), and stage its held-out loss per iteration."""
    train, test = prepared.split.train, prepared.split.test
    model = problem.build_model(settings)
    train_rows = model_input(settings, train)
    model.fit(train_rows, train[prepared.label])
    # the held-out rows through the transforming steps once, for predict, predict_proba and
    # the staged loss (the same numbers as three passes of the whole pipeline)
    last, test_features = metrics.final_step(model, model_input(settings, test))
    predictions = metrics.predict(last, test_features, settings.task)
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
        staged=metrics.staged_loss(last, test_features, labels, settings.task),
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
        FEATURES_DIGEST: trained.features_digest,
        PREDICTIONS_DIGEST: predictions_digest(trained.predictions),
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
    settings: Settings,
    prepared: PreparedData,
    trained: TrainedModel,
    tables: dict[str, pd.DataFrame],
) -> None:
    """A sample of the transformed features, and the schema of each raw table, as artifacts."""
    import mlflow

    sample = feature_sample(settings, trained.model, prepared.split.train)
    mlflow.log_text(sample.to_csv(index=False), "features/sample.csv")
    schema = {name: {str(c): str(t) for c, t in f.dtypes.items()} for name, f in tables.items()}
    mlflow.log_dict(schema, "data/schema.json")


def reference_profile(
    settings: Settings, prepared: PreparedData, trained: TrainedModel
) -> dict[str, Any]:
    """What the model saw, for `ml-project monitor`: training features, held-out scores (pure).
    Time features (the timestamps, and what a feature step derives from them) get a range."""
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
    paths: Mapping[str, Location],
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
    rows = model_input_rows(settings, prepared)
    source = input_source(settings)
    return validation.validate_model_input(rows, settings, root, source=source, reuse=reuse)


def model_input_rows(settings: Settings, prepared: PreparedData) -> pd.DataFrame:
    """Every row about to be fitted or evaluated, in model columns, as the model reads them."""
    split = prepared.split
    rows = pd.concat(
        [split.train[prepared.columns], split.test[prepared.columns]], ignore_index=True
    )
    return data.with_iso_times(rows, settings.features.datetime)


def input_source(settings: Settings) -> str:
    return f"records of problem {settings.problem}, rows used"


def run_validation(settings: Settings, *, root: Path) -> list[validation.ValidationReport]:
    """Read the inputs and run every suite, as training would; DataError if any fails."""
    inputs = read_inputs(settings, root)
    reports = validate_tables(settings, inputs.tables, inputs.paths, root)
    if all(report.success for report in reports):
        reports.append(validate_prepared(settings, inputs.prepare(), root))
    if not all(report.success for report in reports):
        raise DataError(validation.failure_message(reports, context=f" (env {settings.env})"))
    return reports


def _log_validation(
    reports: list[validation.ValidationReport], *, metrics: bool = True
) -> dict[str, float]:
    """The full validation result as validation/results.json, and a few metrics (logged here,
    or returned for the caller's own batch with `metrics=False`)."""
    import mlflow

    mlflow.log_dict(validation.results_document(reports), "validation/results.json")
    values: dict[str, float] = {}
    for report in reports:
        values[f"validation_{report.table}_evaluated"] = report.evaluated
        values[f"validation_{report.table}_failed"] = len(report.failures)
    if metrics:
        mlflow.log_metrics(values)
    return values


def source_tags(inputs: Inputs) -> dict[str, str]:
    """Where each table came from: `data.tables` (names), `data.table.<name>.path/sha256/rows`."""
    tags = {DATA_TABLES: ",".join(inputs.paths)}
    for name, path in inputs.paths.items():
        tags[f"data.table.{name}.path"] = str(path)
        tags[f"data.table.{name}.sha256"] = inputs.digests[name]
        tags[f"data.table.{name}.rows"] = str(len(inputs.tables[name]))
    return tags


def identity_tags(settings: Settings, git: lineage.GitInfo, *, allow_dirty: bool) -> dict[str, str]:
    """The tags a training run starts with, before any data is read: env, code, config, seed."""
    return {
        ENV: settings.env,
        PROBLEM: settings.problem,
        ALLOW_DIRTY: str(allow_dirty).lower(),
        **git.as_tags(),
        CONFIG_HASH: settings.config_hash(),
        SEED: str(settings.seed),
    }


def stop_on_invalid_data(
    settings: Settings,
    reports: list[validation.ValidationReport],
    *,
    root: Path,
) -> None:
    """If a suite failed: the active training run records the full result, then DataError
    (the run then ends FAILED: run_life)."""
    if all(report.success for report in reports):
        return
    import mlflow

    run = mlflow.active_run()
    assert run is not None  # read_check_and_fit runs inside the training's run
    mlflow.set_tags(
        {
            **validation.run_tags(reports, settings, root),
            "mlflow.runName": f"{run.info.run_name}-invalid-data",
        }
    )
    mlflow.log_text(settings.to_yaml(), "config/settings.yaml")
    _log_validation(reports)
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
    metrics: dict[str, float] = field(metadata=NAN_KEPT)  # NaN: undefined on these rows
    baseline_metrics: dict[str, float] = field(metadata=NAN_KEPT)
    rows: dict[str, int]
    lineage: dict[str, str]
    timings: dict[str, float]
    gate: promotion.GateOutcome
    settled_versions: list[str] = field(default_factory=list)  # what interrupted runs left
    validation: list[str] = field(default_factory=list)  # one line per suite: checked or reused

    @property
    def task_metrics(self) -> list[str]:
        """The task's metrics (not the problem's own) it has, in the task's order."""
        return [name for name in metrics.metrics_of(self.task) if name in self.metrics]


def lineage_tags(
    settings: Settings,
    git: lineage.GitInfo,
    inputs: Inputs,
    prepared: PreparedData,
    *,
    allow_dirty: bool,
) -> dict[str, str]:
    """Every tag that ties a run and its model version to code, config, seed, data, software."""
    tags = {
        **identity_tags(settings, git, allow_dirty=allow_dirty),
        **source_tags(inputs),
        TASK: settings.task,
        REBUILD_PROTOCOL_TAG: REBUILD_PROTOCOL,
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


def open_store(
    settings: Settings, root: Path
) -> tuple[MlflowClient, list[str], validation.VerdictLookup]:
    """Fail fast, before any data is read: the store answers; what stopped runs left there is
    settled; and how passed validation verdicts are looked up (or not)."""
    client = tracking.connect(root)
    settled = recovery.settle_orphans(
        client, settings.model_name, experiment=settings.experiment_name
    )
    reuse: validation.VerdictLookup = (
        tracking.verdict_lookup(client, settings.experiment_name)
        if settings.validation.reuse_verdicts
        else validation.nothing_reused  # every suite runs; its passed verdicts are still keyed
    )
    return client, settled, reuse


@dataclass(frozen=True)
class PlannedCheck:
    """A check ready to run: the call, whether it has anything to check (else it is made at
    once: every verdict was found), and the seconds spent planning it here."""

    work: Callable[[], list[validation.ValidationReport]]
    aside: bool
    seconds: float


def plan_table_check(
    inputs: Inputs, root: Path, reuse: validation.VerdictLookup, *, ask_now: bool
) -> PlannedCheck:
    """The tables' check: their suites read (a bad file is said here) and, when verdicts are
    reused, the store asked now, in this process (the check may run in a forked child)."""
    started = time.perf_counter()
    settings, tables = inputs.settings, inputs.tables
    validators = validation.validators_of(tables, settings=settings, root=root)
    found = False
    if ask_now:
        reuse, found = validation.asked_now(tables, validators, reuse)
    sources = {name: str(path) for name, path in inputs.paths.items()}

    def check() -> list[validation.ValidationReport]:
        return validation.validate_frames(
            tables, settings=settings, root=root, sources=sources, reuse=reuse,
            validators=validators,
        )  # fmt: skip

    return PlannedCheck(check, not found, time.perf_counter() - started)


def plan_input_check(
    settings: Settings,
    prepared: PreparedData,
    root: Path,
    reuse: validation.VerdictLookup,
    *,
    ask_now: bool,
) -> PlannedCheck:
    """The model input's check (validate_prepared), planned as the tables' is."""
    started = time.perf_counter()
    validator = validation.TableValidator(validation.MODEL_INPUT, settings=settings, root=root)
    source = input_source(settings)
    if not ask_now:  # the rows are made where the check runs

        def check() -> list[validation.ValidationReport]:
            return [validator(model_input_rows(settings, prepared), source=source, reuse=reuse)]

        return PlannedCheck(check, True, time.perf_counter() - started)
    rows = model_input_rows(settings, prepared)
    tables, validators = {validation.MODEL_INPUT: rows}, {validation.MODEL_INPUT: validator}
    answered, found = validation.asked_now(tables, validators, reuse)
    seconds = time.perf_counter() - started

    def check_rows() -> list[validation.ValidationReport]:
        return [validator(rows, source=source, reuse=answered)]

    return PlannedCheck(check_rows, not found, seconds)


@dataclass
class Verdicts:
    """A training's checks as their verdicts come in, in order: each check's reports kept, its
    seconds timed, and the training stopped (stop_on_invalid_data) at the first refusal."""

    settings: Settings
    root: Path
    timer: StageTimer
    reports: list[validation.ValidationReport] = field(default_factory=list)
    taken: list[object] = field(default_factory=list)

    def take(
        self, check: aside.Pending[list[validation.ValidationReport]], planned: PlannedCheck
    ) -> None:
        if any(check is seen for seen in self.taken):
            return
        reports = check()  # waits for the child's answer
        self.taken.append(check)
        aside_said = "in a child process beside the fit" if check.pid else ""
        self.timer.add("validation", planned.seconds + check.seconds, detail=aside_said)
        self.reports += reports
        stop_on_invalid_data(self.settings, self.reports, root=self.root)


def read_check_and_fit(
    inputs: Inputs,
    timer: StageTimer,
    *,
    root: Path,
    reuse: validation.VerdictLookup,
    ask_now: bool,
) -> tuple[Inputs, PreparedData, list[validation.ValidationReport], TrainedModel]:
    """Read the tables, make the rows, then check the tables and the model input in one forked
    child (aside.beside: great-expectations imported once, there) beside the fit; invalid data
    stops here (inside the training's run, which records why) as soon as its verdict is in, and
    nothing is logged before it is. Where nothing may be forked, each check runs here first, as
    the work it guards waits for it."""
    import mlflow

    settings = inputs.settings
    with timer.stage("reading") as stage:
        inputs = inputs.read()
        stage.rows = sum(len(table) for table in inputs.tables.values())
        mlflow.set_tags(source_tags(inputs))  # what the run read, whatever stops it later
    verdicts = Verdicts(settings, root, timer)
    with timer.side_by_side():  # the planning too: a lookup's seconds count as validation's
        tables = plan_table_check(inputs, root, reuse, ask_now=ask_now)

        def check_tables_here() -> None:  # once: a refusal stops the training
            if not verdicts.reports:
                verdicts.take(aside.Pending.called(TABLES_CHECK, tables.work), tables)

        if not (tables.aside and aside.allowed()):  # checked here, before the features, as ever
            check_tables_here()
        prepared = build_features(inputs, timer, check_tables_here)
        rows = plan_input_check(settings, prepared, root, reuse, ask_now=ask_now)
        planned = rows if verdicts.reports else both_checks(tables, rows)
        trained = check_and_fit(inputs, prepared, verdicts, planned)
    return inputs, prepared, verdicts.reports, trained


TABLES_CHECK, CHECKS = "the tables' check", "the data checks"


def both_checks(tables: PlannedCheck, rows: PlannedCheck) -> PlannedCheck:
    """The tables' check, then (when every table passed) the model input's, as one check."""

    def check() -> list[validation.ValidationReport]:
        reports = tables.work()
        return reports + rows.work() if all(report.success for report in reports) else reports

    return PlannedCheck(check, tables.aside or rows.aside, tables.seconds + rows.seconds)


def check_and_fit(
    inputs: Inputs, prepared: PreparedData, verdicts: Verdicts, planned: PlannedCheck
) -> TrainedModel:
    """`planned` beside the fit (a refusal stops the training at once, abandoning the fit), or
    here before it when it may not be forked or has nothing to check; its verdict is taken
    before the fitted model is returned."""
    with aside.beside(planned.work, what=CHECKS, aside=planned.aside) as check:
        if check.done:  # checked here, at once: before the fit
            verdicts.take(check, planned)
        fitted = fit_aside(
            inputs.settings, inputs.problem, prepared, verdicts.timer, now=check.done
        )
        verdicts.take(check, planned)  # a refusal does not wait for the fit
        return fitted()


def build_features(
    inputs: Inputs, timer: StageTimer, tables_verdict: Callable[[], None]
) -> PreparedData:
    """The problem's records, label, sample and split; if they fail while the tables are being
    checked, a refused table is what the training says (the tables' verdict first)."""
    try:
        with timer.stage("features") as stage:
            prepared = inputs.prepare()
            stage.rows = len(prepared.split.train) + len(prepared.split.test)
    except Exception:
        tables_verdict()
        raise
    return prepared


def fit_aside(
    settings: Settings, problem: Problem, prepared: PreparedData, timer: StageTimer, *, now: bool
) -> Callable[[], TrainedModel]:
    """A function returning fit_and_score's model: fitted in a thread while checks run (a
    refusal abandons it), or here when `now` (every verdict is in). scikit-learn's settings are
    per thread: the caller's go along."""
    import sklearn

    config = sklearn.get_config()

    def fit() -> TrainedModel:
        with sklearn.config_context(**config), timer.stage("fit", rows=len(prepared.split.train)):
            return fit_and_score(settings, problem, prepared)

    if now:
        trained = fit()
        return lambda: trained
    return aside.in_thread(fit, name="fit").result


def run_training(settings: Settings, *, root: Path, allow_dirty: bool = False) -> TrainResult:
    """Train, evaluate and register one model version of `settings.env`, then gate it."""
    timer = StageTimer()
    with timer.stage("imports"):  # MLflow's, unless the CLI already paid for them
        import mlflow
    git = lineage.git_info(root)
    check_tree(settings, git, allow_dirty=allow_dirty)
    located = locate(settings, root)
    with timer.stage("store"):
        client, settled, reuse = open_store(settings, root)
    experiment_id = tracking.ensure_experiment(client, settings.experiment_name)
    training = run_life.training_run(  # the run covers reading, validation, fit, evaluation, gate
        client,
        settings,
        experiment_id=experiment_id,
        run_name=tracking.run_name("train", settings.env, git.commit[:7] or "nogit"),
        tags=identity_tags(settings, git, allow_dirty=allow_dirty),
        commit=git.commit,
    )
    with training as life:
        inputs, prepared, reports, trained = read_check_and_fit(
            located, timer, root=root, reuse=reuse, ask_now=settings.validation.reuse_verdicts
        )
        tags = {
            **lineage_tags(settings, git, inputs, prepared, allow_dirty=allow_dirty),
            **validation.run_tags(reports, settings, root),
            **fingerprint_tags(trained),
        }
        held_out = HeldOut.of(inputs, prepared, trained.baseline)
        with timer.stage("logging"):
            mlflow.set_tags(tags)
            info = log_training(settings, inputs, prepared, trained, reports, root)
            tags[MODEL_FILES] = record_model_files(info)
        with timer.stage("evaluation", rows=len(held_out.test)):  # before anything is registered
            log_evaluation(
                info.model_uri, held_out, fitted=trained.model, predictions=trained.predictions
            )
        outcome = register_and_gate(client, held_out, trained, tags, life, timer, git.commit)
        version = outcome.version
        mlflow.log_metrics({f"time_{key}_s": value for key, value in timer.seconds.items()})
    result = TrainResult(
        **train_identity(settings, tracking.redact(client.tracking_uri), experiment_id),
        run_id=life.run_id,
        model_version=version,
        model_uri=f"models:/{settings.model_name}/{version}",
        metrics=trained.metrics,
        baseline_metrics=trained.baseline_metrics,
        rows=prepared.rows,
        lineage=result_lineage(tags),
        timings=dict(timer.seconds),
        gate=outcome,
        settled_versions=settled,
        validation=[validation.verdict_line(report) for report in reports],
    )
    if not outcome.passed:  # after the run is logged and the version tagged: fail closed
        raise GateFailedError(outcome.failure_message(settings.env), result=result)
    return result


def register_and_gate(
    client: MlflowClient,
    held_out: HeldOut,
    trained: TrainedModel,
    tags: dict[str, str],
    life: run_life.RunLife,
    timer: StageTimer,
    commit: str,
) -> promotion.GateOutcome:
    """Register the logged model as a version (with its lineage tags), then gate it."""
    name = held_out.settings.model_name
    with timer.stage("registration"):
        life.version = promotion.register(
            f"runs:/{life.run_id}/{MODEL_ARTIFACT}",
            name,
            tags=registry.version_lineage(tags, life.run_id),
        )
    with timer.stage("gate"):
        outcome = promotion.gate_version(
            client,
            held_out,
            version=life.version,
            predictions=trained.predictions,
            staged=trained.staged,
            commit=commit,
            run_id=life.run_id,
        )
        life.verdict = outcome.status
    return outcome


def train_identity(settings: Settings, tracking_uri: str, experiment_id: str) -> dict[str, str]:
    """Where a training's result belongs: env, problem, task, store, experiment, model."""
    return {
        "env": settings.env,
        "problem": settings.problem,
        "task": settings.task,
        "tracking_uri": tracking_uri,
        "experiment_id": experiment_id,
        "model_name": settings.model_name,
    }


def result_lineage(tags: dict[str, str]) -> dict[str, str]:
    """The lineage a training's result shows: git, data digests, split, config hash, seed."""
    shown = {
        key: value for key, value in tags.items() if key.startswith(("git.", "data.d", "split."))
    }
    return shown | {CONFIG_HASH: tags[CONFIG_HASH], SEED: tags[SEED]}


def unlogged(params: dict[str, Any]) -> dict[str, Any]:
    """`params` less those the active run already holds with the same value or empty: `mlflow
    run` logs its entry point's parameters first (`problem=''` for the default problem), and
    MLflow refuses to change a logged param. The resolved value is in config/settings.yaml and
    the run's tags; any other difference is left for MLflow to refuse."""
    import mlflow

    run = mlflow.active_run()
    if run is None:
        return params
    logged = run.data.params  # as the run was at its start: what `mlflow run` logged before
    kept = ("", "''", '""')
    return {
        key: value
        for key, value in params.items()
        if key not in logged or (logged[key] not in kept and logged[key] != str(value))
    }


def log_training(
    settings: Settings,
    inputs: Inputs,
    prepared: PreparedData,
    trained: TrainedModel,
    reports: list[validation.ValidationReport],
    root: Path,
) -> ModelInfo:
    """Everything a training run records before its model is evaluated: params, config,
    the lock file, datasets, validation, fingerprints, metrics, the monitoring profile, the
    model."""
    import mlflow

    mlflow.log_params(unlogged(tracking.flatten(settings.model_dump(mode="json"))))
    mlflow.log_text(settings.to_yaml(), "config/settings.yaml")
    lock = root / "requirements.lock"
    if lock.is_file():
        mlflow.log_artifact(str(lock), "environment")
    _log_datasets(settings, prepared, inputs)
    snapshots.keep(settings, inputs, prepared, root=root)
    checked = _log_validation(reports, metrics=False)
    _log_fingerprints(settings, prepared, trained, inputs.tables)
    mlflow.log_dict(reference_profile(settings, prepared, trained), drift.PROFILE_ARTIFACT)
    # one batch (one store write) for the metrics the logged model is linked to
    mlflow.log_metrics(
        checked
        | {f"test_{k}": v for k, v in trained.metrics.items()}
        | {f"baseline_{k}": v for k, v in trained.baseline_metrics.items()}
        | {f"rows_{key}": float(value) for key, value in prepared.rows.items()}
    )
    with loading.own_files():
        return _log_model(settings, inputs.problem, prepared, trained, root)


def record_model_files(info: ModelInfo) -> str:
    """The sha256 of the logged model's files as the store holds them, tagged on the run: what
    every loader checks the files against (loading.py); and the skops file's content digest,
    which two identical retrains share and `reproduce` compares (model_digest.py)."""
    import mlflow

    digests, content = loading.uploaded_digests(info.artifact_path)
    mlflow.set_tags({MODEL_FILES: digests, MODEL_CONTENT: content})
    return digests


def _log_datasets(settings: Settings, prepared: PreparedData, inputs: Inputs) -> None:
    """Register the train and test rows as MLflow datasets, with our full-content digests."""
    source = dataset_source(list(inputs.paths.values()))
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
        tracking.log_input(dataset, context=context)


def output_type(labels: pd.Series, task: Task) -> str:
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


def _log_model(
    settings: Settings,
    problem: Problem,
    prepared: PreparedData,
    trained: TrainedModel,
    root: Path,
) -> ModelInfo:
    """Log the fitted Pipeline (skops) with signature, example, pinned requirements and the
    code it imports (ml_project and problems/)."""
    import mlflow.sklearn

    example = model_input(settings, prepared.split.test.head(5))
    info: ModelInfo = mlflow.sklearn.log_model(
        trained.model,
        name=MODEL_ARTIFACT,
        signature=model_signature(settings, prepared.split.train[prepared.label]),
        input_example=example,
        pip_requirements=lineage.model_requirements(root / "requirements.lock"),
        skops_trusted_types=loading.trusted_types(problem),
        code_paths=[str(Path(ml_project.__file__).parent), str(Path(root) / PROBLEMS_FOLDER)],
    )
    return info
