"""The data-validation edge: the problem's suites (problems/<p>/expectations/*.yaml), run by GX.

A suite file lists great-expectations 1.x expectations (`type` + `kwargs`); values written
`$name` are filled from the env's settings (`suite_parameters`). `read_suite` and the report
objects are pure; a `TableValidator` builds an ephemeral GX context (pandas data source, a
dataframe asset, a whole-dataframe batch) on first use and runs `batch.validate(suite)` per
frame, unless a passed verdict with the same `verdict_key` (rows, filled suite, library
versions) is found by the caller's lookup (docs/data-validation.md, "A verdict reused").
great_expectations is imported inside functions only: it takes seconds to import.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import yaml

from ml_project import data, progress
from ml_project.errors import ConfigError, DataError
from ml_project.results import plain
from ml_project.settings import Settings, problem_folder
from ml_project.vocabulary import (
    VALIDATION_FAILED_TABLES,
    VALIDATION_SUCCESS,
    VALIDATION_SUITES_DIGEST,
    VERDICT_EVALUATED,
    VERDICT_KEY,
    VERDICT_REUSED_FROM,
    suite_tag,
)

if TYPE_CHECKING:
    from great_expectations import ExpectationSuite
    from great_expectations.data_context.data_context.ephemeral_data_context import (
        EphemeralDataContext,
    )

SUITES_FOLDER = "expectations"
MODEL_INPUT = "model_input"
EXAMPLES = 5  # bad values quoted per failed expectation in the short report
MISSING_COLUMN = "the column is missing"
ITEM_KEYS = {"type", "kwargs", "meta", "notes"}
# What a verdict depends on besides the rows and the suite: the checking libraries and this module.
VERDICT_LIBRARIES = ("great_expectations", "pandas", "numpy", "pyarrow")
_CHECKER = data.file_digest(__file__)

# (table, verdict key) -> (run id, expectations evaluated) of an earlier passed verdict, or None
VerdictLookup = Callable[[str, str], "tuple[str, int] | None"]


def suite_parameters(settings: Settings) -> dict[str, Any]:
    """The values a suite may name as `$name`: the problem's `validation.parameters`, and
    `$key_columns`, `$model_columns` and `$label` from the data settings."""
    return {
        **settings.validation.parameters,
        "key_columns": list(settings.data.key_columns),
        "model_columns": settings.features.columns,
        "label": settings.data.label,
    }


def suite_path(root: Path, table: str, settings: Settings) -> Path:
    return problem_folder(root, settings.problem) / SUITES_FOLDER / f"{table}.yaml"


def suite_tables(settings: Settings) -> tuple[str, ...]:
    """Every suite a training runs: one per table, then the model input."""
    return (*settings.data.tables, MODEL_INPUT)


@dataclass(frozen=True)
class SuiteSpec:
    """One suite file with its parameters filled in: what great-expectations will be given."""

    table: str
    path: Path
    expectations: tuple[dict[str, Any], ...]


def read_suite(path: Path, parameters: Mapping[str, Any]) -> SuiteSpec:
    """Parse and check a suite file; a ConfigError names the file and the item at fault."""
    path = Path(path)
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"Expectation suite {path} does not exist.") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"Expectation suite {path} is not valid YAML: {exc}") from exc
    if not isinstance(loaded, dict) or set(loaded) - {"table", "expectations"}:
        raise ConfigError(
            f"Expectation suite {path} must be a mapping with the keys 'table' and "
            f"'expectations' only."
        )
    items = loaded.get("expectations")
    if not isinstance(items, list) or not items:
        raise ConfigError(f"Expectation suite {path} lists no expectations.")
    expectations = []
    for number, item in enumerate(items, start=1):
        where = f"{path}, expectation {number}"
        if not isinstance(item, dict) or not isinstance(item.get("type"), str):
            raise ConfigError(f"{where}: each expectation needs a 'type' (and 'kwargs').")
        if set(item) - ITEM_KEYS:
            unknown = ", ".join(sorted(set(item) - ITEM_KEYS))
            raise ConfigError(
                f"{where} ({item['type']}): unknown key(s) {unknown}; "
                f"use {', '.join(sorted(ITEM_KEYS))}."
            )
        kwargs = item.get("kwargs") or {}
        if not isinstance(kwargs, dict):
            raise ConfigError(f"{where} ({item['type']}): 'kwargs' must be a mapping.")
        meta = dict(item.get("meta") or {}, suite_item=number)
        kind, filled = _one_column_key(item["type"], _fill(kwargs, parameters, where=where))
        expectations.append(
            {
                "type": kind,
                "kwargs": filled,
                "meta": meta,
                **({"notes": item["notes"]} if item.get("notes") else {}),
            }
        )
    return SuiteSpec(
        table=str(loaded.get("table") or path.stem), path=path, expectations=tuple(expectations)
    )


def _one_column_key(kind: str, kwargs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """A compound-unique check over one column (`$key_columns` of a one-column key) is that
    column's unique check: great-expectations refuses a compound of fewer than two columns."""
    columns = kwargs.get("column_list")
    compound = kind == "expect_compound_columns_to_be_unique"
    if compound and isinstance(columns, list) and len(columns) == 1:
        rest = {key: value for key, value in kwargs.items() if key != "column_list"}
        return "expect_column_values_to_be_unique", {"column": columns[0], **rest}
    return kind, kwargs


PARAMETER = re.compile(r"\$[A-Za-z_][A-Za-z0-9_]*")  # `$name`; "$25000 or more" is a value


def _is_parameter(value: object) -> bool:
    return isinstance(value, str) and PARAMETER.fullmatch(value) is not None


def _fill(value: Any, parameters: Mapping[str, Any], *, where: str) -> Any:
    """Replace `$name` strings by their parameter; a list-valued `$name` in a list is spliced.
    Any other text is a value, and `$$` starts a value that begins with `$` (`$$name` is the
    text `$name`)."""
    if isinstance(value, str) and value.startswith("$$"):
        return value[1:]
    if _is_parameter(value):
        name = value[1:]
        if name not in parameters:
            raise ConfigError(
                f"{where}: unknown parameter {value}; known: "
                f"{', '.join('$' + key for key in sorted(parameters))}."
            )
        return parameters[name]
    if isinstance(value, dict):
        return {key: _fill(item, parameters, where=where) for key, item in value.items()}
    if isinstance(value, list):
        out: list[Any] = []
        for item in value:
            filled = _fill(item, parameters, where=where)
            if _is_parameter(item) and isinstance(filled, list):
                out.extend(filled)
            else:
                out.append(filled)
        return out
    return value


def build_suite(spec: SuiteSpec) -> ExpectationSuite:
    """A great-expectations ExpectationSuite holding every expectation of the file, or a
    ConfigError: GX 1.24 silently drops an expectation it cannot build (a misspelt type)."""
    import great_expectations as gx
    from great_expectations.expectations.expectation_configuration import (
        ExpectationConfiguration,
    )

    built = []
    for item in spec.expectations:
        where = f"{spec.path}, expectation {item['meta']['suite_item']} ({item['type']})"
        try:
            configuration = ExpectationConfiguration(
                type=item["type"], kwargs=item["kwargs"], meta=item["meta"], notes=item.get("notes")
            )
            built.append(configuration.to_domain_obj())
        except gx.exceptions.ExpectationNotFoundError as exc:  # type: ignore[attr-defined]
            raise ConfigError(
                f"{where}: great-expectations has no expectation of that type (misspelt?). "
                "Types are the snake_case names of the classes in great_expectations.expectations, "
                "e.g. expect_column_values_to_be_between."
            ) from exc
        except Exception as exc:  # pydantic's ValidationError or GX's configuration errors
            raise ConfigError(f"{where}: invalid arguments: {_one_line(exc)}") from exc
    suite = gx.ExpectationSuite(name=spec.table, expectations=built)
    if len(suite.expectations) != len(spec.expectations):
        raise ConfigError(
            f"{spec.path}: the file lists {len(spec.expectations)} expectations but "
            f"great-expectations kept {len(suite.expectations)}; refusing to validate with fewer."
        )
    return suite


def _one_line(exc: Exception | str) -> str:
    return " ".join(str(exc).split())


@dataclass(frozen=True)
class Failure:
    """One expectation that did not hold (or could not be checked)."""

    expectation: str
    column: str | None
    rule: str
    problem: str
    unexpected_count: int | None = None
    examples: tuple[Any, ...] = ()


@dataclass(frozen=True)
class TableSummary:
    """One table's verdict as `validate-data --json` and the results artifact show it."""

    table: str
    source: str
    suite: str
    rows: int
    success: bool
    evaluated: int
    failed: int
    failures: tuple[Failure, ...]


@dataclass(frozen=True)
class DataValidation:
    """`validate-data`'s result: every suite passed in `env`."""

    env: str
    tables: tuple[TableSummary, ...]


@dataclass(frozen=True)
class ValidationReport:
    """What one table's validation found; `result` is great-expectations' full JSON result."""

    table: str
    source: str
    suite_path: str
    rows: int
    evaluated: int
    success: bool
    failures: tuple[Failure, ...]
    result: dict[str, Any] = field(repr=False, compare=False)
    key: str | None = None  # verdict_key of a passed verdict, when verdicts may be reused
    reused_from: str | None = None  # the run whose passed verdict this is, if not checked here

    def summary(self) -> TableSummary:
        return TableSummary(
            self.table, self.source, self.suite_path, self.rows, self.success, self.evaluated,
            len(self.failures), self.failures,
        )  # fmt: skip

    def passed(self) -> str:
        return f"{self.table}: {self.evaluated} expectations passed on {self.rows} rows"

    def describe(self, *, limit: int = 8) -> str:
        """A few lines a person reads: the table, then each failed expectation."""
        if self.success:
            return f"{self.passed()} ({self.source})"
        lines = [
            f"{self.table} ({self.source}): {len(self.failures)} of {self.evaluated} "
            f"expectations failed (suite {self.suite_path}):"
        ]
        absent = [f for f in self.failures if f.problem == MISSING_COLUMN]
        shown = [f for f in self.failures if f.problem != MISSING_COLUMN]
        for failure in shown[:limit]:
            column = f"column {failure.column}: " if failure.column else ""
            lines.append(f"  - {column}{failure.rule}: {failure.problem}")
        if len(shown) > limit:
            lines.append(f"  - ... and {len(shown) - limit} more (see the full result)")
        if absent:
            names = ", ".join(dict.fromkeys(str(f.column) for f in absent))
            lines.append(f"  - {len(absent)} more could not run: no column {names}")
        return "\n".join(lines)


def verdict_key(spec: SuiteSpec, frame: pd.DataFrame) -> str:
    """What a verdict depends on, hashed: every row and column checked (`data.frame_digest`),
    the suite as filled in, the versions of the checking libraries and of this module. Equal
    keys, equal verdicts."""
    payload = {
        "table": spec.table,
        "rows": data.frame_digest(frame),
        # what the digest leaves out: a categorical's categories, and which Python type each
        # value of an object column is (the digest hashes str() of them: 1 and "1" agree)
        "dtypes": [repr(dtype) for dtype in frame.dtypes],
        "object_types": {
            str(name): data.frame_digest(frame[[name]].map(lambda value: type(value).__name__))
            for name, dtype in frame.dtypes.items()
            if pd.api.types.is_object_dtype(dtype)
        },
        "expectations": spec.expectations,
        "libraries": {name: version(name) for name in VERDICT_LIBRARIES},
        "checker": _CHECKER,
    }
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


class TableValidator:
    """One table's suite, built once, run on as many frames as needed (e.g. scoring chunks).

    Holds an ephemeral GX context with a pandas data source, a dataframe asset and a
    whole-dataframe batch definition, built on first use; each call validates one frame with
    `batch.validate`, or takes the passed verdict `reuse` finds for the same key.
    """

    def __init__(self, table: str, *, settings: Settings, root: Path):
        self.spec = read_suite(suite_path(root, table, settings), suite_parameters(settings))
        self._built: tuple[ExpectationSuite, Any] | None = None
        self._keyed: tuple[pd.DataFrame, str | None] | None = None  # the last frame keyed

    def _checks(self) -> tuple[ExpectationSuite, Any]:
        if self._built is None:
            suite = build_suite(self.spec)
            datasource = _ephemeral_context().data_sources.add_pandas("ml_project")
            asset = datasource.add_dataframe_asset(self.spec.table)
            self._built = suite, asset.add_batch_definition_whole_dataframe("all_rows")
        return self._built

    def key(self, frame: pd.DataFrame) -> str | None:
        """The frame's verdict_key (None: values pandas cannot hash, checked but never keyed);
        the last frame's is kept, so asking again (e.g. after a lookup) costs nothing."""
        if self._keyed is None or self._keyed[0] is not frame:
            try:
                self._keyed = frame, verdict_key(self.spec, frame)
            except TypeError:
                self._keyed = frame, None
        return self._keyed[1]

    def __call__(
        self, frame: pd.DataFrame, *, source: str, reuse: VerdictLookup | None = None
    ) -> ValidationReport:
        key = self.key(frame) if reuse is not None else None
        found = reuse(self.spec.table, key) if reuse is not None and key is not None else None
        if found is not None:
            run_id, evaluated = found
            return ValidationReport(
                table=self.spec.table,
                source=str(source),
                suite_path=str(self.spec.path),
                rows=len(frame),
                evaluated=evaluated,
                success=True,
                failures=(),
                result={"success": True, "reused_from": run_id, "verdict_key": key},
                key=key,
                reused_from=run_id,
            )
        started = time.perf_counter()
        report = self._validate(frame, source=source)
        verdict = "passed" if report.success else f"{len(report.failures)} failed"
        seconds = time.perf_counter() - started
        progress.line(f"validate {self.spec.table}", seconds, rows=len(frame), detail=verdict)
        return replace(report, key=key) if report.success else report

    def _validate(self, frame: pd.DataFrame, *, source: str) -> ValidationReport:
        table = self.spec.table
        suite, batches = self._checks()
        batch = batches.get_batch(batch_parameters={"dataframe": _for_gx(frame)})
        try:
            # BASIC: counts and up to 20 failing values, without SUMMARY's value counts
            result = batch.validate(suite, result_format="BASIC")
        except Exception as exc:  # GX could not run the suite at all on this frame
            raise DataError(
                f"{table} ({source}): great-expectations could not validate the table: "
                f"{_one_line(exc)}"
            ) from exc
        return make_report(
            result.to_json_dict(),
            table=table,
            source=source,
            suite_file=self.spec.path,
            rows=len(frame),
            columns=list(frame.columns),
        )


def validators_of(
    tables: Iterable[str], *, settings: Settings, root: Path
) -> dict[str, TableValidator]:
    """A validator per table: its suite file read and checked (a ConfigError says what is wrong)."""
    return {table: TableValidator(table, settings=settings, root=root) for table in tables}


def validate_frames(
    frames: Mapping[str, pd.DataFrame],
    *,
    settings: Settings,
    root: Path,
    sources: Mapping[str, str] | None = None,
    reuse: VerdictLookup | None = None,
    validators: Mapping[str, TableValidator] | None = None,
) -> list[ValidationReport]:
    """Validate each frame with the suite of its table (expectations/<table>.yaml), with
    `validators` when given (validators_of)."""
    validators = validators or validators_of(frames, settings=settings, root=root)
    return [
        validators[table](frame, source=(sources or {}).get(table, "in-memory frame"), reuse=reuse)
        for table, frame in frames.items()
    ]


def nothing_reused(table: str, key: str) -> None:
    """The lookup of a training that reuses no verdict (validation.reuse_verdicts false): every
    suite runs and its passed verdicts are still keyed. It reads no store."""
    return None


def asked_now(
    frames: Mapping[str, pd.DataFrame],
    validators: Mapping[str, TableValidator],
    reuse: VerdictLookup,
) -> tuple[VerdictLookup, bool]:
    """`reuse` asked now for each frame's passed verdict (a lookup reads the store, which a check
    forked later must not): a lookup holding the answers, reading nothing, and whether every
    verdict was found (nothing left to check)."""
    answers: dict[tuple[str, str], tuple[str, int] | None] = {}
    found = True
    for table, frame in frames.items():
        key = validators[table].key(frame)
        answer = reuse(validators[table].spec.table, key) if key is not None else None
        if key is not None:
            answers[validators[table].spec.table, key] = answer
        found = found and answer is not None

    def answered(table: str, key: str) -> tuple[str, int] | None:
        return answers.get((table, key))

    return answered, found


def validate_model_input(
    frame: pd.DataFrame,
    settings: Settings,
    root: Path,
    *,
    source: str = "records",
    reuse: VerdictLookup | None = None,
) -> ValidationReport:
    """The model-input suite on raw records (exact columns in model order, types, ranges)."""
    validator = TableValidator(MODEL_INPUT, settings=settings, root=root)
    return validator(frame, source=source, reuse=reuse)


def _for_gx(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` with pandas 3's default text columns (StringDtype with NaN) as StringDtype with NA.

    GX 1.24.1's type checks cannot name the default dtype (`str`, `string` and `StringDtype` all
    miss it) but do match `StringDtype` with NA, Arrow-backed like it: the same values and gaps,
    no copy, and vectorised checks (as object columns they were checked value by value, ~3x
    slower: benchmarks/).
    """
    text = {
        name: pd.StringDtype("pyarrow", na_value=pd.NA)
        for name, dtype in frame.dtypes.items()
        if isinstance(dtype, pd.StringDtype) and dtype.na_value is not pd.NA
    }
    return frame.astype(text) if text else frame


def _ephemeral_context() -> EphemeralDataContext:
    """An in-memory GX context that writes nothing and draws no progress bars."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    return context


def make_report(
    result: dict[str, Any],
    *,
    table: str,
    source: str,
    suite_file: Path | str,
    rows: int,
    columns: list[str] | None = None,
) -> ValidationReport:
    """A ValidationReport from great-expectations' JSON result (pure)."""
    results = sorted(
        result.get("results", []),
        key=lambda item: (
            (item.get("expectation_config") or {}).get("meta", {}).get("suite_item", math.inf)
        ),
    )
    failed = [item for item in results if not item.get("success")]
    mistyped = {
        (item.get("expectation_config") or {}).get("kwargs", {}).get("column")
        for item in failed
        if (item.get("expectation_config") or {}).get("type") in TYPE_RULES
    }
    failures = tuple(_failure(item, columns, mistyped) for item in failed)
    return ValidationReport(
        table=table,
        source=str(source),
        suite_path=str(suite_file),
        rows=rows,
        evaluated=len(results),
        success=bool(result.get("success")) and not failures,
        failures=failures,
        result=result,
    )


TYPE_RULES = ("expect_column_values_to_be_in_type_list", "expect_column_values_to_be_of_type")
MISTYPED = "not checked: the column's values are not of the type its type rule above asks"


def _failure(
    item: dict[str, Any], columns: list[str] | None = None, mistyped: set[Any] | None = None
) -> Failure:
    config = item.get("expectation_config") or {}
    kwargs = {k: v for k, v in (config.get("kwargs") or {}).items() if k != "batch_id"}
    column = kwargs.pop("column", None)
    if "mostly" in kwargs:  # read best last: "between 0 and 150 for 99.9% of rows"
        kwargs["mostly"] = kwargs.pop("mostly")
    rule = f"{config.get('type', '?')}({', '.join(f'{k}={_short(v)}' for k, v in kwargs.items())})"
    details = item.get("result") or {}
    error = _exception_message(item.get("exception_info"))
    if column is not None and columns is not None and column not in columns:
        return Failure(config.get("type", "?"), column, rule, MISSING_COLUMN)
    if error and column is not None and column in (mistyped or set()):
        return Failure(config.get("type", "?"), column, rule, MISTYPED)  # not the library's words
    if error:
        return Failure(config.get("type", "?"), column, rule, f"could not be checked: {error}")
    if details.get("unexpected_count") is not None:
        count = int(details["unexpected_count"])
        examples = tuple(_distinct(details.get("partial_unexpected_list") or ()))[:EXAMPLES]
        percent = details.get("unexpected_percent") or 0.0
        total: Any = details.get("element_count")
        missing = details.get("missing_count") or 0
        base = f"{total - missing} non-null" if missing and "null" not in rule else f"{total}"
        problem = f"{count} of {base} rows ({percent:.2f}%) failed"
        if examples:
            problem += ", e.g. " + ", ".join(_short(value) for value in examples)
        return Failure(config.get("type", "?"), column, rule, problem, count, examples)
    mismatched = (details.get("details") or {}).get("mismatched")
    if isinstance(mismatched, dict):
        missing, extra = mismatched.get("missing") or [], mismatched.get("unexpected") or []
        problem = (
            f"missing column(s) {', '.join(map(str, missing))}"
            if missing
            else f"unexpected column(s) {', '.join(map(str, extra))}"
        )
        return Failure(config.get("type", "?"), column, rule, problem)
    if isinstance(mismatched, list):
        parts = [
            f"position {entry.get('Expected Column Position')}: expected "
            f"{entry.get('Expected')}, found {entry.get('Found')}"
            for entry in mismatched[:EXAMPLES]
        ]
        return Failure(config.get("type", "?"), column, rule, "; ".join(parts))
    observed = details.get("observed_value")
    return Failure(config.get("type", "?"), column, rule, f"observed {_short(observed)}")


def _distinct(values: Iterable[Any]) -> list[Any]:
    """The distinct non-null values, in order of appearance (dicts and lists compared as text)."""
    seen, out = set(), []
    for value in values:
        key = repr(value)
        if value is not None and key not in seen:
            seen.add(key)
            out.append(value)
    return out


def _exception_message(info: object) -> str | None:
    """The first exception message in a GX result's exception_info (flat or per metric)."""
    if not isinstance(info, dict):
        return None
    if info.get("raised_exception"):
        return _one_line(str(info.get("exception_message", "")))
    for value in info.values():
        if isinstance(value, dict) and value.get("raised_exception"):
            return _one_line(str(value.get("exception_message", "")))
    return None


def _short(value: Any, *, items: int = 6) -> str:
    """A value as a reader wants it in one line: long lists cut, floats trimmed."""
    if isinstance(value, list | tuple):
        shown = ", ".join(_short(item) for item in value[:items])
        more = f", ... {len(value)} values" if len(value) > items else ""
        return f"[{shown}{more}]"
    if isinstance(value, dict):
        return "(" + ", ".join(f"{k}={_short(v)}" for k, v in value.items()) + ")"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, str):
        return repr(value)
    return str(value)


def verdict_line(report: ValidationReport) -> str:
    """`table: N expectations passed on R rows`, and whose verdict it is when reused."""
    if report.reused_from:
        why = "same rows, suite and libraries"
        return f"{report.passed()} (the verdict of run {report.reused_from}: {why})"
    return report.passed()


def failure_message(reports: list[ValidationReport], *, context: str = "") -> str:
    """The short report a DataError carries: every failed table with its failures."""
    failed = [report for report in reports if not report.success]
    tables = ", ".join(report.table for report in failed)
    lines = [f"Data validation failed{context}: {tables}."]
    lines += [report.describe() for report in failed]
    return "\n".join(lines)


def results_document(reports: list[ValidationReport]) -> dict[str, Any]:
    """Everything about a validation for the JSON artifact: summaries and GX's full results."""
    return {
        "success": all(report.success for report in reports),
        "tables": [
            plain(report.summary())
            | ({"reused_from": report.reused_from} if report.reused_from else {})
            | {"result": report.result}
            for report in reports
        ],
    }


def run_tags(reports: list[ValidationReport], settings: Settings, root: Path) -> dict[str, str]:
    """Tags for a run and its model version: the outcome and the suites' content hash."""
    digest = hashlib.sha256()
    for table in suite_tables(settings):
        path = suite_path(root, table, settings)
        digest.update(f"{table}:{data.file_digest(path) if path.is_file() else '-'};".encode())
    tags = {
        VALIDATION_SUCCESS: str(all(report.success for report in reports)).lower(),
        VALIDATION_FAILED_TABLES: ",".join(r.table for r in reports if not r.success),
        VALIDATION_SUITES_DIGEST: digest.hexdigest(),
    }
    for report in reports:
        if report.success and report.key:  # a verdict later runs may reuse (verdict_key)
            tags[suite_tag(report.table, VERDICT_KEY)] = report.key
            tags[suite_tag(report.table, VERDICT_EVALUATED)] = str(report.evaluated)
        if report.reused_from:
            tags[suite_tag(report.table, VERDICT_REUSED_FROM)] = report.reused_from
    return tags
