"""Batch scoring with a registered model: by default the env's `@champion`.

The logged model is the whole Pipeline, so scoring takes the raw records a client has (the
model's input columns, as its signature names them) and the model builds its own features: one
code path for training, batch and online scoring. Every scored row gets the model's
`prediction`; a classifier's rows also get one `probability_<class>` column per class and, for
a binary one, `probability` = P(the positive class, the second of `classes_`). Which kind of
model it is comes from the version's `ml_project.task` tag. Input is read and written in chunks
(bounded memory); the output appears only when complete (written to a temporary file beside
it, then renamed). A batch that holds the key columns (`data.key_columns`) names one record per
row: `DuplicateKeys` counts the rows whose key repeats an earlier row's, across chunks, and a
batch with any is refused unless the caller allows them.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ml_project import metrics
from ml_project.data import iso_text
from ml_project.errors import DataError, RegistryError, SetupError

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.parquet as pq
    from mlflow import MlflowClient

    from ml_project.settings import Settings

PREDICTION = "prediction"
PROBABILITY = "probability"  # binary: P(positive class); per class: probability_<class>
VERSION_COLUMNS = ("model_name", "model_version", "model_run_id")
CHAMPION = "champion"
TASK_TAG = "ml_project.task"


@dataclass(frozen=True)
class LoadedModel:
    """A fitted Pipeline with the registry facts every scored row carries."""

    uri: str
    name: str
    version: str
    run_id: str
    model: Any
    input_types: dict[str, str]  # raw column -> "string" | "double" (the signature, in order)
    task: str  # binary | multiclass | regression
    output_type: str = "double"  # the signature's type of `prediction` (string, long, ...)

    @property
    def classifier(self) -> bool:
        return self.task != "regression"

    @property
    def classes(self) -> list[Any]:
        """The classifier's classes in its probability columns' order (empty for a regressor)."""
        return list(self.model.classes_) if self.classifier else []


@dataclass(frozen=True)
class ScoringSummary:
    input: str
    output: str
    rows: int
    seconds: float
    model_uri: str
    model_name: str
    model_version: str
    model_run_id: str
    key_columns: tuple[str, ...] = ()  # the key columns checked (none: the batch lacks one)
    duplicate_key_rows: int | None = None  # rows repeating an earlier row's key (None: unchecked)

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds else float("inf")

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "rows_per_second": self.rows_per_second}


def default_model_uri(model_name: str) -> str:
    return f"models:/{model_name}@{CHAMPION}"


def probability_column(value: object) -> str:
    """`probability_<class>`, the class written as text."""
    return f"{PROBABILITY}_{value}"


def score_columns(task: str, classes: Iterable[object]) -> list[str]:
    """The prediction, then (binary) P(positive class), then one probability per class."""
    if task == "regression":
        return [PREDICTION]
    binary = [PROBABILITY] if task == "binary" else []
    return [PREDICTION, *binary, *(probability_column(value) for value in classes)]


def load_model(
    uri: str, client: MlflowClient, *, root: Path, trusted: list[str], task: str | None = None
) -> LoadedModel:
    """The sklearn Pipeline behind `uri` (models:/name@alias, models:/name/N or runs:/...),
    loaded by skops with the project's allow-list `trusted` (loading.py), never the artifact's.

    Its task is the version's (or its run's) `ml_project.task` tag; `task` is the fallback for
    a runs:/ URI whose run has none. The project's `problems/` is made importable first: a
    problem's own classes inside the model load from there.
    """
    from mlflow.models import Model

    from ml_project import loading
    from ml_project.problem import importable

    name, version, run_id, model_task = _registry_facts(uri, client, fallback=task)
    importable(root)
    local = loading.download(uri)
    model = loading.load_sklearn(uri, trusted, local=local)
    signature = Model.load(str(local / "MLmodel")).signature
    if signature is None:
        raise RegistryError(f"Model {uri} has no signature: its input columns are unknown.")
    input_types = {spec.name: spec.type.name for spec in signature.inputs.inputs}
    outputs = signature.outputs.inputs if signature.outputs is not None else []
    output_type = outputs[0].type.name if len(outputs) == 1 else "double"
    if model_task != "regression" and not hasattr(model, "predict_proba"):
        raise RegistryError(
            f"Model {uri} is tagged {TASK_TAG}={model_task} but has no predict_proba: it is not "
            "a classifier."
        )
    return LoadedModel(uri, name, version, run_id, model, input_types, model_task, output_type)


def project_trusted_types(settings: Settings, root: Path) -> list[str]:
    """The allow-list that loads the models of `settings`' problem (loading.py)."""
    from ml_project import loading
    from ml_project.problem import load_problem

    return loading.trusted_types(load_problem(settings, root))


def _registry_facts(
    uri: str, client: MlflowClient, *, fallback: str | None
) -> tuple[str, str, str, str]:
    """(model name, version, run id, task) of a models:/ or runs:/ URI ('' for a run's version)."""
    from mlflow.exceptions import MlflowException

    if uri.startswith("runs:/"):
        run_id = uri.removeprefix("runs:/").split("/", 1)[0]
        task = _run_tag(client, run_id, TASK_TAG) or fallback
        return "", "", run_id, _check_task(task, uri)
    if not uri.startswith("models:/"):
        raise RegistryError(
            f"Model URI {uri!r}: expected models:/NAME@ALIAS, models:/NAME/N or runs:/."
        )
    reference = uri.removeprefix("models:/")
    try:
        if "@" in reference:
            name, alias = reference.split("@", 1)
            version = client.get_model_version_by_alias(name, alias)
        else:
            name, number = reference.rsplit("/", 1)
            version = client.get_model_version(name, number)
    except (MlflowException, ValueError) as exc:
        raise RegistryError(
            f"The registry has no model at {uri} (has the env trained and promoted a champion "
            f"yet? `ml-project show --env ENV` lists versions and aliases)."
        ) from exc
    run_id = version.run_id or ""
    task = (version.tags or {}).get(TASK_TAG) or (
        _run_tag(client, run_id, TASK_TAG) if run_id else ""
    )
    return version.name, str(version.version), run_id, _check_task(task, uri)


def _run_tag(client: MlflowClient, run_id: str, key: str) -> str:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_run(run_id).data.tags.get(key, "")
    except MlflowException:
        return ""


def _check_task(task: str | None, uri: str) -> str:
    if task in metrics.TASKS:
        return task
    if not task:
        raise RegistryError(
            f"Model {uri}: neither the version nor its training run has a {TASK_TAG} tag, so "
            "whether it classifies or regresses is unknown (trained before task kinds "
            "existed?). Retrain it with this code."
        )
    raise RegistryError(
        f"Model {uri} is tagged {TASK_TAG}={task!r}; known tasks: {', '.join(metrics.TASKS)}."
    )


def typed_input(frame: pd.DataFrame, input_types: dict[str, str], *, source: str) -> pd.DataFrame:
    """The model's raw columns of `frame`, typed as its signature says (pure): a timestamp
    column the signature reads as text becomes ISO 8601 text (data.iso_text)."""
    missing = [name for name in input_types if name not in frame.columns]
    if missing:
        raise DataError(
            f"{source}: missing column(s) {', '.join(missing)} that the model needs "
            f"(it takes {', '.join(input_types)})."
        )
    typed = {}
    for name, kind in input_types.items():
        values = frame[name]
        if kind == "double":
            converted = pd.to_numeric(values, errors="coerce")
            bad = converted.isna() & values.notna()
            if bad.any():
                example = values[bad].iloc[0]
                raise DataError(
                    f"{source}: column {name} must be numeric; {int(bad.sum())} value(s) are not "
                    f"(e.g. {example!r})."
                )
            typed[name] = converted.astype("float64")
        else:  # text; a native datetime as the ISO 8601 text the model reads
            typed[name] = iso_text(values)
    return pd.DataFrame(typed, index=frame.index)


def predictions(loaded: LoadedModel, rows: pd.DataFrame, *, source: str) -> metrics.Predictions:
    """The model's prediction and, for a classifier, class probabilities on typed `rows`
    (read from `source`); DataError if the model's input rules refuse some of them."""
    from ml_project.input_rules import InputRuleError

    try:
        return metrics.predict(loaded.model, rows, loaded.task)
    except InputRuleError as exc:  # the model's own rules (or its problem's) refuse the rows
        raise DataError(f"{source}: {exc.message}") from exc


def score_frame(loaded: LoadedModel, frame: pd.DataFrame, *, source: str) -> pd.DataFrame:
    """`frame` with the prediction, a classifier's probabilities, and the model's name,
    version and run id."""
    features = typed_input(frame, loaded.input_types, source=source)
    said = predictions(loaded, features, source=source)
    scored = frame.copy()
    scored[PREDICTION] = said.prediction
    if said.probabilities is not None:
        assert said.classes is not None  # a classifier's Predictions name its classes
        if loaded.task == "binary":
            scored[PROBABILITY] = said.probabilities[:, 1]
        for index, value in enumerate(said.classes):
            scored[probability_column(value)] = said.probabilities[:, index]
    scored["model_name"] = loaded.name
    scored["model_version"] = loaded.version
    scored["model_run_id"] = loaded.run_id
    return scored


@dataclass
class DuplicateKeys:
    """The rows of a batch whose key repeats an earlier row's, counted chunk by chunk (pure).

    Each distinct key is kept as a 64-bit hash of its text (`pandas.util.hash_pandas_object`)
    in sorted runs merged as they grow: 8 bytes a key, never the rows. A key is compared as
    text, so 5, 5.0 and "5" are one key whatever type a CSV chunk read it as; a row with a
    missing key value names no record and is not counted. Two different keys share a hash with
    a chance of about n^2 / 2^65 for n keys (1 in 370,000 for ten million).
    """

    columns: tuple[str, ...]
    rows: int = 0  # rows whose key an earlier row already had
    example: str = ""  # the first such key, e.g. "id=1007"
    _runs: list[np.ndarray] = field(default_factory=list, repr=False)

    @classmethod
    def of_batch(cls, columns: Iterable[str], key_columns: Sequence[str]) -> DuplicateKeys | None:
        """A counter when the batch's `columns` hold every key column, else None."""
        present = set(columns)
        if not key_columns or not all(name in present for name in key_columns):
            return None
        return cls(tuple(key_columns))

    def add(self, chunk: pd.DataFrame) -> None:
        """Count one chunk's rows whose key a row before them had."""
        keys = chunk[list(self.columns)]
        keys = keys[keys.notna().all(axis=1).to_numpy()]
        text = pd.DataFrame({name: _key_text(keys[name]) for name in self.columns})
        hashes = pd.util.hash_pandas_object(text, index=False).to_numpy()
        repeats = pd.Series(hashes).duplicated().to_numpy() | self._seen(hashes)
        found = int(repeats.sum())
        if found and not self.example:
            row = keys.iloc[int(np.flatnonzero(repeats)[0])]
            self.example = ", ".join(f"{name}={row[name]}" for name in self.columns)
        fresh = np.sort(hashes[~repeats])
        if fresh.size:
            self._runs.append(fresh)
            while len(self._runs) > 1 and len(self._runs[-2]) <= len(self._runs[-1]):
                newest = self._runs.pop()
                self._runs[-1] = np.union1d(self._runs[-1], newest)
        self.rows += found

    def _seen(self, hashes: np.ndarray) -> np.ndarray:
        seen = np.zeros(len(hashes), dtype=bool)
        for run in self._runs:
            at = np.minimum(np.searchsorted(run, hashes), len(run) - 1)
            seen |= run[at] == hashes
        return seen

    def describe(self, source: str) -> str:
        """`source`: how many rows repeat a key, the key columns and an example."""
        return (
            f"{source}: {self.rows} row(s) repeat the key of an earlier row (key columns "
            f"{', '.join(self.columns)}, data.key_columns; e.g. {self.example})"
        )

    def as_dict(self) -> dict[str, Any]:
        return {"columns": list(self.columns), "rows": self.rows, "example": self.example}


def repeated_keys_error(described: str) -> DataError:
    """Why a batch whose rows repeat keys is refused (`described`: DuplicateKeys.describe)."""
    return DataError(
        f"{described}: each row of a batch must be a different record, or its scores join back "
        "to the wrong rows and count twice downstream. Nothing was written. Keep one row per "
        "key, or pass --allow-duplicate-keys to score every row all the same."
    )


def _key_text(values: pd.Series) -> pd.Series:
    """A key column as text, a whole float as an integer (a CSV chunk with a gap reads 5 as
    5.0)."""
    text = values.astype("str")
    if pd.api.types.is_float_dtype(values.dtype):
        number = values.to_numpy(dtype=np.float64, na_value=np.nan)
        whole = np.isfinite(number) & (np.floor(number) == number) & (np.abs(number) < 2.0**63)
        text[whole] = number[whole].astype(np.int64).astype(str)
    return text


def read_chunks(path: Path, *, chunk_rows: int) -> Iterator[pd.DataFrame]:
    """`path` (CSV, zipped CSV or Parquet) in chunks of at most `chunk_rows` rows."""
    from ml_project.data import read_table

    if not path.is_file() or path.stat().st_size == 0:
        read_table(path)  # raises the same clear DataError as training
    suffix = "".join(path.suffixes[-2:]).lower()
    if suffix.endswith((".parquet", ".pq")):
        import pyarrow.parquet as pq

        try:
            reader = pq.ParquetFile(path)
            for batch in reader.iter_batches(batch_size=chunk_rows):
                yield batch.to_pandas()
        except OSError as exc:
            raise DataError(f"{path}: the Parquet file cannot be read ({exc}).") from exc
        return
    try:
        compression = "zip" if suffix.endswith(".zip") else "infer"
        yield from pd.read_csv(path, chunksize=chunk_rows, compression=compression)
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: the file is not UTF-8 text ({exc.reason}).") from exc
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError, OSError) as exc:
        raise DataError(f"{path}: the file cannot be read as CSV ({exc}).") from exc


class _Writer:
    """Appends scored chunks to a temporary file; `commit` renames it into place."""

    def __init__(self, output: Path) -> None:
        self.output = output
        self.temporary = output.with_name(f".{output.name}.partial-{os.getpid()}")
        self.parquet = output.suffix.lower() in (".parquet", ".pq")
        if not self.parquet and output.suffix.lower() != ".csv":
            raise DataError(f"{output}: the output must end in .parquet or .csv.")
        self._parquet_writer: pq.ParquetWriter | None = None
        self._schema: pa.Schema | None = None
        self._first = True

    def write(self, chunk: pd.DataFrame) -> None:
        try:
            self._write(chunk)
        except OSError as exc:
            raise self.failure(exc) from exc

    def failure(self, exc: OSError) -> SetupError:
        return SetupError(
            f"{self.output} cannot be written ({exc.strerror or exc}; a full disk or a lost "
            "mount): nothing was left in its place."
        )

    def _write(self, chunk: pd.DataFrame) -> None:
        if self.parquet:
            import pyarrow as pa
            import pyarrow.parquet as pq

            table = pa.Table.from_pandas(chunk, schema=self._schema, preserve_index=False)
            if self._parquet_writer is None:
                self._schema = table.schema
                self._parquet_writer = pq.ParquetWriter(self.temporary, self._schema)
            self._parquet_writer.write_table(table)
        else:
            chunk.to_csv(
                self.temporary, mode="w" if self._first else "a", header=self._first, index=False
            )
        self._first = False

    def commit(self) -> None:
        try:
            if self._parquet_writer is not None:
                self._parquet_writer.close()
                self._parquet_writer = None
            os.replace(self.temporary, self.output)
        except OSError as exc:
            raise self.failure(exc) from exc

    def discard(self) -> None:
        if self._parquet_writer is not None:
            self._parquet_writer.close()
        self.temporary.unlink(missing_ok=True)


def score_file(
    loaded: LoadedModel,
    *,
    input_path: Path,
    output_path: Path,
    chunk_rows: int = 100_000,
    check_chunk: Callable[[pd.DataFrame], None] | None = None,
    progress: bool | None = None,
    key_columns: Sequence[str] = (),
    allow_duplicate_keys: bool = False,
) -> ScoringSummary:
    """Score `input_path` chunk by chunk into `output_path`; nothing is left behind on error.

    When the batch holds every one of `key_columns`, a row whose key repeats an earlier row's
    refuses the batch (DataError, after counting the rest of the file's keys, unscored) unless
    `allow_duplicate_keys`; the summary says how many rows repeat a key either way.
    """
    from tqdm import tqdm

    start = time.perf_counter()
    writer = _Writer(output_path)
    rows = 0
    keys: DuplicateKeys | None = None
    show = sys.stderr.isatty() if progress is None else progress
    bar = tqdm(desc=f"scoring {input_path.name}", unit=" rows", disable=not show, file=sys.stderr)
    try:
        for chunk in read_chunks(input_path, chunk_rows=chunk_rows):
            if rows == 0:
                keys = DuplicateKeys.of_batch(chunk.columns, key_columns)
            rows += len(chunk)
            bar.update(len(chunk))
            if keys is not None:
                keys.add(chunk)
                if keys.rows and not allow_duplicate_keys:
                    continue  # refused below, once the rest of the file's keys are counted
            if check_chunk is not None:
                check_chunk(chunk)
            writer.write(score_frame(loaded, chunk, source=str(input_path)))
        if rows == 0:
            raise DataError(f"{input_path}: the file has a header but no rows.")
        if keys is not None and keys.rows and not allow_duplicate_keys:
            raise repeated_keys_error(keys.describe(str(input_path)))
        writer.commit()
    except BaseException:
        writer.discard()
        raise
    finally:
        bar.close()
    return ScoringSummary(
        input=str(input_path),
        output=str(output_path),
        rows=rows,
        seconds=time.perf_counter() - start,
        model_uri=loaded.uri,
        model_name=loaded.name,
        model_version=loaded.version,
        model_run_id=loaded.run_id,
        key_columns=keys.columns if keys is not None else (),
        duplicate_key_rows=keys.rows if keys is not None else None,
    )


def input_checker(settings: Settings, root: Path, *, source: str) -> Callable[[pd.DataFrame], None]:
    """The model-input expectation suite as a per-chunk check (DataError on failure)."""
    from ml_project import validation
    from ml_project.data import require_columns
    from ml_project.records import with_iso_times

    columns = settings.features.columns
    validate = validation.TableValidator(validation.MODEL_INPUT, settings=settings, root=root)

    def check(chunk: pd.DataFrame) -> None:
        require_columns(chunk, columns, table=source)
        rows = with_iso_times(chunk[columns], settings.features.datetime)  # as the model reads
        report = validate(rows, source=source)
        if not report.success:
            raise DataError(validation.failure_message([report], context=f" for {source}"))

    return check


def run_batch_scoring(
    settings: Settings,
    *,
    root: Path,
    input_path: Path,
    output_path: Path,
    model_uri: str | None,
    chunk_rows: int,
    allow_duplicate_keys: bool = False,
) -> ScoringSummary:
    """Load the model (default: the env's champion), check each chunk, score, write."""
    from ml_project import tracking

    client = tracking.connect(root, write=False)  # scoring reads the registry, writes nothing
    uri = model_uri or default_model_uri(settings.model_name)
    loaded = load_model(
        uri, client, root=root, trusted=project_trusted_types(settings, root), task=settings.task
    )
    return score_file(
        loaded,
        input_path=input_path,
        output_path=output_path,
        chunk_rows=chunk_rows,
        check_chunk=input_checker(settings, root, source=str(input_path)),
        key_columns=settings.data.key_columns,
        allow_duplicate_keys=allow_duplicate_keys,
    )
