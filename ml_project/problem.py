"""The interface between the platform and a problem: problems/<name>/problem.py.

A problem is a folder the user owns:

    problems/<name>/
      problem.py         the code (below); may be empty for one table and the default model
      environments/      base.yaml + dev/staging/prod.yaml: tables, key, label, task, features,
                         params, suite parameters, gate floors (merged over environments/)
      expectations/      one great-expectations suite per table, and model_input.yaml

`problem.py` may define, all optional:

    class Params(pydantic.BaseModel)   validates the settings' `params:` (extra keys refused)
    def records(tables, params) -> DataFrame
        the named tables -> one frame of raw records (one row per prediction, holding the key
        columns, the model's input columns and what the label is made of). Default: the only
        table, as read.
    def label(records, params) -> Series
        the label of each record (NaN/None: unknown, the row is not used). Default: the column
        named by `data.label`.
    def build_model(*, features, task, params, seed) -> sklearn estimator
        an unfitted estimator (a Pipeline) from the raw input columns (`features.categorical`
        as text, `features.numeric` as float64) to the label. Default:
        `ml_project.estimators.tabular_model`, gradient boosting with `params` as its
        hyper-parameters.
    TRUSTED_TYPES: list[str]
        the problem's own classes inside the fitted model, for skops to load them.
    METRICS: list[ml_project.metrics.Metric]
        the problem's own metrics, computed with the task's on the held-out rows (logged as
        test_<name>), and usable in gate.floors / gate.ceilings / gate.primary_metric, e.g.
            def _within_10pct(y_true, predictions):  # predictions: metrics.Predictions
                return float(np.mean(abs(predictions.prediction - y_true) <= 0.1 * y_true))
            METRICS = [Metric("within_10pct", higher_is_better=True, compute=_within_10pct)]
        (`units=True` for an unbounded quantity: tolerances become fractions of its value).

The platform imports it as `problems.<name>.problem` with the project root on sys.path, and
logs the `problems/` folder with the model (code_paths), so a served model imports it the same
way. Nothing here names a particular problem.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pandas as pd
from pydantic import BaseModel, ValidationError

from ml_project import validation
from ml_project.errors import ConfigError, DataError
from ml_project.estimators import DefaultParams, tabular_model
from ml_project.metrics import REGISTRY, Metric, Predictions, gate_problems
from ml_project.settings import PROBLEMS_FOLDER, Settings, problem_folder

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

MODULE = "problem.py"


@dataclass(frozen=True)
class Problem:
    """A loaded problem: its module, its folder and its validated params."""

    name: str
    folder: Path
    module: ModuleType
    params: Any
    metrics: Mapping[str, Metric] = field(default_factory=dict)  # its own (METRICS)

    @property
    def suites_folder(self) -> Path:
        return self.folder / "expectations"

    def records(self, tables: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
        """The problem's records from its tables (the only table when it defines none)."""
        make = getattr(self.module, "records", None)
        if make is None:
            if len(tables) != 1:
                raise ConfigError(
                    f"{self.folder / MODULE}: the problem reads {len(tables)} tables "
                    f"({', '.join(tables)}) but defines no records(tables, params) to join "
                    "them into one frame."
                )
            return next(iter(tables.values()))
        try:
            out = make(dict(tables), self.params)
        except NotImplementedError as exc:  # `ml-project init` leaves a join to write
            raise ConfigError(
                f"{self.folder / MODULE}: records() is not written yet"
                + (f": {exc}." if str(exc) else ".")
            ) from exc
        if not isinstance(out, pd.DataFrame):
            raise ConfigError(
                f"{self.folder / MODULE}: records() returned {type(out).__name__}, not a "
                "pandas DataFrame."
            )
        return out

    def label(self, records: pd.DataFrame, column: str) -> pd.Series:
        """The label of each record (missing where unknown)."""
        make = getattr(self.module, "label", None)
        if make is None:
            if column not in records.columns:
                raise DataError(
                    f"records of problem {self.name}: no label column {column!r} (data.label); "
                    f"the columns are {', '.join(map(str, records.columns))}."
                )
            return records[column]
        out = make(records, self.params)
        if not isinstance(out, pd.Series) or len(out) != len(records):
            raise ConfigError(
                f"{self.folder / MODULE}: label() must return a pandas Series with one value "
                "per record."
            )
        return out

    def label_sources(self, records: pd.DataFrame, column: str) -> list[str]:
        """The records' columns the label is made of, for messages: `column` without a label();
        else the columns label() reads by name (records[...], records.name, records.get), found by
        calling it once more on a frame that notes them (best effort: [] if it cannot tell)."""
        make = getattr(self.module, "label", None)
        if make is None:
            return [column]
        read: list[str] = []

        class Noting(pd.DataFrame):  # type: ignore[misc]  # pandas is untyped here
            @property
            def _constructor(self) -> Any:
                return pd.DataFrame

            def __getitem__(self, key: Any) -> Any:
                for name in key if isinstance(key, list) else [key]:
                    if isinstance(name, str) and name in self.columns and name not in read:
                        read.append(name)
                return super().__getitem__(key)

        # only for a message: what it read before any failure is enough
        with contextlib.suppress(Exception):
            make(Noting(records), self.params)
        return read

    def build_model(self, settings: Settings) -> Pipeline:
        """The problem's unfitted estimator (or the platform's default one), behind the hard
        rules of its model-input suite (ml_project/input_rules.py)."""
        from ml_project.input_rules import with_input_rules  # lazy: it imports mlflow

        make = getattr(self.module, "build_model", None) or tabular_model
        model = make(
            features=settings.features, task=settings.task, params=self.params, seed=settings.seed
        )
        return with_input_rules(model, self.input_rules(settings))

    def input_rules(self, settings: Settings) -> list[dict[str, Any]]:
        """The model-input suite's rules a single row can break (its parameters filled in)."""
        from ml_project.input_rules import hard_rules  # lazy: it imports mlflow

        suite = f"{validation.SUITES_FOLDER}/{validation.MODEL_INPUT}.yaml"
        spec = validation.read_suite(self.folder / suite, validation.suite_parameters(settings))
        return hard_rules(spec.expectations, source=f"{PROBLEMS_FOLDER}/{settings.problem}/{suite}")

    @property
    def trusted_types(self) -> list[str]:
        return list(getattr(self.module, "TRUSTED_TYPES", []))


def importable(root: Path) -> None:
    """Make `problems` this project's problems/ folder, and the project root first on sys.path.

    `problems` is bound to the folder explicitly: another `problems` package earlier on the
    path (another checkout, a regular package where this one has no __init__.py) never wins.
    """
    root = Path(root).resolve()
    folder = root / PROBLEMS_FOLDER
    loaded = sys.modules.get(PROBLEMS_FOLDER)
    paths = [str(Path(p).resolve()) for p in getattr(loaded, "__path__", [])]
    if loaded is None or paths != [str(folder)]:
        for name in [n for n in sys.modules if n.split(".")[0] == PROBLEMS_FOLDER]:
            del sys.modules[name]
        init = folder / "__init__.py"
        if init.is_file():
            spec = importlib.util.spec_from_file_location(
                PROBLEMS_FOLDER, init, submodule_search_locations=[str(folder)]
            )
            assert spec is not None and spec.loader is not None  # a file's spec, with its loader
            module = importlib.util.module_from_spec(spec)
            sys.modules[PROBLEMS_FOLDER] = module
            spec.loader.exec_module(module)
        else:
            module = ModuleType(PROBLEMS_FOLDER)
            module.__path__ = [str(folder)]
            sys.modules[PROBLEMS_FOLDER] = module
    if str(root) in sys.path:
        sys.path.remove(str(root))
    sys.path.insert(0, str(root))
    importlib.invalidate_caches()


def load_problem(settings: Settings, root: Path) -> Problem:
    """Import problems/<settings.problem>/problem.py and validate the settings' params."""
    folder = problem_folder(root, settings.problem)
    if not (folder / MODULE).is_file():
        raise ConfigError(
            f"{folder / MODULE} does not exist: every problem has one (it may be empty when "
            "the problem reads one table and uses the default model)."
        )
    importable(root)
    name = f"{PROBLEMS_FOLDER}.{settings.problem}.problem"
    try:
        module = importlib.import_module(name)
    except Exception as exc:  # the user's code: any import error, named with its file
        raise ConfigError(
            f"{folder / MODULE} cannot be imported: {type(exc).__name__}: {exc}"
        ) from exc
    params = validate_params(module, settings, folder)
    own = problem_metrics(module, folder)
    problems = gate_problems(
        settings.task,
        floors=settings.gate.floors,
        ceilings=settings.gate.ceilings,
        primary=settings.gate.primary_metric,
        extra=own,
    )
    if problems:  # "gate.floors.x: ..." -> "gate.floors.x (set in FILE): ..."
        named = [
            f"{key} ({settings.origin(*key.split('.'))}):{rest}"
            for key, _, rest in (problem.partition(":") for problem in problems)
        ]
        raise ConfigError(
            f"Invalid gate for problem {settings.problem}: {'; '.join(named)}. A problem's own "
            f"metrics are METRICS in {folder / MODULE}."
        )
    return Problem(settings.problem, folder, module, params, own)


METRIC_NAME = r"^[a-z][a-z0-9_]{0,63}$"


def problem_metrics(module: ModuleType, folder: Path) -> dict[str, Metric]:
    """The problem's own metrics (its METRICS), checked, each failing with its file named."""
    declared = getattr(module, "METRICS", None)
    if declared is None:
        return {}
    where = f"{folder / MODULE}: METRICS"
    if not isinstance(declared, list | tuple) or not all(isinstance(m, Metric) for m in declared):
        raise ConfigError(f"{where} must be a list of ml_project.metrics.Metric.")
    builtin = {name for metrics in REGISTRY.values() for name in metrics}
    out: dict[str, Metric] = {}
    for metric in declared:
        if not re.match(METRIC_NAME, metric.name):
            raise ConfigError(
                f"{where}: metric name {metric.name!r} must be lower-case letters, digits and _."
            )
        if metric.name in builtin or metric.name in out:
            raise ConfigError(
                f"{where}: the name {metric.name!r} is taken (a built-in metric or a repeat)."
            )
        out[metric.name] = replace(metric, compute=_guarded(metric, where))
    return out


def _guarded(metric: Metric, where: str) -> Any:
    """`metric.compute`, with a failure (other than an undefined value) named by its file."""
    compute = metric.compute

    def run(y_true: Any, predictions: Predictions) -> float:
        try:
            value = compute(y_true, predictions)
        except ValueError:  # undefined on these rows: NaN, which the gate fails closed on
            raise
        except Exception as exc:  # the user's code: any error, named with its file
            raise ConfigError(
                f"{where}: {metric.name} failed: {type(exc).__name__}: {exc}"
            ) from exc
        try:
            return float(value)
        except (TypeError, ValueError) as exc:
            raise ConfigError(
                f"{where}: {metric.name} returned {type(value).__name__}, not a number."
            ) from exc

    return run


def validate_params(module: ModuleType, settings: Settings, folder: Path) -> Any:
    """The settings' `params:` as the problem's Params model; without one, a dict (checked
    against the default model's hyper-parameters when the problem uses the default model)."""
    schema = getattr(module, "Params", None)
    if schema is not None:
        return _checked(schema, settings, f"Params in {folder / MODULE}")
    if not hasattr(module, "build_model"):
        checked = _checked(DefaultParams, settings, "the default model's DefaultParams")
        if getattr(checked, "log_target", False) and settings.task != "regression":
            raise ConfigError(
                f"params.log_target ({settings.origin('params', 'log_target')}): a log target "
                f"is for a regression, and problem {settings.problem} is a {settings.task} task."
            )
    return dict(settings.params)


def _checked(schema: type[BaseModel], settings: Settings, checked_by: str) -> BaseModel:
    try:
        return schema.model_validate(dict(settings.params))
    except ValidationError as exc:
        problems = "; ".join(
            f"params.{'.'.join(map(str, e['loc']))} "
            f"({settings.origin('params', *map(str, e['loc']))}): {e['msg']}"
            for e in exc.errors()
        )
        raise ConfigError(
            f"Invalid params for problem {settings.problem} (checked by {checked_by}): {problems}."
        ) from exc
