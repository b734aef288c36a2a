"""Watch a model in production: a batch against the reference profile logged at training.

`run_monitor` loads the model (the env's champion by default) and its training run's reference
profile, scores and counts the batch chunk by chunk as `predict` does, and with `--labels`
measures the task's metrics on the problem's own labels against the run's `test_<metric>`
(labels of a class the model never learnt are counted apart). Rows repeating a key are counted;
with `--labels` they refuse the batch. One run is logged to `<experiment>_monitoring`, linked
to the model version; the CLI exits 7 on drift. The arithmetic is in drift.py.
"""

from __future__ import annotations

import csv
import io
import json
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib
import mlflow
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from mlflow.entities import LoggedModelInput
from mlflow.exceptions import MlflowException

from ml_project import data, drift, lineage, metrics, progress, registry, tracking, vocabulary
from ml_project import predict as scoring
from ml_project.errors import ConfigError, DataError, DriftDetectedError, RegistryError
from ml_project.problem import load_problem
from ml_project.settings import Settings

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from ml_project.problem import Problem


EXPERIMENT_SUFFIX = "_monitoring"
TABLE_JSON = "monitoring/drift_table.json"
TABLE_CSV = "monitoring/drift_table.csv"
PLOT = "monitoring/worst_features.png"
REPORT = "monitoring/report.json"


@dataclass(frozen=True)
class MonitorResult:
    """What a monitoring run found (views.monitor_data: `--json`, the summary)."""

    env: str
    input: str
    model_uri: str
    model_name: str
    model_version: str
    model_run_id: str
    tracking_uri: str
    experiment_id: str
    run_id: str
    seconds: float
    report: drift.DriftReport = field(metadata={"json": False})
    duplicate_keys: scoring.DuplicateKeys | None = None  # None: the batch lacks a key column

    @property
    def drifted(self) -> bool:
        return self.report.status == "drift"

    @property
    def exit_code(self) -> int:
        return DriftDetectedError.exit_code if self.drifted else 0


def experiment_name(settings: Settings) -> str:
    return settings.experiment_name + EXPERIMENT_SUFFIX


def check_batch(
    chunk: pd.DataFrame,
    loaded: scoring.LoadedModel,
    *,
    source: str,
    check_chunk: Callable[[pd.DataFrame], None],
) -> pd.DataFrame:
    """The one gate a batch passes before it is monitored: the model-input expectation suite
    (as `predict` runs it), then the model's typed input; DataError (exit 3) otherwise."""
    check_chunk(chunk)
    return scoring.typed_input(chunk, loaded.input_types, source=source)


def load_reference_profile(client: MlflowClient, run_id: str, *, model_uri: str) -> dict[str, Any]:
    """The reference profile logged by the training run of the model, or a RegistryError."""
    if not run_id:
        raise RegistryError(f"Model {model_uri} names no training run: it has no profile.")
    with tempfile.TemporaryDirectory() as folder:
        try:
            path = client.download_artifacts(run_id, drift.PROFILE_ARTIFACT, folder)
            profile: dict[str, Any] = json.loads(Path(path).read_text(encoding="utf-8"))
        except (MlflowException, OSError, ValueError) as exc:
            raise RegistryError(
                f"Model {model_uri}: its training run {run_id} has no readable "
                f"{drift.PROFILE_ARTIFACT} (trained before monitoring existed?). Retrain it to "
                "record a reference profile."
            ) from exc
    if profile.get("format") != drift.PROFILE_FORMAT:
        raise RegistryError(
            f"Model {model_uri}: {drift.PROFILE_ARTIFACT} of run {run_id} has format "
            f"{profile.get('format')!r}; this code reads format {drift.PROFILE_FORMAT}."
        )
    return profile


def check_ignored(settings: Settings, profile: dict[str, Any], *, model_uri: str) -> None:
    """A ConfigError when monitor.ignore names a feature the model does not have."""
    unknown = sorted(set(settings.monitor.ignore) - set(profile["features"]))
    if unknown:
        raise ConfigError(
            f"monitor.ignore names {', '.join(unknown)}, which model {model_uri} does not have "
            f"(its features: {', '.join(profile['features'])})."
        )


def run_monitor(
    settings: Settings,
    *,
    root: Path,
    input_path: Path,
    labels: bool = False,
    model_uri: str | None = None,
    chunk_rows: int = 100_000,
    allow_duplicate_keys: bool = False,
) -> MonitorResult:
    """Compare `input_path` with the model's reference profile and log a monitoring run.

    With `labels`, a batch whose rows repeat a key is refused unless `allow_duplicate_keys`."""
    start = time.perf_counter()
    client = tracking.connect(root)
    loaded, _ = scoring.load_champion(settings, client, root=root, model_uri=model_uri)
    uri, source = loaded.uri, str(input_path)
    profile = load_reference_profile(client, loaded.run_id, model_uri=uri)
    check_ignored(settings, profile, model_uri=uri)
    problem = load_problem(settings, root) if labels else None
    own = problem.metrics if problem is not None else {}
    if problem is not None:  # the metric checked before the batch is read
        primary_metric(settings, loaded.task, model_uri=uri, extra=own)
    counts, outcomes, keys = count_batch(
        loaded,
        profile,
        input_path=input_path,
        chunk_rows=chunk_rows,
        label_of=labeller(problem, settings.data.label, source=source) if problem else None,
        check_chunk=scoring.input_checker(settings, root, source=source),
        key_columns=settings.data.key_columns,
    )
    progress.line("count", time.perf_counter() - start, rows=counts.rows, detail=source)
    check_counted(settings, counts, outcomes, keys, source=source, allow=allow_duplicate_keys)
    quality = measured_quality(client, loaded, outcomes, settings, source=source, extra=own)
    report = drift.assess(counts, settings.monitor, quality=quality)
    experiment_id, run_id = log_monitoring_run(
        client, settings, report, loaded=loaded, input_path=input_path, root=root, keys=keys
    )
    progress.line("monitoring run", time.perf_counter() - start, detail=run_id)
    return MonitorResult(
        env=settings.env,
        input=source,
        model_uri=uri,
        model_name=loaded.name,
        model_version=loaded.version,
        model_run_id=loaded.run_id,
        tracking_uri=tracking.redact(client.tracking_uri),
        experiment_id=experiment_id,
        run_id=run_id,
        seconds=time.perf_counter() - start,
        report=report,
        duplicate_keys=keys,
    )


def measured_quality(
    client: MlflowClient,
    loaded: scoring.LoadedModel,
    outcomes: Outcomes | None,
    settings: Settings,
    *,
    source: str,
    extra: Mapping[str, metrics.Metric],
) -> drift.Quality | None:
    """Live quality of the labelled rows against the training run's metrics (None: unlabelled)."""
    if outcomes is None:
        return None
    recorded = client.get_run(loaded.run_id).data.metrics
    return live_quality(
        outcomes,
        recorded,
        task=loaded.task,
        settings=settings,
        source=source,
        model_uri=loaded.uri,
        extra=extra,
    )


def check_counted(
    settings: Settings,
    counts: drift.BatchCounts,
    outcomes: Outcomes | None,
    keys: scoring.DuplicateKeys | None,
    *,
    source: str,
    allow: bool,
) -> None:
    """A DataError for a labelled batch whose rows repeat keys (unless `allow`) or a batch
    smaller than monitor.min_rows."""
    if outcomes is not None and keys is not None and keys.rows and not allow:
        raise DataError(
            f"{keys.describe(source)}: with --labels their labels would count twice in the live "
            "metrics (a label table joined to more than one row per record, say). Nothing was "
            "logged. Keep one row per key, monitor without --labels (drift counts every row "
            "and reports the repeats), or pass --allow-duplicate-keys to count every row."
        )
    if counts.rows < settings.monitor.min_rows:
        raise DataError(
            f"{source}: {counts.rows} rows; the {settings.env} env monitors batches of at least "
            f"monitor.min_rows={settings.monitor.min_rows} rows (fewer make PSI sampling noise)."
        )


def primary_metric(
    settings: Settings,
    task: str,
    *,
    model_uri: str,
    extra: Mapping[str, metrics.Metric] | None = None,
) -> str:
    """The gate's primary metric, checked against the model's task (and the problem's own
    metrics, `extra`)."""
    name = settings.gate.primary_metric
    known = metrics.metrics_of(task, extra)
    if name not in known:
        raise ConfigError(
            f"gate.primary_metric is {name!r}, which model {model_uri} (a {task} model) has no "
            f"value of: its metrics are {', '.join(known)}. Is --problem the model's problem?"
        )
    return name


def labeller(problem: Problem, column: str, *, source: str) -> Callable[[pd.DataFrame], pd.Series]:
    """The label of each row of a batch chunk, as the problem's own `label()` makes it."""

    def label_of(chunk: pd.DataFrame) -> pd.Series:
        try:
            return problem.label(chunk, column)
        except DataError as exc:
            raise DataError(f"{source} (--labels): {exc}") from exc

    return label_of


@dataclass(frozen=True)
class Outcomes:
    """The labelled rows' labels and the model's predictions on them; rows with no label."""

    labels: np.ndarray
    predictions: metrics.Predictions
    unlabelled: int

    @property
    def rows(self) -> int:
        return len(self.labels)


def count_batch(
    loaded: scoring.LoadedModel,
    profile: dict[str, Any],
    *,
    input_path: Path,
    chunk_rows: int,
    label_of: Callable[[pd.DataFrame], pd.Series] | None,
    check_chunk: Callable[[pd.DataFrame], None],
    key_columns: Sequence[str] = (),
) -> tuple[drift.BatchCounts, Outcomes | None, scoring.DuplicateKeys | None]:
    """Check, score and count the batch chunk by chunk; with `label_of`, keep the labelled
    rows' labels and predictions; when the batch holds `key_columns`, count repeated keys."""
    source = str(input_path)
    counts = drift.BatchCounts(profile)
    labels: list[np.ndarray] = []
    kept: list[metrics.Predictions] = []
    unlabelled = 0
    keys: scoring.DuplicateKeys | None = None
    for chunk in scoring.read_chunks(input_path, chunk_rows=chunk_rows):
        if counts.rows == 0:
            keys = scoring.DuplicateKeys.of_batch(chunk.columns, key_columns)
        if keys is not None:
            keys.add(chunk)
        typed = check_batch(chunk, loaded, source=source, check_chunk=check_chunk)
        said = scoring.predictions(loaded, typed, source=source)
        counts.add(drift.model_features(loaded.model, typed), said.score)
        if label_of is None:
            continue
        positions = pd.DataFrame({"row": np.arange(len(chunk))})
        labelled, dropped = data.label_rows(positions, label_of(chunk), column="label")
        rows = labelled["row"].to_numpy()
        labels.append(labelled["label"].to_numpy())
        kept.append(_rows_of(said, rows))
        unlabelled += dropped
    if label_of is None:
        return counts, None, keys
    return counts, Outcomes(_concat_labels(labels), _concat(kept), unlabelled), keys


def _rows_of(said: metrics.Predictions, rows: np.ndarray) -> metrics.Predictions:
    probabilities = None if said.probabilities is None else said.probabilities[rows]
    return metrics.Predictions(np.asarray(said.prediction)[rows], probabilities, said.classes)


def _concat(parts: list[metrics.Predictions]) -> metrics.Predictions:
    if not parts:
        return metrics.Predictions(np.array([]))
    prediction = np.concatenate([np.asarray(part.prediction) for part in parts])
    if parts[0].probabilities is None:
        return metrics.Predictions(prediction)
    probabilities = np.concatenate([part.probabilities for part in parts])
    return metrics.Predictions(prediction, probabilities, parts[0].classes)


def _concat_labels(parts: list[np.ndarray]) -> np.ndarray:
    kinds = {part.dtype.kind for part in parts if len(part)}
    if len(kinds) > 1:  # e.g. one chunk's labels read as integers, another's as text
        parts = [part.astype(object) for part in parts]
    return np.concatenate(parts) if parts else np.array([])


def live_quality(
    outcomes: Outcomes,
    recorded: dict[str, float],
    *,
    task: str,
    settings: Settings,
    source: str,
    model_uri: str,
    extra: Mapping[str, metrics.Metric] | None = None,
) -> drift.Quality:
    """The task's metrics (and the problem's own, `extra`) on the labelled rows; the primary
    one against the recorded `test_<primary>` of the training run. A classifier's rows labelled
    with a class it never learnt are counted apart and left out: no prediction of the model can
    match them."""
    name = primary_metric(settings, task, model_uri=model_uri, extra=extra)
    key = f"test_{name}"
    if key not in recorded:
        raise RegistryError(
            f"Model {model_uri}: its training run has no {key} metric to compare the live "
            f"{name} with."
        )
    total = outcomes.rows + outcomes.unlabelled
    if outcomes.rows == 0:
        raise DataError(
            f"{source}: --labels, but none of its {total} rows has a label (the problem's "
            f"label of data.label={settings.data.label} is missing on every row)."
        )
    labels, said, unknown = comparable(outcomes, task=task, settings=settings, source=source)
    with warnings.catch_warnings():  # one class, say: the NaN and the note tell it
        warnings.simplefilter("ignore")
        live = metrics.compute(task, labels, said, extra)
    return drift.Quality(
        metric=name,
        higher_is_better=metrics.higher_is_better(task, name, extra),
        live=live[name],
        recorded=float(recorded[key]),
        max_drop=settings.monitor.max_quality_drop,
        rows=len(labels),
        unlabelled_dropped=outcomes.unlabelled,
        live_metrics=live,
        note=class_note(task, labels, unknown),
        unknown_class_rows=int(unknown.sum()),
        unknown_classes=tuple(unknown.index[:SHOWN_CLASSES]),
        units=metrics.metrics_of(task, extra)[name].units,
    )


def comparable(
    outcomes: Outcomes, *, task: str, settings: Settings, source: str
) -> tuple[np.ndarray, metrics.Predictions, pd.Series]:
    """The labels and predictions the live metrics compare, and the rows per class the model
    never learnt (left out; none for a regression, whose labels must be numeric)."""
    labels, said = outcomes.labels, outcomes.predictions
    if task == "regression":
        labels = pd.to_numeric(pd.Series(labels), errors="coerce").to_numpy(dtype=np.float64)
        if np.isnan(labels).any():
            bad = pd.Series(outcomes.labels)[np.isnan(labels)].iloc[0]
            raise DataError(
                f"{source}: --labels: the label {settings.data.label} of a regression must be "
                f"numeric; {int(np.isnan(labels).sum())} value(s) are not (e.g. {bad!r})."
            )
        return labels, said, pd.Series(dtype="int64")
    assert said.classes is not None  # a classifier's predictions carry its classes
    index = class_index(labels, said.classes)
    known = index >= 0
    unknown = pd.Series(labels[~known]).astype("str").value_counts()
    if not known.any():
        raise DataError(
            f"{source}: --labels, but none of its {outcomes.rows} labelled rows holds a "
            f"class the model learnt (its classes: {_listed(said.classes)}; the labels: "
            f"{_listed(unknown.index)}). Is data.label={settings.data.label} the label "
            "the model was trained on, and are its values spelt as in training?"
        )
    return said.classes[index[known]], _rows_of(said, known), unknown


SHOWN_CLASSES = 10  # unknown classes named in the report, the most frequent first


def class_index(labels: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Each label's position among the model's `classes`, -1 for a class it never learnt. A
    label is its class by value (1.0 is 1) or by its text ("1" is 1: a chunk read as text)."""
    by_value = pd.Index(classes).get_indexer(pd.Index(labels, dtype=object))
    by_text = pd.Index([str(value) for value in classes]).get_indexer(
        pd.Index(labels, dtype=object).astype("str")
    )
    index: np.ndarray = np.where(by_value >= 0, by_value, by_text)
    return index


def class_note(task: str, labels: np.ndarray, unknown: pd.Series) -> str:
    """What limits a classifier's live metrics: one class among the `labels` it knows, and the
    rows left out for classes it never learnt (`unknown`: rows per class, as text)."""
    if task == "regression":
        return ""
    present = pd.Series(labels).value_counts()
    notes = []
    if len(present) < 2:
        notes.append(
            f"the labelled rows hold one class ({_listed(present.index)}): "
            "metrics that compare classes are undefined (NaN) or say little"
        )
    if len(unknown):
        more = len(unknown) - SHOWN_CLASSES
        named = _listed(unknown.index[:SHOWN_CLASSES]) + (f" and {more} more" if more > 0 else "")
        notes.append(
            f"{int(unknown.sum())} labelled rows hold classes the model never learnt "
            f"({named}): left out of the live metrics"
        )
    return "; ".join(notes)


def _listed(values: Iterable[object]) -> str:
    return ", ".join(str(value) for value in values)


def monitoring_metrics(
    report: drift.DriftReport, keys: scoring.DuplicateKeys | None = None
) -> dict[str, float]:
    """The run's metrics: PSI and null-rate change per feature, the score's PSI, live quality,
    the rows repeating a key (when the batch holds the key columns)."""
    values: dict[str, float] = {
        "rows": report.rows,
        "psi_prediction": report.prediction.psi,
        "drift_features": sum(item.status == "drift" for item in report.features),
        "warn_features": sum(item.status == "warn" for item in report.features),
        "max_psi": max((item.psi for item in report.features), default=0.0),
    }
    for item in report.features:
        values[f"psi_{item.feature}"] = item.psi
        values[f"null_rate_change_{item.feature}"] = item.null_rate_change
    if report.quality is not None:
        values["quality_drop"] = report.quality.drop
        values["rows_labelled"] = report.quality.rows
        values["rows_unlabelled_dropped"] = report.quality.unlabelled_dropped
        values["rows_unknown_class"] = report.quality.unknown_class_rows
        for key, value in report.quality.live_metrics.items():
            values[f"live_{key}"] = value
    if keys is not None:
        values["rows_duplicate_key"] = keys.rows
    return values


def drift_table_csv(report: drift.DriftReport) -> str:
    rows = [drift.drift_row(item) for item in (*report.features, report.prediction)]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def log_monitoring_run(
    client: MlflowClient,
    settings: Settings,
    report: drift.DriftReport,
    *,
    loaded: scoring.LoadedModel,
    input_path: Path,
    root: Path,
    keys: scoring.DuplicateKeys | None = None,
) -> tuple[str, str]:
    """One run in `<experiment>_monitoring`, tagged with (and an input of) the model version."""
    experiment_id = tracking.ensure_experiment(client, experiment_name(settings))
    tags = {
        vocabulary.ENV: settings.env,
        vocabulary.COMMAND: "monitor",
        vocabulary.MODEL_URI: loaded.uri,
        vocabulary.MODEL_NAME: loaded.name,
        vocabulary.MODEL_VERSION_TAG: loaded.version,
        vocabulary.MODEL_RUN_ID: loaded.run_id,
        vocabulary.MONITOR_STATUS: report.status,
        vocabulary.MONITOR_INPUT: str(input_path),
        vocabulary.MONITOR_LABELS: str(report.quality is not None).lower(),
        **({vocabulary.MONITOR_QUALITY_METRIC: report.quality.metric} if report.quality else {}),
        **lineage.git_info(root).as_tags(),
    }
    if report.reasons:
        tags[vocabulary.MONITOR_REASONS] = "; ".join(report.reasons)[:5000]
    name = tracking.run_name("monitor", settings.env, f"v{loaded.version or 'run'}")
    with mlflow.start_run(experiment_id=experiment_id, run_name=name, tags=tags) as run:
        mlflow.log_params(tracking.flatten({"monitor": settings.monitor.model_dump(mode="json")}))
        mlflow.log_metrics(monitoring_metrics(report, keys))
        mlflow.log_dict(drift.report_data(report), REPORT)
        mlflow.log_dict({"rows": [drift.drift_row(item) for item in report.features]}, TABLE_JSON)
        mlflow.log_text(drift_table_csv(report), TABLE_CSV)
        mlflow.log_figure(plot_worst_features(report, settings), PLOT)
        _log_model_input(client, loaded)
    if loaded.name and loaded.version:
        registry.set_version_tags(
            client,
            loaded.name,
            loaded.version,
            {
                vocabulary.MONITOR_LAST_RUN_ID: run.info.run_id,
                vocabulary.MONITOR_LAST_STATUS: report.status,
            },
        )
    return experiment_id, run.info.run_id


def _log_model_input(client: MlflowClient, loaded: scoring.LoadedModel) -> None:
    """Record the model version's logged model as an input of the run (MLflow 3 lineage)."""
    if not (loaded.name and loaded.version):
        return
    version = client.get_model_version(loaded.name, loaded.version)
    source = version.source or ""
    model_id = getattr(version, "model_id", None) or (
        source.removeprefix("models:/") if source.startswith("models:/m-") else None
    )
    if model_id:
        mlflow.log_input(model=LoggedModelInput(model_id=model_id))


def plot_worst_features(report: drift.DriftReport, settings: Settings) -> Figure:
    """PSI of the features the summary shows (the worst ones and every one that warns or
    drifts) against the thresholds, and the bins of the worst one watched."""
    matplotlib.use("Agg")
    features = report.features
    statuses = [item.status for item in features]
    worst = [features[at] for at in drift.shown(statuses, top=drift.TOP_FEATURES)]
    figure = Figure(figsize=(12, max(5.0, 0.3 * len(worst))), layout="constrained")
    bars, bins = figure.subplots(1, 2, width_ratios=(1, 1.4))
    names = [item.feature for item in reversed(worst)]
    values = [item.psi for item in reversed(worst)]
    colours = {"drift": "tab:red", "warn": "tab:orange", "ok": "tab:green", "ignored": "grey"}
    bars.barh(names, values, color=[colours[item.status] for item in reversed(worst)])
    bars.axvline(settings.monitor.psi_warn, color="tab:orange", linestyle="--", label="warn")
    bars.axvline(settings.monitor.psi_alert, color="tab:red", linestyle="--", label="alert")
    bars.set_xscale("symlog", linthresh=0.1)
    bars.set_xlabel("population stability index")
    bars.set_title(
        f"{len(worst)} of {len(features)} features, worst first, {report.rows} rows: "
        f"{report.status}"
    )
    bars.legend(loc="lower right")
    watched = [item for item in worst if item.status != "ignored"] or worst
    if watched:
        top = watched[0]
        positions = np.arange(len(top.bins))
        bins.bar(positions - 0.2, top.reference_shares, width=0.4, label="training")
        bins.bar(positions + 0.2, top.batch_shares, width=0.4, label="batch")
        bins.set_xticks(positions, top.bins, rotation=60, ha="right", fontsize=7)
        bins.set_ylabel("share of non-null rows")
        bins.set_title(f"{top.feature}: PSI {top.psi:.3f}")
        bins.legend()
    return figure
