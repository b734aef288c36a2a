"""One config schema, resolved from the project's settings and the problem's.

Layers, each deep-merged on the last: environments/base.yaml, environments/<env>.yaml (the
project's: which problem, split, lineage, monitor and gate defaults), then
problems/<problem>/environments/base.yaml and <env>.yaml (the problem's: its name, task,
tables, key, label, features, params, suite parameters, gate floors), then the CLI flags
(`--set key.path=value`, `--table NAME=PATH`, `--seed`). Dicts merge
recursively; lists and scalars replace. Unknown keys and wrong types are errors naming the key
and the file that set it. Settings are frozen once built.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from ml_project.errors import ConfigError
from ml_project.paths import absolute
from ml_project.vocabulary import Task

ENVS = ("dev", "staging", "prod")
PROBLEMS_FOLDER = "problems"
PROJECT_SETTINGS = "environments/base.yaml"  # the project's own: `problem:` names the default


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,200}$"  # what MLflow accepts as a model name
PROBLEM_PATTERN = r"^[a-z_][a-z0-9_]*$"  # a Python package name under problems/


class SnapshotSettings(_Section):
    """The rows a training read, kept for `reproduce` (snapshots.py, docs/data-sources.md)."""

    keep: bool = Field(default=True, description="false: the run keeps no copy of its rows")
    location: str = Field(
        default="",
        description="empty: the run's artifacts; else a folder (relative to the project root) "
        "or an fsspec URL (s3://bucket/snapshots) holding <table>/<sha256>.<ext>, written once",
    )
    max_mb: float = Field(default=500, gt=0, description="a larger table's rows are not kept")
    local_files: bool = Field(
        default=False,
        description="keep local files too (default: only tables read from a database, a bucket "
        "or a Parquet folder; a local file is known by its sha256, `reproduce --table` reads a "
        "copy)",
    )


class DataSettings(_Section):
    """Which tables the problem reads, which rows are used, and what names a row and its label."""

    tables: dict[str, str] = Field(
        min_length=1,
        description="table name -> source: a file (CSV, zipped CSV, Parquet) or Parquet folder "
        "relative to the project root, absolute, or package:<distribution>/<path>; an fsspec "
        "URL (s3://...); or sql:<query file>@<VARIABLE> (sources.py, docs/data-sources.md)",
    )
    key_columns: tuple[str, ...] = Field(min_length=1, description="columns naming one record")
    label: str = Field(min_length=1, description="the column the model learns to predict")
    sample_fraction: float = Field(gt=0, le=1, description="share of labelled rows used")
    snapshot: SnapshotSettings = Field(default_factory=SnapshotSettings)


class SplitSettings(_Section):
    test_fraction: float = Field(gt=0, lt=1)
    time_column: str | None = Field(
        default=None,
        description="hold out the newest test_fraction of the rows by this column of the "
        "records (ties broken by the seeded key hash); empty: a seeded hash of the key",
    )
    # A classifier's every class needs this many of the rows used: fewer cannot be learnt or
    # judged, and which side they fall on would change with the seed.
    min_class_rows: int = Field(default=10, ge=1)


class FeatureSettings(_Section):
    """The raw columns the model reads (its signature), in order: text, numbers, then times."""

    categorical: tuple[str, ...]
    numeric: tuple[str, ...]
    datetime: tuple[str, ...] = Field(
        default=(),
        description="timestamps (ISO 8601 text or native datetimes): the model reads them as "
        "ISO text and derives numbers from them (estimators.TimeFeatures)",
    )

    @model_validator(mode="after")
    def _no_overlap(self) -> FeatureSettings:
        kinds = {"categorical": self.categorical, "numeric": self.numeric}
        kinds["datetime"] = self.datetime
        seen: dict[str, str] = {}
        for kind, names in kinds.items():
            for name in names:
                if name in seen:
                    raise ValueError(f"feature {name!r} is listed as both {seen[name]} and {kind}")
                seen[name] = kind
        if not seen:
            raise ValueError(
                "the model reads no column: list features.categorical, numeric or datetime"
            )
        return self

    @property
    def columns(self) -> list[str]:
        return [*self.categorical, *self.numeric, *self.datetime]


class LineageSettings(_Section):
    require_clean_tree: bool


class ValidationSettings(_Section):
    """Values the expectation suites of the problem may name as `$name` (validation.py)."""

    parameters: dict[str, Any] = Field(
        default_factory=dict, description="suite parameters, e.g. min_rows: 1000"
    )
    reuse_verdicts: bool = Field(
        default=True,
        description="take a passed verdict of the same suite on the same rows (same library "
        "versions) from the earlier run that reached it, and record which run",
    )


class MonitorSettings(_Section):
    """The reference profile logged at training, and when `ml-project monitor` says drift."""

    bins: int = Field(ge=2, le=100, description="quantile bins per numeric feature")
    max_categories: int = Field(ge=1, description="categories kept per feature; the rest = other")
    psi_warn: float = Field(gt=0, description="PSI at or above this is reported as a warning")
    psi_alert: float = Field(gt=0, description="PSI at or above this is drift (exit 7)")
    null_rate_change: float = Field(gt=0, le=1, description="largest null-rate move allowed")
    max_quality_drop: float = Field(
        ge=0,
        description="live primary metric vs the recorded test one: the largest loss allowed, "
        "in the metric's own terms for a bounded score (AUC, accuracy, r2), a fraction of the "
        "recorded value for a metric with units (rmse, mae, log_loss), as gate.tolerance",
    )
    min_rows: int = Field(ge=1, description="smaller batches are refused (PSI would be noise)")
    ignore: tuple[str, ...] = Field(description="features reported but never drift")
    max_unknown_classes: float = Field(
        default=0.05,
        ge=0,
        le=1,
        description="with --labels: drift when more than this share of the labelled rows hold "
        "classes the model never learnt (they are left out of the live metrics)",
    )

    @model_validator(mode="after")
    def _warn_below_alert(self) -> MonitorSettings:
        if self.psi_warn > self.psi_alert:
            raise ValueError(f"psi_warn {self.psi_warn} is above psi_alert {self.psi_alert}")
        return self


class GateSettings(_Section):
    """The fail-closed quality gate a new model version passes before it becomes `champion`.

    Metric names and directions come from the task's registry (metrics.py); a floor on a
    lower-is-better metric, or a metric the task does not have, is a settings error.
    """

    floors: dict[str, float] = Field(
        default_factory=dict, description="minimum held-out score per higher-is-better metric"
    )
    ceilings: dict[str, float] = Field(
        default_factory=dict, description="maximum held-out loss per lower-is-better metric"
    )
    primary_metric: str = Field(
        description="compared with the champion's and the baseline's on the same held-out rows"
    )
    tolerance: float = Field(
        ge=0,
        description="how much worse than the champion is accepted: in the metric's own terms "
        "for a bounded score (AUC, accuracy, r2), a fraction of the champion's value for a "
        "metric with units (rmse, mae, log_loss)",
    )
    min_lead: float = Field(
        default=0.05,
        ge=0,
        lt=1,
        description="the primary metric must beat the feature-blind baseline by at least this "
        "share of the room between the baseline's value and a perfect score",
    )
    max_loss_rise: float = Field(
        default=0.5,
        ge=0,
        description="training health: the held-out loss after the last boosting iteration may "
        "exceed its best value over the iterations by at most this fraction (divergence)",
    )
    compare_with_champion: bool = Field(description="false: no comparison with the champion")
    min_test_rows: int = Field(
        ge=1, description="fewer held-out rows than this: the gate refuses to decide"
    )


class Settings(_Section):
    env: Literal["dev", "staging", "prod"]
    problem: str = Field(pattern=PROBLEM_PATTERN, description="the folder problems/<problem>/")
    name: str = Field(
        pattern=NAME_PATTERN, description="experiments and registered models: <name>_<env>"
    )
    task: Task
    seed: int = Field(ge=0, le=2**32 - 1)
    data: DataSettings
    split: SplitSettings
    features: FeatureSettings
    params: dict[str, Any] = Field(
        default_factory=dict, description="the problem's own settings (its Params, if declared)"
    )
    lineage: LineageSettings
    validation: ValidationSettings
    monitor: MonitorSettings
    gate: GateSettings
    # (file or flag, mapping) in merge order: where each value came from, for error messages
    _layers: tuple[tuple[Path | str, Mapping[str, Any]], ...] = PrivateAttr(default=())

    def origin(self, *loc: str) -> str:
        """Where the value at `loc` (e.g. "params", "max_iter") was set: a file or the CLI."""
        return _origin(tuple(loc), self._layers) if self._layers else "in the settings"

    def set_outside_base(self, section: str) -> list[str]:
        """`section.key=value (where)` for each of the section's values an env overlay or the
        command line set (not a base.yaml): what a user changed last, for error messages."""
        values = getattr(self, section, None)
        if not isinstance(values, Mapping):
            return []
        out = []
        for key, value in values.items():
            where = self.origin(section, str(key))
            if where.startswith("set in") and not where.endswith("base.yaml"):
                out.append(f"{section}.{key}={value} ({where})")
        return out

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        from ml_project import metrics  # lazy: it imports pandas, which the CLI's start does not

        problems = metrics.gate_problems(
            self.task,
            floors=self.gate.floors,
            ceilings=self.gate.ceilings,
            primary=self.gate.primary_metric,
        )
        primary = metrics.REGISTRY.get(self.task, {}).get(self.gate.primary_metric)
        if primary is not None and primary.units:  # fractions of its value (an old config's
            for key, value in (  # value in the metric's units would make the check fail-open)
                ("gate.tolerance", self.gate.tolerance),
                ("monitor.max_quality_drop", self.monitor.max_quality_drop),
            ):
                if value >= 1:
                    problems.append(
                        f"{key}: {value:g} is a fraction of the recorded {primary.name} (a "
                        f"metric with units): {value:g} would accept {value:.0%} worse; write "
                        "e.g. 0.02 for 2% (older versions of the template read it in the "
                        "metric's units)"
                    )
        if problems:
            raise ValueError("; ".join(problems))
        label = self.data.label
        if label in self.features.columns:
            raise ValueError(
                f"data.label: the label {label!r} is also a feature: the model would read it"
            )
        return self

    @property
    def model_name(self) -> str:
        """`<name>_<env>`: the registered model's name, and its experiment's."""
        return f"{self.name}_{self.env}"

    experiment_name = model_name

    def config_hash(self) -> str:
        """sha256 of the resolved settings as canonical JSON."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))

    def to_yaml(self) -> str:
        text: str = yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)
        return text


def deep_merge(base: Mapping[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    """Dicts merge recursively; anything else in `overlay` replaces what `base` had."""
    merged = dict(base)
    for key, value in overlay.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def parse_assignment(text: str) -> tuple[tuple[str, ...], Any]:
    """`params.max_iter=50` -> (("params", "max_iter"), 50); the value is read as YAML."""
    path, sep, raw = text.partition("=")
    if not sep or not path.strip():
        raise ConfigError(f"--set expects KEY.PATH=VALUE (e.g. params.max_iter=50), got {text!r}.")
    try:
        value = yaml.safe_load(raw) if raw.strip() else raw
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {text!r}: the value is not valid YAML ({exc}).") from exc
    return tuple(part.strip() for part in path.split(".")), value


def apply_assignment(
    config: Mapping[str, Any], path: tuple[str, ...], value: Any, *, create: bool = False
) -> dict[str, Any]:
    """Replace one existing scalar (or list) in `config`; unknown keys are an error.

    `create` builds the path instead (the record of what the command line set).
    """
    dotted = ".".join(path)
    patch: Any = value
    for part in reversed(path):
        patch = {part: patch}
    if create or (path[:-1] in FREE_FORM and _section(config, path[:-1]) is not None):
        return deep_merge(config, patch)
    node: Any = config
    for part in path[:-1]:
        if not isinstance(node, Mapping) or part not in node:
            raise ConfigError(f"--set {dotted}: there is no section {part!r} in the settings.")
        node = node[part]
    table_path = path[:2] == ("data", "tables") and len(path) == 3
    if table_path and isinstance(node, Mapping) and path[-1] not in node:
        raise ConfigError(
            f"--table {path[-1]}=...: the problem has no table {path[-1]!r}; its tables: "
            f"{', '.join(map(str, node))}."
        )
    if not isinstance(node, Mapping) or path[-1] not in node:
        raise ConfigError(f"--set {dotted}: there is no key {path[-1]!r} in the settings.")
    if isinstance(node[path[-1]], Mapping):
        raise ConfigError(f"--set {dotted}: that is a section, set one of its keys instead.")
    return deep_merge(config, patch)


# Sections whose keys are the problem's own: `--set` may add a key to them.
FREE_FORM = {("params",), ("validation", "parameters"), ("gate", "floors"), ("gate", "ceilings")}


def _section(config: Mapping[str, Any], path: tuple[str, ...]) -> Mapping[str, Any] | None:
    node: Any = config
    for part in path:
        node = node.get(part) if isinstance(node, Mapping) else None
    return node if isinstance(node, Mapping) else None


def project_root() -> Path:
    """The folder holding `environments/`: $ML_PROJECT_ROOT, the cwd, or the source checkout."""
    candidates = []
    if os.environ.get("ML_PROJECT_ROOT"):
        candidates.append(Path(os.environ["ML_PROJECT_ROOT"]))
    candidates += [Path.cwd(), Path(__file__).resolve().parent.parent]
    for candidate in candidates:
        if (candidate / "environments" / "base.yaml").is_file():
            return candidate.resolve()
    raise ConfigError(
        "Cannot find environments/base.yaml: run ml-project from the project folder or set "
        "ML_PROJECT_ROOT to it."
    )


def problem_folder(root: Path, problem: str) -> Path:
    """problems/<problem>/ of the project: the problem's code, settings and suites."""
    return Path(root) / PROBLEMS_FOLDER / problem


def parse_table(text: str) -> tuple[str, Path]:
    """`--table NAME=PATH` -> (name, absolute path): the one parser of that option."""
    name, sep, path = text.partition("=")
    name, path = name.strip(), path.strip()
    if not sep or not name or not path:
        raise ConfigError(f"--table expects NAME=PATH (e.g. orders=data/orders.csv), got {text!r}.")
    return name, absolute(path, option=f"--table {text.strip()}")


def parse_tables(texts: Iterable[str]) -> dict[str, Path]:
    """`--table` options as {name: absolute path} (a name given twice: the last path)."""
    return dict(parse_table(text) for text in texts)


def read_yaml(path: Path) -> dict[str, Any]:
    """A YAML mapping from `path`, or a ConfigError naming the file."""
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"Config file {path} does not exist.") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"Config file {path} cannot be read ({exc}).") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"Config file {path} is not valid YAML: {exc}") from exc
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"Config file {path} must hold a mapping, not {type(loaded).__name__}.")
    return loaded


def setting_layers(
    env: str, *, root: Path, problem: str | None = None
) -> list[tuple[Path | str, dict[str, Any]]]:
    """(file, mapping) in merge order: the project's base and env overlay, then the problem's.

    The problem is `problem` (the CLI's --problem) or the project's `problem:` setting.
    """
    if env not in ENVS:
        raise ConfigError(f"Unknown env {env!r}: choose one of {', '.join(ENVS)}.")
    project = Path(root) / "environments"
    layers: list[tuple[Path | str, dict[str, Any]]] = [
        (path, read_yaml(path)) for path in (project / "base.yaml", project / f"{env}.yaml")
    ]
    chosen = problem or deep_merge(layers[0][1], layers[1][1]).get("problem")
    if not isinstance(chosen, str) or not re.match(PROBLEM_PATTERN, chosen):
        raise ConfigError(
            f"{project / 'base.yaml'}: `problem:` must name a folder of {PROBLEMS_FOLDER}/ "
            f"(lower-case letters, digits, _), got {chosen!r}."
        )
    folder = problem_folder(root, chosen) / "environments"
    if not (folder / "base.yaml").is_file():
        known = sorted(
            p.parent.parent.name
            for p in (Path(root) / PROBLEMS_FOLDER).glob("*/environments/base.yaml")
        )
        raise ConfigError(
            f"There is no problem {chosen!r}: {folder / 'base.yaml'} does not exist (problems "
            f"here: {', '.join(known) or 'none'})."
        )
    layers += [
        (path, read_yaml(path))
        for path in (folder / "base.yaml", folder / f"{env}.yaml")
        if path.name == "base.yaml" or path.is_file()
    ]
    layers.append(("--problem" if problem else f"{project / 'base.yaml'}", {"problem": chosen}))
    return layers


def load_settings(
    env: str,
    *,
    problem: str | None = None,
    overrides: tuple[str, ...] = (),
    seed: int | None = None,
    root: Path | None = None,
) -> Settings:
    """Resolve the settings of `env`: project base < project overlay < problem base < problem
    overlay < `--set` overrides < `--seed`."""
    root = root or project_root()
    layers = setting_layers(env, root=root, problem=problem)
    merged: dict[str, Any] = {}
    for _, layer in layers:
        merged = deep_merge(merged, layer)
    if merged.get("env", env) != env:
        raise ConfigError(f"The settings set env: {merged['env']!r}, expected {env!r}.")
    merged["env"] = env
    cli: dict[str, Any] = {}
    for text in overrides:
        path, value = parse_assignment(text)
        merged = apply_assignment(merged, path, value)
        cli = apply_assignment(cli, path, value, create=True)
    if seed is not None:
        merged["seed"] = cli["seed"] = seed
    return validate_settings(merged, layers=[*layers, ("the command line (--set)", cli)])


def validate_settings(
    merged: Mapping[str, Any], *, layers: Sequence[tuple[Path | str, Mapping[str, Any]]] = ()
) -> Settings:
    """Settings from a merged dict; errors name the key and the file (or flag) that set it."""
    try:
        settings = Settings.model_validate(merged)
        settings._layers = tuple(layers)
        return settings
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            loc = tuple(str(part) for part in error["loc"])
            if loc and error["type"] == "missing":
                problems.append(f"{'.'.join(loc)}: missing ({_where_missing(layers)})")
                continue
            if loc:
                problems.append(f"{'.'.join(loc)} ({_origin(loc, layers)}): {error['msg']}")
                continue
            # a rule across keys (Settings._consistent): each part starts with its key
            for part in error["msg"].removeprefix("Value error, ").split("; "):
                key, sep, rest = part.partition(": ")
                if sep and re.fullmatch(r"[\w.]+", key):
                    where = _origin(tuple(key.split(".")), layers)
                    problems.append(f"{key} ({where}): {rest}")
                else:
                    problems.append(part)
        raise ConfigError("Invalid settings: " + "; ".join(problems) + ".") from exc


def _where_missing(layers: Iterable[tuple[Path | str, Mapping[str, Any]]]) -> str:
    """Where a required key belongs: the problem's base.yaml (or base.yaml if no problem)."""
    files = [str(path) for path, _ in layers if str(path).endswith("base.yaml")]
    return f"set it in {files[-1]}" if files else "set it in the settings"


def _origin(loc: tuple[str, ...], layers: Iterable[tuple[Path | str, Mapping[str, Any]]]) -> str:
    """The last layer that mentions `loc` (the one that set it), or 'command line'."""
    if not loc:
        return "the settings as a whole"
    for path, layer in reversed(list(layers)):
        node: Any = layer
        for part in loc:
            if isinstance(node, Mapping) and part in node:
                node = node[part]
            else:
                break
        else:
            return f"set in {path}"
    for path, layer in reversed(list(layers)):
        if isinstance(layer, Mapping) and loc[0] in layer:
            return f"section in {path}"
    return "missing or set on the command line"
