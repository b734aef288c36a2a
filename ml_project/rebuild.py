"""The rebuild driver: retrain a model with the code of an old commit, and fingerprint each step.

`reproduce.py` runs this file's source in a subprocess (`python -c`) whose working directory
and `PYTHONPATH` are a temporary checkout of the commit that trained the model, so
`import ml_project` there is *that commit's* code, even a commit older than this file. It
registers and logs nothing: it reads a JSON request, retrains, and writes a JSON answer.

So this file is self-contained: at the top it imports only the standard library, numpy and
pandas; it never imports the current `ml_project`. From the old commit's `ml_project` it uses
only these functions, which exist since the first commit and must stay stable (same names,
arguments and returned fields) for every model version to remain reproducible:

- `ml_project.settings.validate_settings(mapping) -> Settings` (and `Settings.config_hash()`,
  `.seed`);
- `ml_project.pipeline.data_sources(settings, root) -> .flights, .weather` (paths);
- `ml_project.data.read_table(path) -> DataFrame`, `data.file_digest(path) -> str`,
  `data.frame_digest(frame) -> str`, `data.LABEL`;
- `ml_project.pipeline.prepare_data(settings, flights, weather) -> .split.train, .split.test,
  .columns, .rows, .digests` (the digests training tagged as `data.<name>`);
- `ml_project.pipeline.fit_and_score(settings, prepared) -> .model, .test_probability,
  .metrics, .features_digest`;
- optionally `ml_project.pipeline.predictions_digest(probability) -> str` (from the commit
  that started tagging `predictions.digest`; the same formula is used when it is absent).

The steps it reports, in order: config, sources (file sha256, rows, schema), data (row counts,
digests of the rows used), then, unless the data differ from what was recorded, features
(digest of the transformed train matrix and a sample of it), model (a digest of the fitted
state and its parameters, for the rebuilt model and for the registered one loaded from its
skops file), predictions on the evaluation rows (digest, and the max abs difference from the
registered model's own predictions) and metrics.
"""

from __future__ import annotations

import functools
import hashlib
import json
import sys
import time
import traceback
from pathlib import Path

import numpy as np
import pandas as pd

SAMPLE_ROWS = 100
DATA_DIGESTS = ("digest", "train_digest", "test_digest")


def predictions_digest(probability) -> str:
    """sha256 of the held-out probabilities (float64, in row order); the training tag's formula."""
    from ml_project import data

    values = np.ascontiguousarray(probability, dtype=np.float64)
    return data.frame_digest(pd.DataFrame({"probability": values}))


def table_schema(frame: pd.DataFrame) -> dict[str, str]:
    """{column: dtype} of a raw table, in file order."""
    return {str(name): str(dtype) for name, dtype in frame.dtypes.items()}


def state_digest(obj) -> str:
    """sha256 of an object's full state: class names, parameters and every fitted array.

    A skops file is not byte-stable (it names arrays by object id and stamps zip times), so
    models are compared by what they hold: the rebuilt model in memory against the registered
    model loaded from its skops file. Two objects with equal state give the same digest.
    """
    digest = hashlib.sha256()
    _feed(digest, obj, {})
    return digest.hexdigest()


def _feed(digest, obj, seen: dict[int, int]) -> None:  # noqa: C901 - one branch per kind
    update = digest.update
    if obj is None or isinstance(obj, bool | int | float | complex | str | bytes):
        update(f"{type(obj).__name__}:{obj!r};".encode())
    elif isinstance(obj, np.ndarray):
        update(f"ndarray:{obj.dtype.str}:{obj.shape}:{obj.dtype.names};".encode())
        if obj.dtype.hasobject:
            for item in obj.ravel(order="C"):
                _feed(digest, item, seen)
        else:
            update(np.ascontiguousarray(obj).tobytes())
    elif isinstance(obj, np.generic):
        update(f"{obj.dtype.str}:".encode() + obj.tobytes() + b";")
    elif isinstance(obj, np.dtype):
        update(f"dtype:{obj.str}:{obj.names};".encode())
    elif isinstance(obj, type):
        update(f"type:{obj.__module__}.{obj.__qualname__};".encode())
    elif isinstance(obj, dict):
        update(f"dict:{len(obj)};".encode())
        for key in sorted(obj, key=repr):
            _feed(digest, key, seen)
            _feed(digest, obj[key], seen)
    elif isinstance(obj, list | tuple):
        update(f"{type(obj).__name__}:{len(obj)};".encode())
        for item in obj:
            _feed(digest, item, seen)
    elif isinstance(obj, set | frozenset):
        update(f"set:{sorted(repr(item) for item in obj)};".encode())
    elif isinstance(obj, functools.partial):
        update(b"partial;")
        _feed(digest, obj.func, seen)
        _feed(digest, obj.args, seen)
        _feed(digest, obj.keywords, seen)
    elif callable(obj) and hasattr(obj, "__qualname__") and not hasattr(obj, "__dict__"):
        update(f"callable:{getattr(obj, '__module__', '')}.{obj.__qualname__};".encode())
    elif id(obj) in seen:  # a shared or cyclic reference: name it by first appearance
        update(f"ref:{seen[id(obj)]};".encode())
    else:
        seen[id(obj)] = len(seen)
        cls = type(obj)
        update(f"object:{cls.__module__}.{cls.__qualname__};".encode())
        if isinstance(obj, np.random.RandomState):
            state = obj.get_state(legacy=False)
        elif hasattr(obj, "__getstate__"):
            state = obj.__getstate__()
        else:
            state = getattr(obj, "__dict__", repr(obj))
        if state is None and hasattr(obj, "__dict__"):
            state = obj.__dict__
        _feed(digest, state, seen)


def model_params(model) -> dict[str, str]:
    """`get_params(deep=True)` as text, without the nested estimators (their params are listed)."""
    from sklearn.base import BaseEstimator

    def holds_estimator(value) -> bool:
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


def feature_sample(model, rows: pd.DataFrame) -> dict:
    """The transformed feature matrix of `rows` (all steps but the last), as JSON-able lists."""
    transformed = model[:-1].transform(rows)
    try:
        columns = [str(name) for name in model[:-1].get_feature_names_out()]
    except (AttributeError, ValueError):
        columns = [str(index) for index in range(np.shape(transformed)[1])]
    values = np.asarray(transformed, dtype=np.float64)
    return {
        "columns": columns,
        "rows": [[None if np.isnan(v) else float(v) for v in row] for row in values],
    }


def load_registered(request: dict):
    """The registered model, loaded from its skops file with the types its MLmodel trusts."""
    registered = request.get("registered_model") or {}
    if not registered.get("path"):
        return None
    import skops.io

    return skops.io.load(registered["path"], trusted=registered.get("trusted_types") or [])


def rebuild(request: dict, answer: dict) -> None:
    """Fill `answer` step by step; stop after the data step if the rows differ."""
    import yaml

    import ml_project
    from ml_project import data, pipeline
    from ml_project import settings as settings_module

    timings = answer["timings"]
    started = time.perf_counter()
    answer["code"] = {
        "package_file": str(Path(ml_project.__file__).resolve()),
        "version": getattr(ml_project, "__version__", ""),
        "has_predictions_digest": hasattr(pipeline, "predictions_digest"),
    }
    answer["step"] = "config"
    mapping = yaml.safe_load(request["settings_yaml"])
    settings = settings_module.validate_settings(mapping)
    answer["config"] = {"hash": settings.config_hash(), "seed": settings.seed}

    answer["step"] = "sources"
    sources = pipeline.data_sources(settings, Path(request["root"]))
    paths = {"flights": Path(sources.flights), "weather": Path(sources.weather)}
    for name, override in (request.get("overrides") or {}).items():
        if override:
            paths[name] = Path(override)
    answer["sources"] = {name: {"path": str(path)} for name, path in paths.items()}
    tables = {}
    for name, path in paths.items():
        tables[name] = data.read_table(path)
        answer["sources"][name].update(
            sha256=data.file_digest(path),
            rows=len(tables[name]),
            schema=table_schema(tables[name]),
        )
    timings["read_s"] = time.perf_counter() - started

    answer["step"] = "data"
    prepared = pipeline.prepare_data(settings, tables["flights"], tables["weather"])
    answer["data"] = {"rows": dict(prepared.rows), "digests": dict(prepared.digests)}
    timings["prepare_s"] = time.perf_counter() - started - timings["read_s"]
    expected = request.get("expect_data") or {}
    if any(expected.get(key) not in (None, prepared.digests.get(key)) for key in DATA_DIGESTS):
        answer["stopped"] = "data"
        return

    answer["step"] = "fit"
    fit_started = time.perf_counter()
    trained = pipeline.fit_and_score(settings, prepared)
    timings["fit_s"] = time.perf_counter() - fit_started
    model = trained.model
    train, test = prepared.split.train, prepared.split.test
    columns = list(prepared.columns)
    features_digest = getattr(trained, "features_digest", None) or data.frame_digest(
        pd.DataFrame(model[:-1].transform(train[columns]))
    )
    sample_rows = train[columns].head(request.get("sample_rows", SAMPLE_ROWS))
    answer["features"] = {"digest": features_digest, "sample": feature_sample(model, sample_rows)}
    digest_of = getattr(pipeline, "predictions_digest", predictions_digest)
    probability = np.asarray(trained.test_probability, dtype=np.float64)
    answer["model"] = {
        "class": f"{type(model).__module__}.{type(model).__qualname__}",
        "digest": state_digest(model),
        "params": model_params(model),
    }
    answer["predictions"] = {"rows": len(probability), "digest": digest_of(probability)}
    answer["metrics"] = {key: float(value) for key, value in trained.metrics.items()}

    answer["step"] = "registered model"
    registered = load_registered(request)
    if registered is not None:
        theirs = np.asarray(registered.predict_proba(test[columns])[:, 1], dtype=np.float64)
        answer["registered"] = {
            "digest": state_digest(registered),
            "params": model_params(registered),
            "predictions_digest": digest_of(theirs),
            "max_abs_diff": float(np.max(np.abs(theirs - probability), initial=0.0)),
        }
    answer["step"] = "done"


def main(argv: list[str]) -> int:
    """`python -c <this source> REQUEST.json ANSWER.json`: always writes an answer."""
    request = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    answer: dict = {"stopped": None, "error": None, "timings": {}, "step": "start"}
    code = 0
    try:
        rebuild(request, answer)
    except Exception as exc:  # reported to the parent, which names the step and the commit
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
