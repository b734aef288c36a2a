"""The model-input suite's hard rules, carried inside the fitted model.

Batch scoring and `monitor` check each chunk with the whole great-expectations suite before the
model sees it; a model served on its own (`mlflow models serve`, a Spark UDF, anyone's
`pyfunc.load_model`) has no such step in front of it. So the model's first step is
`InputRules`: the suite's row-level rules that admit no exception (no `mostly`), compiled when
the model is built and checked in a few vectorised pandas operations on every call. A row that
breaks one is refused with the rule, the column, the suite item and an example; the scoring
server answers 400 with that message.

Compiled: `expect_column_values_to_not_be_null`, `expect_column_values_to_be_between` (numeric
bounds), `expect_column_values_to_be_in_set`, `expect_column_values_to_match_regex` and
`expect_column_values_to_not_match_regex`, without `mostly` (or `mostly: 1`). Everything
else (types, which MLflow's signature enforces; table-level and statistical expectations, which
mean nothing for one row; `mostly` tolerances) stays with great-expectations.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from numbers import Real
from typing import TYPE_CHECKING, Any, Self, cast

import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.pipeline import Pipeline

if TYPE_CHECKING:
    import numpy.typing as npt

STEP = "input_rules"
EXAMPLES = 3
TRUSTED_TYPES = ["ml_project.input_rules.InputRules"]
NOT_NULL = "expect_column_values_to_not_be_null"
BETWEEN = "expect_column_values_to_be_between"
IN_SET = "expect_column_values_to_be_in_set"
MATCH = "expect_column_values_to_match_regex"
NOT_MATCH = "expect_column_values_to_not_match_regex"


REFUSAL = "The model's input rules refuse these rows: "  # how every refusal begins


def refusal_in(text: str) -> str | None:
    """The refusal an InputRuleError raised far away (a Spark executor) left in `text`."""
    start = text.find(REFUSAL)
    return None if start < 0 else text[start:].splitlines()[0].strip()


class InputRuleError(MlflowException, ValueError):
    """Rows that break the model's input rules (one paragraph, naming every broken rule). An
    MlflowException of INVALID_PARAMETER_VALUE: the scoring server answers 400 with it."""

    def __init__(self, message: str):
        super().__init__(message, error_code=INVALID_PARAMETER_VALUE)


def _number(value: Any) -> bool:
    return (
        isinstance(value, Real) and not isinstance(value, bool) and np.isfinite(cast(float, value))
    )


def hard_rules(expectations: Sequence[dict[str, Any]], *, source: str) -> list[dict[str, Any]]:
    """The suite items (parameters filled in) that a single row can break: plain data, so the
    fitted model stays a skops file of trusted types."""
    rules = []
    for item in expectations:
        kwargs = item.get("kwargs") or {}
        kind, column = item.get("type"), kwargs.get("column")
        if kind not in (NOT_NULL, BETWEEN, IN_SET, MATCH, NOT_MATCH) or not isinstance(column, str):
            continue
        if kwargs.get("mostly") is not None and float(kwargs["mostly"]) < 1:
            continue
        where = f"{source}, expectation {(item.get('meta') or {}).get('suite_item', '?')}"
        rule: dict[str, Any] = {"type": kind, "column": column, "where": where}
        if kind == BETWEEN:
            low, high = kwargs.get("min_value"), kwargs.get("max_value")
            if not all(value is None or _number(value) for value in (low, high)) or (
                low is None and high is None
            ):
                continue  # dates or text bounds: great-expectations' job
            rule |= {
                "min": low,
                "max": high,
                "strict_min": bool(kwargs.get("strict_min", False)),
                "strict_max": bool(kwargs.get("strict_max", False)),
            }
        elif kind == IN_SET:
            values = kwargs.get("value_set")
            if not isinstance(values, list):
                continue
            rule["values"] = list(values)
        elif kind in (MATCH, NOT_MATCH):
            if not isinstance(kwargs.get("regex"), str):
                continue
            rule["regex"] = kwargs["regex"]
        rules.append(rule)
    return rules


def _describe(rule: dict[str, Any]) -> str:
    column = rule["column"]
    if rule["type"] == NOT_NULL:
        return f"column {column!r} must not be null"
    if rule["type"] == MATCH:
        return f"column {column!r} must match {rule['regex']!r}"
    if rule["type"] == NOT_MATCH:
        return f"column {column!r} must not match {rule['regex']!r}"
    if rule["type"] == IN_SET:
        shown = ", ".join(repr(value) for value in rule["values"][:8])
        more = f" and {len(rule['values']) - 8} more" if len(rule["values"]) > 8 else ""
        return f"column {column!r} must be one of {shown}{more}"
    low = f"{'>' if rule['strict_min'] else '>='} {rule['min']}" if rule["min"] is not None else ""
    high = f"{'<' if rule['strict_max'] else '<='} {rule['max']}" if rule["max"] is not None else ""
    return f"column {column!r} must be {' and '.join(part for part in (low, high) if part)}"


class _Column:
    """One column of the rows being checked, with what its rules read of it (null mask,
    numbers, text) computed once a call, however many rules read it. A column of a NumPy
    number type is read directly (what `pd.to_numeric` and `isna` would give for it), with no
    pandas call per rule: a served model checks one row on every request."""

    def __init__(self, values: pd.Series) -> None:
        self.values = values
        self.numeric = isinstance(values.dtype, np.dtype) and values.dtype.kind in "iufb"
        self._missing: npt.NDArray[np.bool_] | None = None
        self._numbers: npt.NDArray[np.float64] | None = None
        self._text: pd.Series | None = None  # the values' text (numbers: distinct values')
        self._inverse: npt.NDArray[np.intp] = np.arange(0)  # value -> its distinct value

    @property
    def missing(self) -> npt.NDArray[np.bool_]:
        if self._missing is None:
            if self.numeric:
                self._missing = np.isnan(self.numbers)
            else:
                self._missing = self.values.isna().to_numpy()
        return self._missing

    @property
    def numbers(self) -> npt.NDArray[np.float64]:
        """The values as float64, NaN where missing or not a number at all."""
        if self._numbers is None:
            if self.numeric:
                self._numbers = self.values.to_numpy(dtype=np.float64)
            else:
                self._numbers = pd.to_numeric(self.values, errors="coerce").to_numpy(
                    dtype=np.float64, na_value=np.nan
                )
        return self._numbers

    def matches(self, regex: str) -> npt.NDArray[np.bool_]:
        """Which values' text (as great-expectations matches a regex against it) contains a
        match of `regex`. A number column's text is made once per distinct value (by its bits,
        so -0.0 and 0.0 stay apart): a batch holds few distinct numbers in many rows. A few
        numbers' verdicts are memoised by their bits (a number's text is a function of them),
        so a served row seen before makes no text at all."""
        if not self.numeric or len(self.values) > LOOKED_UP:
            return self._text_matches(regex)
        raw = self.values.to_numpy()
        keys = [(raw.dtype.str, bits) for bits in raw.view(f"u{raw.dtype.itemsize}").tolist()]
        seen = _SEEN.setdefault(regex, {})  # shared by the server's threads: read once, below
        verdicts = [seen.get(key) for key in keys]
        if all(verdict is not None for verdict in verdicts):
            return np.array(verdicts, dtype=bool)
        found = self._text_matches(regex)
        new = dict(zip(keys, found.tolist(), strict=True))
        if len(seen) + len(new) > SEEN_TEXTS:
            seen.clear()
        seen.update(new)
        return found

    def _text_matches(self, regex: str) -> npt.NDArray[np.bool_]:
        if self._text is None:
            if self.numeric:
                raw = self.values.to_numpy()
                bits = raw.view(f"u{raw.dtype.itemsize}")
                _, first, self._inverse = np.unique(bits, return_index=True, return_inverse=True)
                self._text = pd.Series(raw[first]).astype(str)
            else:
                self._text = self.values.astype(str)
        found = _contains(self._text, regex)
        return found[self._inverse] if self.numeric else found

    def members(self, allowed: list[Any]) -> npt.NDArray[np.bool_]:
        """Which values are in `allowed` (`Series.isin`). A few text values are looked up in a
        set of the allowed values instead: the same equality for text, without pandas building
        the set again on every call."""
        if len(self.values) <= LOOKED_UP and isinstance(self.values.dtype, pd.StringDtype):
            try:
                known = frozenset(allowed)
            except TypeError:  # an unhashable allowed value: pandas' way
                pass
            else:
                values = self.values.tolist()
                found = (isinstance(v, str) and v in known for v in values)
                return np.fromiter(found, dtype=bool, count=len(values))
        member: npt.NDArray[np.bool_] = self.values.isin(allowed).to_numpy()
        return member


# A regex's verdict on a text already seen (regex -> text -> matched): pandas compiles the pattern
# again on every call (~1 ms a call on pyarrow text), which a served model would pay for each
# request. Only few texts are looked up at a time; a full memo starts over.
_SEEN: dict[str, dict[str | tuple[str, int], bool]] = {}  # text, or a number's (dtype, bits)
SEEN_TEXTS = 4096  # per pattern
LOOKED_UP = 64  # at most this many texts a call go through the memo; more: one vectorised call


def _contains(text: pd.Series, regex: str) -> npt.NDArray[np.bool_]:
    """`text.str.contains(regex)` as a boolean array (missing text: False), through the memo
    for a few texts."""
    if len(text) > LOOKED_UP:
        return _searched(text, regex)
    seen = _SEEN.setdefault(regex, {})  # shared by the server's threads: read once, below
    keys = text.tolist()
    verdicts = {key: seen.get(key) for key in dict.fromkeys(keys) if isinstance(key, str)}
    new = [key for key, verdict in verdicts.items() if verdict is None]
    if new:
        found = _searched(pd.Series(new, dtype=text.dtype), regex).tolist()
        verdicts.update(zip(new, found, strict=True))
        if len(seen) + len(new) > SEEN_TEXTS:
            seen.clear()
        seen.update(zip(new, found, strict=True))
    return np.fromiter((bool(verdicts.get(key)) for key in keys), dtype=bool, count=len(keys))


def _searched(text: pd.Series, regex: str) -> npt.NDArray[np.bool_]:
    with warnings.catch_warnings():  # a pattern with groups: pandas warns, on every call
        warnings.filterwarnings("ignore", "This pattern is interpreted as a regular")
        found: npt.NDArray[np.bool_] = text.str.contains(regex, regex=True).to_numpy(bool)
    return found


def _broken(rule: dict[str, Any], column: _Column) -> npt.NDArray[np.bool_]:
    """Which rows break `rule` (a null breaks only not-null, as in great-expectations)."""
    if rule["type"] == NOT_NULL:
        return column.missing
    present = ~column.missing
    if rule["type"] == IN_SET:
        return present & ~column.members(rule["values"])
    if rule["type"] in (MATCH, NOT_MATCH):  # as great-expectations: the value's text, searched
        matched = column.matches(rule["regex"])
        return present & (~matched if rule["type"] == MATCH else matched)
    numbers = column.numbers
    bad = present & np.isnan(numbers)  # not a number at all
    with np.errstate(invalid="ignore"):
        if rule["min"] is not None:
            bad |= numbers <= rule["min"] if rule["strict_min"] else numbers < rule["min"]
        if rule["max"] is not None:
            bad |= numbers >= rule["max"] if rule["strict_max"] else numbers > rule["max"]
    return bad


def violations(rules: Sequence[dict[str, Any]], rows: pd.DataFrame) -> list[str]:
    """One sentence per broken rule: what it says, where it is written, how many rows and
    examples. Empty when every row keeps every rule."""
    found = []
    columns: dict[str, _Column] = {}
    for rule in rules:
        name = rule["column"]
        if name not in rows.columns:
            found.append(f"column {name!r} is missing ({rule['where']})")
            continue
        column = columns.get(name) or columns.setdefault(name, _Column(rows[name]))
        bad = _broken(rule, column)
        if bad.any():
            count = f"{_describe(rule)} ({rule['where']}): {int(bad.sum())} of {len(rows)} row(s)"
            if rule["type"] == NOT_NULL:
                found.append(f"{count} hold no value")
                continue
            examples = ", ".join(repr(v) for v in rows[name][bad].head(EXAMPLES).tolist())
            found.append(f"{count} break it, e.g. {examples}")
    return found


class InputRules(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """A pass-through step that refuses rows breaking `rules` (from `hard_rules`)."""

    def __init__(self, rules: Sequence[dict[str, Any]] = (), enforce: bool = True):
        self.rules = rules
        self.enforce = enforce

    def fit(self, X: Any, y: object = None) -> Self:  # noqa: N803 (scikit-learn's names)
        if hasattr(X, "columns"):
            self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        self.n_features_in_ = np.shape(X)[1]
        return self

    def transform(self, X: Any) -> Any:  # noqa: N803
        if self.enforce and self.rules:
            rows = X if isinstance(X, pd.DataFrame) else pd.DataFrame(X)
            found = violations(self.rules, rows)
            if found:
                raise InputRuleError(
                    REFUSAL + "; ".join(found) + ". Fix the rows, or the suite (then retrain)."
                )
        return X

    def get_feature_names_out(
        self, input_features: npt.ArrayLike | None = None
    ) -> npt.NDArray[np.object_]:
        if input_features is not None:
            return np.asarray(input_features, dtype=object)
        return np.asarray(getattr(self, "feature_names_in_", []), dtype=object)


def with_input_rules(model: Any, rules: Sequence[dict[str, Any]]) -> Pipeline:
    """`model` (a Pipeline or any estimator) behind an InputRules step, as one Pipeline."""
    first = (STEP, InputRules(list(rules)))
    if type(model) is Pipeline:
        return Pipeline([first, *model.steps], memory=model.memory, verbose=model.verbose)
    return Pipeline([first, ("model", model)])


def unchecked(model: Any) -> Any:
    """`model` with its input rules switched off: the gate scores a champion on rows its own
    (older) rules may refuse, to compare quality, not to serve them."""
    steps = getattr(model, "named_steps", None) or {}
    if isinstance(steps.get(STEP), InputRules):
        model.set_params(**{f"{STEP}__enforce": False})
    return model
