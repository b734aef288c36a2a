"""The rebuild driver: a commit's own code retrains its model and fingerprints each step.

`ml-project reproduce` checks the commit that trained a model version out into a temporary git
worktree and runs there

    python -m ml_project.rebuild REQUEST.json ANSWER.json

with the commit's project folder as working directory and `PYTHONPATH`, so `ml_project` and
`problems.<name>.problem` are *that commit's* code. It registers and logs nothing: it reads the
request, retrains, and writes the answer. It may use the package freely, since the package is
always the one of the same commit; the only contract between the commit that reproduces and the
commit that trained is the JSON below, versioned by `pipeline.REBUILD_PROTOCOL` (training tags
it as `ml_project.rebuild_protocol`; `reproduce` refuses a version whose protocol it does not
speak, before checking anything out).

Request, protocol "2":

    protocol          "2"
    settings_yaml     the resolved settings the run logged (config/settings.yaml)
    data_root         the user's current project root: relative table paths resolve against it
    code_root         the worktree's project folder: the problem's code is imported from it
    tables            {name: path or null}: read this file instead: a moved copy (--table)
                      or the snapshot its run kept (snapshots.py); a copy of a table that is
                      no local file is digested by its rows (sources.digest)
    expect_data       {digest name: recorded value}: stop before fitting when the rows differ
    registered_model  {path, trusted_types} of the registered skops file, or {} (not compared
                      here: the caller judges registered files it refused)
    sample_rows       rows of the feature sample (at most pipeline.FEATURE_SAMPLE_ROWS)

Answer (each step is filled when it is reached):

    protocol, step    the protocol spoken; the last step begun
    stopped           "data" when the rows differ from `expect_data` (nothing was fitted)
    error             {step, type, message, traceback} when the code raised, else null
    timings           {read_s, prepare_s, fit_s}
    code              {package_file, problem_file, version}: where the code ran from
    config            {hash, seed, task}
    sources           {table: {path, sha256, rows, schema}}
    data              {rows, digests}: what pipeline.prepare_data counted and digested
    features          {digest, sample: {columns, rows}}: the transformed train matrix
    model             {class, digest, params, content}: the rebuilt model's fitted state, and
                      its skops file's content digest (model_digest.py; absent before it)
    predictions       {rows, columns, digest, max_abs_diff}: on the held-out rows; the
                      difference is against the registered model's own predictions
                      (every class probability of a classifier, the value of a regressor)
    metrics           {metric: value}: the task's metrics on the held-out rows
    registered        {digest, params, predictions_digest}: the registered model, loaded
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import math
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd
import yaml

import ml_project
from ml_project import data, metrics, model_digest, pipeline, sources
from ml_project.problem import Problem, load_problem
from ml_project.records import PreparedData
from ml_project.settings import Settings, validate_settings

SAMPLE_ROWS = 100


def table_schema(frame: pd.DataFrame) -> dict[str, str]:
    """{column: dtype} of a raw table, in file order."""
    return {str(name): str(dtype) for name, dtype in frame.dtypes.items()}


def sample_values(frame: pd.DataFrame) -> dict[str, Any]:
    """A feature sample as JSON: {columns, rows}, each cell a float, text, or None for a gap.

    Built from the CSV the sample is logged as (written and read back the same way), so the
    rebuilt sample and the recorded `features/sample.csv` compare cell by cell.
    """
    text = frame.to_csv(index=False)
    return read_sample(io.StringIO(text))


def read_sample(source: str | Path | IO[str]) -> dict[str, Any]:
    """A feature sample CSV (path or text buffer) as {columns, rows}."""
    frame = pd.read_csv(source)
    return {
        "columns": [str(name) for name in frame.columns],
        "rows": [[_cell(value) for value in row] for row in frame.itertuples(index=False)],
    }


def _cell(value: object) -> float | str | None:
    if value is None or (isinstance(value, float | np.floating) and math.isnan(value)):
        return None
    if isinstance(value, bool | np.bool_):
        return float(value)
    if isinstance(value, int | float | np.integer | np.floating):
        return float(value)
    return None if pd.isna(value) else str(value)


def state_digest(obj: object) -> str:
    """sha256 of an object's full state: class names, parameters and every fitted array.

    A skops file is not byte-stable (it names arrays by object id and stamps zip times), so
    models are compared by what they hold: the rebuilt model in memory against the registered
    model loaded from its skops file. Two objects with equal state give the same digest.
    """
    digest = hashlib.sha256()
    _feed(digest, obj, {})
    return digest.hexdigest()


def _feed(digest: hashlib._Hash, obj: object, seen: dict[int, int]) -> None:
    """Feed `obj` into `digest`: a value by its repr, a container item by item, an object by
    its state (a shared or cyclic reference by the order it first appeared)."""
    for kind, feed in _FEEDERS:
        if isinstance(obj, kind):
            feed(digest, obj, seen)
            return
    if callable(obj) and hasattr(obj, "__qualname__") and not hasattr(obj, "__dict__"):
        digest.update(f"callable:{getattr(obj, '__module__', '')}.{obj.__qualname__};".encode())
    elif id(obj) in seen:
        digest.update(f"ref:{seen[id(obj)]};".encode())
    else:
        seen[id(obj)] = len(seen)
        cls = type(obj)
        digest.update(f"object:{cls.__module__}.{cls.__qualname__};".encode())
        _feed(digest, _state(obj), seen)


def _state(obj: object) -> object:
    state: object
    if isinstance(obj, np.random.RandomState):
        state = obj.get_state(legacy=False)
    elif hasattr(obj, "__getstate__"):
        state = obj.__getstate__()
    else:
        state = getattr(obj, "__dict__", repr(obj))
    if state is None and hasattr(obj, "__dict__"):
        state = obj.__dict__
    return state


def _feed_value(digest: hashlib._Hash, obj: Any, seen: dict[int, int]) -> None:
    digest.update(f"{type(obj).__name__}:{obj!r};".encode())


def _feed_array(digest: hashlib._Hash, obj: Any, seen: dict[int, int]) -> None:
    digest.update(f"ndarray:{obj.dtype.str}:{obj.shape}:{obj.dtype.names};".encode())
    if obj.dtype.hasobject:
        for item in obj.ravel(order="C"):
            _feed(digest, item, seen)
    else:
        digest.update(np.ascontiguousarray(obj).tobytes())


def _feed_dict(digest: hashlib._Hash, obj: Any, seen: dict[int, int]) -> None:
    digest.update(f"dict:{len(obj)};".encode())
    for key in sorted(obj, key=repr):
        _feed(digest, key, seen)
        _feed(digest, obj[key], seen)


def _feed_sequence(digest: hashlib._Hash, obj: Any, seen: dict[int, int]) -> None:
    digest.update(f"{type(obj).__name__}:{len(obj)};".encode())
    for item in obj:
        _feed(digest, item, seen)


def _feed_partial(digest: hashlib._Hash, obj: Any, seen: dict[int, int]) -> None:
    digest.update(b"partial;")
    for part in (obj.func, obj.args, obj.keywords):
        _feed(digest, part, seen)


_FEEDERS: tuple[tuple[type | tuple[type, ...], Callable[..., None]], ...] = (
    ((type(None), bool, int, float, complex, str, bytes), _feed_value),
    (np.ndarray, _feed_array),
    (np.generic, lambda d, o, s: d.update(f"{o.dtype.str}:".encode() + o.tobytes() + b";")),
    (np.dtype, lambda d, o, s: d.update(f"dtype:{o.str}:{o.names};".encode())),
    (type, lambda d, o, s: d.update(f"type:{o.__module__}.{o.__qualname__};".encode())),
    (dict, _feed_dict),
    ((list, tuple), _feed_sequence),
    ((set, frozenset), lambda d, o, s: d.update(f"set:{sorted(repr(i) for i in o)};".encode())),
    (functools.partial, _feed_partial),
)


def model_params(model: object) -> dict[str, str]:
    """`get_params(deep=True)` as text, without the nested estimators (their params are listed)."""
    from sklearn.base import BaseEstimator

    if not hasattr(model, "get_params"):
        return {}

    def holds_estimator(value: object) -> bool:
        if isinstance(value, BaseEstimator):
            return True
        if isinstance(value, list | tuple):
            return any(holds_estimator(item) for item in value)
        return False

    return {
        key: repr(value)
        for key, value in sorted(model.get_params(deep=True).items())
        if not holds_estimator(value)
    }


def max_abs_diff(ours: np.ndarray, theirs: np.ndarray) -> float | None:
    """The largest difference between two prediction matrices (None if their shapes differ);
    NaN in both at the same place counts as equal."""
    if ours.shape != theirs.shape:
        return None
    same_gap = np.isnan(ours) & np.isnan(theirs)
    diff = np.where(same_gap, 0.0, np.abs(ours - theirs))
    return float(np.max(np.nan_to_num(diff, nan=np.inf), initial=0.0))


def load_registered(request: dict[str, Any]) -> object | None:
    """The registered model, loaded from its skops file with the types its MLmodel trusts."""
    registered = request.get("registered_model") or {}
    if not registered.get("path"):
        return None
    import skops.io

    model: object = skops.io.load(registered["path"], trusted=registered.get("trusted_types") or [])
    return model


def rebuild(request: dict[str, Any], answer: dict[str, Any]) -> None:
    """Fill `answer` step by step; stop after the data step if the rows differ."""
    started = time.perf_counter()
    answer["protocol"] = pipeline.REBUILD_PROTOCOL
    answer["code"] = {
        "package_file": str(Path(ml_project.__file__).resolve()),
        "version": getattr(ml_project, "__version__", ""),
    }
    answer["step"] = "protocol"
    if request.get("protocol") != pipeline.REBUILD_PROTOCOL:
        raise ValueError(
            f"the request speaks rebuild protocol {request.get('protocol')!r}, this commit's "
            f"driver speaks {pipeline.REBUILD_PROTOCOL!r}"
        )
    answer["step"] = "config"
    settings = validate_settings(yaml.safe_load(request["settings_yaml"]))
    answer["config"] = {
        "hash": settings.config_hash(),
        "seed": settings.seed,
        "task": settings.task,
    }
    answer["step"] = "problem"
    problem = load_problem(settings, Path(request["code_root"]))
    assert problem.module.__file__ is not None  # imported from its problem.py
    answer["code"]["problem_file"] = str(Path(problem.module.__file__).resolve())
    answer["step"] = "sources"
    tables = _read_sources(settings, request, answer)
    answer["timings"]["read_s"] = time.perf_counter() - started
    answer["step"] = "data"
    prepared = pipeline.prepare_data(settings, problem, tables)
    answer["data"] = {"rows": dict(prepared.rows), "digests": dict(prepared.digests)}
    answer["timings"]["prepare_s"] = time.perf_counter() - started - answer["timings"]["read_s"]
    expected = request.get("expect_data") or {}
    if any(value not in (None, prepared.digests.get(key)) for key, value in expected.items()):
        answer["stopped"] = "data"
        return
    answer["step"] = "fit"
    rows = min(int(request.get("sample_rows") or SAMPLE_ROWS), pipeline.FEATURE_SAMPLE_ROWS)
    ours = _fit(settings, problem, prepared, answer, rows)
    answer["step"] = "registered model"
    registered = load_registered(request)
    if registered is not None:
        test = pipeline.model_input(settings, prepared.split.test)
        theirs = metrics.predict(registered, test, settings.task)
        answer["predictions"]["max_abs_diff"] = max_abs_diff(ours, theirs.matrix())
        answer["registered"] = {
            "digest": state_digest(registered),
            "params": model_params(registered),
            "predictions_digest": pipeline.predictions_digest(theirs),
        }
    answer["step"] = "done"


def _read_sources(
    settings: Settings, request: dict[str, Any], answer: dict[str, Any]
) -> dict[str, pd.DataFrame]:
    """The tables (or their moved copies and snapshots) read, each one's source, digest, rows
    and schema; a copy is digested as its table's source is (sources.digest)."""
    overrides = request.get("tables") or {}
    data_root, code_root = Path(request["data_root"]), Path(request["code_root"])
    found = {
        name: sources.locate(spec, data_root, query_root=code_root)
        for name, spec in settings.data.tables.items()
    }
    paths = {name: Path(overrides[name]) if overrides.get(name) else found[name] for name in found}
    answer["sources"] = {name: {"path": str(path)} for name, path in paths.items()}
    tables = pipeline.read_tables(paths)
    for name, table in tables.items():
        kept = overrides.get(name) and not sources.is_local_file(found[name])
        digest = data.frame_digest(table) if kept else sources.digest(paths[name], table)
        answer["sources"][name].update(sha256=digest, rows=len(table), schema=table_schema(table))
    return tables


def _fit(
    settings: Settings, problem: Problem, prepared: PreparedData, answer: dict[str, Any], rows: int
) -> np.ndarray:
    """Train as training does; the features (a sample of `rows`), model, predictions and
    metrics fingerprinted."""
    fit_started = time.perf_counter()
    trained = pipeline.fit_and_score(settings, problem, prepared)
    answer["timings"]["fit_s"] = time.perf_counter() - fit_started
    model = trained.model
    sample = pipeline.feature_sample(settings, model, prepared.split.train.head(rows))
    answer["features"] = {"digest": trained.features_digest, "sample": sample_values(sample)}
    answer["model"] = {
        "class": f"{type(model).__module__}.{type(model).__qualname__}",
        "digest": state_digest(model),
        "params": model_params(model),
        "content": model_digest.model_content_digest(model),
    }
    ours: np.ndarray = trained.predictions.matrix()
    answer["predictions"] = {
        "rows": int(ours.shape[0]),
        "columns": int(ours.shape[1]),
        "digest": pipeline.predictions_digest(trained.predictions),
        "max_abs_diff": None,
    }
    answer["metrics"] = {key: float(value) for key, value in trained.metrics.items()}
    return ours


def main(argv: list[str]) -> int:
    """`python -m ml_project.rebuild REQUEST.json ANSWER.json`: always writes an answer."""
    if len(argv) != 2:
        sys.stderr.write("usage: python -m ml_project.rebuild REQUEST.json ANSWER.json\n")
        return 2
    request = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    answer: dict[str, Any] = {"stopped": None, "error": None, "timings": {}, "step": "start"}
    code = 0
    try:
        rebuild(request, answer)
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which names the step and the commit
        answer["error"] = {
            "step": answer.get("step"),
            "type": type(exc).__name__,
            "message": str(exc),
            "traceback": traceback.format_exc(limit=8),
        }
        code = 1
    Path(argv[1]).write_text(json.dumps(answer, allow_nan=True), encoding="utf-8")
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
