"""`ml-project init`: a new problem's files from its tables' profiles.

`plan_problem` is pure: profiles and the request in, every file's text out (or an error, before
anything is written). `run_init` is the edge: it reads the tables, plans, refuses to overwrite
(unless forced) and only then writes. What is written is the user's from then on: problem.py,
environments/{base,dev,staging,prod}.yaml and one expectation suite per table plus
model_input.yaml (contracts.py writes them). The join guess is scaffold_joins.py; what init
prints, views.next_steps.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd

from ml_project import data, progress, sources
from ml_project.contracts import flow, model_input_suite, table_suite, wrap
from ml_project.errors import ConfigError, DataError
from ml_project.problem import load_problem
from ml_project.profile import (
    MAX_CATEGORIES,
    TIME_NAME,
    YEAR_NAME,
    ColumnProfile,
    TableProfile,
    category_limit,
    profile_table,
)
from ml_project.records import read_tables, table_paths
from ml_project.scaffold_joins import ID_NAME, Join, join_tables, plan_joins, unmatched_warnings
from ml_project.settings import (
    ENVS,
    PROBLEM_PATTERN,
    PROBLEMS_FOLDER,
    PROJECT_SETTINGS,
    Settings,
    deep_merge,
    parse_table,
    read_yaml,
)
from ml_project.validation import MODEL_INPUT
from ml_project.vocabulary import TASKS, Task

PRIMARY: dict[Task, str] = {"binary": "roc_auc", "multiclass": "accuracy", "regression": "rmse"}
EXAMPLE_FLOOR: dict[Task, str] = {
    "binary": "roc_auc: 0.7", "multiclass": "accuracy: 0.6", "regression": "r2: 0.5"
}  # fmt: skip
SAMPLE_TARGETS = {"dev": 20_000, "staging": 50_000}  # rows: a fast loop; well under a minute
FRACTIONS = (1.0, 0.5, 0.25, 0.2, 0.1, 0.05, 0.02, 0.01, 0.005, 0.002, 0.001, 0.0005, 0.0001)
SUBSET = 0.5  # a small table's staging sample: a seeded half, so prod's training is no repeat
SUBSET_MARGIN = 1.5  # ... when half still holds 1.5x the held-out and class rows asked
# Times that describe a record rather than say when it happened: never the split's first choice.
ATTRIBUTE_TIME = re.compile(
    r"birth|born|dob|expir|due|valid|built|manufactur|model_?year|since|opened|founded", re.I
)
SEASON = re.compile(r"(^|[^a-z])seasons?([^a-z]|$)", re.IGNORECASE)
ROW_NAME = re.compile(
    r"^(unnamed: ?\d+|index|idx|level_0|row|rownum|row_?(num|number|no|nr|id|index))$", re.I
)
# early_stopping: a boosting run past its best iteration fails the gate's health check
# (gate.max_loss_rise); stopping is seeded, so it reproduces bit for bit (estimators.py).
DEFAULT_PARAMS = {"learning_rate": 0.1, "max_iter": 200, "max_leaf_nodes": 31,
                  "min_samples_leaf": 20, "early_stopping": True}  # fmt: skip
_DEFAULT_PROBLEM = re.compile(r"^problem:[ \t]*([^\s#]*)", re.MULTILINE)


@dataclass(frozen=True)
class InitRequest:
    """What `ml-project init` was asked: tables (name -> file, in order), label, key, task."""

    tables: dict[str, Path | str]  # a local file, or a source's setting (sources.py)
    label: str
    key_columns: tuple[str, ...]
    kind: Task
    name: str | None = None


@dataclass(frozen=True)
class Features:
    categorical: tuple[str, ...]
    numeric: tuple[str, ...]
    dropped: dict[str, str] = field(default_factory=dict)  # column -> why it is not read
    datetime: tuple[str, ...] = ()
    offered: dict[str, str] = field(default_factory=dict)  # key column read -> why

    @property
    def columns(self) -> list[str]:
        return [*self.categorical, *self.numeric, *self.datetime]


@dataclass(frozen=True)
class ProjectDefaults:
    """What the project's environments/ set that the new problem's overlays depend on."""

    test_fraction: float = 0.2
    min_test_rows: Mapping[str, int] = field(
        default_factory=lambda: {"dev": 100, "staging": 100, "prod": 1000}
    )
    min_class_rows: int = 10
    monitor_min_rows: Mapping[str, int] = field(
        default_factory=lambda: {"dev": 500, "staging": 1000, "prod": 5000}
    )


@dataclass(frozen=True)
class Draft:
    """What the files are written from: the tables profiled and the choices made on them."""

    request: InitRequest
    name: str
    profiles: Mapping[str, TableProfile]
    records: TableProfile  # the first table, joined as records() joins it
    features: Features
    specs: Mapping[str, str]  # table -> its `data.tables` setting
    joins: tuple[Join, ...] = ()
    time_column: str | None = None
    time_note: str | None = None  # why no time column was chosen
    ignored: tuple[str, ...] = ()
    unjoined: tuple[str, ...] = ()  # why no join was guessed (several tables, none joined)

    @property
    def main(self) -> TableProfile:
        return self.profiles[next(iter(self.request.tables))]

    @property
    def source(self) -> str:
        if not self.joins:
            return f"table {self.main.name}"
        joined = "; ".join(f"{join.table} on {', '.join(join.on)}" for join in self.joins)
        return f"the records ({self.main.name} joined with {joined})"


@dataclass(frozen=True)
class Plan:
    """The problem to write: its name, its files (relative to the root -> text), its choices."""

    name: str
    files: dict[str, str]
    features: Features
    fractions: dict[str, float]
    previous_default: str | None = None  # the project's `problem:` before init changed it
    image_changed: bool = False  # init pointed the Dockerfile's served model at this problem
    warnings: tuple[str, ...] = ()  # what training will refuse unless the user acts
    joins: tuple[Join, ...] = ()  # how records() joins the further tables (none: to write)
    time_column: str | None = None  # split.time_column: the newest rows are held out
    ignored: tuple[str, ...] = ()  # monitor.ignore: year-like features


# --- the request -------------------------------------------------------------------------


def init_tables(texts: Sequence[str]) -> dict[str, Path | str]:
    """init's `--table` options, each name given once and no suite's name: a local file
    (settings.parse_table: an absolute path), or a source the settings name as it is
    (`sources.is_remote`: a URL, `sql:<query file>@VARIABLE` or a `.sql` file)."""
    parsed = [_init_table(text) for text in texts]
    for (name, _), text in zip(parsed, texts, strict=True):
        if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", name) or name == MODEL_INPUT:
            raise ConfigError(
                f"--table {text!r}: a table name is letters, digits, '_', '.', '-' (and not "
                f"{MODEL_INPUT}, the model input's suite)."
            )
    if len({name for name, _ in parsed}) != len(parsed):
        raise ConfigError("--table: each table name may be given once.")
    return dict(parsed)


def _init_table(text: str) -> tuple[str, Path | str]:
    name, _, value = text.partition("=")
    spec = sources.init_spec(value.strip())
    return (name.strip(), spec) if spec else parse_table(text)


def problem_name(request: InitRequest) -> str:
    """--name, checked, or the first table's name made a Python package name."""
    if request.name is not None:
        if not re.fullmatch(PROBLEM_PATTERN, request.name) or not request.name[0].isalpha():
            raise ConfigError(
                f"--name {request.name!r}: a problem's name is a folder of {PROBLEMS_FOLDER}/ "
                "and a Python package: a lower-case letter, then letters, digits and '_'."
            )
        return request.name
    name = re.sub(r"[^a-z0-9_]+", "_", next(iter(request.tables)).lower()).strip("_")
    return name if name[:1].isalpha() else f"problem_{name}".rstrip("_")


def check_request(
    request: InitRequest, frames: Mapping[str, pd.DataFrame], main: TableProfile
) -> None:
    """Refuse a label or key the first table does not hold, a label that cannot be learnt as
    the task says, and a key that does not name one row."""
    table = main.name
    columns = ", ".join(main.names)
    for option, wanted in (("--label", [request.label]), ("--key", request.key_columns)):
        missing = [column for column in wanted if column not in main.names]
        if missing:
            raise ConfigError(
                f"{option} {', '.join(missing)}: no such column in table {table} "
                f"({request.tables[table]}); its columns are {columns}."
            )
    if request.label in request.key_columns:
        raise ConfigError(f"--label {request.label} is also a --key column.")
    check_label(main.column(request.label), request.kind, table=table)
    frame = frames[table]
    for column in request.key_columns:
        if frame[column].isna().any():
            raise DataError(
                f"--key {column}: {int(frame[column].isna().sum())} rows of table {table} have "
                "no value there; a key names every row."
            )
    data.require_unique_keys(frame, request.key_columns, table=f"table {table} (--key)")


def check_label(label: ColumnProfile, kind: Task, *, table: str) -> None:
    """The label's values fit the task: two classes for binary, a few for multiclass, numbers
    for regression; never a single value."""
    where = f"--label {label.name} (table {table})"
    if label.distinct == 0:
        raise DataError(f"{where}: the column is empty: there is nothing to learn.")
    if label.distinct == 1:
        value = label.categories[0][0] if label.categories else "?"
        raise DataError(
            f"{where}: every row holds the same value ({value!r}): a model needs at least two."
        )
    if kind == "regression":
        if label.kind != "numeric":
            raise ConfigError(
                f"{where}: --kind regression needs a numeric label; this one is {label.kind} "
                f"({label.dtype}). Use --kind binary or multiclass."
            )
        return
    if label.categories is None or label.distinct > MAX_CATEGORIES:
        raise ConfigError(
            f"{where}: {label.distinct} distinct values are too many classes for --kind {kind} "
            f"(at most {MAX_CATEGORIES}); a numeric label is --kind regression."
        )
    classes = ", ".join(f"{value!r}" for value, _ in label.categories[:10])
    if kind == "binary" and label.distinct != 2:
        raise ConfigError(
            f"{where}: --kind binary needs two classes; the label has {label.distinct} "
            f"({classes}). Use --kind multiclass."
        )
    if kind == "multiclass" and label.distinct == 2:
        raise ConfigError(f"{where}: the label has two classes ({classes}): use --kind binary.")


# --- choices -----------------------------------------------------------------------------


def choose_features(
    profile: TableProfile,
    *,
    key_columns: Sequence[str],
    label: str,
    own: Mapping[str, ColumnProfile] | None = None,
) -> Features:
    """Text with few values -> categorical, numbers -> numeric, timestamps -> datetime; never
    the label or a key of one column (unless a time), a compound key's components when they
    carry information (a time; not unique alone, few values); identifiers, row numbers, free
    text and constant or empty columns are left out (with why). `own`: each column as profiled
    in its own table (a dimension table's row number is not one once joined)."""
    categorical: list[str] = []
    numeric: list[str] = []
    times: list[str] = []
    dropped: dict[str, str] = {}
    offered: dict[str, str] = {}
    for column in profile.columns:
        if column.name == label:
            continue
        if column.name in key_columns:
            why = _key_component(column, compound=len(key_columns) > 1)
            if why is None:
                continue
            offered[column.name] = why
        else:
            reason = _drop_reason(column, (own or {}).get(column.name, column), profile.rows)
            if reason:
                dropped[column.name] = reason
                continue
        kinds = {"text": categorical, "datetime": times}
        kinds.get(column.kind, numeric).append(column.name)
    if not categorical and not numeric and not times:
        raise DataError(
            f"table {profile.name}: no column to learn from besides the key and the label "
            f"(left out: {'; '.join(f'{k}: {v}' for k, v in dropped.items()) or 'none'})."
        )
    return Features(tuple(categorical), tuple(numeric), dropped, tuple(times), offered)


def _key_component(column: ColumnProfile, *, compound: bool) -> str | None:
    """Why a key column is read, or None: a time (even a key of its own: its month or weekday
    may carry information), or a component of a compound key that is not unique alone and has
    few values."""
    if column.kind == "datetime" and column.distinct >= 2:
        return f"{column.distinct} times: the model reads numbers derived from them"
    if not compound or column.unique or column.distinct < 2:
        return None
    if column.kind in ("text", "numeric", "boolean") and column.categories is not None:
        return f"{column.distinct} values, not unique alone: it may carry information"
    return None


def _drop_reason(column: ColumnProfile, own: ColumnProfile, rows: int) -> str | None:
    filled = column.rows - column.nulls
    if filled == 0:
        return "empty"
    if column.distinct == 1:
        return f"one value only ({column.categories[0][0]!r})" if column.categories else "constant"
    if column.kind == "other":
        return f"{column.kind} ({column.dtype}): derive numbers from it in problem.py"
    numbered = own.kind == "numeric" and own.integer and own.unique
    if own.row_number_like or (numbered and ROW_NAME.match(column.name)):
        return "a row number (whole numbers, one per row, consecutive)"
    if column.kind in ("numeric", "boolean") and ID_NAME.search(column.name) and own.unique:
        return "an identifier (unique per row)"
    if column.kind == "text":
        if column.categories is None:
            return (
                f"free text or identifier ({column.distinct} distinct values; a category has "
                f"at most {category_limit(rows)} in {rows} rows)"
            )
        if filled > 20 and column.distinct > filled / 2:
            return f"free text or identifier ({column.distinct} distinct in {filled} rows)"
    return None


def choose_time_column(main: TableProfile) -> tuple[str | None, str | None]:
    """split.time_column: the first time column of the main table with a value in every row
    (the newest rows are held out), one saying when a record happened before one describing it
    (a birth date, an expiry, a model year: ATTRIBUTE_TIME), else the first year (or season)
    named so; and a note when a time column has gaps instead."""
    times = [column for column in main.columns if column.kind == "datetime" and column.distinct > 1]
    times.sort(key=lambda column: bool(ATTRIBUTE_TIME.search(column.name)))  # events first
    for column in times:
        if column.nulls == 0:
            return column.name, None
    if times:
        return None, (
            f"split.time_column not set: {times[0].name} has {times[0].nulls} empty values, and "
            "a row without a time cannot be ordered (the key's hash splits instead)"
        )
    named = (YEAR_NAME, TIME_NAME, SEASON)
    years = [
        column
        for column in main.columns
        if column.year_like and column.nulls == 0 and column.distinct > 1
        and any(name.search(column.name) for name in named)
        and not ATTRIBUTE_TIME.search(column.name)
    ]  # fmt: skip
    if years:  # no timestamp, but a year or a season: hold out the newest ones
        return years[0].name, None
    return None, None


def sample_fraction(rows: int, target: int) -> float:
    """The largest round fraction that keeps about `target` rows at most (1.0: all of them)."""
    return next((fraction for fraction in FRACTIONS if rows * fraction <= target), FRACTIONS[-1])


def sample_fractions(
    rows: int,
    *,
    defaults: ProjectDefaults | None = None,
    class_rows: Sequence[int] = (),
) -> dict[str, float]:
    """dev about 20k rows, staging about 50k, prod all; a table small enough for staging to
    take it whole gets a seeded half instead (staging is a real subset of prod's rows) when half
    still leaves the gate and every class enough rows (`whole_reason`); dev never more."""
    defaults = defaults or ProjectDefaults()
    fractions = {env: sample_fraction(rows, n) for env, n in SAMPLE_TARGETS.items()}
    for env in ("staging", "dev"):
        fits = whole_reason(env, rows, defaults=defaults, class_rows=class_rows) is None
        if fractions[env] == 1.0 and fits:
            fractions[env] = SUBSET
    if fractions["dev"] > fractions["staging"]:
        fractions["dev"] = fractions["staging"]
    return {**fractions, "prod": 1.0}


def whole_reason(
    env: str, rows: int, *, defaults: ProjectDefaults, class_rows: Sequence[int] = ()
) -> str | None:
    """Why `env` cannot train on a seeded half of `rows` (None: it can): too few held-out rows
    for the gate, or too few rows of a class for split.min_class_rows (each with a margin)."""
    test_rows = rows * SUBSET * defaults.test_fraction
    asked = defaults.min_test_rows.get(env, 100)
    if test_rows < SUBSET_MARGIN * asked:
        return (
            f"half of them would hold about {int(test_rows)} held-out rows, fewer than "
            f"{SUBSET_MARGIN:g} x gate.min_test_rows ({asked})"
        )
    rarest = min(class_rows, default=None)
    if rarest is not None and rarest * SUBSET < SUBSET_MARGIN * defaults.min_class_rows:
        return (
            f"half of them would hold about {int(rarest * SUBSET)} rows of the rarest class, "
            f"fewer than {SUBSET_MARGIN:g} x split.min_class_rows ({defaults.min_class_rows})"
        )
    return None


# --- the plan ----------------------------------------------------------------------------


def plan_problem(
    request: InitRequest,
    frames: Mapping[str, pd.DataFrame],
    *,
    root: Path,
    defaults: ProjectDefaults | None = None,
) -> Plan:
    """Every file of the new problem (path relative to `root` -> text), or an error."""
    if request.kind not in TASKS:
        raise ConfigError(f"--kind {request.kind!r}: choose one of {', '.join(TASKS)}.")
    defaults = defaults or ProjectDefaults()
    draft = draft_problem(request, frames, root=root)
    label = draft.main.column(request.label)
    labelled = draft.main.rows - label.nulls
    class_rows = (
        [count for _, count in label.categories or ()] if request.kind != "regression" else []
    )
    fractions = sample_fractions(labelled, defaults=defaults, class_rows=class_rows)
    folder = f"{PROBLEMS_FOLDER}/{draft.name}"
    files = problem_files(draft, folder)
    for env, fraction in fractions.items():
        whole = whole_reason(env, labelled, defaults=defaults, class_rows=class_rows)
        files[f"{folder}/environments/{env}.yaml"] = env_overlay(
            env, rows=labelled, fraction=fraction, defaults=defaults, whole=whole
        )
    warnings = rare_class_warnings(label, request.kind, fractions, defaults.min_class_rows, folder)
    warnings += small_gate_warnings(labelled, fractions, defaults, folder)
    warnings += unmatched_warnings(frames, draft.main.name, draft.joins, folder=folder)
    if draft.unjoined:
        warnings += (
            f"no join guessed for records() ({'; '.join(draft.unjoined)}): write records() "
            f"in {folder}/problem.py; the features come from table {draft.main.name} alone "
            "until it joins the others.",
        )
    return Plan(
        name=draft.name, files=files, features=draft.features, fractions=fractions,
        warnings=warnings, joins=draft.joins, time_column=draft.time_column,
        ignored=draft.ignored,
    )  # fmt: skip


def draft_problem(request: InitRequest, frames: Mapping[str, pd.DataFrame], *, root: Path) -> Draft:
    """Profile the tables, check the request, guess the joins, choose features and time."""
    profiles = {table: profile_table(frame, table) for table, frame in frames.items()}
    main = profiles[next(iter(request.tables))]
    check_request(request, frames, main)
    joins: tuple[Join, ...] = ()
    unjoined: tuple[str, ...] = ()
    if len(frames) > 1:
        joins, unjoined = plan_joins(list(request.tables), request.label, frames, profiles)
    records = main
    own = {column.name: column for column in main.columns}
    if joins:
        records = profile_table(join_tables(frames, main.name, joins), main.name)
        for join in joins:
            own |= {c.name: c for c in profiles[join.table].columns if c.name not in own}
    features = choose_features(
        records, key_columns=request.key_columns, label=request.label, own=own
    )
    time_column, time_note = choose_time_column(main)
    return Draft(
        request=request, name=problem_name(request), profiles=profiles, records=records,
        features=features, joins=joins, time_column=time_column, time_note=time_note,
        ignored=tuple(n for n in features.numeric if records.column(n).year_like),
        specs={table: table_spec(path, root) for table, path in request.tables.items()},
        unjoined=unjoined,
    )  # fmt: skip


def problem_files(draft: Draft, folder: str) -> dict[str, str]:
    """problem.py, environments/base.yaml and the suites (the env overlays come apart)."""
    request, several = draft.request, len(draft.profiles) > 1
    files = {
        f"{folder}/__init__.py": "",
        f"{folder}/problem.py": problem_module(request, name=draft.name, joins=draft.joins),
        f"{folder}/environments/base.yaml": base_settings(draft),
    }
    join_on = {join.table: join.on for join in draft.joins}
    for table, profile in draft.profiles.items():
        main = profile is draft.main
        files[f"{folder}/expectations/{table}.yaml"] = table_suite(
            profile,
            path=draft.specs[table],
            key_columns=request.key_columns if main else (),
            label=request.label if main else None,
            min_rows=min_rows_parameter(table, several),
            read=draft.features.columns,
            join_on=join_on.get(table, ()),
            regression=request.kind == "regression",
        )
    source = f"table {draft.main.name}"
    if draft.joins:
        source = f"the records ({draft.main.name} joined with {', '.join(join_on)})"
    files[f"{folder}/expectations/{MODEL_INPUT}.yaml"] = model_input_suite(
        draft.records, draft.features.columns, source=source
    )
    return files


def rare_class_warnings(
    label: ColumnProfile, kind: Task, fractions: Mapping[str, float], min_rows: int, folder: str
) -> tuple[str, ...]:
    """Classes training will refuse: fewer than split.min_class_rows rows in an env's sample
    (about the class's rows times the env's fraction)."""
    if kind == "regression" or not label.categories:
        return ()
    warnings = []
    for value, count in label.categories:
        envs = [env for env, fraction in fractions.items() if count * fraction < min_rows]
        if envs:
            where = "every env" if len(envs) == len(fractions) else ", ".join(envs)
            warnings.append(
                f"class {value!r} of --label {label.name} has {count} rows, about "
                f"{min(count * fractions[env] for env in envs):.0f} in the smallest sample: "
                f"fewer than split.min_class_rows={min_rows}, so training in {where} will "
                "refuse it. Merge or drop the class, raise that env's data.sample_fraction in "
                f"{folder}/environments/, or lower split.min_class_rows."
            )
    return tuple(warnings)


# --- the settings files ------------------------------------------------------------------


def table_spec(path: Path | str, root: Path) -> str:
    """A table's setting: relative to the project root when inside it, else absolute; a
    source named by its setting (a URL, a query) as it is."""
    if isinstance(path, str):
        return path
    try:
        return Path(path).resolve().relative_to(Path(root).resolve()).as_posix()
    except ValueError:
        return str(path)


def min_rows_parameter(table: str, several: bool) -> str:
    return "min_rows_" + re.sub(r"\W", "_", table) if several else "min_rows"


def base_settings(draft: Draft) -> str:
    """environments/base.yaml of the new problem."""
    lines = [*_data_lines(draft), *_feature_lines(draft), *_model_lines(draft)]
    return "\n".join(lines) + "\n"


def _data_lines(draft: Draft) -> list[str]:
    request, main = draft.request, draft.main
    kind, label = request.kind, main.column(request.label)
    lines = [
        f"# Written by `ml-project init` from {', '.join(request.tables)}: yours to edit.",
        f"name: {draft.name}          # experiments and registered models: {draft.name}_<env>",
        f"task: {kind}",
        "",
        "data:",
        "  tables:                # a file (relative, absolute, package:...), URL or sql: query",
        *[f"    {table}: {flow(spec)}" for table, spec in draft.specs.items()],
        f"  key_columns: {flow(list(request.key_columns))}",
        f"  label: {flow(request.label)}"
        + (f"          # {label.distinct} classes" if kind != "regression" else ""),
        "  sample_fraction: 1.0   # every labelled row; the env overlays sample the larger ones",
    ]
    if draft.time_column:
        lines += [
            "",
            "split:",
            f"  time_column: {flow(draft.time_column)}   # the newest rows are held out (the "
            f"first time column of {main.name}, or its year)",
        ]
    elif draft.time_note:
        lines += ["", f"# {draft.time_note}"]
    return lines


def _feature_lines(draft: Draft) -> list[str]:
    features, rows = draft.features, draft.records.rows
    limit = category_limit(rows)
    lines = [
        "",
        f"# features: from {draft.source}. Text with at most {limit} values is categorical (about",
        f"# {limit and rows // limit} rows per value at least; {rows} rows), numbers are numeric,",
        "# ISO-8601 or native timestamps datetime (the model derives numbers from them). The",
        "# model's signature, in this order: edit freely.",
        "features:",
        f"  categorical: {flow(list(features.categorical))}",
        f"  numeric: {flow(list(features.numeric))}",
        f"  datetime: {flow(list(features.datetime))}",
    ]
    if features.offered:
        lines.append("  # read although part of the key (remove them if they should not be):")
        lines += [f"  #   {column}: {why}" for column, why in features.offered.items()]
    if features.dropped:
        lines.append("  # left out:")
        lines += [f"  #   {column}: {why}" for column, why in features.dropped.items()]
    if len(draft.profiles) > 1 and not draft.joins:
        lines.append("  # columns of the other tables can be added once records() joins them")
    return lines


def _model_lines(draft: Draft) -> list[str]:
    kind, several = draft.request.kind, len(draft.profiles) > 1
    lines = [
        "",
        "params:                  # the default model's gradient-boosting hyper-parameters",
    ]
    lines += [f"  {key}: {value}" for key, value in DEFAULT_PARAMS.items()]
    lines += [
        "",
        "validation:",
        "  parameters:            # the suites in expectations/ read $name",
    ]
    lines += [
        f"    {min_rows_parameter(table, several)}: {max(1, profile.rows // 2)}"
        f"          # fewest rows in {table} (observed {profile.rows}; half of it)"
        for table, profile in draft.profiles.items()
    ]
    primary = PRIMARY[kind]
    if kind == "regression":  # for a metric with units, the monitor reads a fraction of it
        drop, why = 0.1, f"10% of the recorded {primary}"
    else:
        drop, why = 0.05, f"a loss of 0.05 of {primary}"
    lines += [
        "",
        "monitor:",
        f"  max_quality_drop: {drop}   # with --labels: drift when live {primary} is worse",
        f"                           # than the recorded one by more ({why})",
    ]
    if draft.ignored:
        lines += [
            f"  ignore: {flow(list(draft.ignored))}   # years: each period brings a new one,",
            "                           # so they always move (reported, never drift)",
        ]
    return [
        *lines,
        "",
        "gate:                    # always checked too: beat a model that ignores the features",
        "  floors: {}             # e.g. {" + EXAMPLE_FLOOR[kind] + "} once you know the data",
        "  ceilings: {}",
        f"  primary_metric: {primary}",
    ]


def env_overlay(
    env: str,
    *,
    rows: int,
    fraction: float,
    defaults: ProjectDefaults,
    whole: str | None = None,
) -> str:
    """environments/<env>.yaml: the sample fraction (and, when a small table's staging takes
    every row, `whole`: why not half), fewer trees in dev, a gate that can decide on the
    held-out rows this table has, and a monitor that accepts batches its size allows."""
    used = max(1, round(rows * fraction))
    header = {
        "dev": "dev: the fast loop",
        "staging": "staging: CI retrains here; sized to train well under a minute",
        "prod": "prod: every labelled row",
    }[env]
    what = "every row" if fraction == 1.0 else f"a seeded {fraction:g} of them"
    lines = [f"# {header}.", f"# Observed {rows} labelled rows: {what} (about {used})."]
    if fraction == SUBSET:
        lines.append(
            "# A seeded half: a real subset of prod's rows, so prod's training is no repeat."
        )
    if whole and env != "prod" and fraction == 1.0:
        lines += [f"# {line}" for line in wrap(f"Not a subset of prod's rows: {whole}.")]
    lines += ["data:", f"  sample_fraction: {fraction}"]
    if env == "dev" and fraction < 1.0:
        lines += ["", "params:                  # fewer boosting rounds for the fast loop",
                  "  max_iter: 100"]  # fmt: skip
    lowered = lowered_test_rows(env, rows=rows, fraction=fraction, defaults=defaults)
    if lowered is not None:
        held_out = int(used * defaults.test_fraction)
        lines += _lowered("gate", "min_test_rows", *lowered, f"about {held_out} held-out rows")
    monitor_min = defaults.monitor_min_rows.get(env, 1000)
    if rows < 2 * monitor_min:
        lines += _lowered(
            "monitor", "min_rows", max(1, rows // 4), monitor_min,
            f"{rows} rows (smaller batches give noisier drift figures)",
        )  # fmt: skip
    return "\n".join(lines) + "\n"


def lowered_test_rows(
    env: str, *, rows: int, fraction: float, defaults: ProjectDefaults
) -> tuple[int, int] | None:
    """(half this env's held-out rows, the project's gate.min_test_rows) when the table holds
    out fewer than 1.5 times the project's minimum: the gate init writes for a small table."""
    held_out = max(1, round(rows * fraction)) * defaults.test_fraction
    asked = defaults.min_test_rows.get(env, 100)
    return (max(1, int(held_out / 2)), asked) if held_out < 1.5 * asked else None


def small_gate_warnings(
    rows: int, fractions: Mapping[str, float], defaults: ProjectDefaults, folder: str
) -> tuple[str, ...]:
    """Say on the terminal where init lowered gate.min_test_rows: the gate then decides on
    fewer held-out rows than the project asks."""
    lowered = {
        env: found
        for env, fraction in fractions.items()
        if (found := lowered_test_rows(env, rows=rows, fraction=fraction, defaults=defaults))
    }
    if not lowered:
        return ()
    each = ", ".join(
        f"{env} {new} (the project asks {asked})" for env, (new, asked) in lowered.items()
    )
    return (
        f"gate.min_test_rows lowered to what this table holds out: {each}. The gate decides "
        "on that few held-out rows, so its verdicts are noisier; more labelled rows or a larger "
        f"split.test_fraction make them firmer ({folder}/environments/).",
    )


def _lowered(section: str, key: str, value: int, asked: int, holds: str) -> list[str]:
    """A section lowering one of the project's minimums to what this table can meet."""
    return [
        "",
        f"{section}:",
        f"  {key}: {value}   # the project asks {asked}; this table holds {holds}",
    ]


def problem_module(request: InitRequest, *, name: str, joins: Sequence[Join] = ()) -> str:
    """problems/<name>/problem.py: a docstring for one table; for several, a records() that
    joins them (`joins`), or one to write when no join could be guessed."""
    tables = list(request.tables)
    if len(tables) == 1:
        return (
            f'"""{name}: {request.kind} on `{request.label}`, from the table {tables[0]} '
            "(written by\n`ml-project init`; yours).\n\n"
            "One table and the platform's default model (ordinal codes and gradient boosting "
            "over the\ncolumns of `features:` in environments/base.yaml): no code is needed. "
            "Define, when needed\n(ml_project/problem.py says how):\n\n"
            "    records(tables, params) -> DataFrame   reshape the table: one row per "
            "prediction\n"
            f"    label(records, params) -> Series       derive the label (default: column "
            f"{request.label})\n"
            "    build_model(*, features, task, params, seed) -> an unfitted sklearn "
            "estimator\n"
            "    class Params(pydantic.BaseModel)       check the settings' params:\n"
            '"""\n'
        )
    keys = ", ".join(request.key_columns)
    if joins:
        return _joining_module(request, name=name, joins=joins)
    return f'''"""{name}: {request.kind} on `{request.label}`, from the tables {", ".join(tables)}
(written by `ml-project init`; yours).

records() joins the tables into one row per prediction: the key ({keys}), the model's
input columns (features: in environments/base.yaml) and the label. It is yours to write:
ml_project/problem.py says what it gets and returns.
"""

from __future__ import annotations

import pandas as pd


def records(tables: dict[str, pd.DataFrame], params) -> pd.DataFrame:
    """One row per {keys}: {tables[0]} with what the other tables add."""
    raise NotImplementedError(
        "records() is yours to write in problems/{name}/problem.py: join the tables "
        "{", ".join(tables)} into one frame with one row per ({keys}) (ml_project/problem.py "
        "says what it gets and returns)"
    )
'''


def _joining_module(request: InitRequest, *, name: str, joins: Sequence[Join]) -> str:
    tables = list(request.tables)
    keys = ", ".join(request.key_columns)
    entries = "\n".join(
        f"    {join.table!r}: {list(join.on)!r},  # joined on {', '.join(join.on)}: one row "
        f"each in {join.table} ({join.rows} rows)"
        for join in joins
    )
    return f'''"""{name}: {request.kind} on `{request.label}`, from the tables {", ".join(tables)}
(written by `ml-project init`; yours).

records() makes one row per prediction ({keys}): each row of {tables[0]} with the columns the
other tables add, matched on the columns they share (init saw them name one row of each
table; their suites keep it so). A row without a match keeps empty values. Edit it freely,
e.g. to join on a column you derive first.
"""

from __future__ import annotations

import pandas as pd

# table -> the columns it is joined on (shared with the rows joined before it)
JOINS = {{
{entries}
}}


def records(tables: dict[str, pd.DataFrame], params) -> pd.DataFrame:
    """One row per {keys}: {tables[0]}, left-joined with each table of JOINS in turn."""
    joined = tables[{tables[0]!r}]
    for table, on in JOINS.items():
        # a column both hold but the key keeps the records' own value (and no _x/_y pair)
        right = tables[table]
        right = right.drop(columns=[c for c in right.columns if c in joined and c not in on])
        joined = joined.merge(right, on=on, how="left", validate="many_to_one")
    return joined
'''


# --- the edge ----------------------------------------------------------------------------


def project_defaults(root: Path) -> ProjectDefaults:
    """The project's test fraction, split.min_class_rows, and each env's gate.min_test_rows and
    monitor.min_rows (environments/)."""
    folder = Path(root) / "environments"
    base = read_yaml(folder / "base.yaml")
    merged = {
        env: deep_merge(base, read_yaml(path) if path.is_file() else {})
        for env, path in ((env, folder / f"{env}.yaml") for env in ENVS)
    }
    split = base.get("split", {})
    return ProjectDefaults(
        test_fraction=float(split.get("test_fraction", ProjectDefaults.test_fraction)),
        min_class_rows=int(split.get("min_class_rows", ProjectDefaults.min_class_rows)),
        min_test_rows={
            env: int(merged[env].get("gate", {}).get("min_test_rows", 100)) for env in ENVS
        },
        monitor_min_rows={
            env: int(merged[env].get("monitor", {}).get("min_rows", 1000)) for env in ENVS
        },
    )


def with_default_problem(text: str, name: str) -> tuple[str, str | None]:
    """The project's base.yaml with `problem: name` (its comment kept), and the previous value."""
    found = _DEFAULT_PROBLEM.search(text)
    if found is None:
        return f"problem: {name}\n{text}", None
    return text[: found.start()] + f"problem: {name}" + text[found.end() :], found.group(1)


def run_init(request: InitRequest, *, root: Path, force: bool = False) -> Plan:
    """Read the tables, plan the problem, write it and make it the project's default problem
    (`problem:` in environments/base.yaml); nothing is written on any error."""
    started = time.perf_counter()
    frames = {
        table: sources.read(sources.resolve(path, root) if isinstance(path, str) else path)
        for table, path in request.tables.items()
    }
    rows = len(next(iter(frames.values())))
    progress.line("read", time.perf_counter() - started, rows=rows, detail=", ".join(frames))
    plan = plan_problem(request, frames, root=root, defaults=project_defaults(root))
    progress.line("plan", time.perf_counter() - started, detail=plan.name)
    existing = [path for path in plan.files if (Path(root) / path).exists()]
    if existing and not force:
        raise ConfigError(
            f"problem {plan.name} would overwrite {len(existing)} file(s): "
            f"{', '.join(existing)}. Choose another --name, or pass --force to overwrite them."
        )
    settings_path = Path(root) / PROJECT_SETTINGS
    settings_text, previous = with_default_problem(
        settings_path.read_text(encoding="utf-8"), plan.name
    )
    image = Path(root) / "Dockerfile"
    image_text = image.read_text(encoding="utf-8") if image.is_file() else None
    for relative, text in plan.files.items():
        path = Path(root) / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    settings_path.write_text(settings_text, encoding="utf-8")
    served = None if image_text is None else with_served_model(image_text, f"{plan.name}_prod")
    if served is not None and served != image_text:
        image.write_text(served, encoding="utf-8")
    return replace(plan, previous_default=previous, image_changed=served != image_text)


_SERVED_MODEL = re.compile(r"^ARG MODEL_URI=models:/\S+@champion$", re.MULTILINE)


def with_served_model(dockerfile: str, model_name: str) -> str:
    """The Dockerfile with the image's served model (`ARG MODEL_URI=`) the prod champion of
    `model_name`, the default problem's; as it was when it names no champion (a fork's own)."""
    return _SERVED_MODEL.sub(f"ARG MODEL_URI=models:/{model_name}@champion", dockerfile)


# --- the model-input suite of a problem whose records() the user wrote ---------------------


def records_suite(settings: Settings, records: pd.DataFrame, *, source: str) -> str:
    """model_input.yaml for `settings.features`, from the records as `records()` makes them
    (joined and derived columns too), each rule HARD or OBSERVED as `init` writes them."""
    missing = [column for column in settings.features.columns if column not in records.columns]
    if missing:
        raise ConfigError(
            f"features {', '.join(missing)} (settings of problem {settings.problem}) are not "
            f"columns of the records; records() makes {', '.join(map(str, records.columns))}."
        )
    profile = profile_table(records.loc[:, settings.features.columns], settings.problem)
    return model_input_suite(profile, settings.features.columns, source=source)


def write_records_suite(settings: Settings, *, root: Path, force: bool = False) -> Path:
    """Profile the records the problem's records() makes from its tables (in `settings.env`)
    and write problems/<problem>/expectations/model_input.yaml; never over an existing file
    without `force`."""
    problem = load_problem(settings, root)
    path = problem.suites_folder / f"{MODEL_INPUT}.yaml"
    if path.exists() and not force:
        raise ConfigError(
            f"{path} exists (it is yours, edits included): pass --force to write it again from "
            "the records."
        )
    records = problem.records(read_tables(table_paths(settings, root)))
    tables = ", ".join(settings.data.tables)
    text = records_suite(settings, records, source=f"the records() of {tables}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path
