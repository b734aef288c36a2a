"""The steps of a reproduction compared, recorded against rebuilt, and the verdict (pure).

Each `compare_*` takes what the training run recorded (its tags, metrics and artifacts) and the
rebuild driver's answer (`rebuild.py`), and returns one typed step; `verdict` names the first
step that differs. Nothing here reads git, MLflow or files.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ml_project import vocabulary as tag
from ml_project.errors import NotReproducedError

DATA_DIGESTS = ("digest", "train_digest", "test_digest", "test_keys_digest")
# Verdicts: only identical and within_tolerance exit 0; the others exit 6 (NotReproducedError).
IDENTICAL, WITHIN_TOLERANCE, DIFFERENT = "identical", "within_tolerance", "different"
DATA_CHANGED, ENVIRONMENT_DIFFERS = "data_changed", "environment_differs"
NOT_RECORDED = "not_recorded"
# How the registered model's files were checked before their model was compared
FILES_MATCHED = "sha256 of MLmodel and the model file match the training run's record"
FILES_NOT_RECORDED = "no sha256 recorded at training: the files' bytes were not checked"
# The first step that differs, as the verdict names it.
DIFFERENCE_NAMES = {
    "config": "config differs: the recorded settings do not validate to the recorded hash",
    "data": "data changed",
    "features": "features differ: code or library changed",
    "model": "model differs",
    "predictions": "predictions differ",
    "metrics": "metrics differ",
}
# A field left out of the JSON when it is None (a comparison that was not made).
OPTIONAL = {"omit_none": True}


@dataclass(frozen=True)
class Target:
    """The model version (or bare run) to reproduce, and where its model files are."""

    run_id: str
    model_uri: str
    model_name: str = ""
    version: str = ""

    def describe(self) -> str:
        if self.version:
            return f"{self.model_name} version {self.version} (run {self.run_id})"
        return f"the model of run {self.run_id}"


@dataclass(frozen=True)
class Recorded:
    """What the training run recorded, read back from the store."""

    run_id: str
    experiment_id: str
    tags: dict[str, str]
    metrics: dict[str, float]
    settings_yaml: str
    lock: dict[str, str] | None = None
    schema: dict[str, Any] | None = None
    feature_sample: dict[str, Any] | None = None


@dataclass(frozen=True)
class Change:
    """A package (or python, the CPU) at training and now."""

    what: str
    recorded: str
    now: str


@dataclass(frozen=True)
class Pair:
    """One value as recorded at training and as rebuilt."""

    recorded: Any
    rebuilt: Any


@dataclass(frozen=True)
class Compared:
    """What every step says first: IDENTICAL, DIFFERENT or NOT_RECORDED (each step ends with
    its name, `step`)."""

    status: str


@dataclass(frozen=True)
class EnvironmentStep(Compared):
    key_packages: tuple[Change, ...]
    lock: tuple[Change, ...]
    lock_recorded: bool
    notes: tuple[str, ...]
    step: str = "environment"


@dataclass(frozen=True)
class CodeStep(Compared):
    commit: str
    protocol: str | None
    ml_project_version: str | None
    seconds: dict[str, float] | None
    step: str = "code"


@dataclass(frozen=True)
class ConfigStep(Compared):
    recorded: dict[str, str | None]
    rebuilt: dict[str, Any]
    step: str = "config"


@dataclass(frozen=True)
class TableState:
    path: str | None
    sha256: str | None
    rows: int | None
    schema: dict[str, str] | None


@dataclass(frozen=True)
class SchemaChanges:
    added: tuple[str, ...]
    removed: tuple[str, ...]
    retyped: dict[str, tuple[str, str]]


@dataclass(frozen=True)
class TableFile:
    recorded: TableState
    today: TableState
    sha256_equal: bool
    schema_changes: SchemaChanges | None


@dataclass(frozen=True)
class SourcesStep(Compared):
    files: dict[str, TableFile]
    step: str = "sources"


@dataclass(frozen=True)
class DataStep(Compared):
    digests: dict[str, Pair]
    rows: dict[str, Pair]
    step: str = "data"


@dataclass(frozen=True)
class FeaturesStep(Compared):
    recorded: str | None
    rebuilt: str | None
    sample_columns_differ: tuple[str, ...] | None = field(default=None, metadata=OPTIONAL)
    step: str = "features"


@dataclass(frozen=True)
class ModelStep(Compared):
    rebuilt: str | None
    model_class: str | None = field(metadata={"key": "class"})
    registered: str | None = field(default=None, metadata=OPTIONAL)
    registered_artifact: str | None = field(default=None, metadata=OPTIONAL)  # what was loaded
    refused: str | None = field(default=None, metadata=OPTIONAL)  # why it could not be
    registered_files: str | None = field(default=None, metadata=OPTIONAL)  # FILES_* below
    # the skops file's content digest (model_digest.py): recorded (the run's tag, else the
    # registered file's), rebuilt; None when the rebuild (a commit before it) did not answer it
    content: Pair | None = field(default=None, metadata=OPTIONAL)
    content_from: str | None = field(default=None, metadata=OPTIONAL)  # "tag", "registered file"
    params_differ: dict[str, tuple[str | None, str | None]] | None = field(
        default=None, metadata=OPTIONAL
    )
    step: str = "model"


@dataclass(frozen=True)
class PredictionsStep(Compared):
    rows: int | None
    recorded: str | None
    recorded_from: str
    rebuilt: str | None
    max_abs_diff: float | None
    registered_model_matches_tag: bool | None = field(default=None, metadata=OPTIONAL)
    step: str = "predictions"


@dataclass(frozen=True)
class MetricsStep(Compared):
    task: str
    values: dict[str, Pair]
    max_abs_diff: float | None
    order: tuple[str, ...] = field(default=(), metadata={"json": False})  # the task's metrics
    step: str = "metrics"


Step = (
    EnvironmentStep
    | CodeStep
    | ConfigStep
    | SourcesStep
    | DataStep
    | FeaturesStep
    | ModelStep
    | PredictionsStep
    | MetricsStep
)


@dataclass(frozen=True)
class ReproductionResult:
    """The verdict and every step's comparison: the summary, `--json` and the run's report."""

    target: Target = field(metadata={"json": False})
    commit: str
    tolerance: float | None
    strict: bool
    verdict: str
    first_difference: str
    steps: tuple[Step, ...]
    warnings: tuple[str, ...]
    experiment_id: str
    tracking_uri: str
    seconds: float
    error: str = ""
    traceback: str = ""  # the old code's, when it raised: in the report, never in the message
    reproduction_run_id: str = ""
    reproduced: bool = field(init=False)
    exit_code: int = field(init=False)
    model_name: str = field(init=False)
    model_version: str = field(init=False)
    model_uri: str = field(init=False)
    run_id: str = field(init=False)

    def __post_init__(self) -> None:
        reproduced = self.verdict in (IDENTICAL, WITHIN_TOLERANCE)
        for name, value in (
            ("reproduced", reproduced),
            ("exit_code", 0 if reproduced else NotReproducedError.exit_code),
            ("model_name", self.target.model_name),
            ("model_version", self.target.version),
            ("model_uri", self.target.model_uri),
            ("run_id", self.target.run_id),
            ("seconds", round(self.seconds, 3)),
        ):
            object.__setattr__(self, name, value)

    def step(self, name: str) -> Step | None:
        return next((step for step in self.steps if step.step == name), None)


def _changes(recorded: Mapping[str, str], now: Mapping[str, str]) -> tuple[Change, ...]:
    return tuple(
        Change(name, pin, now.get(name) or "missing")
        for name, pin in sorted(recorded.items())
        if now.get(name, "") != pin
    )


def compare_environment(
    tags: dict[str, str],
    *,
    installed: dict[str, str],
    running: dict[str, str],
    lock: dict[str, str] | None = None,
    installed_lock: dict[str, str] | None = None,
) -> EnvironmentStep:
    """Recorded `pkg.*`, `env.python`/`env.machine` and lock pins against the running ones."""
    packages = {key[4:]: value for key, value in tags.items() if key.startswith("pkg.")}
    differences = list(_changes(packages, installed))
    for key in ("python", "machine"):
        recorded = tags.get(f"env.{key}")
        if recorded is not None and recorded != running.get(key):
            differences.append(Change(key, recorded, running.get(key, "")))
    lock_differences = _changes(lock or {}, installed_lock or {})
    notes = []
    if tags.get("env.os") and tags.get("env.os") != running.get("os"):
        notes.append(f"trained on {tags['env.os']}, now {running.get('os', '')}")
    return EnvironmentStep(
        status=IDENTICAL if not differences and not lock_differences else DIFFERENT,
        key_packages=tuple(differences),
        lock=lock_differences,
        lock_recorded=lock is not None,
        notes=tuple(notes),
    )


def recorded_tables(tags: Mapping[str, str]) -> list[str]:
    """The names of the tables the run read (tag `data.tables`, comma-separated)."""
    return [name for name in (tags.get(tag.DATA_TABLES) or "").split(",") if name]


def compare_config(tags: Mapping[str, str], config: dict[str, Any]) -> ConfigStep:
    """The recorded settings, validated by the old code: their hash and seed as recorded?"""
    recorded = {"hash": tags.get(tag.CONFIG_HASH), "seed": tags.get(tag.SEED)}
    same = config.get("hash") == recorded["hash"] and str(config.get("seed")) == recorded["seed"]
    return ConfigStep(IDENTICAL if same else DIFFERENT, recorded=recorded, rebuilt=config)


def compare_sources(recorded: Recorded, answer: dict[str, Any]) -> SourcesStep:
    """Each table's file today against what training read: sha256, path, rows, schema."""
    tags = recorded.tags
    files = {}
    for name in recorded_tables(tags):
        today = (answer.get("sources") or {}).get(name) or {}
        then = TableState(
            path=tags.get(f"data.table.{name}.path"),
            sha256=tags.get(f"data.table.{name}.sha256"),
            rows=_int(tags.get(f"data.table.{name}.rows")),
            schema=(recorded.schema or {}).get(name),
        )
        now = TableState(today.get("path"), today.get("sha256"), today.get("rows"),
                         today.get("schema"))  # fmt: skip
        files[name] = TableFile(
            recorded=then,
            today=now,
            sha256_equal=then.sha256 == now.sha256,
            schema_changes=schema_changes(then.schema, now.schema),
        )
    changed = any(not entry.sha256_equal for entry in files.values())
    return SourcesStep(DIFFERENT if changed else IDENTICAL, files)


def schema_changes(
    then: Mapping[str, str] | None, today: Mapping[str, str] | None
) -> SchemaChanges | None:
    """Columns added, removed, and with a new dtype (None when either side is unknown)."""
    if then is None or today is None:
        return None
    return SchemaChanges(
        added=tuple(c for c in today if c not in then),
        removed=tuple(c for c in then if c not in today),
        retyped={c: (then[c], today[c]) for c in then if c in today and then[c] != today[c]},
    )


def compare_data(tags: Mapping[str, str], answer_data: dict[str, Any] | None) -> DataStep:
    """The rows used (digests of every row and column) and row counts, recorded vs rebuilt."""
    answer_data = answer_data or {}
    digests = answer_data.get("digests") or {}
    compared = {
        key: Pair(tags.get(f"data.{key}"), digests.get(key))
        for key in DATA_DIGESTS
        if tags.get(f"data.{key}") is not None
    }
    counts = {
        key: Pair(_int(tags.get(f"data.rows_{key}")), value)
        for key, value in (answer_data.get("rows") or {}).items()
    }
    differs = any(v.recorded != v.rebuilt for v in compared.values()) or any(
        v.recorded is not None and v.recorded != v.rebuilt for v in counts.values()
    )
    status = NOT_RECORDED if not compared else DIFFERENT if differs else IDENTICAL
    return DataStep(status, digests=compared, rows=counts)


def compare_features(
    tags: Mapping[str, str], answer: dict[str, Any], sample: dict[str, Any] | None
) -> FeaturesStep:
    """The transformed train matrix: digest, and which sampled columns differ."""
    features = answer.get("features") or {}
    recorded, rebuilt = tags.get(tag.FEATURES_DIGEST), features.get("digest")
    if recorded is None:
        return FeaturesStep(NOT_RECORDED, recorded, rebuilt)
    if recorded == rebuilt:
        return FeaturesStep(IDENTICAL, recorded, rebuilt)
    differ = None
    if sample and features.get("sample"):
        differ = tuple(sample_differences(sample, features["sample"]))
    return FeaturesStep(DIFFERENT, recorded, rebuilt, sample_columns_differ=differ)


def sample_differences(recorded: dict[str, Any], rebuilt: dict[str, Any]) -> list[str]:
    """Columns of the feature sample that differ (added/removed columns included)."""
    columns_then, columns_now = recorded["columns"], rebuilt["columns"]
    differ = [c for c in columns_then if c not in columns_now]
    differ += [c for c in columns_now if c not in columns_then]
    for column in columns_then:
        if column not in columns_now:
            continue
        i, j = columns_then.index(column), columns_now.index(column)
        if [row[i] for row in recorded["rows"]] != [row[j] for row in rebuilt["rows"]]:
            differ.append(column)
    return differ


def compare_model(
    answer: dict[str, Any],
    *,
    tags: Mapping[str, str] | None = None,
    artifact: str = "",
    refused: str = "",
    files: str = "",
) -> ModelStep:
    """The rebuilt model's fitted state and parameters against the registered model's, loaded
    from `artifact` (the files predict and serving load), and its skops file's content digest
    against the one its run recorded in `tags` (else the registered file's: the answer's
    `registered_content`); `refused`: why those files could not be loaded as the skops file
    training wrote (replaced, or written outside ml-project), which makes the model differ;
    `files`: how their bytes were checked (FILES_*)."""
    rebuilt = answer.get("model") or {}
    registered = answer.get("registered")
    digest, model_class = rebuilt.get("digest"), rebuilt.get("class")
    checked = artifact or None
    if refused:
        return ModelStep(
            DIFFERENT, digest, model_class, registered_artifact=checked, refused=refused
        )
    if not registered:
        return ModelStep(NOT_RECORDED, digest, model_class)
    params_then, params_now = registered.get("params") or {}, rebuilt.get("params") or {}
    content, content_from = _content(tags or {}, answer)
    same = registered.get("digest") == digest and (
        content is None or content.recorded == content.rebuilt
    )
    return ModelStep(
        IDENTICAL if same else DIFFERENT,
        digest,
        model_class,
        registered=registered.get("digest"),
        registered_artifact=checked,
        registered_files=files or None,
        content=content,
        content_from=content_from,
        params_differ={
            key: (params_then.get(key), params_now.get(key))
            for key in sorted(set(params_then) | set(params_now))
            if params_then.get(key) != params_now.get(key)
        },
    )


def _content(tags: Mapping[str, str], answer: dict[str, Any]) -> tuple[Pair | None, str | None]:
    """(recorded, rebuilt) content digests and where the recorded one comes from, or Nones."""
    rebuilt = (answer.get("model") or {}).get("content")
    by_tag, by_file = tags.get(tag.MODEL_CONTENT), answer.get("registered_content")
    if not rebuilt or not (by_tag or by_file):
        return None, None
    return Pair(by_tag or by_file, rebuilt), "tag" if by_tag else "registered file"


def compare_predictions(tags: Mapping[str, str], answer: dict[str, Any]) -> PredictionsStep:
    """Held-out predictions (every class probability, or the value): digest vs the recorded
    tag, max abs diff vs the registered model's own predictions."""
    rebuilt = answer.get("predictions") or {}
    by_model = (answer.get("registered") or {}).get("predictions_digest")
    by_tag = tags.get(tag.PREDICTIONS_DIGEST)
    recorded = by_tag or by_model
    if recorded is None:
        status = NOT_RECORDED
    else:
        status = IDENTICAL if recorded == rebuilt.get("digest") else DIFFERENT
    return PredictionsStep(
        status,
        rows=rebuilt.get("rows"),
        recorded=recorded,
        recorded_from="tag" if by_tag else "registered model",
        rebuilt=rebuilt.get("digest"),
        max_abs_diff=rebuilt.get("max_abs_diff"),
        registered_model_matches_tag=by_model == by_tag if by_tag and by_model else None,
    )


def compare_metrics(
    metrics: Mapping[str, float],
    answer: dict[str, Any],
    *,
    task: str = "",
    order: Sequence[str] = (),
) -> MetricsStep:
    """Each rebuilt held-out metric against the recorded `test_<name>` (NaN equals NaN: a
    metric undefined on those rows both times); `order` is the task's, for the report."""
    values = {
        name: Pair(metrics.get(f"test_{name}"), value)
        for name, value in sorted((answer.get("metrics") or {}).items())
        if f"test_{name}" in metrics
    }
    diffs = [difference(v.recorded, v.rebuilt) for v in values.values()]
    return MetricsStep(
        IDENTICAL if values and max(diffs) == 0 else DIFFERENT,
        task=task,
        values=values,
        max_abs_diff=max(diffs) if diffs else None,
        order=tuple(order),
    )


def difference(recorded: float, rebuilt: float) -> float:
    """|recorded - rebuilt|, 0 when both are NaN, infinite when one is."""
    if math.isnan(recorded) and math.isnan(rebuilt):
        return 0.0
    if math.isnan(recorded) or math.isnan(rebuilt):
        return math.inf
    return abs(recorded - rebuilt)


def compare_steps(
    recorded: Recorded,
    answer: dict[str, Any],
    *,
    metric_order: Sequence[str] = (),
    artifact: str = "",
    refused: str = "",
    files: str = "",
) -> list[Step]:
    """config, sources, data; then, if the rebuild trained, features, model (against the
    registered `artifact`; `refused`, `files`: see compare_model), predictions and metrics
    (shown in `metric_order`)."""
    tags = recorded.tags
    steps: list[Step] = []
    if answer.get("config") is not None:
        steps.append(compare_config(tags, answer["config"]))
    if answer.get("sources") is not None:
        steps.append(compare_sources(recorded, answer))
    if answer.get("data") is not None:
        steps.append(compare_data(tags, answer["data"]))
    if "model" not in answer:
        return steps
    return [
        *steps,
        compare_features(tags, answer, recorded.feature_sample),
        compare_model(answer, tags=tags, artifact=artifact, refused=refused, files=files),
        compare_predictions(tags, answer),
        compare_metrics(recorded.metrics, answer, task=tags.get(tag.TASK, ""), order=metric_order),
    ]


def verdict(steps: Sequence[Any], *, tolerance: float | None) -> tuple[str, str]:
    """(verdict, first difference): identical, within_tolerance, different or data_changed."""
    status = {step.step: step.status for step in steps}
    if status.get("data") == DIFFERENT:
        return DATA_CHANGED, DIFFERENCE_NAMES["data"]
    order = ("config", "features", "model", "predictions", "metrics")
    first = next((name for name in order if status.get(name) == DIFFERENT), None)
    if first is None:
        return IDENTICAL, ""
    diffs = [
        getattr(step, "max_abs_diff", None)
        for step in steps
        if step.step in ("predictions", "metrics")
    ]
    if (
        tolerance is not None
        and len(diffs) == 2
        and all(diff is not None and diff <= tolerance for diff in diffs)
    ):
        return WITHIN_TOLERANCE, DIFFERENCE_NAMES[first]
    return DIFFERENT, DIFFERENCE_NAMES[first]


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
