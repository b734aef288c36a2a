"""One config schema: environments/base.yaml deep-merged with environments/<env>.yaml.

Precedence: base < env overlay < CLI flags (`--seed`, `--set key.path=value`). Dicts merge
recursively; lists and scalars replace. Unknown keys and wrong types are errors naming the key
and the file that set it. Settings are frozen once built.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ml_project.errors import ConfigError

ENVS = ("dev", "staging", "prod")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataSettings(_Section):
    """Where the data comes from and which rows are used."""

    flights: str | None = Field(
        default=None, description="flights file (CSV, zipped CSV, Parquet); null = demo data"
    )
    weather: str | None = Field(default=None, description="hourly weather file; null = demo data")
    sample_fraction: float = Field(gt=0, le=1, description="share of labelled rows used")
    key_columns: tuple[str, ...] = Field(min_length=1, description="columns naming one flight")
    delay_threshold_minutes: float = Field(description="arr_delay above this is 'late'")


class SplitSettings(_Section):
    test_fraction: float = Field(gt=0, lt=1)


class FeatureSettings(_Section):
    """Model features, in the order the model sees them (derived names are in features.py)."""

    categorical: tuple[str, ...]
    numeric: tuple[str, ...]

    @model_validator(mode="after")
    def _no_overlap(self) -> FeatureSettings:
        both = set(self.categorical) & set(self.numeric)
        if both:
            raise ValueError(f"features listed as both categorical and numeric: {sorted(both)}")
        return self


class ModelSettings(_Section):
    """HistGradientBoostingClassifier hyper-parameters and the decision threshold."""

    learning_rate: float = Field(gt=0)
    max_iter: int = Field(ge=1)
    max_leaf_nodes: int = Field(ge=2)
    min_samples_leaf: int = Field(ge=1)
    l2_regularization: float = Field(ge=0)
    max_bins: int = Field(ge=2, le=255)
    threshold: float = Field(
        gt=0, lt=1, description="probability at or above which a flight is late"
    )


class TrackingSettings(_Section):
    experiment_name: str = Field(min_length=1)
    model_name: str = Field(min_length=1)


class LineageSettings(_Section):
    require_clean_tree: bool


class ValidationSettings(_Section):
    """Thresholds of the expectation suites in expectations/ that differ by env.

    The suites name them as `$min_rows_flights`, `$label_mostly`, ... (see validation.py).
    """

    min_rows_flights: int = Field(ge=1, description="fewest rows the raw flights file may hold")
    min_rows_weather: int = Field(ge=1, description="fewest rows the weather file may hold")
    max_label_null_fraction: float = Field(
        ge=0, lt=1, description="share of flights allowed without arr_delay (the label)"
    )
    mostly: float = Field(
        gt=0, le=1, description="share of rows a range check on a measurement must pass"
    )
    extra_carriers: tuple[str, ...] = Field(
        default=(), description="carrier codes accepted beyond the suites' known list"
    )


class MonitorSettings(_Section):
    """The reference profile logged at training, and when `ml-project monitor` says drift."""

    bins: int = Field(ge=2, le=100, description="quantile bins per numeric feature")
    max_categories: int = Field(ge=1, description="categories kept per feature; the rest = other")
    psi_warn: float = Field(gt=0, description="PSI at or above this is reported as a warning")
    psi_alert: float = Field(gt=0, description="PSI at or above this is drift (exit 7)")
    null_rate_change: float = Field(gt=0, le=1, description="largest null-rate move allowed")
    max_roc_auc_drop: float = Field(gt=0, lt=1, description="live vs recorded test ROC AUC")
    min_rows: int = Field(ge=1, description="smaller batches are refused (PSI would be noise)")
    ignore: tuple[str, ...] = Field(description="features reported but never drift")

    @model_validator(mode="after")
    def _warn_below_alert(self) -> MonitorSettings:
        if self.psi_warn > self.psi_alert:
            raise ValueError(f"psi_warn {self.psi_warn} is above psi_alert {self.psi_alert}")
        return self


# Metrics the gate may judge (names as in evaluate.classification_metrics) and their direction.
HigherIsBetter = Literal["roc_auc", "pr_auc", "f1"]
LowerIsBetter = Literal["log_loss", "brier"]


class GateSettings(_Section):
    """The fail-closed quality gate a new model version passes before it becomes `champion`."""

    floors: dict[HigherIsBetter, float] = Field(
        description="minimum held-out score per metric (higher is better)"
    )
    ceilings: dict[LowerIsBetter, float] = Field(
        description="maximum held-out loss per metric (lower is better)"
    )
    primary_metric: HigherIsBetter | LowerIsBetter = Field(
        description="the metric compared with the champion's on the same held-out rows"
    )
    tolerance: float = Field(ge=0, description="how much worse than the champion is accepted")
    compare_with_champion: bool = Field(description="false: the floors and ceilings only")


class Settings(_Section):
    env: Literal["dev", "staging", "prod"]
    seed: int = Field(ge=0, le=2**32 - 1)
    data: DataSettings
    split: SplitSettings
    features: FeatureSettings
    model: ModelSettings
    tracking: TrackingSettings
    lineage: LineageSettings
    validation: ValidationSettings
    monitor: MonitorSettings
    gate: GateSettings

    def config_hash(self) -> str:
        """sha256 of the resolved settings as canonical JSON."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


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
    """`model.max_iter=50` -> (("model", "max_iter"), 50); the value is read as YAML."""
    path, sep, raw = text.partition("=")
    if not sep or not path.strip():
        raise ConfigError(f"--set expects KEY.PATH=VALUE (e.g. model.max_iter=50), got {text!r}.")
    try:
        value = yaml.safe_load(raw) if raw.strip() else raw
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {text!r}: the value is not valid YAML ({exc}).") from exc
    return tuple(part.strip() for part in path.split(".")), value


def apply_assignment(config: Mapping[str, Any], path: tuple[str, ...], value: Any) -> dict:
    """Replace one existing scalar (or list) in `config`; unknown keys are an error."""
    dotted = ".".join(path)
    node: Any = config
    for part in path[:-1]:
        if not isinstance(node, Mapping) or part not in node:
            raise ConfigError(f"--set {dotted}: there is no section {part!r} in the settings.")
        node = node[part]
    if not isinstance(node, Mapping) or path[-1] not in node:
        raise ConfigError(f"--set {dotted}: there is no key {path[-1]!r} in the settings.")
    if isinstance(node[path[-1]], Mapping):
        raise ConfigError(f"--set {dotted}: that is a section, set one of its keys instead.")
    patch: Any = value
    for part in reversed(path):
        patch = {part: patch}
    return deep_merge(config, patch)


def project_root() -> Path:
    """The folder holding `environments/`: $ML_PROJECT_ROOT, the source checkout, or the cwd."""
    candidates = []
    if os.environ.get("ML_PROJECT_ROOT"):
        candidates.append(Path(os.environ["ML_PROJECT_ROOT"]))
    candidates += [Path(__file__).resolve().parent.parent, Path.cwd()]
    for candidate in candidates:
        if (candidate / "environments" / "base.yaml").is_file():
            return candidate.resolve()
    raise ConfigError(
        "Cannot find environments/base.yaml: run ml-project from the project folder or set "
        "ML_PROJECT_ROOT to it."
    )


def read_yaml(path: Path) -> dict[str, Any]:
    """A YAML mapping from `path`, or a ConfigError naming the file."""
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"Config file {path} does not exist.") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"Config file {path} is not valid YAML: {exc}") from exc
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"Config file {path} must hold a mapping, not {type(loaded).__name__}.")
    return loaded


def load_settings(
    env: str,
    *,
    overrides: tuple[str, ...] = (),
    seed: int | None = None,
    root: Path | None = None,
) -> Settings:
    """Resolve the settings of `env`: base < overlay < `--set` overrides < `--seed`."""
    if env not in ENVS:
        raise ConfigError(f"Unknown env {env!r}: choose one of {', '.join(ENVS)}.")
    folder = (root or project_root()) / "environments"
    layers = [(folder / "base.yaml", read_yaml(folder / "base.yaml"))]
    layers.append((folder / f"{env}.yaml", read_yaml(folder / f"{env}.yaml")))
    merged: dict[str, Any] = {}
    for _, layer in layers:
        merged = deep_merge(merged, layer)
    if merged.get("env", env) != env:
        raise ConfigError(
            f"{folder / f'{env}.yaml'} sets env: {merged['env']!r}, expected {env!r}."
        )
    merged["env"] = env
    for text in overrides:
        merged = apply_assignment(merged, *parse_assignment(text))
    if seed is not None:
        merged["seed"] = seed
    return validate_settings(merged, layers=layers)


def validate_settings(
    merged: Mapping[str, Any], *, layers: list[tuple[Path, Mapping[str, Any]]] = ()
) -> Settings:
    """Settings from a merged dict; errors name the key and the file (or flag) that set it."""
    try:
        return Settings.model_validate(merged)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            loc = tuple(str(part) for part in error["loc"])
            where = _origin(loc, layers)
            key = ".".join(loc) or "(top level)"
            problems.append(f"{key} ({where}): {error['msg']}")
        raise ConfigError("Invalid settings: " + "; ".join(problems) + ".") from exc


def _origin(loc: tuple[str, ...], layers) -> str:
    """The last layer that mentions `loc` (the one that set it), or 'command line'."""
    for path, layer in reversed(list(layers)):
        node: Any = layer
        for part in loc:
            if isinstance(node, Mapping) and part in node:
                node = node[part]
            else:
                break
        else:
            return f"set in {path}"
    if loc:
        for path, layer in reversed(list(layers)):
            if isinstance(layer, Mapping) and loc[0] in layer:
                return f"section in {path}"
    return "missing or set on the command line"
