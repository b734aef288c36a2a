"""Watch a model in production: a batch against the reference profile logged at training.

`run_monitor` loads the env's champion (or `--model-uri`), downloads its training run's
`monitoring/reference_profile.json`, scores the batch chunk by chunk with the same code as
`ml-project predict`, counts the model's features and scores into the profile's bins, and, with
`--labels`, labels the rows with the problem's own `label()` and measures the task's metrics on
them: the gate's primary metric is compared with the training run's recorded `test_<metric>`
(`monitor.max_quality_drop`, in the metric's bad direction). Labels of a class the model was
never trained on are counted apart and left out of the metrics. Rows whose key repeats an
earlier row's are counted (drift counts every row, as the model was sent them); with `--labels`
they refuse the batch, since their labels would count twice. It logs one run to the experiment
`<env experiment>_monitoring`, linked to the model version, and returns the report; the CLI
exits 7 when the report says drift. The drift arithmetic is in drift.py.
"""

from __future__ import annotations

import csv
import io
import json
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ml_project import data, drift, lineage, metrics
from ml_project import predict as scoring
from ml_project.errors import ConfigError, DataError, DriftDetectedError, RegistryError
from ml_project.settings import Settings

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from mlflow import MlflowClient

    from ml_project.problem import Problem

EXPERIMENT_SUFFIX = "_monitoring"
TABLE_JSON = "monitoring/drift_table.json"
TABLE_CSV = "monitoring/drift_table.csv"
PLOT = "monitoring/worst_features.png"
REPORT = "monitoring/report.json"
TOP_FEATURES = 10  # the table and the plot show these worst by PSI, and every one that alerts
ALERTING = ("warn", "drift")


@dataclass(frozen=True)
class MonitorResult:
    """What a monitoring run found, for the CLI table, `--json` and `--summary`."""

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
    report: drift.DriftReport
    duplicate_keys: scoring.DuplicateKeys | None = None  # None: the batch lacks a key column

    @property
    def drifted(self) -> bool:
        return self.report.status == "drift"

    def as_dict(self) -> dict[str, Any]:
        return {
            "env": self.env,
            "input": self.input,
            "model_uri": self.model_uri,
            "model_name": self.model_name,
            "model_version": self.model_version,
            "model_run_id": self.model_run_id,
            "tracking_uri": self.tracking_uri,
            "experiment_id": self.experiment_id,
            "run_id": self.run_id,
            "seconds": self.seconds,
            "exit_code": DriftDetectedError.exit_code if self.drifted else 0,
            "duplicate_keys": self.duplicate_keys.as_dict() if self.duplicate_keys else None,
            **self.report.as_dict(),
        }


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
    from mlflow.exceptions import MlflowException

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
    from ml_project import tracking
    from ml_project.problem import load_problem

    start = time.perf_counter()
    client = tracking.connect(root)
    uri = model_uri or scoring.default_model_uri(settings.model_name)
    loaded = scoring.load_model(
        uri,
        client,
        root=root,
        trusted=scoring.project_trusted_types(settings, root),
        task=settings.task,
    )
    profile = load_reference_profile(client, loaded.run_id, model_uri=uri)
    unknown = sorted(set(settings.monitor.ignore) - set(profile["features"]))
    if unknown:
        raise ConfigError(
            f"monitor.ignore names {', '.join(unknown)}, which model {uri} does not have "
            f"(its features: {', '.join(profile['features'])})."
        )
    source = str(input_path)
    label_of = None
    own: Mapping[str, metrics.Metric] = {}
    if labels:
        problem = load_problem(settings, root)
        own = problem.metrics
        primary_metric(settings, loaded.task, model_uri=uri, extra=own)  # before the batch
        label_of = labeller(problem, settings.data.label, source=source)
    counts, outcomes, keys = count_batch(
        loaded,
        profile,
        input_path=input_path,
        chunk_rows=chunk_rows,
        label_of=label_of,
        check_chunk=scoring.input_checker(settings, root, source=source),
        key_columns=settings.data.key_columns,
    )
    if outcomes is not None and keys is not None and keys.rows and not allow_duplicate_keys:
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
    quality = None
    if outcomes is not None:
        quality = live_quality(
            outcomes,
            client.get_run(loaded.run_id).data.metrics,
            task=loaded.task,
            settings=settings,
            source=source,
            model_uri=uri,
            extra=own,
        )
    report = drift.assess(counts, settings.monitor, quality=quality)
    experiment_id, run_id = log_monitoring_run(
        client, settings, report, loaded=loaded, input_path=input_path, root=root, keys=keys
    )
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
    labels, said = outcomes.labels, outcomes.predictions
    unknown = pd.Series(dtype="int64")
    if task == "regression":
        labels = pd.to_numeric(pd.Series(labels), errors="coerce").to_numpy(dtype=np.float64)
        if np.isnan(labels).any():
            bad = pd.Series(outcomes.labels)[np.isnan(labels)].iloc[0]
            raise DataError(
                f"{source}: --labels: the label {settings.data.label} of a regression must be "
                f"numeric; {int(np.isnan(labels).sum())} value(s) are not (e.g. {bad!r})."
            )
    else:
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
        labels, said = said.classes[index[known]], _rows_of(said, known)
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
    rows = [item.as_row() for item in (*report.features, report.prediction)]
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
    import mlflow

    from ml_project import tracking

    experiment_id = tracking.ensure_experiment(client, experiment_name(settings))
    model_tags = {
        "model.uri": loaded.uri,
        "model.name": loaded.name,
        "model.version": loaded.version,
        "model.run_id": loaded.run_id,
    }
    tags = {
        "ml_project.env": settings.env,
        "ml_project.command": "monitor",
        **model_tags,
        "monitor.status": report.status,
        "monitor.input": str(input_path),
        "monitor.labels": str(report.quality is not None).lower(),
        **({"monitor.quality_metric": report.quality.metric} if report.quality else {}),
        **lineage.git_info(root).as_tags(),
    }
    if report.reasons:
        tags["monitor.reasons"] = "; ".join(report.reasons)[:5000]
    name = tracking.run_name("monitor", settings.env, f"v{loaded.version or 'run'}")
    with mlflow.start_run(experiment_id=experiment_id, run_name=name, tags=tags) as run:
        mlflow.log_params(tracking.flatten({"monitor": settings.monitor.model_dump(mode="json")}))
        mlflow.log_metrics(monitoring_metrics(report, keys))
        mlflow.log_dict(report.as_dict(), REPORT)
        mlflow.log_dict({"rows": [item.as_row() for item in report.features]}, TABLE_JSON)
        mlflow.log_text(drift_table_csv(report), TABLE_CSV)
        figure = plot_worst_features(report, settings)
        mlflow.log_figure(figure, PLOT)
        _log_model_input(client, loaded)
    if loaded.name and loaded.version:
        tracking.set_version_tags(
            client,
            loaded.name,
            loaded.version,
            {"monitor.last_run_id": run.info.run_id, "monitor.last_status": report.status},
        )
    return experiment_id, run.info.run_id


def _log_model_input(client: MlflowClient, loaded: scoring.LoadedModel) -> None:
    """Record the model version's logged model as an input of the run (MLflow 3 lineage)."""
    from mlflow.entities import LoggedModelInput

    if not (loaded.name and loaded.version):
        return
    version = client.get_model_version(loaded.name, loaded.version)
    source = version.source or ""
    model_id = getattr(version, "model_id", None) or (
        source.removeprefix("models:/") if source.startswith("models:/m-") else None
    )
    if model_id:
        import mlflow

        mlflow.log_input(model=LoggedModelInput(model_id=model_id))


def plot_worst_features(report: drift.DriftReport, settings: Settings) -> Figure:
    """PSI of the features the summary shows (the worst ones and every one that warns or
    drifts) against the thresholds, and the bins of the worst one watched."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    features = report.features
    worst = [features[at] for at in shown([item.status for item in features], top=TOP_FEATURES)]
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


def quality_line(quality: dict[str, Any]) -> str:
    """The live-quality line of the summary, from the report's `quality` (a dict)."""
    metric, rows = quality["metric"], f"{quality['rows']} labelled rows"
    dropped = quality["unlabelled_dropped"]
    rows += f" ({dropped} without a label dropped)" if dropped else ""
    if quality["status"] == "undefined":
        line = f"live {metric} undefined on {rows}: quality not compared"
    else:
        drop = quality["drop"]
        change = f"worse by {drop:.4f}" if drop > 0 else f"better by {-drop:.4f}"
        line = (
            f"live {metric} {quality['live']:.4f} on {rows} vs recorded "
            f"{quality['recorded']:.4f} ({change}, limit {quality['max_drop']}): "
            f"{quality['status']}"
        )
    return f"{line}; {quality['note']}" if quality.get("note") else line


def shown(statuses: Sequence[str], *, top: int) -> list[int]:
    """Positions of the features a summary shows, in the report's order (worst PSI first): the
    `top` worst, and every other one that warns or drifts (a null-rate move drifts at any PSI)."""
    return [at for at, status in enumerate(statuses) if at < top or status in ALERTING]


def summary_text(result: dict[str, Any], *, markdown: bool = False, top: int = TOP_FEATURES) -> str:
    """The worst features and every one that alerts, the score, live quality, repeated keys
    and the verdict, as text or Markdown."""
    head = (
        f"Monitored {result['rows']} rows of {result['input']} with {result['model_name']} "
        f"version {result['model_version']} (env {result['env']}): {result['status'].upper()}"
    )
    columns = ("feature", "kind", "PSI", "nulls: training -> batch", "status")
    features = result["features"]
    picked = [features[at] for at in shown([row["status"] for row in features], top=top)]
    rows = [
        (
            row["feature"],
            row["kind"],
            "-" if row["kind"] == "time" else f"{row['psi']:.3f}",
            f"{row['reference_null_rate']:.1%} -> {row['batch_null_rate']:.1%}",
            row["status"],
        )
        for row in [*picked, result["prediction"]]
    ]
    notes = [row["note"] for row in result["features"] if row.get("note")]  # time ranges
    if len(picked) < len(features):
        notes.append(
            f"{len(features) - len(picked)} more features with a lower PSI, none of them "
            "warning or drifting, are in --json and the run's monitoring/drift_table.csv"
        )
    quality = result.get("quality")
    if quality:
        notes.append(quality_line(quality))
    keys = result.get("duplicate_keys")
    if keys and keys["rows"]:
        notes.append(
            f"{keys['rows']} rows repeat the key of an earlier row ({', '.join(keys['columns'])}; "
            f"e.g. {keys['example']}): every row is counted"
        )
    notes += [f"drift: {reason}" for reason in result["reasons"]]
    notes.append(f"monitoring run {result['run_id']} (experiment id {result['experiment_id']})")
    if markdown:
        lines = [f"### {head}", "", "| " + " | ".join(columns) + " |"]
        lines.append("| --- | --- | ---: | --- | --- |")
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join([*lines, "", *[f"- {note}" for note in notes]]) + "\n"
    widths = [max(len(str(row[i])) for row in [columns, *rows]) for i in range(len(columns))]
    lines = [head]
    for row in [columns, *rows]:
        lines.append(
            "  "
            + "  ".join(
                str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)
            ).rstrip()
        )
    return "\n".join([*lines, *[f"  {note}" for note in notes]])
